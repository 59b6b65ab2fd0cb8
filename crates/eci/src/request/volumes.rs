//! CreateContainerGroup's `Volume.N.*` and `Container.N.VolumeMount.N.*`: decoded into
//! `berth_core::Volume` and `VolumeMount` and checked before anything is recorded.
//!
//! Every count and size is bounded ([`berth_core::volume`]'s limits); paths are normalised
//! and may not leave their root (`..`), and names must refer to each other. What the node
//! must still never trust — symlinks the tenant plants in an image or an emptyDir — is its
//! concern (`berth_node::volumes`).

use std::collections::HashSet;

use base64::Engine;
use berth_core::volume::{
    parse_quantity, MAX_CONFIG_BYTES, MAX_CONFIG_FILES, MAX_VOLUMES, MAX_VOLUME_MOUNTS,
};
use berth_core::{
    ConfigFile, ContainerSpec, EmptyDirMedium, HostPathType, MountPropagation, Volume, VolumeMount,
    VolumeSource,
};

use super::validate;
use crate::error::ApiError;
use crate::params::Params;

/// Longest path (MountPath, SubPath, config file Path), in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Largest `Volume.N.EmptyDirVolume.SizeLimit` of the disk medium (the temporary storage
/// bounds it anyway).
const MAX_SIZE_LIMIT: u64 = 1 << 56;

/// The group's volumes. Memory emptyDirs together may not ask for more than the group's
/// memory (`memory_gib`); a disk emptyDir's `SizeLimit` may not be below the group's
/// temporary storage (`storage_gib`), the bound berth enforces on it (a smaller limit would
/// be accepted and not kept).
pub fn volumes(p: &Params, memory_gib: f64, storage_gib: u64) -> Result<Vec<Volume>, ApiError> {
    let idx = p.indexes("Volume")?;
    if idx.len() > MAX_VOLUMES {
        return Err(ApiError::value_exceeded(
            "Volume",
            format!("allows at most {MAX_VOLUMES} volumes"),
        ));
    }
    let mut out: Vec<Volume> = Vec::new();
    let mut config_bytes = 0usize;
    let mut memory_bytes = 0u64;
    for i in idx {
        let v = format!("Volume.{i}");
        let k = |s: &str| format!("{v}.{s}");
        let name = p.required(&k("Name"))?;
        validate::container_name(&k("Name"), &name)?;
        if out.iter().any(|o| o.name == name) {
            return Err(ApiError::invalid_parameter(
                &k("Name"),
                format!("must be unique within the group, {name:?} is used twice"),
            ));
        }
        let typ = p.required(&k("Type"))?;
        let source = match typ.as_str() {
            "EmptyDirVolume" => {
                only_under(p, &v, "EmptyDirVolume")?;
                let medium = match p.string(&k("EmptyDirVolume.Medium")).as_deref() {
                    None => EmptyDirMedium::Disk,
                    Some("Memory") => EmptyDirMedium::Memory,
                    Some(m) => {
                        return Err(ApiError::invalid_parameter(
                            &k("EmptyDirVolume.Medium"),
                            format!("must be empty (the group's temporary storage) or Memory, got {m:?}"),
                        ))
                    }
                };
                let size_limit = p.string(&k("EmptyDirVolume.SizeLimit"));
                let size_limit_bytes = match &size_limit {
                    None => None,
                    Some(s) => Some(
                        parse_quantity(s)
                            .filter(|n| (1..=MAX_SIZE_LIMIT).contains(n))
                            .ok_or_else(|| {
                                ApiError::invalid_parameter(
                                    &k("EmptyDirVolume.SizeLimit"),
                                    format!("must be a positive whole quantity such as 256Mi or 1Gi, got {s:?}"),
                                )
                            })?,
                    ),
                };
                if medium == EmptyDirMedium::Disk {
                    let storage = storage_gib.saturating_mul(1 << 30);
                    if size_limit_bytes.is_some_and(|n| n < storage) {
                        return Err(ApiError::invalid_parameter(
                            &k("EmptyDirVolume.SizeLimit"),
                            format!("below the group's EphemeralStorage ({storage_gib} GiB) is not enforced by berth for an emptyDir on disk: leave it out, give at least that, or use Medium=Memory"),
                        ));
                    }
                }
                if medium == EmptyDirMedium::Memory {
                    let group = (memory_gib * (1u64 << 30) as f64) as u64;
                    memory_bytes = memory_bytes.saturating_add(size_limit_bytes.unwrap_or(group));
                    if memory_bytes > group {
                        return Err(ApiError::value_exceeded(
                            &k("EmptyDirVolume.SizeLimit"),
                            format!("Memory emptyDir volumes may together hold at most the group's memory ({memory_gib} GiB)"),
                        ));
                    }
                }
                VolumeSource::EmptyDir {
                    medium,
                    size_limit,
                    size_limit_bytes,
                }
            }
            "ConfigFileVolume" => {
                only_under(p, &v, "ConfigFileVolume")?;
                config_file_volume(p, &v, &mut config_bytes)?
            }
            "NFSVolume" => {
                only_under(p, &v, "NFSVolume")?;
                nfs_volume(p, &v)?
            }
            "HostPathVolume" => {
                only_under(p, &v, "HostPathVolume")?;
                let path_name = k("HostPathVolume.Path");
                let path = absolute_path(&path_name, &p.required(&path_name)?)?;
                let type_name = k("HostPathVolume.Type");
                let raw = p.string(&type_name).unwrap_or_default();
                let kind = HostPathType::parse(&raw).ok_or_else(|| {
                    ApiError::invalid_parameter(
                        &type_name,
                        format!("must be empty, Directory, DirectoryOrCreate or File, got {raw:?}"),
                    )
                })?;
                VolumeSource::HostPath { path, kind }
            }
            _ => {
                return Err(ApiError::invalid_parameter(
                    &k("Type"),
                    format!("{typ:?} is not supported by berth yet (EmptyDirVolume, ConfigFileVolume, NFSVolume and HostPathVolume are)"),
                ))
            }
        };
        out.push(Volume { name, source });
    }
    Ok(out)
}

/// Refuses parameters of `Volume.N.` that belong to another type than `typ`.
fn only_under(p: &Params, v: &str, typ: &str) -> Result<(), ApiError> {
    let start = format!("{v}.");
    for (name, value) in p.iter() {
        let Some(rest) = name.strip_prefix(&start) else {
            continue;
        };
        if rest == "Name" || rest == "Type" || value.trim().is_empty() || value == "None" {
            continue;
        }
        if !rest.starts_with(&format!("{typ}.")) && rest != typ {
            return Err(ApiError::invalid_parameter(
                name,
                format!("does not belong to a volume of type {typ}"),
            ));
        }
    }
    Ok(())
}

fn config_file_volume(p: &Params, v: &str, total: &mut usize) -> Result<VolumeSource, ApiError> {
    let list = format!("{v}.ConfigFileVolume.ConfigFileToPath");
    let idx = p.indexes(&list)?;
    if idx.len() > MAX_CONFIG_FILES {
        return Err(ApiError::value_exceeded(
            &list,
            format!("allows at most {MAX_CONFIG_FILES} files"),
        ));
    }
    let default_name = format!("{v}.ConfigFileVolume.DefaultMode");
    let legacy_name = format!("{v}.ConfigFileVolume.DefaultModel");
    let default_mode = match mode(p, &default_name)? {
        Some(m) => Some(m),
        None => mode(p, &legacy_name)?,
    };
    let mut files: Vec<ConfigFile> = Vec::new();
    for i in idx {
        let f = format!("{list}.{i}");
        let path_name = format!("{f}.Path");
        let path = relative_path(&path_name, &p.required(&path_name)?)?;
        // The names the kubelet's layout keeps for itself (`..data`, its timestamped
        // directories), which the node writes the files through.
        if path.starts_with("..") {
            return Err(ApiError::invalid_parameter(
                &path_name,
                format!("must not start with '..': {path:?}"),
            ));
        }
        for o in &files {
            let nested =
                |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'/');
            if o.path == path || nested(&o.path, &path) || nested(&path, &o.path) {
                return Err(ApiError::invalid_parameter(
                    &path_name,
                    format!(
                        "{path:?} collides with another file of the volume, {:?}",
                        o.path
                    ),
                ));
            }
        }
        let content_name = format!("{f}.Content");
        let content = p.raw(&content_name).unwrap_or_default().to_string();
        // Decoded, base64 is three quarters of its length: refuse huge values unread.
        if content.len() / 4 * 3 > MAX_CONFIG_BYTES.saturating_sub(*total) + 3 {
            return Err(too_much(&content_name));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(content.as_bytes())
            .map_err(|_| {
                ApiError::invalid_parameter(
                    &content_name,
                    "must be base64 (standard alphabet, padded)",
                )
            })?;
        *total += decoded.len();
        if *total > MAX_CONFIG_BYTES {
            return Err(too_much(&content_name));
        }
        files.push(ConfigFile {
            path,
            content,
            mode: mode(p, &format!("{f}.Mode"))?,
        });
    }
    Ok(VolumeSource::ConfigFile {
        files,
        default_mode,
    })
}

/// `NFSVolume`: the server a host name or an IPv4 address (whether the operator allows it is
/// the control plane's check), the export an absolute path.
fn nfs_volume(p: &Params, v: &str) -> Result<VolumeSource, ApiError> {
    let server_name = format!("{v}.NFSVolume.Server");
    let server = p.required(&server_name)?.to_ascii_lowercase();
    validate::host_name(&server_name, &server)?;
    let path_name = format!("{v}.NFSVolume.Path");
    let path = absolute_path(&path_name, &p.required(&path_name)?)?;
    if path.bytes().any(|b| b.is_ascii_whitespace() || b == b',') {
        return Err(ApiError::invalid_parameter(
            &path_name,
            "must not hold white space or commas",
        ));
    }
    Ok(VolumeSource::Nfs {
        server,
        path,
        read_only: p.bool(&format!("{v}.NFSVolume.ReadOnly"))?.unwrap_or(false),
    })
}

/// An absolute path, normalised (`/a/b`; `/` itself allowed), without `..`.
fn absolute_path(name: &str, s: &str) -> Result<String, ApiError> {
    validate::no_nul(name, s)?;
    if s.len() > MAX_PATH_LEN {
        return Err(ApiError::length_exceeded(name, MAX_PATH_LEN));
    }
    if !s.starts_with('/') {
        return Err(ApiError::invalid_parameter(
            name,
            "must be an absolute path",
        ));
    }
    Ok(format!("/{}", parts(name, s)?.join("/")))
}

fn too_much(name: &str) -> ApiError {
    ApiError::value_exceeded(
        name,
        format!("config files of a group may hold at most {MAX_CONFIG_BYTES} bytes together"),
    )
}

/// Permission bits: octal with a leading 0 (`0644`), else decimal as Kubernetes' JSON has it
/// (`420`); at most 0777.
fn mode(p: &Params, name: &str) -> Result<Option<u32>, ApiError> {
    let Some(v) = p
        .raw(name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "None")
    else {
        return Ok(None);
    };
    let parsed = if v.len() > 1 && v.starts_with('0') {
        u32::from_str_radix(&v[1..], 8).ok()
    } else if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<u32>().ok()
    } else {
        None
    };
    match parsed {
        Some(m) if m <= 0o777 => Ok(Some(m)),
        _ => Err(ApiError::invalid_parameter(
            name,
            format!("must be permission bits up to 0777, in octal with a leading 0 (0644) or in decimal (420), got {v:?}"),
        )),
    }
}

/// A path relative to a volume: no leading `/`, no `..`; `.` and empty parts dropped.
fn relative_path(name: &str, s: &str) -> Result<String, ApiError> {
    validate::no_nul(name, s)?;
    if s.len() > MAX_PATH_LEN {
        return Err(ApiError::length_exceeded(name, MAX_PATH_LEN));
    }
    if s.starts_with('/') {
        return Err(ApiError::invalid_parameter(name, "must be a relative path"));
    }
    let parts = parts(name, s)?;
    if parts.is_empty() {
        return Err(ApiError::invalid_parameter(
            name,
            "must name a path below the volume",
        ));
    }
    Ok(parts.join("/"))
}

fn parts<'a>(name: &str, s: &'a str) -> Result<Vec<&'a str>, ApiError> {
    let parts: Vec<&str> = s
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(ApiError::invalid_parameter(name, "must not contain '..'"));
    }
    if parts.iter().any(|c| c.len() > 255) {
        return Err(ApiError::invalid_parameter(
            name,
            "has a part longer than 255 bytes",
        ));
    }
    Ok(parts)
}

/// Mount paths berth owns or the kernel's interfaces, which a volume may not cover.
const RESERVED: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
];

/// `{prefix}.VolumeMount.N` of one container.
pub fn mounts(p: &Params, prefix: &str) -> Result<Vec<VolumeMount>, ApiError> {
    let list = format!("{prefix}.VolumeMount");
    let idx = p.indexes(&list)?;
    if idx.len() > MAX_VOLUME_MOUNTS {
        return Err(ApiError::value_exceeded(
            &list,
            format!("allows at most {MAX_VOLUME_MOUNTS} mounts"),
        ));
    }
    let mut out: Vec<VolumeMount> = Vec::new();
    for i in idx {
        let m = format!("{list}.{i}");
        if unset(p, &m) {
            // The legacy SDK sends `ReadOnly=None` for a mount left unset.
            continue;
        }
        let k = |s: &str| format!("{m}.{s}");
        let name = p.required(&k("Name"))?;
        let path_name = k("MountPath");
        let raw = p.required(&path_name)?;
        validate::no_nul(&path_name, &raw)?;
        if raw.len() > MAX_PATH_LEN {
            return Err(ApiError::length_exceeded(&path_name, MAX_PATH_LEN));
        }
        if !raw.starts_with('/') {
            return Err(ApiError::invalid_parameter(
                &path_name,
                "must be an absolute path",
            ));
        }
        let parts = parts(&path_name, &raw)?;
        if parts.is_empty() {
            return Err(ApiError::invalid_parameter(&path_name, "must not be /"));
        }
        let mount_path = format!("/{}", parts.join("/"));
        let reserved = |r: &str| {
            mount_path == r
                || (matches!(r, "/proc" | "/sys")
                    && mount_path.starts_with(r)
                    && mount_path.as_bytes()[r.len()] == b'/')
        };
        if let Some(r) = RESERVED.iter().find(|r| reserved(r)) {
            return Err(ApiError::invalid_parameter(
                &path_name,
                format!("must not cover {r}, which berth or the kernel provides"),
            ));
        }
        if out.iter().any(|o| o.mount_path == mount_path) {
            return Err(ApiError::invalid_parameter(
                &path_name,
                format!("{mount_path:?} is mounted twice in the container"),
            ));
        }
        let sub_path = match p.string(&k("SubPath")) {
            None => None,
            Some(s) => Some(relative_path(&k("SubPath"), &s)?),
        };
        let propagation = match p.string(&k("MountPropagation")).as_deref() {
            None | Some("None") => MountPropagation::None,
            // The SDK's tables spell it both ways.
            Some("HostToContainer") | Some("HostToCotainer") => MountPropagation::HostToContainer,
            Some("Bidirectional") => {
                return Err(ApiError::invalid_parameter(
                    &k("MountPropagation"),
                    "Bidirectional is refused: mounts made in the container would propagate to the host's mount table",
                ))
            }
            Some(o) => {
                return Err(ApiError::invalid_parameter(
                    &k("MountPropagation"),
                    format!("must be None or HostToContainer, got {o:?}"),
                ))
            }
        };
        out.push(VolumeMount {
            name,
            mount_path,
            sub_path,
            read_only: p.bool(&k("ReadOnly"))?.unwrap_or(false),
            propagation,
        });
    }
    Ok(out)
}

/// Whether every parameter below `prefix.` is empty or `None`.
fn unset(p: &Params, prefix: &str) -> bool {
    let start = format!("{prefix}.");
    p.iter()
        .filter(|(n, _)| n.starts_with(&start))
        .all(|(_, v)| v.trim().is_empty() || v.trim() == "None")
}

/// Every mount names a volume of the group.
pub fn check_mounts(
    volumes: &[Volume],
    init: &[ContainerSpec],
    app: &[ContainerSpec],
) -> Result<(), ApiError> {
    let names: HashSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    for (list, cs) in [("InitContainer", init), ("Container", app)] {
        for c in cs {
            if let Some(m) = c
                .volume_mounts
                .iter()
                .find(|m| !names.contains(m.name.as_str()))
            {
                return Err(ApiError::invalid_parameter(
                    &format!("{list}.N.VolumeMount.N.Name"),
                    format!(
                        "container {:?} mounts {:?}, which is no Volume.N.Name of the group",
                        c.name, m.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::CreateRequest;
    use super::*;

    const BASE: &str =
        "ContainerGroupName=gg&Memory=2&Cpu=1&Container.1.Name=a&Container.1.Image=busybox";

    fn create(extra: &str) -> Result<berth_core::GroupSpec, ApiError> {
        CreateRequest::decode(&Params::parse(&format!("{BASE}&{extra}"), None).unwrap())
            .map(|r| r.spec)
    }

    fn refused(extra: &str, param: &str) {
        let short: String = extra.chars().take(200).collect();
        let e = create(extra).expect_err(&short);
        assert!(
            e.message.contains(param),
            "{short}: {}",
            e.message.chars().take(300).collect::<String>()
        );
        assert!((400..500).contains(&e.status), "{short}");
    }

    #[test]
    fn volumes_and_mounts_decode() {
        // "aGVsbG8K" is "hello\n".
        let s = create(
            "Volume.1.Name=cache&Volume.1.Type=EmptyDirVolume\
             &Volume.2.Name=shm&Volume.2.Type=EmptyDirVolume&Volume.2.EmptyDirVolume.Medium=Memory&Volume.2.EmptyDirVolume.SizeLimit=256Mi\
             &Volume.3.Name=conf&Volume.3.Type=ConfigFileVolume&Volume.3.ConfigFileVolume.DefaultModel=0600\
             &Volume.3.ConfigFileVolume.ConfigFileToPath.1.Path=a/b.conf&Volume.3.ConfigFileVolume.ConfigFileToPath.1.Content=aGVsbG8K\
             &Volume.3.ConfigFileVolume.ConfigFileToPath.1.Mode=420\
             &Container.1.VolumeMount.1.Name=cache&Container.1.VolumeMount.1.MountPath=/data//x/&Container.1.VolumeMount.1.SubPath=./s/t\
             &Container.1.VolumeMount.2.Name=conf&Container.1.VolumeMount.2.MountPath=/etc/app&Container.1.VolumeMount.2.ReadOnly=True\
             &Container.1.VolumeMount.2.MountPropagation=HostToCotainer",
        )
        .unwrap();
        assert_eq!(s.volumes.len(), 3);
        assert_eq!(
            s.volumes[1].source,
            VolumeSource::EmptyDir {
                medium: EmptyDirMedium::Memory,
                size_limit: Some("256Mi".into()),
                size_limit_bytes: Some(256 << 20)
            }
        );
        let VolumeSource::ConfigFile {
            files,
            default_mode,
        } = &s.volumes[2].source
        else {
            panic!("not a config volume");
        };
        assert_eq!(*default_mode, Some(0o600));
        assert_eq!(files[0].mode, Some(0o644));
        assert_eq!(files[0].path, "a/b.conf");
        let m = &s.containers[0].volume_mounts;
        assert_eq!(m[0].mount_path, "/data/x");
        assert_eq!(m[0].sub_path.as_deref(), Some("s/t"));
        assert!(m[1].read_only);
        assert_eq!(m[1].propagation, MountPropagation::HostToContainer);
    }

    #[test]
    fn nfs_volumes_decode() {
        let s = create("Volume.1.Name=n&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=NFS.local&Volume.1.NFSVolume.Path=/srv//x/&Volume.1.NFSVolume.ReadOnly=true&Container.1.VolumeMount.1.Name=n&Container.1.VolumeMount.1.MountPath=/n").unwrap();
        assert_eq!(
            s.volumes[0].source,
            VolumeSource::Nfs {
                server: "nfs.local".into(),
                path: "/srv/x".into(),
                read_only: true
            }
        );
    }

    #[test]
    fn host_path_volumes_decode() {
        let s = create("Volume.1.Name=h&Volume.1.Type=HostPathVolume&Volume.1.HostPathVolume.Path=/srv/./data/&Volume.1.HostPathVolume.Type=DirectoryOrCreate").unwrap();
        assert_eq!(
            s.volumes[0].source,
            VolumeSource::HostPath {
                path: "/srv/data".into(),
                kind: HostPathType::DirectoryOrCreate
            }
        );
    }

    #[test]
    fn hostile_volumes_are_refused_by_name() {
        let e = "Volume.1.Name=v&Volume.1.Type=EmptyDirVolume";
        let m = |rest: &str| format!("{e}&Container.1.VolumeMount.1.Name=v&{rest}");
        for (q, param) in [
            ("Volume.1.Name=v&Volume.1.Type=EmptyDirVolume&Volume.2.Name=v&Volume.2.Type=EmptyDirVolume".to_string(), "Volume.2.Name"),
            ("Volume.1.Name=V_1&Volume.1.Type=EmptyDirVolume".to_string(), "Volume.1.Name"),
            ("Volume.1.Name=v&Volume.1.Type=FlexVolume".to_string(), "Volume.1.Type"),
            ("Volume.1.Name=v&Volume.1.Type=HostPathVolume&Volume.1.HostPathVolume.Path=srv".to_string(), "Volume.1.HostPathVolume.Path"),
            ("Volume.1.Name=v&Volume.1.Type=HostPathVolume&Volume.1.HostPathVolume.Path=/srv/../etc".to_string(), "Volume.1.HostPathVolume.Path"),
            ("Volume.1.Name=v&Volume.1.Type=HostPathVolume&Volume.1.HostPathVolume.Path=/srv&Volume.1.HostPathVolume.Type=CharDevice".to_string(), "Volume.1.HostPathVolume.Type"),
            ("Volume.1.Name=v&Volume.1.Type=HostPathVolume&Volume.1.HostPathVolume.Path=/srv&Volume.1.HostPathVolume.Type=Socket".to_string(), "Volume.1.HostPathVolume.Type"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Path=/x".to_string(), "Volume.1.NFSVolume.Server"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=a,b&Volume.1.NFSVolume.Path=/x".to_string(), "Volume.1.NFSVolume.Server"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=[::1]&Volume.1.NFSVolume.Path=/x".to_string(), "Volume.1.NFSVolume.Server"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=h&Volume.1.NFSVolume.Path=x".to_string(), "Volume.1.NFSVolume.Path"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=h&Volume.1.NFSVolume.Path=/a/../b".to_string(), "Volume.1.NFSVolume.Path"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=h&Volume.1.NFSVolume.Path=/a,ro".to_string(), "Volume.1.NFSVolume.Path"),
            ("Volume.1.Name=v&Volume.1.Type=NFSVolume&Volume.1.NFSVolume.Server=h&Volume.1.NFSVolume.Path=/a&Volume.1.EmptyDirVolume.Medium=Memory".to_string(), "Volume.1.EmptyDirVolume.Medium"),
            ("Volume.1.Name=v".to_string(), "Volume.1.Type"),
            (format!("{e}&Volume.1.EmptyDirVolume.Medium=LocalRaid0"), "Volume.1.EmptyDirVolume.Medium"),
            (format!("{e}&Volume.1.EmptyDirVolume.SizeLimit=1.5Gi"), "Volume.1.EmptyDirVolume.SizeLimit"),
            (format!("{e}&Volume.1.EmptyDirVolume.SizeLimit=0"), "Volume.1.EmptyDirVolume.SizeLimit"),
            // Below the default 30 GiB of temporary storage: not kept on disk, so refused.
            (format!("{e}&Volume.1.EmptyDirVolume.SizeLimit=1Gi"), "Volume.1.EmptyDirVolume.SizeLimit"),
            (format!("{e}&Volume.1.EmptyDirVolume.Medium=Memory&Volume.1.EmptyDirVolume.SizeLimit=3Gi"), "Volume.1.EmptyDirVolume.SizeLimit"),
            (format!("{e}&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a"), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=../x".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=..data/x".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=/etc/x".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a&Volume.1.ConfigFileVolume.ConfigFileToPath.2.Path=a/b".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.2.Path"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content=%21%21".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode=644".to_string(), "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode"),
            ("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.DefaultMode=01777".to_string(), "Volume.1.ConfigFileVolume.DefaultMode"),
            (m("Container.1.VolumeMount.1.MountPath=data"), "Container.1.VolumeMount.1.MountPath"),
            (m("Container.1.VolumeMount.1.MountPath=/"), "Container.1.VolumeMount.1.MountPath"),
            (m("Container.1.VolumeMount.1.MountPath=/a/../b"), "Container.1.VolumeMount.1.MountPath"),
            (m("Container.1.VolumeMount.1.MountPath=/proc/sys"), "Container.1.VolumeMount.1.MountPath"),
            (m("Container.1.VolumeMount.1.MountPath=/etc/hosts"), "Container.1.VolumeMount.1.MountPath"),
            (m("Container.1.VolumeMount.1.MountPath=/d&Container.1.VolumeMount.1.SubPath=/abs"), "Container.1.VolumeMount.1.SubPath"),
            (m("Container.1.VolumeMount.1.MountPath=/d&Container.1.VolumeMount.1.SubPath=a/../../b"), "Container.1.VolumeMount.1.SubPath"),
            (m("Container.1.VolumeMount.1.MountPath=/d&Container.1.VolumeMount.1.MountPropagation=Bidirectional"), "Container.1.VolumeMount.1.MountPropagation"),
            (m("Container.1.VolumeMount.1.MountPath=/d&Container.1.VolumeMount.2.Name=v&Container.1.VolumeMount.2.MountPath=/d/"), "Container.1.VolumeMount.2.MountPath"),
            (format!("{e}&Container.1.VolumeMount.1.Name=w&Container.1.VolumeMount.1.MountPath=/d"), "VolumeMount.N.Name"),
        ] {
            refused(&q, param);
        }
    }

    #[test]
    fn bounds_are_enforced() {
        // Config files: 1 MiB in all, refused before a huge value is decoded.
        let huge = "A".repeat(8 << 20);
        refused(
            &format!("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content={huge}"),
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content",
        );
        let half = "A".repeat(700_000);
        let two = format!("Volume.1.Name=v&Volume.1.Type=ConfigFileVolume\
            &Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path=a&Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content={half}\
            &Volume.1.ConfigFileVolume.ConfigFileToPath.2.Path=b&Volume.1.ConfigFileVolume.ConfigFileToPath.2.Content={half}");
        refused(&two, "Volume.1.ConfigFileVolume.ConfigFileToPath.2.Content");
        let many: String = (1..=MAX_VOLUMES + 1)
            .map(|i| format!("&Volume.{i}.Name=v{i}&Volume.{i}.Type=EmptyDirVolume"))
            .collect();
        refused(&many[1..], "Volume");
        let mounts: String = (1..=MAX_VOLUME_MOUNTS + 1)
            .map(|i| format!("&Container.1.VolumeMount.{i}.Name=v&Container.1.VolumeMount.{i}.MountPath=/m{i}"))
            .collect();
        refused(
            &format!("Volume.1.Name=v&Volume.1.Type=EmptyDirVolume{mounts}"),
            "Container.1.VolumeMount",
        );
    }
}
