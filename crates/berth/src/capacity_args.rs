//! Flags of `berth serve` for the node's capacity (ADR 0012): the CPUs and memory detected
//! (the CPUs the process may use and the cgroup's CPU quota; MemTotal and the cgroup's memory
//! limit), minus a reserve, times an overcommit ratio, bound what groups may hold; how long a
//! group waits for room; how long before its reclaim a spot group is told.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_control::SchedulePolicy;
use berth_core::placement::Room;

#[derive(clap::Args, Clone, Debug)]
pub struct CapacityArgs {
    /// vCPU kept for the host and berth itself, out of those detected.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cache_node::non_negative)]
    pub reserve_cpu: f64,
    /// GiB of memory kept for the host and berth itself, out of the memory detected.
    #[arg(long, default_value_t = 0.5, value_parser = crate::cache_node::non_negative)]
    pub reserve_memory: f64,
    /// Ratio of the vCPU groups may hold together to the vCPU left after the reserve.
    #[arg(long, default_value_t = 1.0, value_parser = positive_ratio)]
    pub overcommit_cpu: f64,
    /// Ratio of the memory groups may hold together to the memory left after the reserve.
    #[arg(long, default_value_t = 1.0, value_parser = positive_ratio)]
    pub overcommit_memory: f64,
    /// How long a group that does not fit waits for room before it ends ScheduleFailed
    /// (e.g. 600s, 10m, 3s).
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub schedule_timeout: Duration,
    /// How long before a spot group is reclaimed its SpotToBeReleased event comes.
    #[arg(long, default_value = "3m", value_parser = duration)]
    pub spot_notice: Duration,
}

/// What was detected and what groups may hold, as `berth admin node` shows it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Capacity {
    pub detected_cpu: f64,
    pub detected_memory_gib: f64,
    pub reserve_cpu: f64,
    pub reserve_memory_gib: f64,
    pub overcommit_cpu: f64,
    pub overcommit_memory: f64,
    pub allocatable_cpu: f64,
    pub allocatable_memory_gib: f64,
    pub schedule_timeout_secs: u64,
    pub spot_notice_secs: u64,
    /// The open-files limit of `berth serve` (`crate::open_files`).
    pub open_files_limit: Option<u64>,
    /// The containers (and gVisor sandboxes) groups may run together under that limit.
    pub container_slots: Option<u64>,
}

impl Capacity {
    /// The same with the container slots of `open_files_limit`.
    pub fn with_container_slots(self, open_files_limit: u64, slots: u64) -> Self {
        Self {
            open_files_limit: Some(open_files_limit),
            container_slots: Some(slots),
            ..self
        }
    }
}

impl CapacityArgs {
    /// The capacity of this host under these flags.
    pub fn capacity(&self) -> anyhow::Result<Capacity> {
        let cpu = detect_cpu();
        let memory = detect_memory_gib()?;
        let cpu_left = cpu - self.reserve_cpu;
        let memory_left = memory - self.reserve_memory;
        if cpu_left <= 0.0 {
            bail!(
                "--reserve-cpu {} leaves no vCPU of the {cpu} detected",
                self.reserve_cpu
            );
        }
        if memory_left <= 0.0 {
            bail!(
                "--reserve-memory {} leaves no memory of the {memory:.3} GiB detected",
                self.reserve_memory
            );
        }
        Ok(Capacity {
            detected_cpu: cpu,
            detected_memory_gib: memory,
            reserve_cpu: self.reserve_cpu,
            reserve_memory_gib: self.reserve_memory,
            overcommit_cpu: self.overcommit_cpu,
            overcommit_memory: self.overcommit_memory,
            allocatable_cpu: cpu_left * self.overcommit_cpu,
            allocatable_memory_gib: memory_left * self.overcommit_memory,
            schedule_timeout_secs: self.schedule_timeout.as_secs(),
            spot_notice_secs: self.spot_notice.as_secs(),
            open_files_limit: None,
            container_slots: None,
        })
    }

    pub fn policy(&self, c: &Capacity) -> SchedulePolicy {
        SchedulePolicy {
            capacity: Room::of(c.allocatable_cpu, c.allocatable_memory_gib)
                .with_containers(c.container_slots.unwrap_or(u64::MAX)),
            timeout: self.schedule_timeout,
            notice: self.spot_notice,
            failed_kept: berth_control::SCHEDULE_FAILED_KEPT,
        }
    }
}

fn positive_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!(
            "must be a number above 0 and at most 1000, got {s:?}"
        )),
    }
}

/// `600`, `600s`, `10m`, `1h`, `1500ms`.
fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("must be a duration such as 600s, 10m or 1h, got {s:?}");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("must be at most a week, got {s:?}"));
    }
    Ok(d)
}

/// The CPUs this process may use (affinity), bounded by the CPU quota of the cgroup tree
/// berth sees (its root: the container's own when berth runs in one with a cgroup
/// namespace): `cpu.max` (cgroup v2) or `cpu.cfs_quota_us` / `cpu.cfs_period_us` (v1).
fn detect_cpu() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cpu.max")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace();
            let max: f64 = it.next()?.parse().ok()?;
            let period: f64 = it.next()?.parse().ok()?;
            (period > 0.0).then_some(max / period)
        });
    let v1 = || {
        let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?;
        let quota: f64 = quota.trim().parse().ok().filter(|q: &f64| *q > 0.0)?;
        let period = read_u64(Path::new("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))?;
        (period > 0).then(|| quota / period as f64)
    };
    v2.or_else(v1).map_or(cpus, |q| cpus.min(q))
}

/// MemTotal, bounded by the memory limit of the cgroup tree berth sees: `memory.max` (v2)
/// or `memory/memory.limit_in_bytes` (v1).
fn detect_memory_gib() -> anyhow::Result<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    let total_kib = mem_total_kib(&meminfo).context("/proc/meminfo has no MemTotal")?;
    let mut bytes = total_kib.saturating_mul(1024);
    for limit in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Some(limit) = read_u64(Path::new(limit)) {
            bytes = bytes.min(limit);
        }
    }
    Ok(bytes as f64 / (1u64 << 30) as f64)
}

fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ratios_parse() {
        assert_eq!(duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(duration("1d").is_err());
        assert!(duration("9999h").is_err());
        assert!(positive_ratio("0").is_err());
        assert_eq!(positive_ratio("1.5"), Ok(1.5));
    }

    #[test]
    fn capacity_is_detected_minus_reserve_times_overcommit() {
        assert_eq!(
            mem_total_kib("MemFree: 1 kB\nMemTotal:  2048 kB\n"),
            Some(2048)
        );
        let args = CapacityArgs {
            reserve_cpu: 0.0,
            reserve_memory: 0.0,
            overcommit_cpu: 2.0,
            overcommit_memory: 1.0,
            schedule_timeout: Duration::from_secs(3),
            spot_notice: Duration::from_secs(1),
        };
        let c = args.capacity().unwrap();
        assert!(c.detected_cpu >= 1.0);
        assert_eq!(c.allocatable_cpu, c.detected_cpu * 2.0);
        assert_eq!(c.allocatable_memory_gib, c.detected_memory_gib);
        let p = args.policy(&c);
        assert_eq!(p.timeout, Duration::from_secs(3));
        assert_eq!(p.capacity.containers, u64::MAX);
        let p = args.policy(&c.with_container_slots(2000, 848));
        assert_eq!(p.capacity.containers, 848);
        let too_much = CapacityArgs {
            reserve_cpu: 100_000.0,
            ..args
        };
        assert!(too_much.capacity().is_err());
    }
}
