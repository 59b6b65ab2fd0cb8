//! Resource usage of a container group over time: one [`MetricPoint`] per sample (the group
//! as a whole, each container, each network interface), and the aggregation of samples into
//! the periods that DescribeContainerGroupMetric asks for. Pure data and arithmetic.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// CPU use of a group or a container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// CPU time used since the cgroup was made, in nanoseconds.
    pub usage_core_ns: u64,
    /// Average use since the previous sample, in billionths of a core.
    pub usage_nano_cores: u64,
    /// The limit in thousandths of a core (millicores); 0 when unlimited.
    pub limit_millicores: u64,
}

/// Memory use of a group or a container, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryUsage {
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
    pub cache_bytes: u64,
    /// Limit less working set; 0 when unlimited.
    pub available_bytes: u64,
}

/// One container of a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetric {
    pub name: String,
    pub cpu: CpuUsage,
    pub memory: MemoryUsage,
}

/// Counters of one network interface of the group's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceMetric {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// Space of one file system the group writes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemMetric {
    pub fs_name: String,
    /// `System`, `Volume` or `Other`.
    pub category: String,
    pub capacity: u64,
    pub usage: u64,
    pub available: u64,
}

/// One sample of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub timestamp: DateTime<Utc>,
    pub cpu: CpuUsage,
    pub memory: MemoryUsage,
    pub containers: Vec<ContainerMetric>,
    pub interfaces: Vec<InterfaceMetric>,
    pub filesystems: Vec<FilesystemMetric>,
}

/// Aggregates `points` (in time order) within `[start, end]` into buckets of `period_secs`
/// aligned on the epoch: each bucket is its last sample, with the CPU rates averaged over the
/// bucket's samples. Returns at most the last `max` buckets, oldest first.
pub fn aggregate(
    points: &[MetricPoint],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    period_secs: u32,
    max: usize,
) -> Vec<MetricPoint> {
    let period = i64::from(period_secs.max(1));
    let mut out: Vec<(i64, MetricPoint, Vec<u64>, usize)> = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.timestamp >= start && p.timestamp <= end)
    {
        let bucket = p.timestamp.timestamp().div_euclid(period);
        match out.last_mut() {
            Some((b, last, sums, n)) if *b == bucket => {
                *n += 1;
                add_rates(sums, p);
                *last = p.clone();
            }
            _ => {
                let mut sums = Vec::new();
                add_rates(&mut sums, p);
                out.push((bucket, p.clone(), sums, 1));
            }
        }
    }
    let skip = out.len().saturating_sub(max);
    out.into_iter()
        .skip(skip)
        .map(|(_, mut p, sums, n)| {
            let n = n as u64;
            p.cpu.usage_nano_cores = sums.first().copied().unwrap_or(0) / n;
            for (i, c) in p.containers.iter_mut().enumerate() {
                c.cpu.usage_nano_cores = sums.get(i + 1).copied().unwrap_or(0) / n;
            }
            p
        })
        .collect()
}

/// Adds the CPU rates of `p` (group first, then containers by position) to `sums`.
fn add_rates(sums: &mut Vec<u64>, p: &MetricPoint) {
    let rates = std::iter::once(p.cpu.usage_nano_cores)
        .chain(p.containers.iter().map(|c| c.cpu.usage_nano_cores));
    for (i, r) in rates.enumerate() {
        if let Some(s) = sums.get_mut(i) {
            *s = s.saturating_add(r);
        } else {
            sums.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(secs: i64, nano_cores: u64) -> MetricPoint {
        MetricPoint {
            timestamp: DateTime::from_timestamp(secs, 0).unwrap(),
            cpu: CpuUsage {
                usage_nano_cores: nano_cores,
                ..Default::default()
            },
            containers: vec![ContainerMetric {
                name: "c".into(),
                cpu: CpuUsage {
                    usage_nano_cores: nano_cores * 2,
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn buckets_average_rates_and_keep_the_last_sample() {
        let pts: Vec<_> = (0..8).map(|i| point(60 + i * 15, 100 * i as u64)).collect();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let out = aggregate(&pts, t(0), t(1000), 60, 50);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timestamp, t(105));
        assert_eq!(out[0].cpu.usage_nano_cores, 150);
        assert_eq!(out[0].containers[0].cpu.usage_nano_cores, 300);
        assert_eq!(out[1].cpu.usage_nano_cores, 550);
        assert_eq!(aggregate(&pts, t(0), t(1000), 15, 3).len(), 3);
        assert!(aggregate(&pts, t(0), t(59), 15, 50).is_empty());
    }
}
