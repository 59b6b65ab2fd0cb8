//! The monitor (`berth monitor <container-dir>`, or forked from the zygote): a small
//! single-threaded process that starts containers through the OCI runtime, holds their stdout
//! and stderr, writes them to their log files in CRI format, and records how each container
//! ended in its `exit.json`.
//!
//! It detaches from berth (fork + setsid), so containers and their logs survive a restart or a
//! `kill -9` of berth; it is the child subreaper of the runtime, so a container's init is
//! re-parented to it and `waitpid` reports the real exit status. It uses no async runtime and
//! no threads: one `poll` over the pipes and a signalfd for SIGCHLD (`host`). One serves one
//! container, or up to 16 of one account when berth asks the zygote for a shared one
//! (ADR 0018); each container is a `slot`.

mod cri;
mod host;
mod oom;
mod runtime_wait;
mod slot;
mod sync_pipe;
mod zygote;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use chrono::Utc;
use nix::unistd::{fork, setsid, ForkResult};

pub(crate) use cri::timestamp;
pub(crate) use zygote::{
    send as send_request, socket_pair, zygote_main, MAX_KEY as MAX_SHARE_KEY, TITLE_ROOM,
    ZYGOTE_ARG,
};

use crate::files;
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
    detach();
    host::serve(Some((container_dir.to_path_buf(), sync)), None, 1)
}

/// In a monitor just forked: a session of its own, `/` as its directory, and writes to a
/// closed pipe failing instead of killing it (a vanished berth must not kill the monitor
/// through a write to a sync pipe).
fn detach() {
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    // SAFETY: setting a signal disposition has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The OCI runtime as berth would run it, from a container's monitor configuration.
fn oci_command(conf: &files::MonitorConfig) -> crate::oci::OciCommand {
    crate::oci::OciCommand {
        binary: conf.runtime.clone(),
        root: conf.state_root.clone(),
        hide_unified: conf.hide_unified.clone(),
        pin_binary: conf.pin_binary,
        global_args: conf.global_args.clone(),
    }
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
