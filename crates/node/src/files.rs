//! Files of a group on the node: its directory layout and the `/etc` files its containers
//! see.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use berth_core::{DnsConfig, HostAlias};

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

/// Writes `hosts`, `hostname` and `resolv.conf` for the group's containers.
pub fn write_etc(
    dirs: &GroupDirs,
    hostname: &str,
    ip: Option<&str>,
    dns: Option<&DnsConfig>,
    policy: berth_core::DnsPolicy,
    aliases: &[HostAlias],
) -> io::Result<()> {
    let etc = dirs.etc();
    fs::create_dir_all(&etc)?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    hosts.push_str(&berth_core::dns::hosts_lines(aliases));
    write_etc_file(&etc.join("hosts"), hosts.as_bytes())?;
    write_etc_file(&etc.join("hostname"), format!("{hostname}\n").as_bytes())?;
    let host = container_resolv_conf(&host_resolv_conf());
    let resolv = berth_core::dns::group_resolv_conf(policy, dns, &host);
    write_etc_file(&etc.join("resolv.conf"), resolv.as_bytes())?;
    Ok(())
}

/// The host's resolver configuration; when every name server of `/etc/resolv.conf` is a
/// loopback one (a local stub such as systemd-resolved's 127.0.0.53, which a container in its
/// own network namespace cannot reach), the stub's upstream file, as container engines do.
fn host_resolv_conf() -> String {
    let main = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let reachable = |text: &str| {
        text.lines().any(|l| {
            let mut p = l.split_whitespace();
            p.next() == Some("nameserver")
                && p.next()
                    .is_some_and(|a| !(a.starts_with("127.") || a == "::1"))
        })
    };
    if !reachable(&main) {
        if let Ok(upstream) = fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            if reachable(&upstream) {
                return upstream;
            }
        }
    }
    main
}

/// Writes an empty file (a spare's, which no container uses yet) in place, allocating no
/// inode; replaces any other by a rename, so a running container keeps the file it has.
fn write_etc_file(path: &Path, data: &[u8]) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => fs::write(path, data),
        _ => write_atomic(path, data),
    }
}

/// The host's resolver configuration without loopback name servers, which a container in
/// its own network namespace cannot reach.
pub fn container_resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut parts = l.split_whitespace();
            !(parts.next() == Some("nameserver")
                && parts
                    .next()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(tmp, path)
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
    fn resolv_conf_drops_loopback_servers() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            container_resolv_conf(host),
            "search example.org\nnameserver 10.0.0.2\noptions edns0\n"
        );
    }

    #[test]
    fn etc_files_are_written() {
        let dir = std::env::temp_dir().join(format!("berth-node-etc-{}", std::process::id()));
        let dirs = NodeDirs::new(&dir).group("g1");
        write_etc(
            &dirs,
            "web",
            Some("10.1.2.3"),
            None,
            berth_core::DnsPolicy::Default,
            &[],
        )
        .unwrap();
        assert!(
            dirs.etc().starts_with(dir.join("rw")),
            "/etc files belong on disk"
        );
        let hosts = fs::read_to_string(dirs.etc().join("hosts")).unwrap();
        assert!(hosts.contains("10.1.2.3\tweb"));
        assert_eq!(
            fs::read_to_string(dirs.etc().join("hostname")).unwrap(),
            "web\n"
        );
        dirs.remove_all().unwrap();
        assert!(NodeDirs::new(&dir).ids().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_three_trees_of_a_group() {
        let nd = NodeDirs::new(Path::new("/n"));
        let g = nd.group("eci-1");
        assert_eq!(g.container("c"), Path::new("/n/groups/eci-1/containers/c"));
        assert_eq!(g.container_rw("c"), Path::new("/n/rw/eci-1/c"));
        assert_eq!(g.log_file("c", 2), Path::new("/n/logs/eci-1/c/2.log"));
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
