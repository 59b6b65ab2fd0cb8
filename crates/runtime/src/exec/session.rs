//! A running exec: its streams, its terminal, its exit code, and the guard that kills the
//! exec'd process when nobody waits for it any more.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

use super::console::Terminal;
use crate::error::RuntimeError;

/// Output of an interactive exec: stdout, stderr, or in TTY mode the terminal.
pub type ExecReader = Box<dyn AsyncRead + Send + Unpin>;
/// Input of an interactive exec: its stdin, or in TTY mode the terminal.
pub type ExecWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// The files of one exec and the OCI runtime process that runs it. Dropping the guard before
/// [`ExecGuard::finished`] kills the exec'd process; the files are removed in any case.
pub(crate) struct ExecGuard {
    /// The `<runtime> exec` process, the parent of the exec'd process.
    pub runtime_pid: i32,
    pub pid_file: PathBuf,
    pub process_file: PathBuf,
    pub done: bool,
}

impl ExecGuard {
    /// Marks the exec as ended on its own.
    pub fn finished(&mut self) {
        self.done = true;
        self.remove_files();
    }

    /// Kills the exec'd process (its whole process group when it leads one, as a TTY exec
    /// does); the runtime then reaps it and exits. The pid is trusted only while the runtime
    /// process, its parent, still holds it. Before the runtime has recorded the pid, the
    /// runtime itself is killed: it has not yet started the process, or is doing so.
    pub fn kill(&self) {
        let pid = crate::files::read_pid(&self.pid_file);
        let Some(pid) = pid else {
            if self.runtime_pid > 0 {
                // SAFETY: kill(2) has no memory-safety preconditions. The runtime is our
                // child and not yet reaped (`done` is unset), so its pid is still its own.
                unsafe { libc::kill(self.runtime_pid, libc::SIGKILL) };
            }
            return;
        };
        let Some((ppid, pgrp)) = parent_and_group(pid) else {
            return;
        };
        if ppid != self.runtime_pid {
            return;
        }
        let target = if pgrp == pid { -pid } else { pid };
        // SAFETY: as above.
        unsafe { libc::kill(target, libc::SIGKILL) };
    }

    fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.process_file);
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
            self.remove_files();
        }
    }
}

/// `(ppid, pgrp)` of a process from `/proc/<pid>/stat`.
fn parent_and_group(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut it = stat[stat.rfind(')')? + 2..].split(' ');
    let _state = it.next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgrp = it.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// An interactive exec. Take the streams out of the public fields; dropping the session
/// before [`ExecSession::wait`] returned kills the exec'd process.
pub struct ExecSession {
    /// The process's stdin (or the terminal), when stdin was asked for.
    pub stdin: Option<ExecWriter>,
    /// The process's stdout, or in TTY mode the terminal (stdout and stderr in one).
    pub stdout: Option<ExecReader>,
    /// The process's stderr; `None` in TTY mode.
    pub stderr: Option<ExecReader>,
    pub(crate) terminal: Option<Terminal>,
    /// Dropped before `child`, while the runtime's pid is still held by the unreaped child.
    pub(crate) guard: ExecGuard,
    pub(crate) child: Child,
    pub(crate) exit_code: Option<i32>,
}

impl ExecSession {
    /// Whether the session has a terminal.
    pub fn is_tty(&self) -> bool {
        self.terminal.is_some()
    }

    /// The exec'd process as the host sees it, once the runtime has recorded it.
    pub fn pid(&self) -> Option<i32> {
        crate::files::read_pid(&self.guard.pid_file)
    }

    /// Sets the terminal's window size (columns, rows).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let terminal = self.terminal.as_ref().ok_or(RuntimeError::NoTerminal)?;
        terminal
            .resize(cols, rows)
            .map_err(|e| RuntimeError::io("resize the terminal of", "exec", e))
    }

    /// Resolves to the exit code of the exec'd process (128 + the signal number when a signal
    /// ended it). May be called again after it returned.
    pub async fn wait(&mut self) -> Result<i32, RuntimeError> {
        if let Some(code) = self.exit_code {
            return Ok(code);
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| RuntimeError::io("wait for", "the exec", e))?;
        let code = exit_code(status);
        self.exit_code = Some(code);
        self.guard.finished();
        Ok(code)
    }

    /// Kills the exec'd process now; [`ExecSession::wait`] then returns 137.
    pub fn kill(&self) {
        if self.exit_code.is_none() {
            self.guard.kill();
        }
    }
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("tty", &self.is_tty())
            .field("runtime_pid", &self.guard.runtime_pid)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

/// The exit code of `<runtime> exec`, which is the exec'd process's (128 + signal when the
/// runtime itself was killed).
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}
