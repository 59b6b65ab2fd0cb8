//! A container's `/sys/fs/cgroup` on a cgroup v1 host without a tmpfs of its own.
//!
//! Given a `cgroup` mount there, crun mounts a new tmpfs on `/sys/fs/cgroup`, makes a
//! directory in it for each hierarchy it entered and binds the container's cgroup of that
//! hierarchy on it, read-only. The tmpfs is a superblock of its own per container, and the
//! kernel keeps 1 KiB of shrinker bookkeeping per 64 superblocks mounted at once in every
//! memory cgroup (docs/SPEC.md, "1,000 groups: the floor under a group"): with 1,000 groups,
//! one superblock a container is ~19 KiB a group, and more as the groups grow. So berth
//! keeps the directories once, in [`SKELETON`] under the runtime's state root, binds that
//! read-only on `/sys/fs/cgroup` and binds each hierarchy's cgroup of the container on its
//! directory, read-only, as crun would: the container sees the same tree, no superblock is
//! made. The hierarchies are the ones crun enters (`/proc/self/cgroup`, as crun reads it,
//! those mounted under the layout's root; the cgroup2 mount of a hybrid host is hidden from
//! crun), with crun's links for co-mounted controllers. The skeleton is only ever added to,
//! never removed: running containers have mounts on its directories.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::RuntimeError;

/// The skeleton's directory under the runtime's state root (no container id starts with a
/// dot).
pub(crate) const SKELETON: &str = ".cgroupfs";

/// crun's links in `/sys/fs/cgroup` for co-mounted controllers: name → target.
const LINKS: [(&str, &str); 4] = [
    ("cpu", "cpu,cpuacct"),
    ("cpuacct", "cpu,cpuacct"),
    ("net_cls", "net_cls,net_prio"),
    ("net_prio", "net_cls,net_prio"),
];

const OPTIONS: [&str; 5] = ["bind", "ro", "nosuid", "nodev", "noexec"];

/// The skeleton and the hierarchies bound into it.
#[derive(Debug)]
pub(crate) struct CgroupFs {
    skeleton: PathBuf,
    root: PathBuf,
    hierarchies: Vec<String>,
}

impl CgroupFs {
    /// Makes (or completes) the skeleton under `state_root` for the v1 hierarchies mounted
    /// under `root` that this process is in.
    pub fn prepare(state_root: &Path, root: &Path) -> Result<Self, RuntimeError> {
        let text = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| RuntimeError::io("read", "/proc/self/cgroup", e))?;
        let hierarchies = hierarchies(&text, |h| root.join(h).is_dir());
        let skeleton = state_root.join(SKELETON);
        make_skeleton(&skeleton, &hierarchies)?;
        Ok(Self {
            skeleton,
            root: root.to_path_buf(),
            hierarchies,
        })
    }

    /// Replaces the spec's `cgroup` mount on `/sys/fs/cgroup` with the skeleton and the
    /// container's cgroup of each hierarchy (`linux.cgroupsPath`); a spec without either is
    /// left to the runtime.
    pub fn apply(&self, spec: &mut Spec) -> Result<(), RuntimeError> {
        let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else {
            return Ok(());
        };
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        let Some(at) = mounts.iter().position(|m| {
            m.destination() == Path::new("/sys/fs/cgroup") && m.typ().as_deref() == Some("cgroup")
        }) else {
            return Ok(());
        };
        let relative = path.strip_prefix("/").unwrap_or(&path);
        let mut binds = vec![bind(&self.skeleton, Path::new("/sys/fs/cgroup"))?];
        for h in &self.hierarchies {
            binds.push(bind(
                &self.root.join(h).join(relative),
                &Path::new("/sys/fs/cgroup").join(h),
            )?);
        }
        mounts.splice(at..=at, binds);
        spec.set_mounts(Some(mounts));
        Ok(())
    }
}

fn bind(source: &Path, destination: &Path) -> Result<oci_spec::runtime::Mount, RuntimeError> {
    oci_spec::runtime::MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(OPTIONS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(RuntimeError::Spec)
}

/// The v1 hierarchies of `/proc/self/cgroup`'s text, named as crun names their directories
/// (`name=` dropped, co-mounted controllers in crun's order), that `mounted` says are
/// mounted; the cgroup2 line and anything that is not a plain name are left out.
fn hierarchies(proc_self_cgroup: &str, mounted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in proc_self_cgroup.lines() {
        let Some(controllers) = line.split(':').nth(1) else {
            continue;
        };
        let name = controllers.strip_prefix("name=").unwrap_or(controllers);
        let name = match name {
            "net_prio,net_cls" => "net_cls,net_prio",
            "cpuacct,cpu" => "cpu,cpuacct",
            n => n,
        };
        // No path, nothing hidden (`.`, `..`, the skeleton's own name).
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains('/');
        if plain && mounted(name) && !out.iter().any(|h| h == name) {
            out.push(name.to_string());
        }
    }
    out.sort();
    out
}

/// Makes the skeleton's directories and links that are missing, then makes it read-only.
fn make_skeleton(dir: &Path, hierarchies: &[String]) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RuntimeError::invalid(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(_) => fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?,
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| RuntimeError::io("open up", dir, e))?;
    for h in hierarchies {
        let sub = dir.join(h);
        if fs::symlink_metadata(&sub).is_err() {
            fs::create_dir(&sub).map_err(|e| RuntimeError::io("create", &sub, e))?;
        }
    }
    for (name, target) in LINKS {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(target, &link)
                .map_err(|e| RuntimeError::io("link", &link, e))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
        .map_err(|e| RuntimeError::io("make read-only", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n\
        4:memory:/x\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn the_hierarchies_crun_enters() {
        assert_eq!(
            hierarchies(HYBRID, |_| true),
            [
                "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
                "systemd"
            ]
        );
        let comounted = "3:net_prio,net_cls:/\n2:cpuacct,cpu:/\n1:rdma:/\n0::/\n";
        assert_eq!(
            hierarchies(comounted, |h| h != "rdma"),
            ["cpu,cpuacct", "net_cls,net_prio"]
        );
        assert!(hierarchies("0::/\n", |_| true).is_empty());
        assert!(hierarchies("1:a/b:/\n2:..:/\n3:.cgroupfs:/\nnonsense\n", |_| true).is_empty());
    }

    #[test]
    fn the_cgroup_mount_becomes_binds_over_the_skeleton() {
        let tmp = tempfile::tempdir().unwrap();
        let skeleton = tmp.path().join(SKELETON);
        let hs: Vec<String> = ["cpu", "cpuacct", "memory"].map(String::from).to_vec();
        make_skeleton(&skeleton, &hs).unwrap();
        make_skeleton(&skeleton, &hs).unwrap();
        assert!(skeleton.join("memory").is_dir());
        assert!(
            skeleton.join("cpu").is_dir(),
            "a hierarchy, not crun's link"
        );
        assert_eq!(
            fs::read_link(skeleton.join("net_cls")).unwrap(),
            Path::new("net_cls,net_prio")
        );
        let fs = CgroupFs {
            skeleton: skeleton.clone(),
            root: PathBuf::from("/sys/fs/cgroup"),
            hierarchies: hs,
        };
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_cgroups_path(Some(PathBuf::from("/berth/g1")));
        spec.set_linux(Some(linux));
        let cgroup = crate::bundle::mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )
        .unwrap();
        let proc = crate::bundle::mount("/proc", "proc", "proc", &[]).unwrap();
        let later = crate::bundle::mount("/etc/hosts", "bind", "/h", &["rbind"]).unwrap();
        spec.set_mounts(Some(vec![proc, cgroup, later]));
        fs.apply(&mut spec).unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let seen: Vec<(String, String)> = mounts
            .iter()
            .map(|m| {
                (
                    m.destination().display().to_string(),
                    m.source().as_ref().unwrap().display().to_string(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("/proc".into(), "proc".into()),
                ("/sys/fs/cgroup".into(), skeleton.display().to_string()),
                (
                    "/sys/fs/cgroup/cpu".into(),
                    "/sys/fs/cgroup/cpu/berth/g1".into()
                ),
                (
                    "/sys/fs/cgroup/cpuacct".into(),
                    "/sys/fs/cgroup/cpuacct/berth/g1".into()
                ),
                (
                    "/sys/fs/cgroup/memory".into(),
                    "/sys/fs/cgroup/memory/berth/g1".into()
                ),
                ("/etc/hosts".into(), "/h".into()),
            ]
        );
        for m in &mounts[1..5] {
            assert_eq!(m.typ().as_deref(), Some("bind"));
            assert!(m.options().as_ref().unwrap().iter().any(|o| o == "ro"));
        }
    }
}
