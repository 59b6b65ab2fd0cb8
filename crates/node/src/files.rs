//! Where the node keeps the files of its groups: the directory layout, the tmpfs for the
//! groups' run-time files, the names groups' containers have in the runtime, and their logs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The node's three trees of group files.
///
/// `groups/<id>` holds what only lives while the group runs — bundles, monitor files, root
/// filesystem mount points — and is a tmpfs where berth could mount one (see
/// [`mount_run_tmpfs`]); `rw/<id>/<container>` holds the overlay upper and work directories,
/// `rw/<id>/.etc` the `/etc` files containers may write, and `logs/<id>/<container>` the logs,
/// all on disk.
#[derive(Clone, Debug)]
pub struct NodeDirs {
    pub groups: PathBuf,
    pub rw: PathBuf,
    pub logs: PathBuf,
    /// Group directories made ahead of time (see the `spare` module).
    pub spare: PathBuf,
    /// The root of the sized temporary storage, when there is one: a group's writable
    /// tree is its subvolume there, unless it still has one in `rw` from before.
    pub storage: Option<PathBuf>,
}

impl NodeDirs {
    pub fn new(node_root: &Path) -> Self {
        Self {
            groups: node_root.join("groups"),
            rw: node_root.join("rw"),
            logs: node_root.join("logs"),
            spare: node_root.join("spare"),
            storage: None,
        }
    }

    /// The same trees with the writable ones on the storage mounted at `root`.
    pub fn with_storage(mut self, root: PathBuf) -> Self {
        self.storage = Some(root);
        self
    }

    pub fn group(&self, id: &str) -> GroupDirs {
        let legacy = self.rw.join(id);
        let rw = match &self.storage {
            Some(storage) if !legacy.exists() => storage.join(id),
            _ => legacy,
        };
        GroupDirs {
            root: self.groups.join(id),
            rw,
            logs: self.logs.join(id),
        }
    }

    /// Ids that have files in any of the trees (and, in the storage, names of spare
    /// directories, which are no group ids).
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = [&self.groups, &self.rw, &self.logs]
            .into_iter()
            .chain(self.storage.as_ref())
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Where everything of one group lives on the node.
#[derive(Clone, Debug)]
pub struct GroupDirs {
    /// Run-time files (tmpfs when available).
    pub root: PathBuf,
    /// Writable layers, one directory per container.
    pub rw: PathBuf,
    /// Logs, one directory per container.
    pub logs: PathBuf,
}

impl GroupDirs {
    pub fn container(&self, name: &str) -> PathBuf {
        self.root.join("containers").join(name)
    }

    /// The overlay upper and work directories of a container live here.
    pub fn container_rw(&self, name: &str) -> PathBuf {
        self.rw.join(name)
    }

    pub fn logs(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// The log file of run number `run` (0 for the first start) of a container.
    pub fn log_file(&self, name: &str, run: u32) -> PathBuf {
        self.logs(name).join(format!("{run}.log"))
    }

    /// `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` of the group. Containers may write
    /// to them, so they live on disk, not on the shared tmpfs. (`.etc` never collides with a
    /// container's directory: container names cannot start with a dot.)
    pub fn etc(&self) -> PathBuf {
        self.rw.join(".etc")
    }

    /// The group's runtime class, written before its first container starts, so that its
    /// containers are stopped, adopted and exec'd into with the runtime that started them,
    /// also after a restart of berth and for leftovers the control plane no longer knows.
    pub fn runtime_class_file(&self) -> PathBuf {
        self.root.join("runtime-class")
    }

    /// The class in [`GroupDirs::runtime_class_file`]; `runc` for a group started before
    /// classes existed (no file). An unknown name is an error.
    pub fn runtime_class(&self) -> io::Result<berth_core::RuntimeClass> {
        let file = self.runtime_class_file();
        let name = match fs::read_link(&file) {
            Ok(target) => target
                .into_os_string()
                .into_string()
                .map_err(|_| io::Error::other("the runtime class is not a name"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            // A regular file, as berth wrote the class before it wrote a link.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => fs::read_to_string(&file)?,
            Err(e) => return Err(e),
        };
        name.trim().parse().map_err(io::Error::other)
    }

    /// Records the group's runtime class (see [`GroupDirs::runtime_class_file`]) as the
    /// target of a symbolic link, never followed: a short link's target is kept in its inode,
    /// where a file would hold a page of the groups' tmpfs for as long as the group runs.
    pub fn write_runtime_class(&self, class: berth_core::RuntimeClass) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let tmp = self.root.join(".runtime-class.tmp");
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(class.as_str(), &tmp)?;
        fs::rename(&tmp, self.runtime_class_file())
    }

    /// Removes every file of the group; missing trees are fine.
    pub fn remove_all(&self) -> io::Result<()> {
        for dir in [&self.root, &self.rw, &self.logs] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Mounts a tmpfs on `dir` (the run-time tree) unless it already is a mount point or holds
/// files (groups of an earlier layout stay where they are). Every file a group start creates
/// there costs no disk inode: on a journal-less ext4 a burst of starts after many deletes
/// spent ~17 % of the CPU in inode allocation skipping recently deleted inodes.
pub fn mount_run_tmpfs(dir: &Path) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    if is_mount_point(dir)? || fs::read_dir(dir)?.next().is_some() {
        return Ok(false);
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0700,size=512m"),
    )
    .map_err(io::Error::from)?;
    Ok(true)
}

/// Unmounts the run-time tmpfs when no group has files in it any more (at shutdown).
pub fn release_run_tmpfs(dir: &Path) -> io::Result<()> {
    if !is_mount_point(dir)? || fs::read_dir(dir)?.next().is_some() {
        return Ok(());
    }
    match nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_mount_point(dir: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let here = fs::metadata(dir)?;
    let parent = fs::metadata(dir.join(".."))?;
    Ok(here.dev() != parent.dev() || here.ino() == parent.ino())
}

/// The runtime's id of a group's container.
pub fn runtime_id(gid: &str, name: &str) -> String {
    format!("{gid}-{name}")
}

/// Which log of a container to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSelector {
    /// The newest run on disk.
    Current,
    /// The run before the newest on disk.
    Previous,
    /// Run number `n` (the restart count it started with).
    Run(u32),
}

/// The runs of a container whose logs are on disk, oldest first.
pub fn log_runs(dirs: &GroupDirs, container: &str) -> Vec<u32> {
    let mut runs: Vec<u32> = fs::read_dir(dirs.logs(container))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    runs.sort_unstable();
    runs
}

/// The latest log file of a container (its current or last run).
pub fn latest_log(dirs: &GroupDirs, container: &str) -> Option<PathBuf> {
    log_runs(dirs, container)
        .last()
        .map(|run| dirs.log_file(container, *run))
}

/// An error with its causes, `outer: inner: innermost`, for events and messages users read.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_trees_of_a_group() {
        let nd = NodeDirs::new(Path::new("/n"));
        let g = nd.group("eci-1");
        assert_eq!(g.container("c"), Path::new("/n/groups/eci-1/containers/c"));
        assert_eq!(g.container_rw("c"), Path::new("/n/rw/eci-1/c"));
        assert_eq!(g.log_file("c", 2), Path::new("/n/logs/eci-1/c/2.log"));
    }

    #[test]
    fn the_runtime_class_is_a_link_and_a_file_of_old_still_reads() {
        use berth_core::RuntimeClass;
        let tmp = tempfile::tempdir().unwrap();
        let g = NodeDirs::new(tmp.path()).group("eci-1");
        assert_eq!(g.runtime_class().unwrap(), RuntimeClass::default());
        for class in [RuntimeClass::Gvisor, RuntimeClass::Runc] {
            g.write_runtime_class(class).unwrap();
            let meta = fs::symlink_metadata(g.runtime_class_file()).unwrap();
            assert!(meta.file_type().is_symlink());
            assert_eq!(g.runtime_class().unwrap(), class);
        }
        fs::remove_file(g.runtime_class_file()).unwrap();
        fs::write(g.runtime_class_file(), "gvisor\n").unwrap();
        assert_eq!(g.runtime_class().unwrap(), RuntimeClass::Gvisor);
        fs::remove_file(g.runtime_class_file()).unwrap();
        std::os::unix::fs::symlink("kata", g.runtime_class_file()).unwrap();
        assert!(g.runtime_class().is_err());
    }

    /// Root test: a tmpfs is mounted on an empty directory, not on one holding files, and
    /// released only when empty.
    #[test]
    fn run_tmpfs_lifecycle() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("groups");
        assert!(mount_run_tmpfs(&dir).unwrap());
        assert!(is_mount_point(&dir).unwrap());
        assert!(!mount_run_tmpfs(&dir).unwrap(), "mounted twice");
        fs::write(dir.join("f"), b"x").unwrap();
        release_run_tmpfs(&dir).unwrap();
        assert!(is_mount_point(&dir).unwrap(), "released with files in it");
        fs::remove_file(dir.join("f")).unwrap();
        release_run_tmpfs(&dir).unwrap();
        assert!(!is_mount_point(&dir).unwrap());
        let busy = tmp.path().join("busy");
        fs::create_dir_all(busy.join("old-group")).unwrap();
        assert!(
            !mount_run_tmpfs(&busy).unwrap(),
            "files of an earlier layout are hidden"
        );
    }
}
