//! One container under a monitor: start it with `<runtime> run --detach`, copy its output
//! into the log, learn its end from the children the monitor reaps (its init, or for a
//! container in a shared sandbox `<runtime> wait`), drain the pipes, and record the exit in
//! `exit.json`. A [`Slot`] never blocks: the monitor's loop (`super::host`) polls its pipes
//! with every other slot's and hands it the children it reaped.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe2, Pid};

use super::cri::{CriWriter, Stream};
use super::oom::{self, OomProbe};
use super::sync_pipe::SyncPipe;
use crate::files::{self, MonitorConfig, MonitorIdentity, Started};
use crate::logs::RotatingLog;

/// How long `<runtime> run --detach` may take before the monitor gives up on it.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long output is still read after the container's init exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of the runtime's stderr goes into a start error.
const ERROR_CAP: usize = 4096;

/// Children the monitor reaped that no slot has claimed yet, with when they were reaped.
pub(crate) type Reaped = Vec<(i32, WaitStatus, Instant)>;

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

/// What a slot's step left to do.
pub(crate) enum Step {
    Continue,
    /// The container ended (or never started): the slot is finished and can be dropped.
    Done,
}

pub(crate) struct Slot {
    dir: PathBuf,
    conf: MonitorConfig,
    me: MonitorIdentity,
    sync: SyncPipe,
    out: Option<File>,
    err: Option<File>,
    writer: CriWriter<RotatingLog>,
    phase: Phase,
    runtime_stderr: Vec<u8>,
    started_at: DateTime<Utc>,
    exit: Option<(i32, Option<i32>, DateTime<Utc>)>,
    log_failed: bool,
    oom_before: Option<OomProbe>,
}

impl Slot {
    /// Starts the container of `dir` (its `monitor.json` says how); an error has been noted
    /// in the directory and reported on `sync` when this returns `None`.
    pub fn start(dir: PathBuf, mut sync: SyncPipe) -> Option<Self> {
        match Self::try_start(dir.clone()) {
            Ok(mut slot) => {
                slot.sync = sync;
                Some(slot)
            }
            Err(message) => {
                super::note(&dir, &message);
                sync.error(&message);
                None
            }
        }
    }

    fn try_start(dir: PathBuf) -> Result<Self, String> {
        let me = files::write_monitor_pid(&dir).map_err(|e| super::error_chain(&e))?;
        let conf: MonitorConfig = files::read_json(&dir.join(files::MONITOR_CONFIG))
            .ok_or_else(|| format!("cannot read {}", dir.join(files::MONITOR_CONFIG).display()))?;
        let log = RotatingLog::open(&conf.log_path, conf.log_rotation)
            .map_err(|e| format!("cannot open log {}: {e}", conf.log_path.display()))?;
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        for fd in [&out_r, &err_r] {
            set_nonblocking(fd)?;
        }
        // Before the start: a cgroup left over from an earlier run may carry kills of its own.
        let oom_before = conf.oom_file.as_deref().map(OomProbe::read);
        let runtime = spawn_runtime(&dir, &conf, out_w, err_w)?;
        Ok(Self {
            dir,
            me,
            sync: SyncPipe::none(),
            out: Some(File::from(out_r)),
            err: Some(File::from(err_r)),
            // Each chunk is one write of whole entries: readers see lines as they come.
            writer: CriWriter::new(log),
            phase: Phase::Starting {
                runtime,
                deadline: Instant::now() + START_TIMEOUT,
            },
            runtime_stderr: Vec::new(),
            started_at: Utc::now(),
            exit: None,
            log_failed: false,
            oom_before,
            conf,
        })
    }

    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pipes still open, to poll: stdout, then stderr.
    pub fn pipes(&self) -> [Option<BorrowedFd<'_>>; 2] {
        [
            self.out.as_ref().map(|f| f.as_fd()),
            self.err.as_ref().map(|f| f.as_fd()),
        ]
    }

    /// When the slot must be looked at even if nothing happens.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Starting { deadline, .. } | Phase::Draining { deadline } => Some(*deadline),
            Phase::Running { .. } | Phase::Waiting { .. } => None,
        }
    }

    /// Copies what one of its pipes holds into the log (`buf` is the monitor's read buffer).
    pub fn read(&mut self, stream: Stream, buf: &mut Vec<u8>, now: DateTime<Utc>) {
        let slot = match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        if buf.is_empty() {
            // A log line's longest entry, made at the first output: a pipe holds 64 KiB,
            // but a buffer of that size (zeroed, so dirtied, at once) was a third of an idle
            // monitor's private memory.
            buf.resize(super::cri::MAX_LINE, 0);
        }
        let Some(data) = read_chunk(slot, buf) else {
            return;
        };
        if matches!(self.phase, Phase::Starting { .. }) && stream == Stream::Stderr {
            let room = ERROR_CAP.saturating_sub(self.runtime_stderr.len());
            self.runtime_stderr
                .extend_from_slice(&data[..data.len().min(room)]);
        }
        if let Err(e) = self.writer.feed(stream, data, now) {
            if !self.log_failed {
                super::note(&self.dir, &format!("cannot write the log: {e}"));
                self.log_failed = true;
            }
        }
    }

    /// Moves the slot on with the children reaped so far (it takes its own out of `reaped`);
    /// at its end, records the exit.
    pub fn advance(&mut self, reaped: &mut Reaped) -> Step {
        match self.next_phase(reaped) {
            Ok(true) => Step::Continue,
            Ok(false) => {
                self.finish();
                Step::Done
            }
            Err(message) => {
                super::note(&self.dir, &message);
                self.sync.error(&message);
                self.release();
                Step::Done
            }
        }
    }

    /// `Ok(false)` once the container's end and output are all in.
    fn next_phase(&mut self, reaped: &mut Reaped) -> Result<bool, String> {
        let dir = self.dir.as_path();
        let conf = &self.conf;
        let phase = std::mem::replace(
            &mut self.phase,
            Phase::Draining {
                deadline: Instant::now(),
            },
        );
        self.phase = match phase {
            Phase::Starting { runtime, deadline } => {
                match take(reaped, runtime) {
                    Some(WaitStatus::Exited(_, 0)) => {
                        let pid = files::read_pid(&dir.join(files::CONTAINER_PID))
                            .ok_or("the runtime started the container but wrote no pid file")?;
                        self.started_at = Utc::now();
                        let started = Started {
                            pid,
                            monitor_pid: self.me.pid,
                            started_at: self.started_at,
                        };
                        files::write_started(dir, &started, self.me).map_err(|e| e.to_string())?;
                        self.sync.started(pid, started.monitor_pid, self.started_at);
                        give_back_free_heap();
                        if conf.wait_by_runtime {
                            // Its end comes as any child's, reaped by the monitor.
                            let waiter = super::runtime_wait::spawn(dir, conf)?;
                            Phase::Waiting { waiter }
                        } else {
                            // A short-lived init may already be reaped along with the runtime.
                            match take(reaped, pid) {
                                Some(status) => self.ended(status),
                                None => Phase::Running { pid },
                            }
                        }
                    }
                    Some(status) => {
                        let _ = self.writer.finish(Utc::now());
                        return Err(format!(
                            "{} exited with {}: {}",
                            conf.runtime.display(),
                            describe(status),
                            String::from_utf8_lossy(&self.runtime_stderr).trim()
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
            Phase::Running { pid } => match take(reaped, pid) {
                Some(status) => self.ended(status),
                // Not our child and gone: another process reaped it, the status is lost.
                None if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) => {
                    self.exit = Some((255, None, Utc::now()));
                    drain()
                }
                None => Phase::Running { pid },
            },
            Phase::Waiting { waiter } => match take(reaped, waiter) {
                Some(status) => {
                    let ok = matches!(status, WaitStatus::Exited(_, 0));
                    let code = super::runtime_wait::exit_code(dir, ok);
                    self.exit = Some((code, None, Utc::now()));
                    drain()
                }
                None => Phase::Waiting { waiter },
            },
            Phase::Draining { deadline } => {
                let drained = self.out.is_none() && self.err.is_none();
                if drained || Instant::now() >= deadline {
                    return Ok(false);
                }
                Phase::Draining { deadline }
            }
        };
        let drained = self.out.is_none() && self.err.is_none();
        Ok(!(matches!(self.phase, Phase::Draining { .. }) && drained))
    }

    fn ended(&mut self, status: WaitStatus) -> Phase {
        let (code, signal) = exit_of(status);
        self.exit = Some((code, signal, Utc::now()));
        drain()
    }

    /// Writes what is left of the log and `exit.json`.
    fn finish(&mut self) {
        let finished = Utc::now();
        if let Err(e) = self.writer.finish(finished) {
            super::note(&self.dir, &format!("cannot write the log: {e}"));
        }
        let (exit_code, signal, finished_at) = self.exit.unwrap_or((255, None, finished));
        let oom_killed = match (self.conf.oom_file.as_deref(), &self.oom_before) {
            (Some(file), Some(before)) => oom::killed(file, before, signal),
            _ => false,
        };
        // In a shared sandbox the host's OOM killer ends the sandbox (SIGKILL), and the
        // runtime reports a sandbox that died (runsc: 255): the container's end is that kill.
        let (exit_code, signal) = match oom_killed && self.conf.wait_by_runtime {
            true => (128 + libc::SIGKILL, Some(libc::SIGKILL)),
            false => (exit_code, signal),
        };
        let status = files::ExitStatus {
            exit_code,
            signal,
            oom_killed,
            started_at: self.started_at,
            finished_at,
        };
        if let Err(e) = files::write_json(&self.dir.join(files::EXIT), &status) {
            super::note(&self.dir, &super::error_chain(&e));
        }
        self.release();
    }

    /// Marks the container's start record ended: this monitor no longer supervises it.
    fn release(&self) {
        if let Err(e) = files::write_ended(&self.dir) {
            super::note(&self.dir, &super::error_chain(&e));
        }
    }
}

fn drain() -> Phase {
    Phase::Draining {
        deadline: Instant::now() + DRAIN_TIMEOUT,
    }
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
    let oci = super::oci_command(conf);
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

fn take(reaped: &mut Reaped, pid: i32) -> Option<WaitStatus> {
    let i = reaped.iter().position(|(p, _, _)| *p == pid)?;
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
