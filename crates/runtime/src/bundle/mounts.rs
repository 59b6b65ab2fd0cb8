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

/// Hides the masked paths that are directories on this host behind a read-only bind of
/// `empty` (an empty directory berth owns) instead of leaving them to the runtime, which
/// mounts a new tmpfs on each. Every superblock is a shrinker, and every memory cgroup the
/// kernel makes afterwards holds 1 KiB of bookkeeping per 64 of them (docs/SPEC.md, "1,000
/// groups: berth's own addresses and removals"): three tmpfs mounts per container on this
/// host, for nothing a tenant can see. Masked files stay with the runtime (a bind of
/// `/dev/null`, no superblock). `is_dir` says what the host's `/proc` and `/sys` hold, which
/// the container's show too (same kernel); a path that does not exist stays masked by the
/// runtime, which skips it.
pub(crate) fn bind_masked_dirs(
    spec: &mut oci_spec::runtime::Spec,
    empty: &std::path::Path,
    is_dir: impl Fn(&str) -> bool,
) -> Result<(), RuntimeError> {
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    let Some(masked) = linux.masked_paths().clone() else {
        return Ok(());
    };
    let (dirs, rest): (Vec<String>, Vec<String>) = masked.into_iter().partition(|p| is_dir(p));
    if dirs.is_empty() {
        return Ok(());
    }
    linux.set_masked_paths(Some(rest));
    let source = empty.to_string_lossy();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for dir in dirs {
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(dir)
                .typ("bind")
                .source(source.as_ref())
                .options(
                    ["rbind", "ro", "nosuid", "nodev", "noexec"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(RuntimeError::Spec)?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
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
