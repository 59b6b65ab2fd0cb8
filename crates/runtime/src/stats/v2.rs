//! cgroup v2 counters: every controller's files in the one directory of the cgroup.

use std::fs;
use std::path::Path;

use chrono::Utc;

use super::{read_u64, require_dir, ContainerStats, KeyValues};
use crate::error::RuntimeError;

pub(super) fn read(dir: &Path) -> Result<ContainerStats, RuntimeError> {
    require_dir(dir)?;
    let read_at = Utc::now();
    let cpu_stat = KeyValues::read(&dir.join("cpu.stat"));
    let mem_stat = KeyValues::read(&dir.join("memory.stat"));
    let usage = read_u64(&dir.join("memory.current")).unwrap_or(0);
    let inactive_file = mem_stat.get("inactive_file").unwrap_or(0);
    let memory_limit_bytes = read_u64(&dir.join("memory.max"));
    Ok(ContainerStats {
        read_at,
        cpu_usage_ns: cpu_stat.get("usage_usec").unwrap_or(0).saturating_mul(1000),
        cpu_limit_cores: cpu_max(&fs::read_to_string(dir.join("cpu.max")).unwrap_or_default()),
        cpu_periods: cpu_stat.get("nr_periods").unwrap_or(0),
        throttled_periods: cpu_stat.get("nr_throttled").unwrap_or(0),
        throttled_ns: cpu_stat
            .get("throttled_usec")
            .unwrap_or(0)
            .saturating_mul(1000),
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        memory_rss_bytes: mem_stat.get("anon").unwrap_or(0),
        memory_limit_bytes,
        oom_kills: KeyValues::read(&dir.join("memory.events"))
            .get("oom_kill")
            .unwrap_or(0),
        pids: read_u64(&dir.join("pids.current")).unwrap_or(0),
    })
}

/// `cpu.max`: `<quota> <period>` or `max <period>`.
fn cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        for (name, text) in [
            (
                "cpu.stat",
                "usage_usec 2000\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n",
            ),
            ("cpu.max", "150000 100000\n"),
            ("memory.current", "5000\n"),
            ("memory.stat", "anon 3000\nfile 1500\ninactive_file 1000\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            ("pids.current", "2\n"),
        ] {
            fs::write(d.join(name), text).unwrap();
        }
        let s = read(d).unwrap();
        assert_eq!(s.cpu_usage_ns, 2_000_000);
        assert_eq!(s.cpu_limit_cores, Some(1.5));
        assert_eq!(
            (s.cpu_periods, s.throttled_periods, s.throttled_ns),
            (5, 2, 7000)
        );
        assert_eq!(
            (s.memory_usage_bytes, s.memory_working_set_bytes),
            (5000, 4000)
        );
        assert_eq!((s.memory_rss_bytes, s.memory_limit_bytes), (3000, None));
        assert_eq!((s.oom_kills, s.pids), (1, 2));
        fs::write(d.join("memory.max"), "4096\n").unwrap();
        fs::write(d.join("cpu.max"), "max 100000\n").unwrap();
        let s = read(d).unwrap();
        assert_eq!(
            (s.memory_limit_bytes, s.cpu_limit_cores),
            (Some(4096), None)
        );
        assert!(matches!(
            read(&d.join("gone")),
            Err(RuntimeError::NoCgroup { .. })
        ));
    }
}
