//! Pod → CreateContainerGroup: [`pod_to_group`] and the pod-level fields. Containers are in
//! `container.rs`, their environment in `env.rs`, volumes in `volumes.rs`.

mod container;
mod env;
mod volumes;

#[cfg(test)]
mod tests;

use berth_client::CreateParams;
use berth_core::size::{Size, SizeError};
use berth_core::{
    DnsConfig, DnsOption, DnsPolicy, HostAlias, RegistryCredential, RestartPolicy, Tag,
};
use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::error::PodError;
use crate::inputs::Inputs;
use crate::quantity::{gib, group_size, parse_quantity};

/// Tag holding the pod's uid: how a restarted virtual kubelet finds the group of a pod.
pub const TAG_POD_UID: &str = "k8s.pod.uid";
pub const TAG_POD_NAMESPACE: &str = "k8s.pod.namespace";
pub const TAG_POD_NAME: &str = "k8s.pod.name";

/// Temporary storage every group has (`berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB`).
const BASE_STORAGE_GIB: f64 = berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB as f64;
/// Longest tag value berth takes.
const MAX_TAG_VALUE: usize = 128;
/// Largest `terminationGracePeriodSeconds` and `activeDeadlineSeconds` berth takes (as its
/// API: `berth_eci::request`).
const MAX_GRACE_SECS: i64 = 86_400;
const MAX_DEADLINE_SECS: i64 = 315_360_000;

/// What the pod's mapping needs to know everywhere.
pub(crate) struct Ctx<'a> {
    pub pod: &'a Pod,
    pub spec: &'a PodSpec,
    pub inputs: &'a Inputs,
    /// The group's size after rounding.
    pub size: Size,
}

/// The CreateContainerGroup parameters of a pod. The group is named after the pod
/// ([`group_name`]), tagged with its uid, namespace and name, and created with the pod's
/// uid as `ClientToken`, so that creating it twice makes one group.
pub fn pod_to_group(pod: &Pod, inputs: &Inputs) -> Result<CreateParams, PodError> {
    let meta = &pod.metadata;
    let name = meta
        .name
        .as_deref()
        .ok_or_else(|| PodError::unsupported("metadata.name", "is missing"))?;
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    let uid = meta
        .uid
        .as_deref()
        .filter(|u| (1..=64).contains(&u.len()))
        .ok_or_else(|| PodError::unsupported("metadata.uid", "is missing"))?;
    if let Some(i) = meta
        .owner_references
        .iter()
        .flatten()
        .position(|o| o.kind == "DaemonSet")
    {
        return Err(PodError::unsupported(
            format!("metadata.ownerReferences[{i}]"),
            "DaemonSet pods do not run on a virtual node: it has no host to serve",
        ));
    }
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| PodError::unsupported("spec", "is missing"))?;
    refuse_pod_fields(spec)?;
    let size = size(spec)?;
    let ctx = Ctx {
        pod,
        spec,
        inputs,
        size,
    };
    let mut out = CreateParams {
        name: group_name(namespace, name),
        cpu: Some(size.cpu),
        memory: Some(size.memory),
        client_token: Some(uid.to_string()),
        ..Default::default()
    };
    for (i, c) in spec.containers.iter().enumerate() {
        out.containers.push(container::container(
            &ctx,
            c,
            &format!("spec.containers[{i}]"),
            false,
        )?);
    }
    if out.containers.is_empty() {
        return Err(PodError::unsupported("spec.containers", "is empty"));
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.init_containers.push(container::container(
            &ctx,
            c,
            &format!("spec.initContainers[{i}]"),
            true,
        )?);
    }
    if out.containers.len() + out.init_containers.len() > berth_eci_max_containers() {
        return Err(PodError::unsupported(
            "spec.containers",
            format!(
                "and spec.initContainers hold more than the {} containers a group may have",
                berth_eci_max_containers()
            ),
        ));
    }
    let extra_storage = crate::annotations::apply(meta.annotations.as_ref(), &mut out)?;
    out.ephemeral_storage = storage(spec, extra_storage)?;
    out.volumes = volumes::volumes(&ctx, out.ephemeral_storage)?;
    out.runtime_class = runtime_class(spec, inputs)?;
    out.restart_policy = Some(restart_policy(spec)?);
    out.termination_grace_period_secs = Some(grace(spec)?);
    out.active_deadline_secs = deadline(spec)?;
    out.host_name = Some(host_name(spec, name)?);
    let (policy, dns) = dns(spec, namespace, inputs)?;
    out.dns_policy = Some(policy);
    out.dns_config = dns;
    out.host_aliases = host_aliases(spec)?;
    out.sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| berth_core::Sysctl {
            name: s.name.clone(),
            value: s.value.clone(),
        })
        .collect();
    // Checked by `check_pod`: from 0 to MAX_FS_GROUP.
    out.fs_group = spec
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    out.registry_credentials = pull_secrets(spec, inputs)?;
    out.tags = vec![
        tag(TAG_POD_UID, uid),
        tag(TAG_POD_NAMESPACE, namespace),
        tag(TAG_POD_NAME, name),
    ];
    Ok(out)
}

fn berth_eci_max_containers() -> usize {
    20
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.chars().take(MAX_TAG_VALUE).collect(),
    }
}

/// The group name of a pod: `NAMESPACE-NAME` in ECI's alphabet (lower-case letters, digits
/// and `-`; other characters become `-`), at most 128 characters. Names may collide after
/// this; the pod's uid tag is what identifies its group.
pub fn group_name(namespace: &str, name: &str) -> String {
    let raw: String = format!("{namespace}-{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    let trimmed = raw.trim_matches('-');
    if trimmed.len() < 2 {
        format!("pod-{trimmed}").trim_end_matches('-').to_string() + "-0"
    } else {
        trimmed.to_string()
    }
}

/// Pod fields berth cannot honour on a virtual node, refused by name when set to anything but
/// what it does anyway. Scheduling fields (affinity, tolerations, nodeSelector, priority,
/// topology spread, schedulerName) were the scheduler's and are done with once the pod is
/// bound; `serviceAccountName` and `automountServiceAccountToken` act through the projected
/// token volume the API server adds.
fn refuse_pod_fields(s: &PodSpec) -> Result<(), PodError> {
    let refuse = |field: &str, why: &str| Err(PodError::unsupported(format!("spec.{field}"), why));
    if s.host_network == Some(true) {
        return refuse(
            "hostNetwork",
            "a group has its own network namespace, never the node's",
        );
    }
    if s.host_pid == Some(true) {
        return refuse(
            "hostPID",
            "a group never shares the node's process namespace",
        );
    }
    if s.host_ipc == Some(true) {
        return refuse("hostIPC", "a group never shares the node's IPC namespace");
    }
    if s.host_users == Some(false) {
        return refuse(
            "hostUsers",
            "berth chooses the group's user namespace itself",
        );
    }
    if s.share_process_namespace == Some(true) {
        return refuse("shareProcessNamespace", "is not supported by berth");
    }
    if s.set_hostname_as_fqdn == Some(true) {
        return refuse("setHostnameAsFQDN", "is not supported by berth");
    }
    if s.subdomain.as_deref().is_some_and(|d| !d.is_empty()) {
        return refuse("subdomain", "berth cannot write the pod's FQDN to /etc/hosts: it does not know the pod's address before the group starts");
    }
    if s.hostname_override.is_some() {
        return refuse("hostnameOverride", "is not supported by berth");
    }
    if s.ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return refuse("ephemeralContainers", "is not supported by berth");
    }
    if s.os.as_ref().is_some_and(|o| o.name != "linux") {
        return refuse("os.name", "berth runs Linux containers only");
    }
    if s.resource_claims.as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse("resourceClaims", "berth has no dynamic resources");
    }
    if s.readiness_gates.as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse("readinessGates", "is not supported by berth");
    }
    if s.overhead.as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse(
            "overhead",
            "is not added to the group's size: berth's RuntimeClasses must have none",
        );
    }
    if let Some(sc) = &s.security_context {
        if let Some(g) = sc.fs_group {
            if !(0..=i64::from(berth_core::MAX_FS_GROUP)).contains(&g) {
                return refuse(
                    "securityContext.fsGroup",
                    &format!("must be from 0 to {}", berth_core::MAX_FS_GROUP),
                );
            }
        }
        // berth makes every volume afresh with the group's ownership: both policies hold.
        if let Some(p) = &sc.fs_group_change_policy {
            if p != "Always" && p != "OnRootMismatch" {
                return refuse(
                    "securityContext.fsGroupChangePolicy",
                    "is Always or OnRootMismatch",
                );
            }
        }
        if sc
            .supplemental_groups
            .as_ref()
            .is_some_and(|g| !g.is_empty())
            || sc.supplemental_groups_policy.is_some()
        {
            return refuse(
                "securityContext.supplementalGroups",
                "is not supported by berth",
            );
        }
        if sc.se_linux_options.is_some() || sc.se_linux_change_policy.is_some() {
            return refuse(
                "securityContext.seLinuxOptions",
                "berth does not use SELinux",
            );
        }
        if sc.windows_options.is_some() {
            return refuse(
                "securityContext.windowsOptions",
                "berth runs Linux containers only",
            );
        }
        if let Some(p) = &sc.seccomp_profile {
            if p.type_ != "RuntimeDefault" {
                return refuse(
                    "securityContext.seccompProfile",
                    "only RuntimeDefault (berth's own filter) is supported",
                );
            }
        }
        if let Some(p) = &sc.app_armor_profile {
            if p.type_ != "RuntimeDefault" {
                return refuse(
                    "securityContext.appArmorProfile",
                    "only RuntimeDefault is supported",
                );
            }
        }
    }
    Ok(())
}

/// `(limit or request of cpu, of memory)` of one container's resources, in vCPU and GiB.
pub(crate) fn cpu_memory(
    r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
    field: &str,
) -> Result<(Option<f64>, Option<f64>), PodError> {
    let get = |name: &str| -> Result<Option<f64>, PodError> {
        let pick = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                    which: &str|
         -> Result<Option<f64>, PodError> {
            match m.and_then(|m| m.get(name)) {
                None => Ok(None),
                Some(q) => parse_quantity(&q.0)
                    .map(|v| (v > 0.0).then_some(v))
                    .ok_or_else(|| {
                        PodError::unsupported(
                            format!("{field}.{which}.{name}"),
                            format!("is not a quantity: {:?}", q.0),
                        )
                    }),
            }
        };
        let limit = pick(r.and_then(|r| r.limits.as_ref()), "limits")?;
        let request = pick(r.and_then(|r| r.requests.as_ref()), "requests")?;
        Ok(limit.or(request))
    };
    Ok((get("cpu")?, get("memory")?.map(gib)))
}

/// Resources berth does not offer (GPUs, hugepages, any extended resource).
fn check_resource_names(
    r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
    field: &str,
) -> Result<(), PodError> {
    let Some(r) = r else { return Ok(()) };
    if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(PodError::unsupported(
            format!("{field}.claims"),
            "berth has no dynamic resources",
        ));
    }
    for (which, m) in [("limits", &r.limits), ("requests", &r.requests)] {
        for k in m.iter().flat_map(|m| m.keys()) {
            if !matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                return Err(PodError::unsupported(
                    format!("{field}.{which}.{k}"),
                    "berth offers cpu, memory and ephemeral-storage only",
                ));
            }
        }
    }
    Ok(())
}

/// The group's size: the pod-level `resources` when set, else [`crate::group_size`] over the
/// containers.
fn size(spec: &PodSpec) -> Result<Size, PodError> {
    let mut app = Vec::new();
    let mut init = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let f = format!("spec.containers[{i}].resources");
        check_resource_names(c.resources.as_ref(), &f)?;
        app.push(cpu_memory(c.resources.as_ref(), &f)?);
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let f = format!("spec.initContainers[{i}].resources");
        check_resource_names(c.resources.as_ref(), &f)?;
        init.push(cpu_memory(c.resources.as_ref(), &f)?);
    }
    let field = if let Some(r) = &spec.resources {
        check_resource_names(Some(r), "spec.resources")?;
        let (c, m) = cpu_memory(Some(r), "spec.resources")?;
        if c.is_some() || m.is_some() {
            let s = berth_core::size::normalize_size(c, m);
            return s.map_err(|e| size_error("spec.resources", e));
        }
        "spec.containers[*].resources"
    } else {
        "spec.containers[*].resources"
    };
    group_size(&app, &init).map_err(|e| size_error(field, e))
}

fn size_error(field: &str, e: SizeError) -> PodError {
    PodError::unsupported(field, e.to_string())
}

/// GiB of temporary storage: the 30 GiB every group has plus the extra-storage annotation, or
/// the containers' `ephemeral-storage` (limits, else requests, summed) when larger — as ECI
/// takes the larger of the two. `None` when neither asks for more than the 30 GiB.
fn storage(spec: &PodSpec, extra_gib: Option<f64>) -> Result<Option<u32>, PodError> {
    let mut sum = 0.0;
    for (i, c) in spec.containers.iter().enumerate() {
        let r = c.resources.as_ref();
        let get = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                   which: &str|
         -> Result<Option<f64>, PodError> {
            match m.and_then(|m| m.get("ephemeral-storage")) {
                None => Ok(None),
                Some(q) => parse_quantity(&q.0).map(Some).ok_or_else(|| {
                    PodError::unsupported(
                        format!("spec.containers[{i}].resources.{which}.ephemeral-storage"),
                        format!("is not a quantity: {:?}", q.0),
                    )
                }),
            }
        };
        let limit = get(r.and_then(|r| r.limits.as_ref()), "limits")?;
        let request = get(r.and_then(|r| r.requests.as_ref()), "requests")?;
        sum += limit.or(request).map(gib).unwrap_or(0.0);
    }
    let want = (BASE_STORAGE_GIB + extra_gib.unwrap_or(0.0))
        .max(sum)
        .ceil();
    if want <= BASE_STORAGE_GIB {
        return Ok(None);
    }
    if want > f64::from(berth_core::MAX_EPHEMERAL_STORAGE_GIB) {
        return Err(PodError::unsupported(
            "resources.ephemeral-storage",
            format!(
                "asks for {want} GiB of temporary storage, berth offers at most {} GiB",
                berth_core::MAX_EPHEMERAL_STORAGE_GIB
            ),
        ));
    }
    Ok(Some(want as u32))
}

fn restart_policy(spec: &PodSpec) -> Result<RestartPolicy, PodError> {
    match spec.restart_policy.as_deref() {
        None => Ok(RestartPolicy::Always),
        Some(p) => RestartPolicy::parse(p).ok_or_else(|| {
            PodError::unsupported(
                "spec.restartPolicy",
                format!("must be Always, OnFailure or Never, got {p:?}"),
            )
        }),
    }
}

/// `terminationGracePeriodSeconds`: 30 when unset, as Kubernetes; a negative value is 0.
fn grace(spec: &PodSpec) -> Result<u64, PodError> {
    let g = spec.termination_grace_period_seconds.unwrap_or(30).max(0);
    if g > MAX_GRACE_SECS {
        return Err(PodError::unsupported(
            "spec.terminationGracePeriodSeconds",
            format!("berth allows at most {MAX_GRACE_SECS} seconds"),
        ));
    }
    Ok(g as u64)
}

fn deadline(spec: &PodSpec) -> Result<Option<u64>, PodError> {
    match spec.active_deadline_seconds {
        None => Ok(None),
        Some(d @ 1..=MAX_DEADLINE_SECS) => Ok(Some(d as u64)),
        Some(_) => Err(PodError::unsupported(
            "spec.activeDeadlineSeconds",
            format!("must be 1 to {MAX_DEADLINE_SECS}"),
        )),
    }
}

/// The containers' host name: `spec.hostname`, else the pod's name (its first 63 characters,
/// as the kubelet does).
fn host_name(spec: &PodSpec, pod_name: &str) -> Result<String, PodError> {
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        if !dns_label(h) {
            return Err(PodError::unsupported(
                "spec.hostname",
                format!("is not a DNS label: {h:?}"),
            ));
        }
        return Ok(h.to_string());
    }
    let h: String = pod_name.chars().take(63).collect();
    let h = h.trim_end_matches(['-', '.']).replace('.', "-");
    if !dns_label(&h) {
        return Err(PodError::unsupported(
            "metadata.name",
            "cannot be a host name",
        ));
    }
    Ok(h)
}

fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `dnsPolicy` and `dnsConfig`. `ClusterFirst` (the default) gives the cluster's DNS servers
/// and the kubelet's search list (`NS.svc.DOMAIN svc.DOMAIN DOMAIN`, `ndots:5`) when the
/// caller knows the cluster's DNS, and the node's resolvers (`Default`) otherwise, as the
/// kubelet does; `None` takes `dnsConfig` alone; `dnsConfig` is merged into the others.
fn dns(
    spec: &PodSpec,
    namespace: &str,
    inputs: &Inputs,
) -> Result<(DnsPolicy, Option<DnsConfig>), PodError> {
    let mut cfg = DnsConfig::default();
    let policy = match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "Default" => DnsPolicy::Default,
        "None" => DnsPolicy::None,
        "ClusterFirst" | "ClusterFirstWithHostNet" => match &inputs.cluster_dns {
            None => DnsPolicy::Default,
            Some(c) => {
                cfg.name_servers = c.servers.clone();
                cfg.searches = vec![
                    format!("{namespace}.svc.{}", c.domain),
                    format!("svc.{}", c.domain),
                    c.domain.clone(),
                ];
                cfg.options.push(DnsOption {
                    name: "ndots".into(),
                    value: Some("5".into()),
                });
                DnsPolicy::None
            }
        },
        other => {
            return Err(PodError::unsupported(
                "spec.dnsPolicy",
                format!(
                    "must be ClusterFirst, ClusterFirstWithHostNet, Default or None, got {other:?}"
                ),
            ))
        }
    };
    if let Some(d) = &spec.dns_config {
        for s in d.nameservers.iter().flatten() {
            if !cfg.name_servers.contains(s) {
                cfg.name_servers.push(s.clone());
            }
        }
        for s in d.searches.iter().flatten() {
            if !cfg.searches.contains(s) {
                cfg.searches.push(s.clone());
            }
        }
        for (i, o) in d.options.iter().flatten().enumerate() {
            let name = o.name.clone().ok_or_else(|| {
                PodError::unsupported(format!("spec.dnsConfig.options[{i}].name"), "is missing")
            })?;
            cfg.options.retain(|x| x.name != name);
            cfg.options.push(DnsOption {
                name,
                value: o.value.clone(),
            });
        }
    }
    if cfg.name_servers.len() > berth_core::dns::MAX_NAME_SERVERS {
        return Err(PodError::unsupported(
            "spec.dnsConfig.nameservers",
            format!(
                "berth allows at most {} name servers in all",
                berth_core::dns::MAX_NAME_SERVERS
            ),
        ));
    }
    if policy == DnsPolicy::None && cfg.name_servers.is_empty() {
        return Err(PodError::unsupported(
            "spec.dnsConfig.nameservers",
            "dnsPolicy None needs at least one",
        ));
    }
    let empty = cfg.name_servers.is_empty() && cfg.searches.is_empty() && cfg.options.is_empty();
    Ok((policy, (!empty).then_some(cfg)))
}

fn host_aliases(spec: &PodSpec) -> Result<Vec<HostAlias>, PodError> {
    let mut out = Vec::new();
    for (i, a) in spec.host_aliases.iter().flatten().enumerate() {
        let hostnames = a.hostnames.clone().unwrap_or_default();
        if hostnames.is_empty() {
            return Err(PodError::unsupported(
                format!("spec.hostAliases[{i}].hostnames"),
                "is empty",
            ));
        }
        out.push(HostAlias {
            ip: a.ip.clone(),
            hostnames,
        });
    }
    Ok(out)
}

/// `imagePullSecrets`: each a `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`) secret,
/// every registry of which becomes an `ImageRegistryCredential` (the server without scheme
/// or path; the login from `username`/`password`, else from `auth`).
fn pull_secrets(spec: &PodSpec, inputs: &Inputs) -> Result<Vec<RegistryCredential>, PodError> {
    let mut out: Vec<RegistryCredential> = Vec::new();
    for (i, r) in spec.image_pull_secrets.iter().flatten().enumerate() {
        let field = format!("spec.imagePullSecrets[{i}]");
        let secret = inputs
            .secrets
            .get(&r.name)
            .ok_or_else(|| PodError::missing(&field, format!("secret {:?}", r.name)))?;
        let data = secret.data.as_ref();
        let (raw, legacy) = match (
            data.and_then(|d| d.get(".dockerconfigjson")),
            data.and_then(|d| d.get(".dockercfg")),
        ) {
            (Some(b), _) => (b, false),
            (None, Some(b)) => (b, true),
            _ => {
                return Err(PodError::unsupported(
                    &field,
                    format!("secret {:?} holds no .dockerconfigjson", r.name),
                ))
            }
        };
        let bad = || {
            PodError::unsupported(
                &field,
                format!("secret {:?} is not a docker config", r.name),
            )
        };
        let json: serde_json::Value = serde_json::from_slice(&raw.0).map_err(|_| bad())?;
        let auths = if legacy {
            Some(&json)
        } else {
            json.get("auths")
        };
        let auths = auths.and_then(|a| a.as_object()).ok_or_else(bad)?;
        for (server, entry) in auths {
            let host = server
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let s = |k: &str| {
                entry
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let (mut user, mut password) = (s("username"), s("password"));
            if user.is_empty() && password.is_empty() {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(s("auth"))
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                if let Some((u, p)) = decoded.split_once(':') {
                    (user, password) = (u.to_string(), p.to_string());
                }
            }
            if host.is_empty() || out.iter().any(|c| c.server == host) {
                continue;
            }
            out.push(RegistryCredential {
                server: host,
                user_name: user,
                password,
            });
        }
    }
    Ok(out)
}

/// The berth runtime class of the pod's RuntimeClass, by its handler: `runc` (and `crun`) for
/// the `runc` class, `runsc` (gVisor's, as GKE names it) or `gvisor` for the `gvisor` class.
fn runtime_class(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    inputs: &Inputs,
) -> Result<Option<berth_core::RuntimeClass>, PodError> {
    let Some(name) = spec.runtime_class_name.as_deref() else {
        return Ok(None);
    };
    let Some(handler) = inputs.runtime_handler.as_deref() else {
        return Err(PodError::missing(
            "spec.runtimeClassName",
            format!("RuntimeClass {name:?}"),
        ));
    };
    match handler {
        "runc" | "crun" => Ok(Some(berth_core::RuntimeClass::Runc)),
        "runsc" | "gvisor" => Ok(Some(berth_core::RuntimeClass::Gvisor)),
        other => Err(PodError::unsupported(
            "spec.runtimeClassName",
            format!(
                "RuntimeClass {name:?} has handler {other:?}; berth runs runc (or crun) and runsc (or gvisor)"
            ),
        )),
    }
}
