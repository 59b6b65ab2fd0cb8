//! Files of a group on the node: its directory layout, the `/etc` files its containers see,
//! and the cgroup parent it leaves behind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where everything of one group lives on the node.
#[derive(Clone, Debug)]
pub struct GroupDirs {
    pub root: PathBuf,
}

impl GroupDirs {
    pub fn new(groups_root: &Path, id: &str) -> Self {
        Self {
            root: groups_root.join(id),
        }
    }

    pub fn container(&self, name: &str) -> PathBuf {
        self.root.join("containers").join(name)
    }

    pub fn logs(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(name)
    }

    /// The log file of run number `run` (0 for the first start) of a container.
    pub fn log_file(&self, name: &str, run: u32) -> PathBuf {
        self.logs(name).join(format!("{run}.log"))
    }

    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }
}

/// Writes `hosts`, `hostname` and `resolv.conf` for the group's containers.
pub fn write_etc(dirs: &GroupDirs, hostname: &str, ip: Option<&str>) -> io::Result<()> {
    let etc = dirs.etc();
    fs::create_dir_all(&etc)?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    write_atomic(&etc.join("hosts"), hosts.as_bytes())?;
    write_atomic(&etc.join("hostname"), format!("{hostname}\n").as_bytes())?;
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_atomic(
        &etc.join("resolv.conf"),
        container_resolv_conf(&host_resolv).as_bytes(),
    )?;
    Ok(())
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

/// Removes the group's cgroup parent (`berth/<id>`) from every mounted hierarchy.
pub fn remove_cgroup_parents(id: &str) {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path().join("berth").join(id);
        if dir.is_dir() {
            remove_cgroup_tree(&dir);
        }
    }
    let direct = Path::new("/sys/fs/cgroup/berth").join(id);
    if direct.is_dir() {
        remove_cgroup_tree(&direct);
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = fs::read_dir(dir) {
        for c in children.flatten() {
            if c.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&c.path());
            }
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %dir.display(), error = %e, "cannot remove cgroup");
        }
    }
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
        let dirs = GroupDirs { root: dir.clone() };
        write_etc(&dirs, "web", Some("10.1.2.3")).unwrap();
        let hosts = fs::read_to_string(dirs.etc().join("hosts")).unwrap();
        assert!(hosts.contains("10.1.2.3\tweb"));
        assert_eq!(
            fs::read_to_string(dirs.etc().join("hostname")).unwrap(),
            "web\n"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
