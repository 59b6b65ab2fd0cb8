//! CreateContainerGroup: decoding `Container.N.*`, `InitContainer.N.*` and the group's own
//! parameters into a normalised `berth_core::GroupSpec`.

use std::collections::HashSet;

use berth_core::{
    normalize_size, ContainerSpec, EnvVar, GroupSpec, ImagePullPolicy, PortSpec,
    RegistryCredential, RestartPolicy, Size, Tag,
};

use super::probes::Kind;
use super::validate;
use crate::error::ApiError;
use crate::params::Params;

/// Most containers (app and init together) in one group.
pub const MAX_CONTAINERS: usize = 20;
/// Most `Arg.N` of one container.
pub const MAX_ARGS: usize = 10;
pub const MAX_TAGS: usize = 20;
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;
/// Largest `TerminationGracePeriodSeconds` (one day).
pub const MAX_GRACE_SECS: u64 = 86_400;
/// Largest `ActiveDeadlineSeconds` (about ten years).
pub const MAX_DEADLINE_SECS: u64 = 315_360_000;
const MAX_TAG_LEN: usize = 128;

/// A decoded CreateContainerGroup.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    /// The group as asked for, its size rounded to an offered one: the group's `Cpu`/`Memory`
    /// when given; else the sum over app containers (raised to any larger init container) when
    /// any container gives one; else 2 vCPU / 4 GiB. Containers keep their own `Cpu`/`Memory`.
    /// `region_id` is empty when the request names none.
    pub spec: GroupSpec,
    pub client_token: Option<String>,
    pub dry_run: bool,
}

impl CreateRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        super::honoured::check_create(p)?;
        let name = p.required("ContainerGroupName")?;
        validate::group_name(&name)?;
        let app = containers(p, "Container", false)?;
        if app.is_empty() {
            return Err(ApiError::missing_parameter("Container.1.Image"));
        }
        let init_containers = containers(p, "InitContainer", true)?;
        let total = app.len() + init_containers.len();
        if total > MAX_CONTAINERS {
            return Err(ApiError::value_exceeded(
                "Container",
                format!("and InitContainer hold {total} containers, at most {MAX_CONTAINERS} are allowed"),
            ));
        }
        let mut seen = HashSet::new();
        for c in init_containers.iter().chain(&app) {
            if !seen.insert(c.name.as_str()) {
                return Err(ApiError::invalid_parameter(
                    "Container.N.Name",
                    format!(
                        "must be unique within the group, {:?} is used twice",
                        c.name
                    ),
                ));
            }
        }
        let size = group_size(p, &app, &init_containers)?;
        let storage_gib =
            ephemeral_storage(p)?.unwrap_or(berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB);
        let volumes = super::volumes::volumes(p, size.memory, u64::from(storage_gib))?;
        super::volumes::check_mounts(&volumes, &init_containers, &app)?;
        let restart_policy = match p.string("RestartPolicy") {
            None => RestartPolicy::default(),
            Some(s) => RestartPolicy::parse(&s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "RestartPolicy",
                    format!("must be Always, OnFailure or Never, got {s:?}"),
                )
            })?,
        };
        let grace = p.int::<u64>("TerminationGracePeriodSeconds")?.unwrap_or(30);
        if grace > MAX_GRACE_SECS {
            return Err(ApiError::value_exceeded(
                "TerminationGracePeriodSeconds",
                format!("must be at most {MAX_GRACE_SECS}"),
            ));
        }
        let deadline = p.int::<u64>("ActiveDeadlineSeconds")?;
        if deadline.is_some_and(|d| d == 0 || d > MAX_DEADLINE_SECS) {
            return Err(ApiError::value_exceeded(
                "ActiveDeadlineSeconds",
                format!("must be between 1 and {MAX_DEADLINE_SECS}"),
            ));
        }
        let host_name = p.string("HostName");
        if let Some(h) = &host_name {
            validate::host_name("HostName", h)?;
        }
        let spec = GroupSpec {
            name,
            region_id: p.string("RegionId").unwrap_or_default(),
            zone_id: p.string("ZoneId"),
            cpu: size.cpu,
            memory: size.memory,
            restart_policy,
            containers: app,
            init_containers,
            registry_credentials: credentials(p)?,
            plain_http_registries: validate::host_list(p, "PlainHttpRegistry")?,
            insecure_registries: validate::host_list(p, "InsecureRegistry")?,
            termination_grace_period_secs: grace,
            tags: tags(p)?,
            host_name,
            active_deadline_secs: deadline,
            image_snapshot_id: image_snapshot_id(p)?,
            auto_match_image_cache: p.bool("AutoMatchImageCache")?.unwrap_or(false),
            ephemeral_storage: ephemeral_storage(p)?,
            volumes,
            dns_config: super::dns::dns_config(p)?,
            host_aliases: super::dns::host_aliases(p)?,
            sysctls: super::security::sysctls(p)?,
            fs_group: super::security::fs_group(p)?,
            dns_policy: super::dns::dns_policy(p)?,
            public_address: public_address(p)?,
            published: None,
            runtime_class: runtime_class(p)?,
            spot: spot_terms(p)?,
        };
        if spec.dns_policy == berth_core::DnsPolicy::None
            && spec
                .dns_config
                .as_ref()
                .is_none_or(|d| d.name_servers.is_empty())
        {
            return Err(ApiError::invalid_parameter(
                "DnsPolicy",
                "None needs at least one DnsConfig.NameServer (the host's resolvers are left out)",
            ));
        }
        if !spec.public_address
            && spec
                .containers
                .iter()
                .any(|c| c.ports.iter().any(|p| p.host_port.is_some()))
        {
            return Err(ApiError::invalid_parameter(
                "Container.N.Port.N.HostPort",
                "publishes a port, which needs AutoCreateEip=true",
            ));
        }
        if spec
            .init_containers
            .iter()
            .any(|c| c.ports.iter().any(|p| p.host_port.is_some()))
        {
            return Err(ApiError::invalid_parameter(
                "InitContainer.N.Port.N.HostPort",
                "is not supported: only the ports of app containers are published",
            ));
        }
        Ok(Self {
            spec,
            client_token: validate::client_token(p)?,
            dry_run: p.bool("DryRun")?.unwrap_or(false),
        })
    }
}

pub(super) fn ephemeral_storage(p: &Params) -> Result<Option<u32>, ApiError> {
    match p.int::<u64>("EphemeralStorage")? {
        None => Ok(None),
        Some(n @ 1..=65_536) => Ok(Some(n as u32)),
        Some(_) => Err(ApiError::value_exceeded(
            "EphemeralStorage",
            format!("must be 1 to {} GiB", berth_core::MAX_EPHEMERAL_STORAGE_GIB),
        )),
    }
}

/// `param`'s image reference: printable ASCII without spaces (the registry client parses it).
pub(super) fn image_reference(param: &str, image: &str) -> Result<(), ApiError> {
    if image.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(ApiError::invalid_parameter(
            param,
            format!("is not an image reference: {image:?}"),
        ));
    }
    Ok(())
}

/// `{prefix}.Command.N`.
pub(super) fn command(p: &Params, prefix: &str) -> Result<Vec<String>, ApiError> {
    let param = format!("{prefix}.Command");
    let command = p.string_list(&param)?;
    for s in &command {
        validate::no_nul(&param, s)?;
    }
    Ok(command)
}

/// `{prefix}.Arg.N`: at most [`MAX_ARGS`].
pub(super) fn args(p: &Params, prefix: &str) -> Result<Vec<String>, ApiError> {
    let param = format!("{prefix}.Arg");
    let args = p.string_list(&param)?;
    if args.len() > MAX_ARGS {
        return Err(ApiError::value_exceeded(
            &param,
            format!("allows at most {MAX_ARGS} arguments"),
        ));
    }
    for s in &args {
        validate::no_nul(&format!("{prefix}.Command"), s)?;
    }
    Ok(args)
}

pub(super) fn containers(
    p: &Params,
    list: &str,
    init: bool,
) -> Result<Vec<ContainerSpec>, ApiError> {
    let idx = p.indexes(list)?;
    if idx.len() > MAX_CONTAINERS {
        return Err(ApiError::value_exceeded(
            list,
            format!("allows at most {MAX_CONTAINERS} containers"),
        ));
    }
    idx.into_iter()
        .map(|i| container(p, &format!("{list}.{i}"), init))
        .collect()
}

/// Largest vCPU or GiB value of a container (larger than any size in the table, small enough
/// that sums and conversions to bytes stay exact).
pub const MAX_RESOURCE: f64 = 4096.0;

pub(super) fn positive(p: &Params, name: &str) -> Result<Option<f64>, ApiError> {
    match p.f64(name)? {
        Some(v) if v <= 0.0 => Err(ApiError::invalid_parameter(
            name,
            "must be a positive number",
        )),
        Some(v) if v > MAX_RESOURCE => Err(ApiError::value_exceeded(
            name,
            format!("must be at most {MAX_RESOURCE}"),
        )),
        v => Ok(v),
    }
}

fn container(p: &Params, prefix: &str, init: bool) -> Result<ContainerSpec, ApiError> {
    let k = |s: &str| format!("{prefix}.{s}");
    let name = p.required(&k("Name"))?;
    validate::container_name(&k("Name"), &name)?;
    let image = p.required(&k("Image"))?;
    image_reference(&k("Image"), &image)?;
    let image_pull_policy = match p.string(&k("ImagePullPolicy")) {
        None => ImagePullPolicy::default(),
        Some(s) => ImagePullPolicy::parse(&s).ok_or_else(|| {
            ApiError::invalid_parameter(
                &k("ImagePullPolicy"),
                format!("must be Always, IfNotPresent or Never, got {s:?}"),
            )
        })?,
    };
    let (command, args) = (command(p, prefix)?, args(p, prefix)?);
    let working_dir = p.string(&k("WorkingDir"));
    if let Some(w) = &working_dir {
        validate::no_nul(&k("WorkingDir"), w)?;
        if !w.starts_with('/') {
            return Err(ApiError::invalid_parameter(
                &k("WorkingDir"),
                "must be an absolute path",
            ));
        }
    }
    let (capability_add, capability_drop) = super::security::capabilities(p, prefix)?;
    Ok(ContainerSpec {
        image_pull_policy,
        command,
        args,
        env: env(p, prefix)?,
        working_dir,
        cpu: positive(p, &k("Cpu"))?,
        memory: positive(p, &k("Memory"))?,
        ports: ports(p, prefix)?,
        tty: !init && p.bool(&k("Tty"))?.unwrap_or(false),
        stdin: !init && p.bool(&k("Stdin"))?.unwrap_or(false),
        run_as_user: p.int(&k("SecurityContext.RunAsUser"))?,
        run_as_group: p.int(&k("SecurityContextRunAsGroup"))?,
        run_as_non_root: p.bool(&k("SecurityContextRunAsNonRoot"))?.unwrap_or(false),
        read_only_root_filesystem: p
            .bool(&k("SecurityContext.ReadOnlyRootFilesystem"))?
            .unwrap_or(false),
        capability_add,
        capability_drop,
        volume_mounts: super::volumes::mounts(p, prefix)?,
        liveness_probe: probe(p, prefix, init, Kind::Liveness)?,
        readiness_probe: probe(p, prefix, init, Kind::Readiness)?,
        startup_probe: probe(p, prefix, init, Kind::Startup)?,
        post_start: hook(p, prefix, init, "PostStart")?,
        pre_stop: hook(p, prefix, init, "PreStop")?,
        name,
        image,
    })
}

/// Probes and hooks of app containers (init containers have none: `honoured` refuses them).
fn probe(
    p: &Params,
    prefix: &str,
    init: bool,
    kind: Kind,
) -> Result<Option<berth_core::Probe>, ApiError> {
    if init {
        return Ok(None);
    }
    super::probes::probe(p, prefix, kind)
}

fn hook(
    p: &Params,
    prefix: &str,
    init: bool,
    which: &str,
) -> Result<Option<berth_core::Handler>, ApiError> {
    if init {
        return Ok(None);
    }
    super::probes::hook(p, prefix, which)
}

pub(super) fn env(p: &Params, prefix: &str) -> Result<Vec<EnvVar>, ApiError> {
    let list = format!("{prefix}.EnvironmentVar");
    let mut out = Vec::new();
    for i in p.indexes(&list)? {
        let e = format!("{list}.{i}");
        let key_param = format!("{e}.Key");
        let key = p.required(&key_param)?;
        if key.contains('=') {
            return Err(ApiError::invalid_parameter(
                &key_param,
                "must not contain '='",
            ));
        }
        validate::no_nul(&key_param, &key)?;
        let value = p.raw(&format!("{e}.Value")).unwrap_or_default().to_string();
        validate::no_nul(&format!("{e}.Value"), &value)?;
        let path_param = format!("{e}.FieldRef.FieldPath");
        let field_path = p.string(&path_param);
        if let Some(path) = &field_path {
            if !berth_core::spec::FIELD_PATHS.contains(&path.as_str()) {
                return Err(ApiError::invalid_parameter(
                    &path_param,
                    format!(
                        "names no field berth resolves ({}): {path:?}",
                        berth_core::spec::FIELD_PATHS.join(", ")
                    ),
                ));
            }
            if !value.is_empty() {
                return Err(ApiError::invalid_parameter(
                    &path_param,
                    format!("cannot be given with {e}.Value: a variable has one source"),
                ));
            }
        }
        out.push(EnvVar {
            key,
            value,
            field_path,
        });
    }
    Ok(out)
}

/// `AutoCreateEip`: the group's ports published on the node's public address. berth has no
/// EIP objects of its own: `EipInstanceId` and the bandwidth and ISP knobs are refused
/// (`honoured.rs`).
/// `RuntimeClassName`: `runc` or `gvisor`; anything else is refused by name.
fn runtime_class(p: &Params) -> Result<Option<berth_core::RuntimeClass>, ApiError> {
    let Some(v) = p.string("RuntimeClassName") else {
        return Ok(None);
    };
    v.parse()
        .map(Some)
        .map_err(|e: berth_core::UnknownRuntimeClass| {
            ApiError::invalid_parameter("RuntimeClassName", e.to_string())
        })
}

fn public_address(p: &Params) -> Result<bool, ApiError> {
    Ok(p.bool("AutoCreateEip")?.unwrap_or(false))
}

fn ports(p: &Params, prefix: &str) -> Result<Vec<PortSpec>, ApiError> {
    let list = format!("{prefix}.Port");
    let mut out = Vec::new();
    for i in p.indexes(&list)? {
        let name = format!("{list}.{i}.Port");
        let port = match p.int::<u32>(&name)? {
            None => return Err(ApiError::missing_parameter(&name)),
            Some(n @ 1..=65535) => n as u16,
            Some(n) => {
                return Err(ApiError::invalid_parameter(
                    &name,
                    format!("must be 1 to 65535, got {n}"),
                ))
            }
        };
        let proto_name = format!("{list}.{i}.Protocol");
        let protocol = p
            .string(&proto_name)
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_else(|| "TCP".to_string());
        if protocol != "TCP" && protocol != "UDP" {
            return Err(ApiError::invalid_parameter(
                &proto_name,
                "must be TCP or UDP",
            ));
        }
        let host_name = format!("{list}.{i}.HostPort");
        let host_port = match p.int::<u32>(&host_name)? {
            None => None,
            Some(n @ 1..=65535) => Some(n as u16),
            Some(n) => {
                return Err(ApiError::invalid_parameter(
                    &host_name,
                    format!("must be 1 to 65535, got {n}"),
                ))
            }
        };
        out.push(PortSpec {
            port,
            protocol,
            host_port,
        });
    }
    Ok(out)
}

/// `ImageSnapshotId`: the id of an image cache (`imc-…`).
fn image_snapshot_id(p: &Params) -> Result<Option<String>, ApiError> {
    let Some(id) = p.string("ImageSnapshotId").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let ok = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ApiError::invalid_parameter(
            "ImageSnapshotId",
            format!("must be an image cache id such as imc-…, got {id:?}"),
        ));
    }
    Ok(Some(id))
}

pub(super) fn credentials(p: &Params) -> Result<Vec<RegistryCredential>, ApiError> {
    let mut out = Vec::new();
    for i in p.indexes("ImageRegistryCredential")? {
        let c = format!("ImageRegistryCredential.{i}");
        out.push(RegistryCredential {
            server: p.required(&format!("{c}.Server"))?,
            user_name: p.string(&format!("{c}.UserName")).unwrap_or_default(),
            password: p
                .raw(&format!("{c}.Password"))
                .unwrap_or_default()
                .to_string(),
        });
    }
    Ok(out)
}

pub(super) fn tags(p: &Params) -> Result<Vec<Tag>, ApiError> {
    let mut out = Vec::new();
    for i in p.indexes("Tag")? {
        let key_param = format!("Tag.{i}.Key");
        let key = p.required(&key_param)?;
        let value = p
            .raw(&format!("Tag.{i}.Value"))
            .unwrap_or_default()
            .to_string();
        if key.chars().count() > MAX_TAG_LEN || value.chars().count() > MAX_TAG_LEN {
            return Err(ApiError::length_exceeded(&key_param, MAX_TAG_LEN));
        }
        out.push(Tag { key, value });
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::value_exceeded(
            "Tag",
            format!("allows at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

/// Adds up `f` over app containers and raises it to any larger init container's value;
/// `None` when no container gives one.
fn total(
    app: &[ContainerSpec],
    init: &[ContainerSpec],
    f: impl Fn(&ContainerSpec) -> Option<f64>,
) -> Option<f64> {
    let sum = app
        .iter()
        .filter_map(&f)
        .fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(0.0) + v));
    init.iter()
        .filter_map(&f)
        .fold(sum, |acc, v| Some(acc.map_or(v, |a| a.max(v))))
}

fn group_size(p: &Params, app: &[ContainerSpec], init: &[ContainerSpec]) -> Result<Size, ApiError> {
    let (cpu, memory) = (positive(p, "Cpu")?, positive(p, "Memory")?);
    let need_cpu = total(app, init, |c| c.cpu);
    let need_mem = total(app, init, |c| c.memory);
    let given = cpu.is_some() || memory.is_some();
    let (c, m) = if given {
        (cpu, memory)
    } else {
        (need_cpu, need_mem)
    };
    let size = normalize_size(c, m).map_err(|e| {
        let name = if given {
            "Cpu and Memory"
        } else {
            "Container.N.Cpu and Container.N.Memory"
        };
        ApiError::invalid_parameter(name, format!("ask for no offered size: {e}"))
    })?;
    if given {
        if need_cpu.is_some_and(|n| n > size.cpu + 1e-9) {
            return Err(ApiError::invalid_parameter(
                "Container.N.Cpu",
                format!("adds up to more than the group's {} vCPU", size.cpu),
            ));
        }
        if need_mem.is_some_and(|n| n > size.memory + 1e-9) {
            return Err(ApiError::invalid_parameter(
                "Container.N.Memory",
                format!("adds up to more than the group's {} GiB", size.memory),
            ));
        }
    }
    Ok(size)
}

/// The containers' own vCPU and memory fit the group's size (an updated group is checked
/// again).
pub(super) fn check_fits(spec: &GroupSpec) -> Result<(), ApiError> {
    let (app, init) = (&spec.containers, &spec.init_containers);
    if total(app, init, |c| c.cpu).is_some_and(|n| n > spec.cpu + 1e-9) {
        return Err(ApiError::invalid_parameter(
            "Container.N.Cpu",
            format!("adds up to more than the group's {} vCPU", spec.cpu),
        ));
    }
    if total(app, init, |c| c.memory).is_some_and(|n| n > spec.memory + 1e-9) {
        return Err(ApiError::invalid_parameter(
            "Container.N.Memory",
            format!("adds up to more than the group's {} GiB", spec.memory),
        ));
    }
    Ok(())
}

/// `SpotStrategy`, `SpotPriceLimit` and `SpotDuration` of a new group (`None`: pay-as-you-go).
/// A price limit goes only with `SpotWithPriceLimit`, a duration and `StrictSpot` only with a
/// spot strategy.
fn spot_terms(p: &Params) -> Result<Option<berth_core::SpotTerms>, ApiError> {
    let ask = super::price::spot_ask(p)?;
    let given = |n: &str| {
        p.raw(n)
            .is_some_and(|v| !v.trim().is_empty() && v != "None")
    };
    if ask.strategy != berth_core::SpotStrategy::SpotWithPriceLimit && given("SpotPriceLimit") {
        return Err(ApiError::invalid_parameter(
            "SpotPriceLimit",
            "is taken only with SpotStrategy=SpotWithPriceLimit",
        ));
    }
    if !ask.strategy.is_spot() {
        if given("SpotDuration") {
            return Err(ApiError::invalid_parameter(
                "SpotDuration",
                "is taken only with SpotStrategy SpotAsPriceGo or SpotWithPriceLimit",
            ));
        }
        if given("StrictSpot") {
            return Err(ApiError::invalid_parameter(
                "StrictSpot",
                "is taken only with SpotStrategy SpotAsPriceGo or SpotWithPriceLimit",
            ));
        }
        return Ok(None);
    }
    Ok(Some(berth_core::SpotTerms {
        strategy: ask.strategy,
        price_limit: ask.price_limit.map(|d| d.normalize().to_string()),
        duration_hours: ask.duration_hours,
        hour_price: None,
        // ECI's default is strict: no room for a spot group leaves it waiting.
        fallback: !p.bool("StrictSpot")?.unwrap_or(true),
    }))
}
