//! The per-container monitor (`berth monitor <container-dir>`): a small single-threaded process
//! that starts the container through the OCI runtime, holds its stdout and stderr, writes them
//! to the log file in CRI format, and records how the container ended in `exit.json`.
//!
//! It detaches from berth (fork + setsid), so containers and their logs survive a restart or a
//! `kill -9` of berth; it is the child subreaper of the runtime, so the container's init is
//! re-parented to it and `waitpid` reports the real exit status. It uses no async runtime and
//! no threads: one `poll` over the two pipes and a signalfd for SIGCHLD.

mod cri;
mod event_loop;
mod oom;
mod runtime_wait;
mod sync_pipe;
mod zygote;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use chrono::Utc;
use nix::unistd::{fork, setsid, ForkResult};

pub(crate) use cri::timestamp;
pub(crate) use zygote::{zygote_main, TITLE_ROOM, ZYGOTE_ARG};

use crate::files::{self, MonitorConfig};
use crate::logs::RotatingLog;
use oom::OomProbe;
use sync_pipe::SyncPipe;

/// The fd on which the monitor reports `started <pid> <monitor-pid> <time>` or `error <text>`:
/// its stdout. The monitor moves it away and points stdout at /dev/null.
pub const SYNC_FD: i32 = libc::STDOUT_FILENO;

/// The body of a monitor executable given `arg`: the zygote for [`ZYGOTE_ARG`], else the
/// monitor of the container directory `arg`. Call it from `main` before any thread exists.
pub fn monitor_command_main(arg: &std::ffi::OsStr) -> i32 {
    if arg == ZYGOTE_ARG {
        return zygote_main();
    }
    monitor_main(Path::new(arg))
}

/// The body of `berth monitor <container-dir>`. Call it from `main` before any thread or async
/// runtime exists (it forks). Returns the process exit code.
pub fn monitor_main(container_dir: &Path) -> i32 {
    let mut sync = SyncPipe::take(SYNC_FD);
    // SAFETY: the caller guarantees the process is single-threaded, so the child may do
    // anything after fork.
    match unsafe { fork() } {
        Err(e) => {
            sync.error(&format!("cannot fork the monitor: {e}"));
            return 1;
        }
        // The parent leaves at once so whoever spawned it can reap it; the child is
        // re-parented to init and lives on.
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
    }
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    // SAFETY: setting a signal disposition has no memory-safety preconditions. A vanished
    // berth must not kill the monitor through a write to the sync pipe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    match run(container_dir, &mut sync) {
        Ok(()) => 0,
        Err(message) => {
            note(container_dir, &message);
            sync.error(&message);
            1
        }
    }
}

fn run(dir: &Path, sync: &mut SyncPipe) -> Result<(), String> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot become a child subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let me = files::write_monitor_pid(dir).map_err(|e| error_chain(&e))?;
    let conf: MonitorConfig = files::read_json(&dir.join(files::MONITOR_CONFIG))
        .ok_or_else(|| format!("cannot read {}", dir.join(files::MONITOR_CONFIG).display()))?;
    let log = RotatingLog::open(&conf.log_path, conf.log_rotation)
        .map_err(|e| format!("cannot open log {}: {e}", conf.log_path.display()))?;
    // A cgroup left over from an earlier run may carry kills of its own.
    let oom_before = conf.oom_file.as_deref().map(OomProbe::read);
    let outcome = event_loop::supervise(dir, &conf, me, log, sync)?;
    let oom_killed = match (conf.oom_file.as_deref(), oom_before) {
        (Some(file), Some(before)) => oom::killed(file, &before, outcome.signal),
        _ => false,
    };
    // In a shared sandbox the host's OOM killer ends the sandbox (SIGKILL), and the runtime
    // reports a sandbox that died (runsc: 255): the container's end is that kill.
    let (exit_code, signal) = match oom_killed && conf.wait_by_runtime {
        true => (128 + libc::SIGKILL, Some(libc::SIGKILL)),
        false => (outcome.exit_code, outcome.signal),
    };
    let status = files::ExitStatus {
        exit_code,
        signal,
        oom_killed,
        started_at: outcome.started_at,
        finished_at: outcome.finished_at,
    };
    files::write_json(&dir.join(files::EXIT), &status).map_err(|e| error_chain(&e))
}

/// Appends a line to the monitor's own log in the container directory.
pub(crate) fn note(dir: &Path, message: &str) {
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(files::MONITOR_LOG))
    {
        let _ = writeln!(f, "{} {}", timestamp(Utc::now()), message);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
