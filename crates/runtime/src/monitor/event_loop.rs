//! The monitor's loop: start the container with `<runtime> run --detach`, copy its output into
//! the log, reap children on SIGCHLD until the container's init has exited (or, for a container
//! in a shared sandbox, until `<runtime> wait` has returned), then drain the pipes.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::cri::{CriWriter, Stream};
use super::sync_pipe::SyncPipe;
use crate::files::{self, MonitorConfig, MonitorIdentity, Started};
use crate::logs::RotatingLog;
use crate::oci::OciCommand;

/// How long `<runtime> run --detach` may take before the monitor gives up on it.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long output is still read after the container's init exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of the runtime's stderr goes into a start error.
const ERROR_CAP: usize = 4096;

pub(crate) struct Outcome {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

enum Phase {
    Starting {
        runtime: i32,
        deadline: Instant,
    },
    Running {
        pid: i32,
    },
    /// The container's exit is awaited with `<runtime> wait` (its pid is the sandbox's).
    Waiting {
        waiter: i32,
    },
    Draining {
        deadline: Instant,
    },
}

struct Pipes {
    out: Option<File>,
    err: Option<File>,
}

pub(crate) fn supervise(
    dir: &Path,
    conf: &MonitorConfig,
    me: MonitorIdentity,
    log: RotatingLog,
    sync: &mut SyncPipe,
) -> Result<Outcome, String> {
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    for fd in [&out_r, &err_r] {
        set_nonblocking(fd)?;
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let runtime = spawn_runtime(dir, conf, out_w, err_w)?;
    let mut pipes = Pipes {
        out: Some(File::from(out_r)),
        err: Some(File::from(err_r)),
    };
    // Each chunk is one write of whole entries: readers see lines as they come.
    let mut writer = CriWriter::new(log);
    let mut phase = Phase::Starting {
        runtime,
        deadline: Instant::now() + START_TIMEOUT,
    };
    let mut reaped: Vec<(i32, WaitStatus)> = Vec::new();
    let mut runtime_stderr: Vec<u8> = Vec::new();
    // A log line's longest entry, made at the first output: a pipe holds 64 KiB, but a
    // buffer of that size (zeroed, so dirtied, at once) was a third of an idle monitor's
    // private memory.
    let mut buf: Vec<u8> = Vec::new();
    let mut started_at = Utc::now();
    let mut exit: Option<(i32, Option<i32>, DateTime<Utc>)> = None;
    let mut log_failed = false;

    loop {
        let timeout = match &phase {
            Phase::Starting { deadline, .. } | Phase::Draining { deadline } => {
                millis_until(*deadline)
            }
            Phase::Running { .. } | Phase::Waiting { .. } => PollTimeout::NONE,
        };
        let (out_ready, err_ready, sig_ready) = {
            let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            let out_at = pipes.out.as_ref().map(|f| {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let err_at = pipes.err.as_ref().map(|f| {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(out_at), ready(err_at), ready(Some(0)))
        };
        let now = Utc::now();
        for (stream, ready) in [(Stream::Stdout, out_ready), (Stream::Stderr, err_ready)] {
            if !ready {
                continue;
            }
            let slot = match stream {
                Stream::Stdout => &mut pipes.out,
                Stream::Stderr => &mut pipes.err,
            };
            if buf.is_empty() {
                buf.resize(super::cri::MAX_LINE, 0);
            }
            let Some(data) = read_chunk(slot, &mut buf) else {
                continue;
            };
            if matches!(phase, Phase::Starting { .. }) && stream == Stream::Stderr {
                let room = ERROR_CAP.saturating_sub(runtime_stderr.len());
                runtime_stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            if let Err(e) = writer.feed(stream, data, now) {
                if !log_failed {
                    super::note(dir, &format!("cannot write the log: {e}"));
                    log_failed = true;
                }
            }
        }
        if sig_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            reap(&mut reaped);
        }

        phase = match phase {
            Phase::Starting { runtime, deadline } => {
                match take(&mut reaped, runtime) {
                    Some(WaitStatus::Exited(_, 0)) => {
                        let pid = files::read_pid(&dir.join(files::CONTAINER_PID))
                            .ok_or("the runtime started the container but wrote no pid file")?;
                        started_at = Utc::now();
                        let started = Started {
                            pid,
                            monitor_pid: me.pid,
                            started_at,
                        };
                        files::write_started(dir, &started, me).map_err(|e| e.to_string())?;
                        sync.started(pid, started.monitor_pid, started_at);
                        give_back_free_heap();
                        if conf.wait_by_runtime {
                            // Its end comes as any child's, through the signalfd.
                            let waiter = super::runtime_wait::spawn(dir, conf)?;
                            Phase::Waiting { waiter }
                        } else {
                            // A short-lived init may already be reaped along with the runtime.
                            match take(&mut reaped, pid) {
                                Some(status) => {
                                    let (code, signal) = exit_of(status);
                                    exit = Some((code, signal, Utc::now()));
                                    Phase::Draining {
                                        deadline: Instant::now() + DRAIN_TIMEOUT,
                                    }
                                }
                                None => Phase::Running { pid },
                            }
                        }
                    }
                    Some(status) => {
                        let _ = writer.finish(Utc::now());
                        return Err(format!(
                            "{} exited with {}: {}",
                            conf.runtime.display(),
                            describe(status),
                            String::from_utf8_lossy(&runtime_stderr).trim()
                        ));
                    }
                    None if Instant::now() >= deadline => {
                        let _ = kill(Pid::from_raw(runtime), Signal::SIGKILL);
                        return Err(format!(
                            "{} run did not finish within {} s",
                            conf.runtime.display(),
                            START_TIMEOUT.as_secs()
                        ));
                    }
                    None => Phase::Starting { runtime, deadline },
                }
            }
            Phase::Running { pid } => match take(&mut reaped, pid) {
                Some(status) => {
                    let (code, signal) = exit_of(status);
                    exit = Some((code, signal, Utc::now()));
                    Phase::Draining {
                        deadline: Instant::now() + DRAIN_TIMEOUT,
                    }
                }
                // Not our child and gone: another process reaped it, the status is lost.
                None if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) => {
                    exit = Some((255, None, Utc::now()));
                    Phase::Draining {
                        deadline: Instant::now() + DRAIN_TIMEOUT,
                    }
                }
                None => Phase::Running { pid },
            },
            Phase::Waiting { waiter } => match take(&mut reaped, waiter) {
                Some(status) => {
                    let ok = matches!(status, WaitStatus::Exited(_, 0));
                    let code = super::runtime_wait::exit_code(dir, ok);
                    exit = Some((code, None, Utc::now()));
                    Phase::Draining {
                        deadline: Instant::now() + DRAIN_TIMEOUT,
                    }
                }
                None => Phase::Waiting { waiter },
            },
            Phase::Draining { deadline } => {
                let drained = pipes.out.is_none() && pipes.err.is_none();
                if drained || Instant::now() >= deadline {
                    break;
                }
                Phase::Draining { deadline }
            }
        };
        if matches!(phase, Phase::Draining { .. }) && pipes.out.is_none() && pipes.err.is_none() {
            break;
        }
    }
    let finished = Utc::now();
    if let Err(e) = writer.finish(finished) {
        super::note(dir, &format!("cannot write the log: {e}"));
    }
    let (exit_code, signal, finished_at) = exit.unwrap_or((255, None, finished));
    Ok(Outcome {
        exit_code,
        signal,
        started_at,
        finished_at,
    })
}

/// Returns the heap pages freed since the monitor started (reading its config, starting the
/// runtime) to the kernel: a monitor lives as long as its container, mostly idle, and these
/// pages were ~60 KiB of each monitor's private memory.
fn give_back_free_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own heap.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
}

fn spawn_runtime(
    dir: &Path,
    conf: &MonitorConfig,
    out: OwnedFd,
    err: OwnedFd,
) -> Result<i32, String> {
    let oci = OciCommand {
        binary: conf.runtime.clone(),
        root: conf.state_root.clone(),
        hide_unified: conf.hide_unified.clone(),
        pin_binary: conf.pin_binary,
        global_args: conf.global_args.clone(),
    };
    let pid_file = dir.join(files::CONTAINER_PID);
    let mut cmd = oci
        .command([
            "run".as_ref(),
            "--detach".as_ref(),
            "--bundle".as_ref(),
            dir.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
            std::ffi::OsStr::new(&conf.id),
        ])
        .map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    if let Some(fifo) = &conf.stdin_fifo {
        cmd.stdin(Stdio::from(open_fifo(fifo)?));
    }
    // std resets the signal mask of the child, so the runtime sees SIGCHLD as usual.
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", conf.runtime.display()))?;
    // Dropping `cmd` closes this process's copies of the write ends.
    drop(cmd);
    Ok(child.id() as i32)
}

/// Opens the FIFO at `path` read-write, which does not wait for a writer and leaves its reader
/// no end of file; anything that is not a FIFO is refused (no symlink followed).
fn open_fifo(path: &Path) -> Result<OwnedFd, String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let is_fifo = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
    if !is_fifo {
        return Err(format!("{} is not a FIFO", path.display()));
    }
    Ok(OwnedFd::from(file))
}

/// Reads what is available; closes the pipe at end of file or on error.
fn read_chunk<'a>(slot: &mut Option<File>, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let f = slot.as_mut()?;
    match f.read(buf) {
        Ok(0) => {
            *slot = None;
            None
        }
        Ok(n) => Some(&buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
        Err(_) => {
            *slot = None;
            None
        }
    }
}

/// Reaps every child that has exited.
fn reap(reaped: &mut Vec<(i32, WaitStatus)>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                        reaped.push((pid.as_raw(), status));
                    }
                }
            }
        }
    }
}

fn take(reaped: &mut Vec<(i32, WaitStatus)>, pid: i32) -> Option<WaitStatus> {
    let i = reaped.iter().position(|(p, _)| *p == pid)?;
    Some(reaped.swap_remove(i).1)
}

fn exit_of(status: WaitStatus) -> (i32, Option<i32>) {
    match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit code {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("signal {sig}"),
        other => format!("{other:?}"),
    }
}

fn millis_until(deadline: Instant) -> PollTimeout {
    let ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), String> {
    use nix::fcntl::{fcntl, FcntlArg};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| format!("fcntl: {e}"))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| format!("fcntl: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let pid = Pid::from_raw(1);
        assert_eq!(exit_of(WaitStatus::Exited(pid, 3)), (3, None));
        assert_eq!(
            exit_of(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            (137, Some(9))
        );
    }
}
