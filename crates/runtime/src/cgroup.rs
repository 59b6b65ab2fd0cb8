//! Which cgroup hierarchies the host mounts (v1, v2 or both: "hybrid") and the few cgroup files
//! berth reads or removes itself: the OOM-kill counter and leftover container cgroups.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::RuntimeError;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The cgroup layout of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Only cgroup v1 controllers, each mounted under `root/<controller>`.
    V1 { root: PathBuf },
    /// The unified cgroup v2 hierarchy at `root`.
    V2 { root: PathBuf },
    /// v1 controllers under `root` plus a cgroup2 mount at `unified`. crun refuses such hosts
    /// when the cgroup2 mount holds controllers, so crun runs in a mount namespace without it.
    Hybrid { root: PathBuf, unified: PathBuf },
}

impl CgroupLayout {
    /// Detects the layout from the mounts of this process.
    pub fn detect() -> Result<Self, RuntimeError> {
        let text =
            fs::read_to_string(MOUNTINFO).map_err(|e| RuntimeError::io("read", MOUNTINFO, e))?;
        Self::from_mountinfo(&text).ok_or_else(|| RuntimeError::NoCgroups {
            mountinfo: MOUNTINFO.into(),
        })
    }

    /// Reads the layout from the text of a `/proc/<pid>/mountinfo` file.
    pub fn from_mountinfo(text: &str) -> Option<Self> {
        let mut v1_root: Option<PathBuf> = None;
        let mut unified: Option<PathBuf> = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount_point) = left.split(' ').nth(4) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape(mount_point));
            match right.split(' ').next() {
                Some("cgroup") if v1_root.is_none() => {
                    v1_root = mount_point.parent().map(Path::to_path_buf);
                }
                Some("cgroup2") if unified.is_none() => unified = Some(mount_point),
                _ => {}
            }
        }
        match (v1_root, unified) {
            (Some(root), Some(unified)) => Some(Self::Hybrid { root, unified }),
            (Some(root), None) => Some(Self::V1 { root }),
            (None, Some(root)) => Some(Self::V2 { root }),
            (None, None) => None,
        }
    }

    /// One line for the log: what was found and what berth does about it.
    pub fn describe(&self) -> String {
        match self {
            Self::V1 { root } => format!("cgroup v1 controllers under {}", root.display()),
            Self::V2 { root } => format!("cgroup v2 (unified) at {}", root.display()),
            Self::Hybrid { root, unified } => {
                let controllers = fs::read_to_string(unified.join("cgroup.controllers"))
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                let controllers = if controllers.is_empty() {
                    "none".to_string()
                } else {
                    controllers
                };
                format!(
                    "hybrid: cgroup v1 controllers under {} and cgroup2 at {} (controllers: {}); \
                     crun runs in a private mount namespace without {}",
                    root.display(),
                    unified.display(),
                    controllers,
                    unified.display()
                )
            }
        }
    }

    /// The cgroup2 mount that crun must not see, on hybrid hosts.
    pub fn unified_to_hide(&self) -> Option<&Path> {
        match self {
            Self::Hybrid { unified, .. } => Some(unified),
            _ => None,
        }
    }

    /// The file whose `oom_kill` counter tells whether the cgroup at `cgroup_path` (as in
    /// `linux.cgroupsPath`) saw an OOM kill: `memory.oom_control` on v1, `memory.events` on v2.
    pub fn oom_file(&self, cgroup_path: &str) -> PathBuf {
        let rel = cgroup_path.trim_start_matches('/');
        match self {
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                root.join("memory").join(rel).join("memory.oom_control")
            }
            Self::V2 { root } => root.join(rel).join("memory.events"),
        }
    }

    /// Whether the kernel accounts swap, so a memory+swap limit can be set.
    pub fn swap_accounting(&self) -> bool {
        match self {
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                root.join("memory/memory.memsw.limit_in_bytes").exists()
            }
            Self::V2 { .. } => true,
        }
    }

    /// Every directory that the cgroup at `cgroup_path` may have, one per mounted hierarchy.
    pub fn cgroup_dirs(&self, cgroup_path: &str) -> Vec<PathBuf> {
        let rel = cgroup_path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return Vec::new();
        }
        match self {
            Self::V2 { root } => vec![root.join(rel)],
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                let mut dirs: Vec<PathBuf> = fs::read_dir(root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path().join(rel))
                    .collect();
                dirs.sort();
                dirs
            }
        }
    }

    /// Sets the CFS quota of the cgroup at `cgroup_path` (which exists) to `cores` over a
    /// 100 ms period, with proportional shares (v1) or weight (v2), as the OCI runtimes do for
    /// `linux.resources.cpu`.
    pub fn set_cpu_limit(&self, cgroup_path: &str, cores: f64) -> Result<(), RuntimeError> {
        const PERIOD: u64 = 100_000;
        let rel = cgroup_path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return Err(RuntimeError::invalid(format!(
                "the cgroup path {cgroup_path:?} must be absolute without '..'"
            )));
        }
        if !cores.is_finite() || cores <= 0.0 || cores > 1024.0 {
            return Err(RuntimeError::invalid(format!("invalid vCPU count {cores}")));
        }
        let quota = ((cores * PERIOD as f64).round() as u64).max(1000);
        let files = match self {
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                let dir = root.join("cpu").join(rel);
                let shares = ((cores * 1024.0).round() as u64).max(2);
                vec![
                    (dir.join("cpu.cfs_period_us"), PERIOD.to_string()),
                    (dir.join("cpu.cfs_quota_us"), quota.to_string()),
                    (dir.join("cpu.shares"), shares.to_string()),
                ]
            }
            Self::V2 { root } => {
                // runc's conversion of shares to a weight.
                let shares = ((cores * 1024.0).round() as u64).clamp(2, 262_144);
                let weight = 1 + ((shares - 2) * 9999) / 262_142;
                let dir = root.join(rel);
                vec![
                    (dir.join("cpu.max"), format!("{quota} {PERIOD}")),
                    (dir.join("cpu.weight"), weight.to_string()),
                ]
            }
        };
        for (file, value) in files {
            fs::write(&file, value).map_err(|e| RuntimeError::io("write", &file, e))?;
        }
        Ok(())
    }

    /// Removes the cgroup at `cgroup_path` from every hierarchy, killing what still runs in it.
    /// Missing directories are fine.
    pub fn remove_cgroup(&self, cgroup_path: &str) -> Result<(), RuntimeError> {
        for dir in self.cgroup_dirs(cgroup_path) {
            remove_dir_tree(&dir)?;
        }
        Ok(())
    }
}

/// The cgroup of a group's container, `/berth/<group>/<container>`, below the group's own
/// cgroup ([`group_cgroup_path`]).
pub fn container_cgroup_path(group: &str, container: &str) -> String {
    format!("/berth/{group}/{container}")
}

/// The cgroup parent of a group's containers.
pub fn group_cgroup_path(group: &str) -> String {
    format!("/berth/{group}")
}

/// Removes a cgroup directory and its children, deepest first.
fn remove_dir_tree(dir: &Path) -> Result<(), RuntimeError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io("read", dir, e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_dir_tree(&entry.path())?;
        }
    }
    let mut last = None;
    for attempt in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                if attempt == 0 {
                    kill_procs(dir);
                }
                last = Some(e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Err(RuntimeError::io(
        "remove cgroup",
        dir,
        last.unwrap_or_else(|| io::Error::other("busy")),
    ))
}

/// Sends SIGKILL to every process of a cgroup directory.
fn kill_procs(dir: &Path) {
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Reads the `oom_kill` counter of a `memory.oom_control` or `memory.events` file.
pub(crate) fn read_oom_kills(file: &Path) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

/// Decodes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn detects_layouts() {
        assert_eq!(
            CgroupLayout::from_mountinfo(HYBRID),
            Some(CgroupLayout::Hybrid {
                root: "/sys/fs/cgroup".into(),
                unified: "/sys/fs/cgroup/unified".into()
            })
        );
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            CgroupLayout::from_mountinfo(v2),
            Some(CgroupLayout::V2 {
                root: "/sys/fs/cgroup".into()
            })
        );
        let v1: String = HYBRID.lines().take(3).collect::<Vec<_>>().join("\n");
        assert_eq!(
            CgroupLayout::from_mountinfo(&v1),
            Some(CgroupLayout::V1 {
                root: "/sys/fs/cgroup".into()
            })
        );
        assert_eq!(CgroupLayout::from_mountinfo("garbage\n\n- -"), None);
    }

    #[test]
    fn oom_files_and_dirs() {
        let h = CgroupLayout::from_mountinfo(HYBRID).unwrap();
        assert_eq!(
            h.oom_file("/berth/g/c"),
            PathBuf::from("/sys/fs/cgroup/memory/berth/g/c/memory.oom_control")
        );
        let v2 = CgroupLayout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        assert_eq!(
            v2.oom_file("berth/g/c"),
            PathBuf::from("/sys/fs/cgroup/berth/g/c/memory.events")
        );
        assert!(v2.cgroup_dirs("/").is_empty());
        assert!(v2.cgroup_dirs("/a/../b").is_empty());
    }

    #[test]
    fn oom_counter() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.oom_control");
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(read_oom_kills(&f), Some(2));
        fs::write(&f, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n").unwrap();
        assert_eq!(read_oom_kills(&f), Some(0));
        assert_eq!(read_oom_kills(&dir.path().join("missing")), None);
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
