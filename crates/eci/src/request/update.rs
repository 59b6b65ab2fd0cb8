//! UpdateContainerGroup: what a request changes of a group, and the group it makes of the one
//! that is ([`UpdateRequest::apply`]).
//!
//! `UpdateType=RenewUpdate` (the default): each list the request gives (`Container.N`,
//! `InitContainer.N`, `Tag.N`, `ImageRegistryCredential.N`, `Volume.N`) replaces the group's
//! list; lists it leaves out stay. `IncrementalUpdate`: the items given replace the group's
//! items of the same name (container name, tag key, registry server, volume name) and the
//! others are added; every container or volume given is given whole, as at creation.
//! `PatchUpdate` (berth's extension, `patch.rs`): each `Container.N` changes only the fields it
//! gives of the group's container of that name; the other lists as with `RenewUpdate`. `Cpu`,
//! `Memory` and `RestartPolicy` replace the group's when given. A volume whose definition
//! changed is made anew (an emptyDir starts empty) and the containers mounting it are
//! recreated, except a `ConfigFileVolume` of the same name whose files (or modes) alone
//! changed: the node writes them in place and the containers keep running, as the kubelet
//! updates configMap and secret volumes. The group's network, DNS settings, sysctls, name and temporary storage are not
//! changed by an update: those parameters are refused by name.

use std::collections::HashSet;

use berth_core::{is_reserved_tag_key, normalize_size, ContainerSpec, GroupSpec, RestartPolicy};

use super::{create, validate};
use crate::error::ApiError;
use crate::params::Params;

/// How the lists of an update meet the group's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateType {
    #[default]
    Renew,
    Incremental,
    /// berth's extension (`PatchUpdate`, `patch.rs`): `Container.N` change only the fields
    /// they give of the group's containers of the same name; other lists as with `Renew`.
    Patch,
}

/// A decoded UpdateContainerGroup; its parameters are checked when decoded and applied to
/// the group by [`UpdateRequest::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    pub client_token: Option<String>,
    pub update_type: UpdateType,
    params: Params,
}

/// Group parameters of CreateContainerGroup an update cannot change (ECI's update takes
/// none of them either, except the volumes berth does not change in place yet).
const NOT_UPDATABLE: &[&str] = &[
    "ContainerGroupName",
    "ZoneId",
    "TerminationGracePeriodSeconds",
    "ActiveDeadlineSeconds",
    "DnsConfig",
    "DnsPolicy",
    "HostAliase",
    "HostName",
    "DryRun",
    "ImageSnapshotId",
    "AutoMatchImageCache",
    "EphemeralStorage",
    "PlainHttpRegistry",
    "InsecureRegistry",
    "AutoCreateEip",
    "EipInstanceId",
    "SecurityContext",
    "HostSecurityContext",
];

impl UpdateRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        super::honoured::check_create(p)?;
        for name in NOT_UPDATABLE {
            if has_value(p, name) {
                return Err(ApiError::invalid_parameter(
                    name,
                    "cannot be changed by UpdateContainerGroup in berth (create a new container group)",
                ));
            }
        }
        let update_type = match p.string("UpdateType").as_deref() {
            None | Some("RenewUpdate") => UpdateType::Renew,
            Some("IncrementalUpdate") => UpdateType::Incremental,
            Some("PatchUpdate") => UpdateType::Patch,
            Some(s) => {
                return Err(ApiError::invalid_parameter(
                    "UpdateType",
                    format!("must be RenewUpdate, IncrementalUpdate or PatchUpdate, got {s:?}"),
                ))
            }
        };
        let req = Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            client_token: validate::client_token(p)?,
            update_type,
            params: p.clone(),
        };
        // Everything that can be checked without the group is checked now.
        req.parts()?;
        Ok(req)
    }

    /// A digest of what the request asks (not of its signature's parameters, which differ
    /// between repeats): a repeat with the same ClientToken must match it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        const LISTS: [&str; 5] = [
            "Container.",
            "InitContainer.",
            "Tag.",
            "ImageRegistryCredential.",
            "Volume.",
        ];
        const FIELDS: [&str; 4] = ["Cpu", "Memory", "RestartPolicy", "UpdateType"];
        let mut own: Vec<(&str, &str)> = self
            .params
            .iter()
            .filter(|(k, _)| LISTS.iter().any(|l| k.starts_with(l)) || FIELDS.contains(k))
            .collect();
        own.sort();
        let mut h = sha2::Sha256::new();
        for (k, v) in own {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        format!("update:{}", hex::encode(h.finalize()))
    }

    /// Whether the request changes nothing at all.
    pub fn is_empty(&self) -> bool {
        [
            "Container",
            "InitContainer",
            "Tag",
            "ImageRegistryCredential",
            "Volume",
        ]
        .iter()
        .all(|l| !self.params.has_any(l))
            && ["Cpu", "Memory", "RestartPolicy"]
                .iter()
                .all(|n| self.params.string(n).is_none())
    }

    fn parts(&self) -> Result<Parts, ApiError> {
        let p = &self.params;
        let list = |name: &str| p.has_any(name);
        let restart_policy = match p.string("RestartPolicy") {
            None => None,
            Some(s) => Some(RestartPolicy::parse(&s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "RestartPolicy",
                    format!("must be Always, OnFailure or Never, got {s:?}"),
                )
            })?),
        };
        let patch = self.update_type == UpdateType::Patch;
        Ok(Parts {
            container_patches: if patch && list("Container") {
                Some(super::patch::decode(p)?)
            } else {
                None
            },
            containers: if !patch && list("Container") {
                Some(create::containers(p, "Container", false)?)
            } else {
                None
            },
            init_containers: if list("InitContainer") {
                Some(create::containers(p, "InitContainer", true)?)
            } else {
                None
            },
            tags: if list("Tag") {
                Some(create::tags(p)?)
            } else {
                None
            },
            credentials: if list("ImageRegistryCredential") {
                Some(create::credentials(p)?)
            } else {
                None
            },
            cpu: create::positive(p, "Cpu")?,
            memory: create::positive(p, "Memory")?,
            restart_policy,
        })
    }

    /// The group `old` becomes, checked as a created group is (names, counts, sizes, volume
    /// mounts); a 4xx error when it cannot be.
    pub fn apply(&self, old: &GroupSpec) -> Result<GroupSpec, ApiError> {
        let parts = self.parts()?;
        let mut spec = old.clone();
        let incremental = self.update_type == UpdateType::Incremental;
        if let Some(c) = parts.containers {
            merge(&mut spec.containers, c, incremental, |c| c.name.clone());
        }
        if let Some(patches) = parts.container_patches {
            super::patch::apply(&mut spec.containers, patches)?;
        }
        if let Some(c) = parts.init_containers {
            merge(&mut spec.init_containers, c, incremental, |c| {
                c.name.clone()
            });
        }
        if let Some(t) = parts.tags {
            // The virtual kubelet's keys stay as they are, as with UntagResources: a group
            // that lost them would lose its pod.
            if let Some(r) = t.iter().find(|t| is_reserved_tag_key(&t.key)) {
                return Err(ApiError::invalid_parameter(
                    "Tag.N.Key",
                    format!("names a key reserved for the virtual kubelet: {:?}", r.key),
                ));
            }
            let reserved: Vec<_> = spec
                .tags
                .iter()
                .filter(|t| is_reserved_tag_key(&t.key))
                .cloned()
                .collect();
            merge(&mut spec.tags, t, incremental, |t| t.key.clone());
            for (i, r) in reserved.into_iter().enumerate() {
                if !spec.tags.iter().any(|t| t.key == r.key) {
                    spec.tags.insert(i.min(spec.tags.len()), r);
                }
            }
            if spec.tags.len() > create::MAX_TAGS {
                return Err(ApiError::value_exceeded(
                    "Tag",
                    format!("allows at most {} tags", create::MAX_TAGS),
                ));
            }
        }
        if let Some(c) = parts.credentials {
            merge(&mut spec.registry_credentials, c, incremental, |c| {
                c.server.clone()
            });
        }
        if let Some(r) = parts.restart_policy {
            spec.restart_policy = r;
        }
        if self.params.has_any("Volume") {
            let storage = u64::from(spec.ephemeral_storage_gib());
            // Memory emptyDirs are checked against the group's final memory below.
            let volumes = super::volumes::volumes(&self.params, create::MAX_RESOURCE, storage)?;
            merge(&mut spec.volumes, volumes, incremental, |v| v.name.clone());
            if spec.volumes.len() > berth_core::volume::MAX_VOLUMES {
                return Err(ApiError::value_exceeded(
                    "Volume",
                    format!("allows at most {} volumes", berth_core::volume::MAX_VOLUMES),
                ));
            }
        }
        check_containers(&spec)?;
        if old.public_address && published_ports(&spec) != published_ports(old) {
            return Err(ApiError::invalid_parameter(
                "Container.N.Port",
                "cannot be changed on a group whose ports are published (AutoCreateEip): create a new container group",
            ));
        }
        if parts.cpu.is_some() || parts.memory.is_some() {
            let size = normalize_size(
                Some(parts.cpu.unwrap_or(old.cpu)),
                Some(parts.memory.unwrap_or(old.memory)),
            )
            .map_err(|e| {
                ApiError::invalid_parameter(
                    "Cpu and Memory",
                    format!("ask for no offered size: {e}"),
                )
            })?;
            spec.cpu = size.cpu;
            spec.memory = size.memory;
        }
        create::check_fits(&spec)?;
        check_memory_volumes(&spec)?;
        super::volumes::check_mounts(&spec.volumes, &spec.init_containers, &spec.containers)?;
        Ok(spec)
    }
}

/// What the request gives, decoded.
struct Parts {
    containers: Option<Vec<ContainerSpec>>,
    container_patches: Option<Vec<super::patch::ContainerPatch>>,
    init_containers: Option<Vec<ContainerSpec>>,
    tags: Option<Vec<berth_core::Tag>>,
    credentials: Option<Vec<berth_core::RegistryCredential>>,
    cpu: Option<f64>,
    memory: Option<f64>,
    restart_policy: Option<RestartPolicy>,
}

/// The app containers' ports (and host ports asked for), in a stable order.
fn published_ports(spec: &GroupSpec) -> Vec<(u16, String, Option<u16>)> {
    let mut out: Vec<_> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .map(|p| (p.port, p.protocol.clone(), p.host_port))
        .collect();
    out.sort();
    out
}

fn has_value(p: &Params, name: &str) -> bool {
    let under = format!("{name}.");
    p.iter().any(|(k, v)| {
        (k == name || k.starts_with(&under)) && !v.trim().is_empty() && v.trim() != "None"
    })
}

/// Replaces `old` by `new`, or (incremental) replaces the items of the same key and adds
/// the others in their order.
fn merge<T, K: PartialEq>(old: &mut Vec<T>, new: Vec<T>, incremental: bool, key: impl Fn(&T) -> K) {
    if !incremental {
        *old = new;
        return;
    }
    for item in new {
        match old.iter_mut().find(|o| key(o) == key(&item)) {
            Some(slot) => *slot = item,
            None => old.push(item),
        }
    }
}

fn check_containers(spec: &GroupSpec) -> Result<(), ApiError> {
    if spec.containers.is_empty() {
        return Err(ApiError::missing_parameter("Container.1.Image"));
    }
    let total = spec.containers.len() + spec.init_containers.len();
    if total > create::MAX_CONTAINERS {
        return Err(ApiError::value_exceeded(
            "Container",
            format!(
                "and InitContainer hold {total} containers, at most {} are allowed",
                create::MAX_CONTAINERS
            ),
        ));
    }
    let mut seen = HashSet::new();
    for c in spec.all_containers() {
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
    Ok(())
}

/// Memory emptyDirs may not together hold more than the group's memory, which an update
/// may lower.
fn check_memory_volumes(spec: &GroupSpec) -> Result<(), ApiError> {
    use berth_core::{EmptyDirMedium, VolumeSource};
    let group = (spec.memory * (1u64 << 30) as f64) as u64;
    let mut held = 0u64;
    for v in &spec.volumes {
        if let VolumeSource::EmptyDir {
            medium: EmptyDirMedium::Memory,
            size_limit_bytes,
            ..
        } = &v.source
        {
            held = held.saturating_add(size_limit_bytes.unwrap_or(group));
        }
    }
    if held > group {
        return Err(ApiError::invalid_parameter(
            "Memory",
            format!("is below what the group's Memory emptyDir volumes hold ({held} bytes)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(q: &str) -> GroupSpec {
        super::super::CreateRequest::decode(&Params::parse(q, None).unwrap())
            .unwrap()
            .spec
    }

    fn update(q: &str) -> Result<UpdateRequest, ApiError> {
        UpdateRequest::decode(&Params::parse(q, None).unwrap())
    }

    const GROUP: &str = "ContainerGroupName=gg&Cpu=2&Memory=4\
        &Container.1.Name=a&Container.1.Image=busybox&Container.1.EnvironmentVar.1.Key=K&Container.1.EnvironmentVar.1.Value=1\
        &Container.2.Name=b&Container.2.Image=busybox&Tag.1.Key=t&Tag.1.Value=1";

    #[test]
    fn patch_changes_only_the_fields_given() {
        let old = created(
            "ContainerGroupName=gg&Cpu=2&Memory=4\
             &Container.1.Name=a&Container.1.Image=busybox&Container.1.Command.1=sleep\
             &Container.1.Arg.1=9&Container.1.WorkingDir=/w\
             &Container.1.EnvironmentVar.1.Key=K&Container.1.EnvironmentVar.1.Value=1\
             &Container.1.SecurityContext.Capability.Drop.1=ALL\
             &Container.2.Name=b&Container.2.Image=busybox&Tag.1.Key=t&Tag.1.Value=1",
        );
        let u = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=a\
             &Container.1.Image=busybox:2&Container.1.EnvironmentVar.1.Key=N\
             &Container.1.EnvironmentVar.1.Value=2",
        )
        .unwrap();
        let new = u.apply(&old).unwrap();
        let mut want = old.containers[0].clone();
        want.image = "busybox:2".into();
        want.env = vec![berth_core::EnvVar {
            key: "N".into(),
            value: "2".into(),
            field_path: None,
        }];
        assert_eq!(new.containers[0], want);
        assert_eq!(new.containers[1], old.containers[1]);
        assert_eq!(new.tags, old.tags);

        let cmd = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=b\
             &Container.1.Command.1=sh&Container.1.Arg.1=-c&Container.1.Arg.2=true",
        )
        .unwrap()
        .apply(&old)
        .unwrap();
        assert_eq!(cmd.containers[1].command, vec!["sh"]);
        assert_eq!(cmd.containers[1].args, vec!["-c", "true"]);
        assert_eq!(cmd.containers[1].image, "busybox");
        assert_eq!(cmd.containers[0], old.containers[0]);
    }

    #[test]
    fn patch_refuses_other_fields_and_unknown_containers() {
        let old = created(GROUP);
        let other = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=a&Container.1.WorkingDir=/x",
        )
        .unwrap_err();
        assert_eq!(other.code, "InvalidParameter");
        assert!(
            other.message.contains("Container.1.WorkingDir"),
            "{}",
            other.message
        );
        let bad_image = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=a&Container.1.Image=a%20b",
        )
        .unwrap_err();
        assert!(
            bad_image.message.contains("Container.1.Image"),
            "{}",
            bad_image.message
        );
        let empty_image = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=a&Container.1.Image=",
        )
        .unwrap_err();
        assert_eq!(empty_image.code, "MissingParameter");
        let unknown = update(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=zz&Container.1.Image=x",
        )
        .unwrap()
        .apply(&old)
        .unwrap_err();
        assert!(
            unknown.message.contains("Container.1.Name"),
            "{}",
            unknown.message
        );
        let args: String = (1..=11)
            .map(|i| format!("&Container.1.Arg.{i}=x"))
            .collect();
        let many = update(&format!(
            "ContainerGroupId=eci-x&UpdateType=PatchUpdate&Container.1.Name=a{args}"
        ))
        .unwrap_err();
        assert!(many.message.contains("Container.1.Arg"), "{}", many.message);
    }

    #[test]
    fn renew_replaces_the_lists_given() {
        let old = created(GROUP);
        let u = update("ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=busybox:2")
            .unwrap();
        let new = u.apply(&old).unwrap();
        assert_eq!(new.containers.len(), 1);
        assert_eq!(new.containers[0].image, "busybox:2");
        assert!(new.containers[0].env.is_empty());
        assert_eq!(new.tags, old.tags);
        assert_eq!((new.cpu, new.memory), (2.0, 4.0));
    }

    #[test]
    fn the_virtual_kubelets_tags_survive_a_renew_and_cannot_be_named() {
        let old = created(&format!("{GROUP}&Tag.2.Key=k8s.pod.uid&Tag.2.Value=u"));
        let u = update("ContainerGroupId=eci-x&Tag.1.Key=n&Tag.1.Value=1").unwrap();
        let new = u.apply(&old).unwrap();
        let keys: Vec<_> = new.tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["k8s.pod.uid", "n"]);
        let u = update("ContainerGroupId=eci-x&Tag.1.Key=k8s.pod.uid&Tag.1.Value=other").unwrap();
        let e = u.apply(&old).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "InvalidParameter"));
    }

    #[test]
    fn incremental_replaces_by_name_and_adds() {
        let old = created(GROUP);
        let u = update(
            "ContainerGroupId=eci-x&UpdateType=IncrementalUpdate&Container.1.Name=a&Container.1.Image=busybox\
             &Container.1.EnvironmentVar.1.Key=K&Container.1.EnvironmentVar.1.Value=2\
             &Container.2.Name=c&Container.2.Image=busybox&Tag.1.Key=u&Tag.1.Value=2&Memory=8",
        )
        .unwrap();
        let new = u.apply(&old).unwrap();
        let names: Vec<_> = new.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(new.containers[0].env[0].value, "2");
        assert_eq!(new.containers[1], old.containers[1]);
        assert_eq!(new.tags.len(), 2);
        assert_eq!((new.cpu, new.memory), (2.0, 8.0));
    }

    #[test]
    fn what_an_update_cannot_change_is_refused_by_name() {
        for q in [
            "ContainerGroupId=eci-x&EphemeralStorage=40",
            "ContainerGroupId=eci-x&HostName=h",
            "ContainerGroupId=eci-x&SecurityContext.Sysctl.1.Name=net.core.somaxconn&SecurityContext.Sysctl.1.Value=1024",
            "ContainerGroupId=eci-x&UpdateType=Other",
            "ContainerGroupId=eci-x&Container.1.Name=a",
            "ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=b&Container.1.Tty=true",
        ] {
            assert!(update(q).is_err(), "{q}");
        }
        assert!(update("Cpu=2").is_err());
    }

    #[test]
    fn the_updated_group_is_checked_as_a_created_one() {
        let old = created(GROUP);
        // Twice the same name.
        let u = update(
            "ContainerGroupId=eci-x&UpdateType=IncrementalUpdate&InitContainer.1.Name=a&InitContainer.1.Image=busybox",
        )
        .unwrap();
        assert!(u.apply(&old).is_err());
        // Containers asking for more than the group.
        let u = update(
            "ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=busybox&Container.1.Cpu=4",
        )
        .unwrap();
        assert!(u.apply(&old).is_err());
        // No offered size.
        let u = update("ContainerGroupId=eci-x&Cpu=4000&Memory=1").unwrap();
        assert!(u.apply(&old).is_err());
        // A mount of a volume the group does not have.
        let u = update(
            "ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=busybox\
             &Container.1.VolumeMount.1.Name=v&Container.1.VolumeMount.1.MountPath=/v",
        )
        .unwrap();
        assert!(u.apply(&old).is_err());
        assert!(update("ContainerGroupId=eci-x").unwrap().is_empty());
        let volume = "ContainerGroupId=eci-x&Volume.1.Name=v&Volume.1.Type=ConfigFileVolume\
            &Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a";
        let u = update(&format!(
            "{volume}&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content=YQ=="
        ));
        let other = update(&format!(
            "{volume}&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content=Yg=="
        ));
        assert!(!u.as_ref().unwrap().is_empty(), "volumes are a change");
        assert_ne!(
            u.unwrap().fingerprint(),
            other.unwrap().fingerprint(),
            "a repeat with other files is another request"
        );
        // Memory volumes above the group's memory.
        let u = update(
            "ContainerGroupId=eci-x&Volume.1.Name=m&Volume.1.Type=EmptyDirVolume\
             &Volume.1.EmptyDirVolume.Medium=Memory&Volume.1.EmptyDirVolume.SizeLimit=5Gi",
        )
        .unwrap();
        assert!(u.apply(&old).is_err());
    }

    #[test]
    fn published_ports_stay_as_they_are() {
        let old = created(
            "ContainerGroupName=gg&AutoCreateEip=true&Container.1.Name=a&Container.1.Image=busybox\
             &Container.1.Port.1.Port=80&Container.1.Port.1.Protocol=TCP",
        );
        let same = "ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=busybox:2\
             &Container.1.Port.1.Port=80&Container.1.Port.1.Protocol=TCP";
        assert!(update(same).unwrap().apply(&old).is_ok());
        let other = update("ContainerGroupId=eci-x&Container.1.Name=a&Container.1.Image=busybox")
            .unwrap()
            .apply(&old)
            .unwrap_err();
        assert!(
            other.message.contains("Container.N.Port"),
            "{}",
            other.message
        );
    }

    #[test]
    fn volumes_are_replaced_or_merged_by_name() {
        let old = created(
            "ContainerGroupName=gg&Container.1.Name=a&Container.1.Image=busybox\
             &Container.1.VolumeMount.1.Name=v&Container.1.VolumeMount.1.MountPath=/v\
             &Volume.1.Name=v&Volume.1.Type=EmptyDirVolume&Volume.2.Name=w&Volume.2.Type=EmptyDirVolume",
        );
        let given = "ContainerGroupId=eci-x&Volume.1.Name=v&Volume.1.Type=EmptyDirVolume\
            &Volume.1.EmptyDirVolume.Medium=Memory&Volume.1.EmptyDirVolume.SizeLimit=64Mi";
        let new = update(&format!("{given}&UpdateType=IncrementalUpdate"))
            .unwrap()
            .apply(&old)
            .unwrap();
        assert_eq!(new.volumes.len(), 2);
        assert_ne!(new.volumes[0], old.volumes[0]);
        assert_eq!(new.volumes[1], old.volumes[1]);
        let new = update(given).unwrap().apply(&old).unwrap();
        assert_eq!(new.volumes.len(), 1);
        // A volume still mounted cannot go.
        let u =
            update("ContainerGroupId=eci-x&Volume.1.Name=w&Volume.1.Type=EmptyDirVolume").unwrap();
        assert!(u.apply(&old).is_err());
    }
}
