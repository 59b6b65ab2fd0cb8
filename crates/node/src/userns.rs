//! User namespaces per group (`berth serve --userns`): each group's container ids
//! `0..65536` map to a host range of 65,536 ids that no other live group holds.
//!
//! A range is allocated by creating `node/userns/<first host id>` (holding the group id) with
//! `link(2)`, which fails when the name exists, so the allocation is atomic and survives a
//! restart of berth: a group resumed after a crash finds its range again, and a new group
//! never takes a range a live group holds (whatever `--userns-base` said when it was
//! allocated). Deleting the group removes the file. The user namespace whose descriptor the
//! id-mapped layers need is made once per group and kept in memory.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::idmap::IdMap;

/// Ids per group: container uid/gid 0..65535.
pub const RANGE: u32 = 65_536;

/// Default first host id: 2^30, inside the range systemd reserves for containers
/// (524288–1879048191), far above the ids of users and of `/etc/subuid` (from 100000), and
/// below 2^31 so that `net.ipv4.ping_group_range` can name every range.
pub const DEFAULT_BASE: u32 = 1 << 30;

/// Highest host id a range may reach (exclusive): `ping_group_range` takes ids below 2^31.
const LIMIT: u64 = 1 << 31;

/// How user namespaces are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsernsConfig {
    /// First host id of the first range.
    pub base: u32,
}

impl UsernsConfig {
    /// How many ranges fit between the base and 2^31; an error when none does.
    pub fn ranges(&self) -> Result<u32, String> {
        let n = (LIMIT.saturating_sub(u64::from(self.base))) / u64::from(RANGE);
        if self.base < RANGE || n == 0 {
            return Err(format!(
                "the user namespace base {} must be at least {RANGE} and leave room for one range of {RANGE} ids below 2^31",
                self.base
            ));
        }
        Ok(n as u32)
    }
}

/// Errors of the allocator.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("all {0} user id ranges are in use")]
    Exhausted(u32),
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the user namespace of the group")]
    Namespace(#[source] nix::errno::Errno),
}

struct Entry {
    map: IdMap,
    ns: Option<Arc<OwnedFd>>,
}

/// The ranges of the live groups, mirrored from `node/userns/`.
pub struct UserNamespaces {
    dir: PathBuf,
    base: u32,
    ranges: u32,
    groups: Mutex<HashMap<String, Entry>>,
}

/// The first host id of the lowest range at or above `base` (`ranges` of them) that overlaps
/// none of `used` (first host ids of live ranges, which may lie off the grid).
pub fn pick(base: u32, ranges: u32, used: &[u32]) -> Option<u32> {
    (0..ranges)
        .map(|i| u64::from(base) + u64::from(i) * u64::from(RANGE))
        .find(|&start| {
            used.iter().all(|&u| {
                let u = u64::from(u);
                u + u64::from(RANGE) <= start || start + u64::from(RANGE) <= u
            })
        })
        .map(|s| s as u32)
}

impl UserNamespaces {
    /// Opens (or makes) `dir` and reads the ranges recorded there.
    pub fn open(dir: &Path, cfg: UsernsConfig) -> Result<Self, UsernsError> {
        let ranges = cfg.ranges().map_err(|m| UsernsError::Io {
            op: "use",
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        })?;
        let io = |op, source| UsernsError::Io {
            op,
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io("make", e))?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("read", e))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with('.') {
                // A link that never happened.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Ok(host) = name.parse::<u32>() else {
                continue;
            };
            let gid = std::fs::read_to_string(&path).unwrap_or_default();
            let gid = gid.trim();
            if gid.is_empty() {
                continue;
            }
            groups.insert(
                gid.to_string(),
                Entry {
                    map: IdMap { host, count: RANGE },
                    ns: None,
                },
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            base: cfg.base,
            ranges,
            groups: Mutex::new(groups),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group's range, allocated on its first call.
    pub fn map(&self, gid: &str) -> Result<IdMap, UsernsError> {
        let mut groups = self.lock();
        if let Some(e) = groups.get(gid) {
            return Ok(e.map);
        }
        let tmp = self.dir.join(format!(".{gid}"));
        let io = |op, path: &Path, source| UsernsError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(gid.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| io("write", &tmp, e))?;
        let mut used: Vec<u32> = groups.values().map(|e| e.map.host).collect();
        let result = loop {
            let Some(host) = pick(self.base, self.ranges, &used) else {
                break Err(UsernsError::Exhausted(self.ranges));
            };
            let path = self.dir.join(host.to_string());
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => break Ok(IdMap { host, count: RANGE }),
                // Held by a file this process does not know (another berth's state, a manual
                // copy): never reused.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => used.push(host),
                Err(e) => break Err(io("link", &path, e)),
            }
        };
        let _ = std::fs::remove_file(&tmp);
        let map = result?;
        groups.insert(gid.to_string(), Entry { map, ns: None });
        Ok(map)
    }

    /// The group's range and a user namespace holding it (made on the first call).
    pub fn namespace(&self, gid: &str) -> Result<(IdMap, Arc<OwnedFd>), UsernsError> {
        let map = self.map(gid)?;
        if let Some(ns) = self.lock().get(gid).and_then(|e| e.ns.clone()) {
            return Ok((map, ns));
        }
        let ns = Arc::new(berth_image::idmap::user_namespace(map).map_err(UsernsError::Namespace)?);
        if let Some(e) = self.lock().get_mut(gid) {
            e.ns = Some(ns.clone());
        }
        Ok((map, ns))
    }

    /// Frees the group's range (nothing when it has none).
    pub fn release(&self, gid: &str) -> Result<(), UsernsError> {
        let Some(e) = self.lock().remove(gid) else {
            return Ok(());
        };
        let path = self.dir.join(e.map.host.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(UsernsError::Io {
                op: "remove",
                path,
                source,
            }),
        }
    }

    /// Groups holding a range.
    pub fn groups(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// A group's range and the user namespace holding it.
#[derive(Clone)]
pub struct GroupUserns {
    pub map: IdMap,
    pub ns: Arc<OwnedFd>,
}

/// Everything of the group's sandbox that its user namespace needs: the range and namespace,
/// its `/etc` files owned by the container's root, ping opened in its network namespace.
pub fn prepare(
    u: &UserNamespaces,
    gid: &str,
    dirs: &crate::files::GroupDirs,
    netns: &Path,
    sysctls: &[berth_core::Sysctl],
) -> Result<GroupUserns, Box<dyn std::error::Error + Send + Sync>> {
    let (map, ns) = u.namespace(gid)?;
    for dir in [&dirs.root, &dirs.rw] {
        std::fs::create_dir_all(dir)?;
        give_search(dir, map)?;
    }
    chown_etc(&dirs.etc(), map)?;
    open_ping(netns, sysctls)?;
    Ok(GroupUserns { map, ns })
}

/// Lets the group's range, and no other, pass through the group's own directory `dir`
/// (owner root, group the range's root, 0710): the runtime resolves the root filesystem and
/// the bind sources from inside the container's user namespace.
fn give_search(dir: &Path, map: IdMap) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    std::os::unix::fs::fchown(&f, Some(0), Some(map.host))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o710))
}

/// Adds search permission for others (`--x`, nothing else) to `dir` and every directory above
/// it up to `within` (berth's state directory) that lacks it, so that a container's user
/// namespace reaches the groups' directories (each of which admits only its own range, see
/// [`give_search`]). Logs each change. A directory above `within` is the host's, not berth's
/// to change: one that others cannot search is an error naming it.
pub fn open_search_path(dir: &Path, within: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir.canonicalize()?;
    let within = within.canonicalize()?;
    for d in dir.ancestors() {
        let meta = std::fs::metadata(d)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 && !d.starts_with(&within) {
            return Err(std::io::Error::other(format!(
                "{} ({mode:04o}) cannot be searched by other users, so containers in user namespaces cannot reach their root filesystems below it; give it o+x or choose another --state-dir",
                d.display()
            )));
        }
        if mode & 0o001 == 0 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o001))?;
            tracing::info!(dir = %d.display(), was = format!("{mode:04o}"), now = format!("{:04o}", mode | 0o001), "let user namespaces search the directory");
        }
    }
    Ok(())
}

/// Gives the group's `/etc` files (berth writes them; the container sees them as its own) to
/// the container's root, without following a link.
pub fn chown_etc(etc: &Path, map: IdMap) -> std::io::Result<()> {
    for name in ["hosts", "hostname", "resolv.conf"] {
        let path = etc.join(name);
        std::os::unix::fs::lchown(&path, Some(map.host), Some(map.host))?;
    }
    Ok(())
}

/// Opens ICMP echo sockets to every group id below 2^31 in the network namespace `netns`
/// (what the bundle's sysctl does without a user namespace: a container in its own user
/// namespace may not write the sysctls of a namespace the host owns), and the ports below
/// 1024 to every user; then writes the group's own `net.*` sysctls there, for the same
/// reason (the bundle leaves them out).
pub fn open_ping(netns: &Path, sysctls: &[berth_core::Sysctl]) -> std::io::Result<()> {
    let ns = std::fs::File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // This thread alone changes its network namespace, and ends with it.
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::fs::write(
                "/proc/sys/net/ipv4/ping_group_range",
                berth_runtime::PING_GROUP_RANGE,
            )?;
            // The namespace is the host's (its owner is the initial user namespace), so the
            // container's root has no CAP_NET_BIND_SERVICE in it: let any of its users bind
            // ports below 1024 of the group's own addresses, as Docker does by default.
            std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")?;
            // Names checked by the API: dotted words of [a-z0-9_-], under net.
            for s in sysctls.iter().filter(|s| s.name.starts_with("net.")) {
                let path = format!("/proc/sys/{}", s.name.replace('.', "/"));
                std::fs::write(&path, &s.value).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("sysctl {}: {e}", s.name))
                })?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the sysctl thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_lowest_free_range() {
        let b = DEFAULT_BASE;
        assert_eq!(pick(b, 4, &[]), Some(b));
        assert_eq!(pick(b, 4, &[b]), Some(b + RANGE));
        assert_eq!(pick(b, 4, &[b + RANGE]), Some(b));
        assert_eq!(pick(b, 2, &[b, b + RANGE]), None);
        // A range off the grid (an older base) blocks the two it overlaps.
        assert_eq!(pick(b, 4, &[b + 10]), Some(b + 2 * RANGE));
    }

    #[test]
    fn ranges_stay_below_two_to_the_31() {
        assert_eq!(
            UsernsConfig { base: DEFAULT_BASE }.ranges().unwrap(),
            (1 << 30) / RANGE
        );
        assert_eq!(
            UsernsConfig {
                base: (1u32 << 31) - RANGE
            }
            .ranges()
            .unwrap(),
            1
        );
        assert!(UsernsConfig {
            base: (1u32 << 31) - 1
        }
        .ranges()
        .is_err());
        assert!(UsernsConfig { base: 0 }.ranges().is_err());
    }

    #[test]
    fn allocations_survive_reopen_and_are_freed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("userns");
        let cfg = UsernsConfig {
            base: (1u32 << 31) - 3 * RANGE,
        };
        let a = UserNamespaces::open(&dir, cfg).unwrap();
        let ma = a.map("g-a").unwrap();
        let mb = a.map("g-b").unwrap();
        assert_ne!(ma.host, mb.host);
        assert_eq!(a.map("g-a").unwrap(), ma);
        drop(a);
        // As after a restart: the same ranges, and a new group gets the free one.
        let b = UserNamespaces::open(&dir, cfg).unwrap();
        assert_eq!(b.map("g-a").unwrap(), ma);
        assert_eq!(b.map("g-b").unwrap(), mb);
        let mc = b.map("g-c").unwrap();
        assert!(![ma.host, mb.host].contains(&mc.host));
        assert!(matches!(b.map("g-d"), Err(UsernsError::Exhausted(3))));
        b.release("g-a").unwrap();
        assert_eq!(b.map("g-d").unwrap(), ma);
        b.release("g-unknown").unwrap();
        let mut groups = b.groups();
        groups.sort();
        assert_eq!(groups, ["g-b", "g-c", "g-d"]);
        // A reopened allocator with another base keeps off the live ranges.
        b.release("g-d").unwrap();
        drop(b);
        let c = UserNamespaces::open(
            &dir,
            UsernsConfig {
                base: ma.host - RANGE / 2,
            },
        )
        .unwrap();
        let me = c.map("g-e").unwrap();
        for m in [mb, mc] {
            assert!(me.host + RANGE <= m.host || m.host + RANGE <= me.host);
        }
    }
}

#[cfg(test)]
mod root_tests {
    #[test]
    fn ping_opens_in_the_namespace_only() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let name = format!("berth-uns-{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success());
        let host = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
        let host_range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let group = [berth_core::Sysctl {
            name: "net.ipv4.ip_local_port_range".into(),
            value: "20000 30000".into(),
        }];
        let r = super::open_ping(std::path::Path::new(&format!("/run/netns/{name}")), &group);
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "cat",
                "/proc/sys/net/ipv4/ping_group_range",
                "/proc/sys/net/ipv4/ip_local_port_range",
            ])
            .output()
            .unwrap();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .status();
        r.unwrap();
        let inside = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            inside.split_whitespace().collect::<Vec<_>>(),
            ["0", "2147483647", "20000", "30000"]
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap(),
            host_range
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
            host
        );
    }
}
