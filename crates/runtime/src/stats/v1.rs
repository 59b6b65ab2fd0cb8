//! cgroup v1 counters: each controller in its own hierarchy (`cpu`, `cpuacct`, `memory`,
//! `pids`), which may be mounted together (`cpu,cpuacct`).

use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{read_u64, require_dir, ContainerStats, KeyValues};
use crate::error::RuntimeError;

/// Limits at or above this mean "unlimited" (the kernel reports `PAGE_COUNTER_MAX` pages).
const UNLIMITED: u64 = 1 << 60;

pub(super) fn read(root: &Path, rel: &str) -> Result<ContainerStats, RuntimeError> {
    let cpuacct = controller_dir(root, "cpuacct").join(rel);
    let cpu = controller_dir(root, "cpu").join(rel);
    let memory = controller_dir(root, "memory").join(rel);
    let pids = controller_dir(root, "pids").join(rel);
    require_dir(&memory)?;
    let read_at = Utc::now();
    let cpu_stat = KeyValues::read(&cpu.join("cpu.stat"));
    let quota = fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let period = read_u64(&cpu.join("cpu.cfs_period_us"));
    let cpu_limit_cores = match (quota, period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
        _ => None,
    };
    let mem_stat = KeyValues::read(&memory.join("memory.stat"));
    let usage = read_u64(&memory.join("memory.usage_in_bytes")).unwrap_or(0);
    // The `total_` entries include child cgroups (a group's containers).
    let inactive_file = mem_stat
        .get("total_inactive_file")
        .or_else(|| mem_stat.get("inactive_file"))
        .unwrap_or(0);
    let rss = mem_stat
        .get("total_rss")
        .or_else(|| mem_stat.get("rss"))
        .unwrap_or(0);
    let memory_limit_bytes =
        read_u64(&memory.join("memory.limit_in_bytes")).filter(|l| *l < UNLIMITED);
    let oom_kills = KeyValues::read(&memory.join("memory.oom_control"))
        .get("oom_kill")
        .unwrap_or(0);
    Ok(ContainerStats {
        read_at,
        cpu_usage_ns: read_u64(&cpuacct.join("cpuacct.usage")).unwrap_or(0),
        cpu_limit_cores,
        cpu_periods: cpu_stat.get("nr_periods").unwrap_or(0),
        throttled_periods: cpu_stat.get("nr_throttled").unwrap_or(0),
        throttled_ns: cpu_stat.get("throttled_time").unwrap_or(0),
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        memory_rss_bytes: rss,
        memory_limit_bytes,
        oom_kills,
        pids: read_u64(&pids.join("pids.current")).unwrap_or(0),
    })
}

/// The mount of a v1 controller under `root`: `root/<name>` or a co-mount such as
/// `root/cpu,cpuacct`.
pub(crate) fn controller_dir(root: &Path, name: &str) -> PathBuf {
    let direct = root.join(name);
    if direct.is_dir() {
        return direct;
    }
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.split(',').any(|c| c == name))
        .map_or(direct, |n| root.join(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_a_fake_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let cpu = r.join("cpu,cpuacct/berth/g/c");
        write(&cpu, "cpuacct.usage", "123456789\n");
        write(&cpu, "cpu.cfs_quota_us", "50000\n");
        write(&cpu, "cpu.cfs_period_us", "100000\n");
        write(
            &cpu,
            "cpu.stat",
            "nr_periods 10\nnr_throttled 4\nthrottled_time 99\n",
        );
        let mem = r.join("memory/berth/g/c");
        write(&mem, "memory.usage_in_bytes", "1000\n");
        write(
            &mem,
            "memory.stat",
            "rss 1\ninactive_file 2\ntotal_rss 600\ntotal_inactive_file 300\n",
        );
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        write(
            &mem,
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        write(&r.join("pids/berth/g/c"), "pids.current", "3\n");
        let s = read(r, "berth/g/c").unwrap();
        assert_eq!(s.cpu_usage_ns, 123456789);
        assert_eq!(s.cpu_limit_cores, Some(0.5));
        assert_eq!(
            (s.cpu_periods, s.throttled_periods, s.throttled_ns),
            (10, 4, 99)
        );
        assert_eq!(s.memory_usage_bytes, 1000);
        assert_eq!(s.memory_working_set_bytes, 700);
        assert_eq!(s.memory_rss_bytes, 600);
        assert_eq!(s.memory_limit_bytes, None);
        assert_eq!((s.oom_kills, s.pids), (1, 3));
        assert!(matches!(
            read(r, "berth/g/missing"),
            Err(RuntimeError::NoCgroup { .. })
        ));
    }
}
