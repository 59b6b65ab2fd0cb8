//! Running a process inside a running container (its namespaces and cgroup) with
//! `<runtime> exec --process FILE`, through the same wrapper as every other runtime call
//! (on hybrid hosts: a private mount namespace without the cgroup2 mount).
//!
//! Two modes: [`Runtime::exec_sync`] collects the output (capped) and the exit code;
//! [`Runtime::exec_interactive`] returns an [`ExecSession`] with streams, terminal resize and
//! the exit code. With a TTY the runtime creates the pty in the container and passes its
//! master back over a console socket. The exec'd process is a child of the runtime process,
//! which exits with its exit code; it is killed when its session is dropped.

mod console;
mod process;
mod session;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::error::{check_id, RuntimeError};
use crate::runtime::Runtime;
use console::{ConsoleSocket, Terminal};
use session::{exit_code, ExecGuard};
pub use session::{ExecReader, ExecSession, ExecWriter};

/// The most output [`Runtime::exec_sync`] keeps of each stream.
pub const SYNC_OUTPUT_CAP: usize = 1 << 20;
/// How long output is still read after a sync exec's process ended (background children
/// may hold its pipes).
const DRAIN: Duration = Duration::from_secs(1);
/// How long the runtime may take to hand over the terminal of a TTY exec.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the runtime's own stderr goes into an error.
const ERROR_CAP: usize = 4096;
/// Unix socket paths must fit `sun_path`.
const MAX_SOCKET_PATH: usize = 100;

static NEXT_EXEC: AtomicU64 = AtomicU64::new(0);

/// The user an exec runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
}

/// What to run in a container. Everything not given is the container's own: environment,
/// working directory, user, capabilities, rlimits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments, passed as they are (no shell).
    pub args: Vec<String>,
    /// `KEY=value` entries on top of the container's environment (same key: this one wins).
    pub env: Vec<String>,
    /// An absolute working directory instead of the container's.
    pub cwd: Option<String>,
    pub user: Option<ExecUser>,
    /// Run under a terminal (stdout and stderr become one stream). Ignored by sync execs.
    pub tty: bool,
    /// Give the process a stdin (interactive execs); otherwise it reads /dev/null.
    pub stdin: bool,
    /// The initial terminal size, `(columns, rows)`.
    pub size: Option<(u16, u16)>,
}

/// What a sync exec printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, or 128 + the signal number when a signal ended the process.
    pub exit_code: i32,
    /// Whether either stream went past [`SYNC_OUTPUT_CAP`] and was cut there.
    pub truncated: bool,
}

impl Runtime {
    /// Runs `req` in the running container `id` (bundle in `container_dir`) and returns its
    /// output (each stream capped at [`SYNC_OUTPUT_CAP`]) and exit code. Past `timeout` the
    /// process is killed and the call fails with [`RuntimeError::Timeout`]. A failure of the
    /// runtime itself (no such container, no such executable) shows as the runtime's exit
    /// code (1 or 255) with its message in `stderr`, as `docker exec` does.
    pub async fn exec_sync(
        &self,
        id: &str,
        container_dir: &Path,
        req: &ExecRequest,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let req = ExecRequest {
            tty: false,
            stdin: false,
            ..req.clone()
        };
        let files = self.prepare_exec(id, container_dir, &req)?;
        let mut cmd = self.exec_command(id, &files, None)?;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, mut guard) = spawn(cmd, &files)?;
        let mut out = Capped::default();
        let mut err = Capped::default();
        let (mut o, mut e) = (child.stdout.take(), child.stderr.take());
        let (mut ob, mut eb) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let mut status = None;
        let mut until = Instant::now() + timeout;
        loop {
            if status.is_some() && o.is_none() && e.is_none() {
                break;
            }
            tokio::select! {
                r = read_some(&mut o, &mut ob), if o.is_some() => out.push(r, &ob, &mut o),
                r = read_some(&mut e, &mut eb), if e.is_some() => err.push(r, &eb, &mut e),
                s = child.wait(), if status.is_none() => {
                    let s = s.map_err(|err| RuntimeError::io("wait for", "the exec", err))?;
                    status = Some(exit_code(s));
                    until = Instant::now() + DRAIN;
                }
                _ = tokio::time::sleep_until(until) => {
                    if status.is_some() {
                        break;
                    }
                    guard.kill();
                    if tokio::time::timeout(DRAIN, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    return Err(RuntimeError::Timeout {
                        what: format!("exec {:?} in container {id}", req.args),
                        secs: timeout.as_secs(),
                    });
                }
            }
        }
        guard.finished();
        Ok(ExecOutput {
            truncated: out.truncated || err.truncated,
            stdout: out.data,
            stderr: err.data,
            exit_code: status.unwrap_or(255),
        })
    }

    /// Starts `req` in the running container `id` (bundle in `container_dir`) and returns
    /// its session. With `req.tty` the runtime's terminal is handed over before this returns,
    /// so a runtime failure (no such container or executable) is an error here; without a
    /// TTY it shows in the session's stderr and exit code, as with [`Runtime::exec_sync`].
    pub async fn exec_interactive(
        &self,
        id: &str,
        container_dir: &Path,
        req: &ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        let files = self.prepare_exec(id, container_dir, req)?;
        if !req.tty {
            let mut cmd = self.exec_command(id, &files, None)?;
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            if req.stdin {
                cmd.stdin(Stdio::piped());
            }
            let (mut child, guard) = spawn(cmd, &files)?;
            return Ok(ExecSession {
                stdin: child.stdin.take().map(|s| Box::new(s) as ExecWriter),
                stdout: child.stdout.take().map(|s| Box::new(s) as ExecReader),
                stderr: child.stderr.take().map(|s| Box::new(s) as ExecReader),
                terminal: None,
                guard,
                child,
                exit_code: None,
            });
        }
        if self.kind() == crate::oci::RuntimeKind::Runsc {
            return self.exec_on_own_pty(id, &files, req);
        }
        let socket = ConsoleSocket::bind(&files.socket)
            .map_err(|e| RuntimeError::io("listen on", &files.socket, e))?;
        let mut cmd = self.exec_command(id, &files, Some(&files.socket))?;
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let (mut child, guard) = spawn(cmd, &files)?;
        let mut stderr = child.stderr.take();
        let failed = |message: String| RuntimeError::ExecFailed {
            id: id.to_string(),
            message,
        };
        let master = tokio::select! {
            fd = socket.receive() => fd.map_err(|e| failed(format!("no terminal: {e}")))?,
            _ = child.wait() => {
                let mut text = Capped::default();
                if let Some(s) = stderr.as_mut() {
                    let mut buf = Vec::new();
                    let _ = s.take(ERROR_CAP as u64).read_to_end(&mut buf).await;
                    text.data = buf;
                }
                return Err(failed(String::from_utf8_lossy(&text.data).trim().to_string()));
            }
            _ = tokio::time::sleep(CONSOLE_TIMEOUT) => {
                return Err(failed(format!(
                    "the runtime handed over no terminal within {} s",
                    CONSOLE_TIMEOUT.as_secs()
                )));
            }
        };
        drop(socket);
        if let Some(s) = stderr {
            tokio::spawn(log_runtime_stderr(id.to_string(), s));
        }
        let terminal =
            Terminal::new(master).map_err(|e| RuntimeError::io("open the terminal of", id, e))?;
        Ok(ExecSession {
            stdin: req.stdin.then(|| Box::new(terminal.clone()) as ExecWriter),
            stdout: Some(Box::new(terminal.clone())),
            stderr: None,
            terminal: Some(terminal),
            guard,
            child,
            exit_code: None,
        })
    }

    /// A TTY exec under runsc, which passes a terminal into the sandbox only when the terminal
    /// is its own stdio (its `--console-socket` works only with `--detach`, which loses the
    /// exit code): berth opens the pty, gives the slave to `runsc exec` as its stdio and
    /// controlling terminal, and keeps the master. runsc's own errors show on the terminal.
    fn exec_on_own_pty(
        &self,
        id: &str,
        files: &ExecFiles,
        req: &ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        let (master, slave) =
            console::open_pty(req.size).map_err(|e| RuntimeError::io("open a pty for", id, e))?;
        let mut cmd = self.exec_command(id, files, None)?;
        let stdio = |fd: &std::os::fd::OwnedFd| {
            fd.try_clone()
                .map(Stdio::from)
                .map_err(|e| RuntimeError::io("open a pty for", id, e))
        };
        cmd.stdin(stdio(&slave)?)
            .stdout(stdio(&slave)?)
            .stderr(Stdio::from(slave));
        // SAFETY: setsid(2) and ioctl(2) are async-signal-safe and touch no memory of the
        // parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (child, guard) = spawn(cmd, files)?;
        let terminal =
            Terminal::new(master).map_err(|e| RuntimeError::io("open the terminal of", id, e))?;
        Ok(ExecSession {
            stdin: req.stdin.then(|| Box::new(terminal.clone()) as ExecWriter),
            stdout: Some(Box::new(terminal.clone())),
            stderr: None,
            terminal: Some(terminal),
            guard,
            child,
            exit_code: None,
        })
    }

    fn prepare_exec(
        &self,
        id: &str,
        container_dir: &Path,
        req: &ExecRequest,
    ) -> Result<ExecFiles, RuntimeError> {
        check_id(id)?;
        let spec = process::process_spec(container_dir, req)?;
        let n = NEXT_EXEC.fetch_add(1, Ordering::Relaxed);
        let name = format!("exec-{}-{n}", std::process::id());
        let files = ExecFiles {
            process: container_dir.join(format!("{name}.json")),
            pid: container_dir.join(format!("{name}.pid")),
            socket: socket_path(&self.oci().root, &name),
        };
        crate::files::write_json(&files.process, &spec)?;
        Ok(files)
    }

    fn exec_command(
        &self,
        id: &str,
        files: &ExecFiles,
        console: Option<&Path>,
    ) -> Result<tokio::process::Command, RuntimeError> {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "exec".as_ref(),
            "--process".as_ref(),
            files.process.as_os_str(),
            "--pid-file".as_ref(),
            files.pid.as_os_str(),
        ];
        if let Some(sock) = console {
            // runsc takes the terminal from the process file alone and knows no `--tty`.
            if self.kind() != crate::oci::RuntimeKind::Runsc {
                args.push("--tty".as_ref());
            }
            args.extend(["--console-socket".as_ref(), sock.as_os_str()]);
        }
        args.push(id.as_ref());
        // Not killed on drop: the guard kills the exec'd process and the runtime, its parent,
        // then reaps it and exits (killing the runtime first would leave the process to the
        // container's init, which may never reap it).
        Ok(tokio::process::Command::from(self.oci().command(args)?))
    }
}

/// The files of one exec.
struct ExecFiles {
    process: PathBuf,
    pid: PathBuf,
    socket: PathBuf,
}

/// The console socket in the runtime's state root, or in the temporary directory when that
/// path would be too long for a unix socket. The leading dot keeps it apart from container
/// ids, which never start with one.
fn socket_path(state_root: &Path, name: &str) -> PathBuf {
    let p = state_root.join(format!(".{name}.sock"));
    if p.as_os_str().len() <= MAX_SOCKET_PATH {
        p
    } else {
        std::env::temp_dir().join(format!(".berth-{name}.sock"))
    }
}

fn spawn(
    mut cmd: tokio::process::Command,
    files: &ExecFiles,
) -> Result<(tokio::process::Child, ExecGuard), RuntimeError> {
    let remove = || {
        let _ = std::fs::remove_file(&files.process);
    };
    let child = cmd.spawn().map_err(|source| {
        remove();
        RuntimeError::Spawn {
            what: "OCI runtime",
            binary: PathBuf::from(cmd.as_std().get_program()),
            source,
        }
    })?;
    let guard = ExecGuard {
        runtime_pid: child.id().map_or(0, |p| p as i32),
        pid_file: files.pid.clone(),
        process_file: files.process.clone(),
        done: false,
    };
    Ok((child, guard))
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> usize {
    match r {
        Some(r) => r.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

/// A stream's output up to [`SYNC_OUTPUT_CAP`]; what comes after is read and dropped so the
/// process never blocks on a full pipe.
#[derive(Default)]
struct Capped {
    data: Vec<u8>,
    truncated: bool,
}

impl Capped {
    fn push<R>(&mut self, n: usize, buf: &[u8], src: &mut Option<R>) {
        if n == 0 {
            *src = None;
            return;
        }
        let room = SYNC_OUTPUT_CAP.saturating_sub(self.data.len());
        if n > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&buf[..n.min(room)]);
    }
}

async fn log_runtime_stderr(id: String, mut stderr: tokio::process::ChildStderr) {
    let mut buf = Vec::new();
    let _ = (&mut stderr)
        .take(ERROR_CAP as u64)
        .read_to_end(&mut buf)
        .await;
    let text = String::from_utf8_lossy(&buf);
    if !text.trim().is_empty() {
        tracing::debug!(id, stderr = %text.trim(), "OCI runtime exec");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>() {}

    #[test]
    fn sessions_move_between_tasks() {
        is_send::<ExecSession>();
        is_send::<crate::logs::LogFollower>();
    }

    #[test]
    fn socket_paths_fit() {
        let short = socket_path(Path::new("/run/berth/crun"), "exec-1-2");
        assert_eq!(short, PathBuf::from("/run/berth/crun/.exec-1-2.sock"));
        let long = socket_path(&PathBuf::from("/x".repeat(60)), "exec-1-2");
        assert!(long.as_os_str().len() < MAX_SOCKET_PATH && long.starts_with(std::env::temp_dir()));
    }
}
