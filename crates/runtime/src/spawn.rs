//! Launching a monitor from berth: a child with the sync pipe as its stdout and /dev/null as
//! stdin and stderr, which forks the real monitor away and exits; berth then reads the
//! monitor's one report. The child is forked by the monitor zygote (`crate::zygote`) when
//! there is one, else started from the monitor's executable.
//!
//! The pipe is handed over as stdout rather than as an extra descriptor so that the standard
//! library can start the monitor with `posix_spawn` (a `vfork`-style clone that shares berth's
//! memory until the exec). A plain fork of `berth serve`, with its threads and tens of
//! megabytes mapped, costs 1–2 ms per container start; that fork was the price of a
//! `pre_exec` hook that moved the pipe to fd 3.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;

use crate::error::RuntimeError;
use crate::files::Started;

/// How long berth waits for a monitor's report: the monitor's own start timeout plus slack.
const REPORT_TIMEOUT: Duration = Duration::from_secs(135);

/// Starts `exe args... dir` as a monitor and returns what it reports: through the zygote, in
/// a monitor shared with the containers of the same non-empty `share` key when it can (ADR
/// 0018); started from its executable, always in a monitor of its own. Blocking.
pub(crate) fn spawn_monitor(
    exe: &Path,
    args: &[String],
    dir: &Path,
    id: &str,
    share: &str,
) -> Result<Started, RuntimeError> {
    let (read_end, write_end) = sync_pipe(exe)?;
    match crate::zygote::ask(exe, args, dir, share, write_end.as_fd()) {
        Ok(()) => {
            drop(write_end);
            let report = read_report(read_end, REPORT_TIMEOUT)?;
            // Silence with no monitor: the zygote died with the request unread (a monitor
            // that started writes its pid file first, and then always reports).
            if !report.is_empty() || crate::files::live_monitor(dir).is_some() {
                return parse_report(id, &report);
            }
            tracing::warn!(monitor = %exe.display(), "the monitor zygote did not take the request; starting the monitor itself");
        }
        Err(crate::zygote::Refused::Busy) => {}
        Err(crate::zygote::Refused::Failed(e)) => {
            tracing::warn!(monitor = %exe.display(), error = %e, "no monitor zygote; starting the monitor itself");
        }
    }
    parse_report(id, &spawn_itself(exe, args, dir)?)
}

/// Starts `exe args... dir` from its executable and returns its report.
fn spawn_itself(exe: &Path, args: &[String], dir: &Path) -> Result<String, RuntimeError> {
    let (read_end, write_end) = sync_pipe(exe)?;
    let mut cmd = Command::new(exe);
    // No pre_exec hook, uid or chroot: std spawns this with posix_spawn.
    cmd.args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| spawn_error(exe, e))?;
    // Dropping the command closes berth's copy of the write end.
    drop(cmd);
    let report = read_report(read_end, REPORT_TIMEOUT);
    if report.is_err() {
        let _ = child.kill();
    }
    // The first process exits right after forking the monitor.
    let _ = child.wait();
    report
}

fn spawn_error(exe: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Spawn {
        what: "monitor",
        binary: exe.to_path_buf(),
        source,
    }
}

/// A start's sync pipe: berth reads the monitor's report from the first end.
fn sync_pipe(exe: &Path) -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| spawn_error(exe, e.into()))
}

/// Reads the pipe to its end, or until `timeout`.
fn read_report(fd: OwnedFd, timeout: Duration) -> Result<String, RuntimeError> {
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(fd);
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RuntimeError::Timeout {
                what: "the monitor's start report".into(),
                secs: timeout.as_secs(),
            });
        }
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(RuntimeError::io("poll", "monitor sync pipe", e.into())),
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RuntimeError::io("read", "monitor sync pipe", e)),
        }
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// Parses `started <pid> <monitor-pid> <rfc3339>` or `error <text>`.
fn parse_report(id: &str, report: &str) -> Result<Started, RuntimeError> {
    let failed = |message: String| RuntimeError::StartFailed {
        id: id.to_string(),
        message,
    };
    if let Some(text) = report.strip_prefix("error ") {
        return Err(failed(text.trim().to_string()));
    }
    let Some(rest) = report.strip_prefix("started ") else {
        return Err(failed(if report.trim().is_empty() {
            "the monitor exited without reporting".to_string()
        } else {
            format!("unexpected monitor report {:?}", report.trim())
        }));
    };
    let mut it = rest.split_whitespace();
    let parsed = (|| {
        let pid = it.next()?.parse().ok()?;
        let monitor_pid = it.next()?.parse().ok()?;
        let started_at = DateTime::parse_from_rfc3339(it.next()?).ok()?;
        Some(Started {
            pid,
            monitor_pid,
            started_at: started_at.with_timezone(&Utc),
        })
    })();
    parsed.ok_or_else(|| failed(format!("unexpected monitor report {:?}", report.trim())))
}

/// Makes a path absolute against the current directory (without resolving symlinks).
pub(crate) fn absolute(p: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(p).map_err(|e| RuntimeError::io("resolve", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        let s = parse_report("c", "started 12 34 2024-01-01T00:00:00.5Z\n").unwrap();
        assert_eq!((s.pid, s.monitor_pid), (12, 34));
        let e = parse_report("c", "error crun: boom\nmore\n").unwrap_err();
        assert!(e.to_string().contains("boom\nmore"));
        assert!(parse_report("c", "").is_err());
        assert!(parse_report("c", "started x y z").is_err());
    }
}
