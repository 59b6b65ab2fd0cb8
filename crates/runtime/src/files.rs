//! The files of a container directory that berth and the monitor share, and how each is
//! written (atomically) and read (leniently: a missing or torn file reads as `None`).
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `config.json` | berth | the OCI spec (the directory is the bundle) |
//! | `monitor.json` | berth, before the monitor starts | [`MonitorConfig`] |
//! | `monitor.pid` | the monitor, first thing; gone once `started.json` is written | its pid and start time (`/proc/<pid>/stat` field 22) |
//! | `pid` | the OCI runtime; gone once `started.json` is written | the container's pid |
//! | `started.json` | the monitor, once the container runs; marked `ended` right after `exit.json` | [`Started`] and the monitor's start time |
//! | `exit.json` | the monitor, when the container has ended | [`ExitStatus`] |
//! | `exec-<n>.json`, `exec-<n>.pid` | berth and the OCI runtime, while an exec runs | its process spec and pid |
//!
//! The directory is on the groups' tmpfs, where every file holds a page for as long as the
//! container runs: once the container runs, `started.json` alone says who the monitor is.
//! A monitor may serve other containers too (ADR 0018) and outlive this one: once
//! `started.json` is marked ended, the directory names no monitor.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

pub(crate) const MONITOR_CONFIG: &str = "monitor.json";
pub(crate) const MONITOR_PID: &str = "monitor.pid";
pub(crate) const CONTAINER_PID: &str = "pid";
pub(crate) const STARTED: &str = "started.json";
pub(crate) const EXIT: &str = "exit.json";
/// The monitor's own complaints (it has no stderr).
pub(crate) const MONITOR_LOG: &str = "monitor.log";

/// A running container and the monitor that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The container's init process, as the host sees it.
    pub pid: i32,
    pub monitor_pid: i32,
    pub started_at: DateTime<Utc>,
}

/// How a container ended, as its monitor recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal number when a signal ended it (as shells report).
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl ExitStatus {
    /// The terminated state berth reports for this exit.
    pub fn to_state(&self) -> berth_core::ContainerState {
        berth_core::ContainerState::terminated(
            self.exit_code,
            self.signal,
            self.oom_killed,
            Some(self.started_at),
            self.finished_at,
        )
    }
}

/// What the monitor needs to know, written by [`crate::Runtime::start`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MonitorConfig {
    pub id: String,
    pub runtime: PathBuf,
    pub state_root: PathBuf,
    pub log_path: PathBuf,
    /// The cgroup2 mount to hide from the runtime (hybrid hosts, crun).
    pub hide_unified: Option<PathBuf>,
    /// Run the runtime from a read-only bind of its executable (crun; see `oci`).
    #[serde(default)]
    pub pin_binary: bool,
    /// The runtime's global flags (runsc's platform and network).
    #[serde(default)]
    pub global_args: Vec<String>,
    /// `memory.oom_control` (v1) or `memory.events` (v2) of the container's cgroup.
    pub oom_file: Option<PathBuf>,
    /// Size-based rotation of the log; `None` lets it grow.
    #[serde(default)]
    pub log_rotation: Option<crate::logs::LogRotation>,
    /// The container runs in a sandbox it shares (runsc): its pid file names the sandbox,
    /// so its exit status comes from `<runtime> wait <id>`.
    #[serde(default)]
    pub wait_by_runtime: bool,
    /// A FIFO berth owns, opened read-write and given to the runtime as the container's
    /// standard input (a pooled sandbox's pause process reads its host name from it).
    #[serde(default)]
    pub stdin_fifo: Option<PathBuf>,
}

/// Writes `data` to `path` through a temporary file and a rename, so readers never see a torn
/// file. No fsync: these files describe processes, which a host crash ends anyway.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RuntimeError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        RuntimeError::io("write", path, e)
    })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let data = serde_json::to_vec(value).map_err(|e| RuntimeError::io("encode", path, e.into()))?;
    write_atomic(path, &data)
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let data = fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Reads a pid file (as the OCI runtime writes it: digits, maybe a newline).
pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// The start time of a process in clock ticks since boot, to tell it from a recycled pid.
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split(' ').nth(19)?.parse().ok()
}

/// A monitor process: its pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MonitorIdentity {
    pub pid: i32,
    pub start: u64,
}

/// What `started.json` holds: [`Started`] and the monitor's start time, so that the file
/// alone identifies the monitor once `monitor.pid` is gone; `ended` once the monitor has
/// recorded the container's exit (a shared monitor lives on after it, ADR 0018, and its
/// container is no longer its own, whatever becomes of `exit.json`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StartedRecord {
    #[serde(flatten)]
    pub started: Started,
    pub monitor_start: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
}

/// Records the calling process as the monitor of `dir`.
pub(crate) fn write_monitor_pid(dir: &Path) -> Result<MonitorIdentity, RuntimeError> {
    let pid = std::process::id() as i32;
    let start = proc_start_time(pid).unwrap_or(0);
    write_atomic(
        &dir.join(MONITOR_PID),
        format!("{pid} {start}\n").as_bytes(),
    )?;
    Ok(MonitorIdentity { pid, start })
}

/// Records the running container (`started.json`) and removes the files it makes redundant:
/// the runtime's pid file and `monitor.pid`.
pub(crate) fn write_started(
    dir: &Path,
    started: &Started,
    monitor: MonitorIdentity,
) -> Result<(), RuntimeError> {
    let record = StartedRecord {
        started: started.clone(),
        monitor_start: monitor.start,
        ended: false,
    };
    write_json(&dir.join(STARTED), &record)?;
    for name in [CONTAINER_PID, MONITOR_PID] {
        let _ = fs::remove_file(dir.join(name));
    }
    Ok(())
}

/// Who the monitor of `dir` is: `monitor.pid` while it starts the container, `started.json`
/// after (also of a monitor of an earlier berth that wrote both and removed neither).
fn monitor_identity(dir: &Path) -> Option<MonitorIdentity> {
    match fs::read_to_string(dir.join(MONITOR_PID)) {
        Ok(text) => {
            let mut it = text.split_whitespace();
            let pid: i32 = it.next()?.parse().ok()?;
            let start: u64 = it.next()?.parse().ok()?;
            Some(MonitorIdentity { pid, start })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let record: StartedRecord = read_json(&dir.join(STARTED))?;
            if record.ended {
                return None;
            }
            Some(MonitorIdentity {
                pid: record.started.monitor_pid,
                start: record.monitor_start,
            })
        }
        Err(_) => None,
    }
}

/// The pid of the monitor of `dir` if that process still runs (not a recycled pid).
pub(crate) fn live_monitor(dir: &Path) -> Option<i32> {
    let MonitorIdentity { pid, start } = monitor_identity(dir)?;
    (pid > 0 && proc_start_time(pid)? == start && !is_zombie(pid)).then_some(pid)
}

/// Marks `started.json` ended: its monitor no longer supervises the container of `dir`
/// (called right after `exit.json` is written; nothing to mark when the start never got as
/// far as the record).
pub(crate) fn write_ended(dir: &Path) -> Result<(), RuntimeError> {
    let Some(mut record) = read_json::<StartedRecord>(&dir.join(STARTED)) else {
        return Ok(());
    };
    record.ended = true;
    write_json(&dir.join(STARTED), &record)
}

/// The pid of the monitor that supervises the container of `dir`: a live monitor, while the
/// container's exit is not recorded (a shared monitor lives on after it, ADR 0018; between
/// `exit.json` and the record marked ended, the first says it).
pub(crate) fn supervising_monitor(dir: &Path) -> Option<i32> {
    let pid = live_monitor(dir)?;
    (!dir.join(EXIT).exists()).then_some(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Removes what a previous run of the container left behind.
pub(crate) fn clear_run_files(dir: &Path) -> Result<(), RuntimeError> {
    for name in [MONITOR_PID, CONTAINER_PID, STARTED, EXIT] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("remove", path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self() {
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).is_some());
        assert!(proc_start_time(-5).is_none());
    }

    #[test]
    fn monitor_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(live_monitor(dir.path()), None);
        write_monitor_pid(dir.path()).unwrap();
        assert_eq!(live_monitor(dir.path()), Some(std::process::id() as i32));
        let me = std::process::id();
        fs::write(dir.path().join(MONITOR_PID), format!("{me} 1\n")).unwrap();
        assert_eq!(live_monitor(dir.path()), None);
        fs::write(dir.path().join(MONITOR_PID), "garbage").unwrap();
        assert_eq!(live_monitor(dir.path()), None);
    }

    #[test]
    fn a_recorded_exit_ends_the_supervision_not_the_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let me = write_monitor_pid(dir.path()).unwrap();
        let started = Started {
            pid: 42,
            monitor_pid: me.pid,
            started_at: Utc::now(),
        };
        write_started(dir.path(), &started, me).unwrap();
        assert_eq!(supervising_monitor(dir.path()), Some(me.pid));
        // A shared monitor lives on after one of its containers ended: the exit record
        // says so first, then the start record.
        fs::write(dir.path().join(EXIT), "{}").unwrap();
        assert_eq!(live_monitor(dir.path()), Some(me.pid));
        assert_eq!(supervising_monitor(dir.path()), None);
        write_ended(dir.path()).unwrap();
        // Whoever removes the exit record (a restart, an update) finds no monitor.
        fs::remove_file(dir.path().join(EXIT)).unwrap();
        assert_eq!(live_monitor(dir.path()), None);
        assert_eq!(supervising_monitor(dir.path()), None);
        // berth still reads the record as it always did.
        let read: Started = read_json(&dir.path().join(STARTED)).unwrap();
        assert_eq!(read, started);
        // Nothing to mark without a record.
        write_ended(tempfile::tempdir().unwrap().path()).unwrap();
    }

    #[test]
    fn once_started_the_record_alone_names_the_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let me = write_monitor_pid(dir.path()).unwrap();
        fs::write(dir.path().join(CONTAINER_PID), "42\n").unwrap();
        let started = Started {
            pid: 42,
            monitor_pid: me.pid,
            started_at: Utc::now(),
        };
        write_started(dir.path(), &started, me).unwrap();
        assert!(!dir.path().join(MONITOR_PID).exists());
        assert!(!dir.path().join(CONTAINER_PID).exists());
        assert_eq!(live_monitor(dir.path()), Some(me.pid));
        // berth reads the record as it always did.
        let read: Started = read_json(&dir.path().join(STARTED)).unwrap();
        assert_eq!(read, started);
        // A recycled pid is no monitor.
        let other = MonitorIdentity {
            start: me.start + 1,
            ..me
        };
        write_started(dir.path(), &started, other).unwrap();
        assert_eq!(live_monitor(dir.path()), None);
        // Nor is a process named by neither file.
        fs::remove_file(dir.path().join(STARTED)).unwrap();
        assert_eq!(live_monitor(dir.path()), None);
    }

    #[test]
    fn atomic_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(EXIT);
        let st = ExitStatus {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: Utc::now(),
            finished_at: Utc::now(),
        };
        write_json(&p, &st).unwrap();
        assert_eq!(read_json::<ExitStatus>(&p), Some(st.clone()));
        assert_eq!(st.to_state().reason.as_deref(), Some("OOMKilled"));
        fs::write(&p, "{torn").unwrap();
        assert_eq!(read_json::<ExitStatus>(&p), None);
    }
}
