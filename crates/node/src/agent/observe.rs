//! What the node agent offers to observe and operate running groups: exec in a container,
//! following a container's log, and the metrics sampler — every interval it reads the cgroup
//! counters of each running group and of its containers and the counters of the group's
//! network namespace into the group's bounded samples (`crate::metrics`: the last hour as
//! taken, 10-minute points for 24 hours).

use std::time::Duration;

use berth_core::metric::{
    ContainerMetric, CpuUsage, FilesystemMetric, InterfaceMetric, MemoryUsage, MetricPoint,
};
use berth_core::GroupId;
use berth_runtime::{logs, ContainerStats, ExecOutput, ExecRequest, ExecSession, Runtime};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Agent;
use crate::config::NodeError;
use crate::files::{latest_log, runtime_id, GroupDirs};

/// The default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Lines a follower may be ahead of its reader.
const FOLLOW_BUFFER: usize = 256;
/// How often a follower checks whether its container has exited.
const EXIT_CHECK: Duration = Duration::from_millis(500);

impl Agent {
    fn dirs(&self, id: &GroupId) -> GroupDirs {
        self.host.dirs.group(id.as_str())
    }

    /// Runs a command in a running container to its end.
    pub async fn exec_sync(
        &self,
        id: &GroupId,
        container: &str,
        req: &ExecRequest,
        timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        let dir = self.dirs(id).container(container);
        let rid = runtime_id(id.as_str(), container);
        let rt = self.host.runtime_of(&self.dirs(id))?;
        Ok(rt.exec_sync(&rid, &dir, req, timeout).await?)
    }

    /// Starts an interactive command in a running container.
    pub async fn exec_interactive(
        &self,
        id: &GroupId,
        container: &str,
        req: &ExecRequest,
    ) -> Result<ExecSession, NodeError> {
        let dir = self.dirs(id).container(container);
        let rid = runtime_id(id.as_str(), container);
        let rt = self.host.runtime_of(&self.dirs(id))?;
        Ok(rt.exec_interactive(&rid, &dir, req).await?)
    }

    /// A TCP connection to `port` on the group's own loopback (a port forward).
    pub async fn dial_loopback(
        &self,
        id: &GroupId,
        port: u16,
    ) -> Result<tokio::net::TcpStream, NodeError> {
        Ok(crate::group::dial_loopback(&self.host, id.as_str(), port).await?)
    }

    /// Follows the log of a container's current run: what `q` selects of it, then each new
    /// line, until the container has exited and its log is read to the end, or the receiver
    /// is dropped. Needs a tokio runtime.
    pub fn follow_log(
        &self,
        id: &GroupId,
        container: &str,
        q: &logs::LogQuery,
    ) -> Result<mpsc::Receiver<String>, NodeError> {
        let dirs = self.dirs(id);
        let path =
            latest_log(&dirs, container).ok_or_else(|| NodeError::NoLog(container.to_string()))?;
        let cdir = dirs.container(container);
        let mut follower = logs::follow(&path, q)?;
        let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXIT_CHECK);
            loop {
                tokio::select! {
                    line = follower.next() => match line {
                        Ok(Some(line)) => {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    },
                    _ = tick.tick() => {
                        if Runtime::read_exit(&cdir).is_some() {
                            let rest = follower.drain().unwrap_or_default();
                            for line in rest.split_inclusive('\n') {
                                if tx.send(line.to_string()).await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }

    /// The samples of a group within `[start, end]`, oldest first.
    pub fn metrics(
        &self,
        id: &GroupId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<MetricPoint> {
        self.metrics.range(id, start, end)
    }

    /// Starts the sampler: every `interval`, one sample of each group this agent runs.
    pub fn start_sampler(&self, interval: Duration) {
        let agent = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let a = agent.clone();
                let _ = tokio::task::spawn_blocking(move || a.sample_all()).await;
            }
        });
    }

    fn sample_all(&self) {
        for id in self.group_ids() {
            if let Some(p) = self.sample(&id) {
                self.metrics.push(&id, p);
            }
        }
    }

    /// One sample of a group; `None` when none of its containers has a cgroup.
    fn sample(&self, id: &GroupId) -> Option<MetricPoint> {
        let gid = id.as_str();
        let layout = &self.host.default_runtime().config().layout;
        let prev = self.metrics.last(id);
        let names: Vec<String> = std::fs::read_dir(self.dirs(id).root.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut containers = Vec::new();
        let mut limit_millicores = 0u64;
        let mut all_limited = true;
        let mut memory_limit = 0u64;
        // A container in a shared gVisor sandbox has no process on the host: its figures are
        // the sentry's.
        let sandboxed = match self.dirs(id).runtime_class() {
            Ok(berth_core::RuntimeClass::Gvisor) => {
                self.host.runtime_for(berth_core::RuntimeClass::Gvisor).ok()
            }
            _ => None,
        };
        let only = names.len() == 1;
        for name in names {
            let read = match sandboxed {
                Some(rt) => rt.sandboxed_stats(&crate::files::runtime_id(gid, &name)),
                // The only container of a runc group may run in the group's own cgroup
                // (`group::container::owns_group_cgroup`).
                None => layout
                    .stats(&format!("/berth/{gid}/{name}"))
                    .or_else(|e| match only {
                        true => layout.stats(&format!("/berth/{gid}")),
                        false => Err(e),
                    }),
            };
            let Ok(st) = read else {
                continue;
            };
            let before = prev
                .as_ref()
                .and_then(|p| p.containers.iter().find(|c| c.name == name));
            let cpu = cpu_usage(
                &st,
                prev.as_ref().map(|p| p.timestamp),
                before.map(|c| &c.cpu),
            );
            if cpu.limit_millicores == 0 {
                all_limited = false;
            }
            limit_millicores += cpu.limit_millicores;
            memory_limit = memory_limit.saturating_add(st.memory_limit_bytes.unwrap_or(0));
            containers.push(ContainerMetric {
                name,
                cpu,
                memory: memory_usage(&st),
            });
        }
        if containers.is_empty() {
            return None;
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let group = layout.stats(&format!("/berth/{gid}")).ok();
        let (cpu, memory) = match &group {
            Some(st) => {
                let mut cpu = cpu_usage(
                    st,
                    prev.as_ref().map(|p| p.timestamp),
                    prev.as_ref().map(|p| &p.cpu),
                );
                if cpu.limit_millicores == 0 && all_limited {
                    cpu.limit_millicores = limit_millicores;
                }
                let mut memory = memory_usage(st);
                if st.memory_limit_bytes.is_none() && memory_limit > 0 {
                    memory.available_bytes = memory_limit.saturating_sub(memory.working_set_bytes);
                }
                (cpu, memory)
            }
            None => (CpuUsage::default(), MemoryUsage::default()),
        };
        let interfaces = self
            .host
            .net
            .attachment(gid)
            .and_then(|a| berth_runtime::net_stats(&a.netns).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|i| InterfaceMetric {
                name: i.name,
                rx_bytes: i.rx_bytes,
                rx_packets: i.rx_packets,
                rx_errors: i.rx_errors,
                rx_drops: i.rx_dropped,
                tx_bytes: i.tx_bytes,
                tx_packets: i.tx_packets,
                tx_errors: i.tx_errors,
                tx_drops: i.tx_dropped,
            })
            .collect();
        Some(MetricPoint {
            timestamp: group.as_ref().map_or_else(Utc::now, |g| g.read_at),
            cpu,
            memory,
            containers,
            interfaces,
            filesystems: vec![self.temporary_storage(id)],
        })
    }

    /// The group's temporary storage: its sized subvolume (writable layers and `/etc`
    /// files, as the kernel counts them against the limit); a group without one (from
    /// before sized storage) counts its files against the 30 GiB ECI gives a group.
    fn temporary_storage(&self, id: &GroupId) -> FilesystemMetric {
        let dirs = self.dirs(id);
        if let Some(storage) = &self.host.storage {
            if dirs.rw.starts_with(storage.root()) {
                if let Ok(u) = storage.usage(id.as_str()) {
                    return FilesystemMetric {
                        fs_name: "temporary-storage".into(),
                        category: "System".into(),
                        capacity: u.limit,
                        usage: u.used,
                        available: u.limit.saturating_sub(u.used),
                    };
                }
            }
        }
        const CAPACITY: u64 = 30 << 30;
        let usage = dir_usage(&dirs.root) + dir_usage(&dirs.rw) + dir_usage(&dirs.logs);
        let free = nix::sys::statvfs::statvfs(&dirs.rw)
            .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
            .unwrap_or(u64::MAX);
        FilesystemMetric {
            fs_name: "temporary-storage".into(),
            category: "System".into(),
            capacity: CAPACITY,
            usage,
            available: CAPACITY.saturating_sub(usage).min(free),
        }
    }
}

/// Bytes allocated below `root` on its own file system: other mounts (the containers' root
/// filesystems) are not entered, hard-linked files count once, and at most 200,000 entries
/// are visited so a huge tree cannot stall sampling.
pub(crate) fn dir_usage(root: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(root) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    let mut total = top.blocks() * 512;
    let mut budget = 200_000usize;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if budget == 0 {
                return total;
            }
            budget -= 1;
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.dev() != dev {
                continue;
            }
            if md.nlink() > 1 && !md.is_dir() && !seen.insert(md.ino()) {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// CPU usage from a reading and the previous sample (time and counter).
fn cpu_usage(
    st: &ContainerStats,
    prev_at: Option<DateTime<Utc>>,
    prev: Option<&CpuUsage>,
) -> CpuUsage {
    let rate = match (prev_at, prev) {
        (Some(at), Some(p)) if st.cpu_usage_ns >= p.usage_core_ns => {
            let wall = (st.read_at - at).num_nanoseconds().unwrap_or(0);
            if wall > 0 {
                ((st.cpu_usage_ns - p.usage_core_ns) as f64 / wall as f64 * 1e9) as u64
            } else {
                0
            }
        }
        _ => 0,
    };
    CpuUsage {
        usage_core_ns: st.cpu_usage_ns,
        usage_nano_cores: rate,
        limit_millicores: st
            .cpu_limit_cores
            .map_or(0, |c| (c * 1000.0).round() as u64),
    }
}

fn memory_usage(st: &ContainerStats) -> MemoryUsage {
    MemoryUsage {
        usage_bytes: st.memory_usage_bytes,
        working_set_bytes: st.memory_working_set_bytes,
        rss_bytes: st.memory_rss_bytes,
        cache_bytes: st.memory_usage_bytes.saturating_sub(st.memory_rss_bytes),
        available_bytes: st
            .memory_limit_bytes
            .map_or(0, |l| l.saturating_sub(st.memory_working_set_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_from_two_readings() {
        let t0: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap_or_default();
        let st = ContainerStats {
            read_at: t0 + chrono::Duration::seconds(2),
            cpu_usage_ns: 3_000_000_000,
            cpu_limit_cores: Some(0.5),
            ..Default::default()
        };
        let prev = CpuUsage {
            usage_core_ns: 2_000_000_000,
            ..Default::default()
        };
        let c = cpu_usage(&st, Some(t0), Some(&prev));
        assert_eq!((c.usage_nano_cores, c.limit_millicores), (500_000_000, 500));
        assert_eq!(cpu_usage(&st, None, None).usage_nano_cores, 0);
    }

    #[test]
    fn dir_usage_counts_hard_links_once() {
        let dir = std::env::temp_dir().join(format!("berth-node-du-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a"), vec![1u8; 1 << 20]).unwrap();
        let one = dir_usage(&dir);
        assert!(one >= 1 << 20, "{one}");
        std::fs::hard_link(dir.join("sub/a"), dir.join("b")).unwrap();
        assert_eq!(
            dir_usage(&dir) - one,
            dir_usage_of_dir_entry_growth(&dir, one)
        );
        std::fs::write(dir.join("c"), vec![2u8; 1 << 20]).unwrap();
        assert!(dir_usage(&dir) >= one + (1 << 20));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What adding a hard link may add: at most a directory block, never the file again.
    fn dir_usage_of_dir_entry_growth(dir: &std::path::Path, before: u64) -> u64 {
        let after = dir_usage(dir);
        assert!(
            after - before < 1 << 20,
            "hard link counted twice: {before} -> {after}"
        );
        after - before
    }
}
