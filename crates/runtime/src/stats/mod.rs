//! Resource usage of a container (or of a whole group: cgroups are hierarchical) read from its
//! cgroup, in whichever hierarchy holds the controller: cgroup v1, v2, or v1 on a hybrid host
//! (crun sees no cgroup2 mount there, so it puts containers in the v1 hierarchies). Network
//! counters are read from inside a network namespace. Nothing here spawns a process but
//! `sandboxed` (the figures of a container in a shared gVisor sandbox, from runsc).

mod net;
pub(crate) mod sandboxed;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupLayout;
use crate::error::RuntimeError;
pub use net::{net_stats, InterfaceStats};

/// One reading of a cgroup's counters. Counters (`cpu_usage_ns`, periods) only grow; compare
/// two readings for rates, e.g. with [`ContainerStats::cpu_cores_since`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub read_at: DateTime<Utc>,
    /// CPU time used by all tasks of the cgroup and its children.
    pub cpu_usage_ns: u64,
    /// The CFS quota over the period; `None` when unlimited.
    pub cpu_limit_cores: Option<f64>,
    /// Enforcement periods that have elapsed, and those in which the cgroup was throttled.
    pub cpu_periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    /// Memory charged to the cgroup, page cache included.
    pub memory_usage_bytes: u64,
    /// Usage less inactive file pages: what the kernel cannot easily reclaim (as kubelet
    /// reports it).
    pub memory_working_set_bytes: u64,
    /// Anonymous memory (and swap cache).
    pub memory_rss_bytes: u64,
    /// The hard limit; `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// How many processes the OOM killer killed in the cgroup.
    pub oom_kills: u64,
    /// Tasks in the cgroup now.
    pub pids: u64,
}

impl ContainerStats {
    /// Average CPU use, in cores, between `earlier` and this reading.
    pub fn cpu_cores_since(&self, earlier: &ContainerStats) -> f64 {
        let wall = (self.read_at - earlier.read_at)
            .num_nanoseconds()
            .unwrap_or(0);
        if wall <= 0 {
            return 0.0;
        }
        self.cpu_usage_ns.saturating_sub(earlier.cpu_usage_ns) as f64 / wall as f64
    }
}

impl CgroupLayout {
    /// Reads the counters of the cgroup at `cgroup_path` (as in `linux.cgroupsPath`). Fails
    /// with [`RuntimeError::NoCgroup`] when the cgroup does not exist; a counter file that a
    /// kernel lacks reads as zero (or unlimited).
    pub fn stats(&self, cgroup_path: &str) -> Result<ContainerStats, RuntimeError> {
        let rel = cgroup_path.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            return Err(RuntimeError::invalid(format!(
                "the cgroup path {cgroup_path:?} holds '..'"
            )));
        }
        match self {
            Self::V1 { root } | Self::Hybrid { root, .. } => v1::read(root, rel),
            Self::V2 { root } => v2::read(&root.join(rel)),
        }
    }
}

/// A file holding one number; `None` when missing or not a number.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A flat-keyed file (`key value` lines, as `memory.stat` and `cpu.stat`).
pub(crate) struct KeyValues(String);

impl KeyValues {
    pub fn read(path: &Path) -> Self {
        Self(fs::read_to_string(path).unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
    }
}

/// Fails with [`RuntimeError::NoCgroup`] unless `dir` exists.
pub(crate) fn require_dir(dir: &Path) -> Result<(), RuntimeError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(RuntimeError::NoCgroup {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RuntimeError::NoCgroup {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(RuntimeError::io("read the cgroup", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_between_readings() {
        let a = ContainerStats {
            read_at: "2024-01-01T00:00:00Z".parse().unwrap(),
            cpu_usage_ns: 1_000_000_000,
            ..Default::default()
        };
        let b = ContainerStats {
            read_at: "2024-01-01T00:00:02Z".parse().unwrap(),
            cpu_usage_ns: 2_000_000_000,
            ..Default::default()
        };
        assert!((b.cpu_cores_since(&a) - 0.5).abs() < 1e-9);
        assert_eq!(a.cpu_cores_since(&b), 0.0);
    }

    #[test]
    fn key_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.stat");
        fs::write(&p, "cache 5\nrss 7\ntotal_rss 9\nbad x\n").unwrap();
        let kv = KeyValues::read(&p);
        assert_eq!((kv.get("rss"), kv.get("total_rss")), (Some(7), Some(9)));
        assert_eq!((kv.get("bad"), kv.get("missing")), (None, None));
        assert_eq!(KeyValues::read(&dir.path().join("none")).get("rss"), None);
    }

    #[test]
    fn rejects_escaping_paths() {
        let l = CgroupLayout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        assert!(matches!(
            l.stats("/a/../../etc"),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }
}
