//! Volume mounts of a bundle: binds of directories (or files) the node prepared, each with its
//! read-only flag and propagation, placed after the kernel file systems and before berth's
//! own `/etc` binds, parents before children.
//!
//! The destination is a path inside the container; the runtime resolves it inside the root
//! file system (crun with `openat2(RESOLVE_IN_ROOT)`, runc with securejoin), so a symlink
//! the image has at that path never leads to the host. The source must be a path berth
//! owns: the node never hands a tenant-controlled path here.

use std::path::PathBuf;

use oci_spec::runtime::Mount;

use crate::error::RuntimeError;

/// One volume bound into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeBind {
    /// A host path berth owns (no component the tenant controls).
    pub source: PathBuf,
    /// Absolute, without `..`.
    pub destination: String,
    pub read_only: bool,
    pub propagation: Propagation,
}

/// Mount propagation of a volume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Private,
    Slave,
}

impl Propagation {
    fn option(self) -> &'static str {
        match self {
            Self::Private => "rprivate",
            Self::Slave => "rslave",
        }
    }
}

/// `base` (the bundle's mounts) with `volumes` inserted before its first bind.
pub(super) fn with_volumes(
    mut base: Vec<Mount>,
    volumes: &[VolumeBind],
) -> Result<Vec<Mount>, RuntimeError> {
    let mut sorted: Vec<&VolumeBind> = volumes.iter().collect();
    sorted.sort_by_key(|v| v.destination.split('/').filter(|c| !c.is_empty()).count());
    let at = base
        .iter()
        .position(|m| m.typ().as_deref() == Some("bind"))
        .unwrap_or(base.len());
    let mut out = Vec::with_capacity(sorted.len());
    for v in sorted {
        let dest = &v.destination;
        if !dest.starts_with('/') || dest == "/" || dest.split('/').any(|c| c == "..") {
            return Err(RuntimeError::invalid(format!(
                "volume destination {dest:?} must be absolute without '..', not /"
            )));
        }
        if !v.source.is_absolute() {
            return Err(RuntimeError::invalid(format!(
                "volume source {} must be absolute",
                v.source.display()
            )));
        }
        let mode = if v.read_only { "ro" } else { "rw" };
        out.push(super::mount(
            dest,
            "bind",
            &v.source.to_string_lossy(),
            &["rbind", v.propagation.option(), "nosuid", "nodev", mode],
        )?);
    }
    base.splice(at..at, out);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_go_before_binds_parents_first() {
        let base = vec![
            super::super::mount("/proc", "proc", "proc", &[]).unwrap(),
            super::super::mount("/etc/hosts", "bind", "/h", &["rbind"]).unwrap(),
        ];
        let v = |dest: &str, ro| VolumeBind {
            source: PathBuf::from("/s"),
            destination: dest.into(),
            read_only: ro,
            propagation: Propagation::Slave,
        };
        let out = with_volumes(base, &[v("/a/b", true), v("/a", false)]).unwrap();
        let dests: Vec<_> = out
            .iter()
            .map(|m| m.destination().to_string_lossy().to_string())
            .collect();
        assert_eq!(dests, ["/proc", "/a", "/a/b", "/etc/hosts"]);
        let opts = out[2].options().clone().unwrap();
        assert!(opts.contains(&"ro".to_string()) && opts.contains(&"rslave".to_string()));
        assert!(with_volumes(vec![], &[v("/a/../b", false)]).is_err());
        assert!(with_volumes(vec![], &[v("/", false)]).is_err());
    }
}
