//! The figures of a container in a shared gVisor sandbox: its processes are the sentry's, not
//! the host's, and its cgroup on the host stays empty, so they come from the sentry's own
//! accounting (`runsc events --stats <id>`). This runsc (2022-12) accounts CPU time per
//! container, but memory and tasks only for the whole sandbox (the same figures for every
//! container of it), so only the CPU time is the container's; its memory and task count are
//! left at zero rather than counted once per container (the group's are read from the
//! sandbox's cgroup).

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;

use super::ContainerStats;
use crate::error::RuntimeError;
use crate::oci::OciCommand;

/// How long `runsc events --stats` may take.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of its output read.
const OUTPUT_CAP: u64 = 64 * 1024;

#[derive(Deserialize)]
struct Event {
    data: Data,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Data {
    cpu: Cpu,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cpu {
    usage: CpuUsage,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuUsage {
    total: u64,
}

/// Runs `events --stats <id>` (blocking, bounded by [`EVENTS_TIMEOUT`]) and reads it.
pub(crate) fn read(oci: &OciCommand, id: &str) -> Result<ContainerStats, RuntimeError> {
    use std::io::Read;
    let args = ["events", "--stats", id];
    let mut cmd = oci.command(args)?;
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
        what: "OCI runtime",
        binary: oci.binary.clone(),
        source,
    })?;
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if began.elapsed() < EVENTS_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RuntimeError::Timeout {
                    what: format!("{} {}", oci.binary.display(), args.join(" ")),
                    secs: EVENTS_TIMEOUT.as_secs(),
                });
            }
        }
    };
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(OUTPUT_CAP).read_to_end(&mut out);
    }
    if !status.success() {
        return Err(RuntimeError::Command {
            binary: oci.binary.clone(),
            args: args.join(" "),
            status: status.to_string(),
            stderr: String::new(),
        });
    }
    parse(&out).ok_or_else(|| RuntimeError::BadOutput {
        binary: oci.binary.clone(),
        args: args.join(" "),
        detail: String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned(),
    })
}

fn parse(out: &[u8]) -> Option<ContainerStats> {
    let ev: Event = serde_json::from_slice(out).ok()?;
    // `data.memory` and `data.pids` are the sandbox's: see the module's documentation.
    Some(ContainerStats {
        read_at: Utc::now(),
        cpu_usage_ns: ev.data.cpu.usage.total,
        ..ContainerStats::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runsc_events_give_the_containers_cpu_time() {
        let out = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":398354241}},"memory":{"usage":{"limit":0,"usage":2736128,"failcnt":0},"swap":{"limit":0,"failcnt":0}},"pids":{"current":2}}}"#;
        let st = parse(out).unwrap();
        assert_eq!(st.cpu_usage_ns, 398_354_241);
        // The sandbox's, not the container's: not reported as the container's.
        assert_eq!(st.memory_working_set_bytes, 0);
        assert_eq!(st.pids, 0);
        assert_eq!(st.cpu_limit_cores, None);
        assert!(parse(b"").is_none());
        assert!(parse(b"{}").is_none());
    }
}
