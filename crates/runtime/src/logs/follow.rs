//! Following a log as the monitor writes it: first what the query selects of what is there,
//! then every new line. An inotify watch on the log's directory wakes the follower when a file
//! there changes (with a slow poll as a safety net, and a fast one where inotify is missing);
//! a rotation is noticed as a new file at the log's path, after the old one has been read to
//! its end.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use inotify::{Inotify, WatchMask};
use tokio::io::unix::AsyncFd;

use super::files::{self, LogFile};
use super::parse::{Assembler, Line};
use super::{Collector, LogQuery};

/// How often files are checked with inotify (only a safety net) and without it.
const SAFETY_POLL: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(150);

/// A log being followed; see [`follow`].
pub struct LogFollower {
    path: PathBuf,
    current: Option<LogFile>,
    asm: Assembler,
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    /// Bytes still to return when the query has a byte budget.
    budget: Option<usize>,
    ready: VecDeque<String>,
    notify: Option<AsyncFd<Inotify>>,
}

/// Follows the log at `path` (which need not exist yet): [`LogFollower::next`] first returns
/// what `q` selects of the log as it is (rotated files included), then each new line as it is
/// written, across rotations. `limit_bytes` bounds the whole stream. Needs a tokio runtime.
pub fn follow(path: &Path, q: &LogQuery) -> io::Result<LogFollower> {
    // Watch before reading, so nothing written in between goes unnoticed.
    let notify = watch(path)
        .map_err(|e| tracing::debug!(path = %path.display(), "no inotify, polling: {e}"))
        .ok();
    let mut current = LogFile::open(path)?;
    let mut collector = Collector::new(q);
    let mut asm = Assembler::default();
    for mut f in files::open_all(path)? {
        if current.as_ref().is_some_and(|c| c.id == f.id) {
            break;
        }
        files::scan(&mut f.file, &mut asm, |line| collector.push(line))?;
    }
    if let Some(c) = current.as_mut() {
        files::scan(&mut c.file, &mut asm, |line| collector.push(line))?;
    }
    let backlog = collector.finish();
    let budget = q.limit_bytes.map(|l| l.saturating_sub(backlog.len()));
    let ready = backlog
        .split_inclusive(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    Ok(LogFollower {
        path: path.to_path_buf(),
        current,
        asm,
        timestamps: q.timestamps,
        since: q.since,
        budget,
        ready,
        notify,
    })
}

fn watch(path: &Path) -> io::Result<AsyncFd<Inotify>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM,
    )?;
    // SAFETY: the Inotify moves into the AsyncFd, which keeps its descriptor open and
    // unchanged until it is dropped.
    unsafe { AsyncFd::register(inotify) }.map_err(|e| e.into_parts().1)
}

impl LogFollower {
    /// The next line (ending with `\n`, prefixed with its timestamp if asked), waiting for
    /// it as long as it takes; `None` once the byte budget is spent. Cancel-safe.
    pub async fn next(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.budget == Some(0) {
                return Ok(None);
            }
            self.read_new()?;
            if self.ready.is_empty() {
                self.wait().await;
            }
        }
    }

    /// Every complete line there is now, without waiting: e.g. the rest of the log once the
    /// container has exited.
    pub fn drain(&mut self) -> io::Result<String> {
        self.read_new()?;
        Ok(self.ready.drain(..).collect())
    }

    /// Reads what was appended, and moves on to a new file at the path once the old one is
    /// read to its end.
    fn read_new(&mut self) -> io::Result<()> {
        // Identity first: all writes to a rotated file come before the rename that makes it
        // `.1`, so once the path names a new file, the old one can be read to its end.
        let now = files::file_id(&self.path);
        let mut lines = Vec::new();
        if let Some(c) = self.current.as_mut() {
            files::scan(&mut c.file, &mut self.asm, |l| {
                lines.push(l);
                true
            })?;
        }
        if now.is_some() && now != self.current.as_ref().map(|c| c.id) {
            self.current = LogFile::open(&self.path)?;
            if let Some(c) = self.current.as_mut() {
                files::scan(&mut c.file, &mut self.asm, |l| {
                    lines.push(l);
                    true
                })?;
            }
        }
        for line in lines {
            self.push(line);
        }
        Ok(())
    }

    fn push(&mut self, line: Line) {
        if line.before(self.since) || self.budget == Some(0) {
            return;
        }
        let mut out = Vec::new();
        line.emit(&mut out, self.timestamps);
        if let Some(b) = self.budget.as_mut() {
            out.truncate(*b);
            *b -= out.len();
        }
        self.ready
            .push_back(String::from_utf8_lossy(&out).into_owned());
    }

    /// Until a file in the log's directory changes, or the next poll.
    async fn wait(&mut self) {
        let Some(fd) = self.notify.as_mut() else {
            tokio::time::sleep(POLL).await;
            return;
        };
        let mut failed = false;
        let _ = tokio::time::timeout(SAFETY_POLL, async {
            let Ok(mut guard) = fd.readable_mut().await else {
                failed = true;
                return;
            };
            let mut buf = [0u8; 4096];
            loop {
                match guard.try_io(|inner| inner.get_mut().read_events(&mut buf).map(|_| ())) {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => {
                        failed = true;
                        return;
                    }
                    // Drained: readiness is cleared.
                    Err(_would_block) => return,
                }
            }
        })
        .await;
        if failed {
            self.notify = None;
        }
    }
}

impl std::fmt::Debug for LogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollower")
            .field("path", &self.path)
            .field("inotify", &self.notify.is_some())
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Instant;

    use super::super::{LogRotation, RotatingLog};
    use super::*;

    fn entry(text: &str) -> String {
        format!("2024-01-01T00:00:00.000000000Z stdout F {text}\n")
    }

    async fn next_within(f: &mut LogFollower, d: Duration) -> Option<String> {
        tokio::time::timeout(d, f.next()).await.ok()?.unwrap()
    }

    #[tokio::test]
    async fn backlog_then_new_lines_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let rot = LogRotation {
            max_bytes: 200,
            keep: 1,
        };
        let mut log = RotatingLog::open(&p, Some(rot)).unwrap();
        for i in 0..5 {
            log.write_all(entry(&format!("old {i}")).as_bytes())
                .unwrap();
        }
        let q = LogQuery {
            tail: Some(2),
            ..Default::default()
        };
        let mut f = follow(&p, &q).unwrap();
        assert_eq!(
            next_within(&mut f, Duration::from_secs(1)).await.unwrap(),
            "old 3\n"
        );
        assert_eq!(
            next_within(&mut f, Duration::from_secs(1)).await.unwrap(),
            "old 4\n"
        );
        assert!(next_within(&mut f, Duration::from_millis(100))
            .await
            .is_none());
        // Each new line shows well within a second, rotations included.
        for i in 0..20 {
            let t = Instant::now();
            log.write_all(entry(&format!("new {i}")).as_bytes())
                .unwrap();
            let line = next_within(&mut f, Duration::from_secs(1)).await;
            assert_eq!(line.as_deref(), Some(format!("new {i}\n").as_str()));
            assert!(
                t.elapsed() < Duration::from_millis(900),
                "{:?}",
                t.elapsed()
            );
        }
        assert!(dir.path().join("0.log.1").exists());
        log.write_all(entry("last a").as_bytes()).unwrap();
        log.write_all(entry("last b").as_bytes()).unwrap();
        assert_eq!(f.drain().unwrap(), "last a\nlast b\n");
    }

    #[tokio::test]
    async fn waits_for_the_file_and_honours_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let q = LogQuery {
            limit_bytes: Some(8),
            timestamps: false,
            ..Default::default()
        };
        let mut f = follow(&p, &q).unwrap();
        assert_eq!(f.drain().unwrap(), "");
        let mut log = RotatingLog::open(&p, None).unwrap();
        log.write_all(entry("hello").as_bytes()).unwrap();
        log.write_all(entry("world").as_bytes()).unwrap();
        assert_eq!(
            next_within(&mut f, Duration::from_secs(1)).await.unwrap(),
            "hello\n"
        );
        assert_eq!(
            next_within(&mut f, Duration::from_secs(1)).await.unwrap(),
            "wo"
        );
        assert_eq!(f.next().await.unwrap(), None);
    }
}
