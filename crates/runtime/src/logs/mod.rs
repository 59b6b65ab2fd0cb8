//! A container's CRI-format log: reading it back as the API shows it (the text of each line,
//! optionally with its timestamp, filtered by time, the last N lines and a byte budget) across
//! its rotated files, following it as it grows, and the size-based rotation the monitor
//! applies while writing it. Pieces of a long line (`P` entries) are joined with the `F` entry
//! that ends them.

mod files;
mod follow;
mod parse;
mod rotate;

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};

pub use follow::{follow, LogFollower};
use parse::{Assembler, Line};
pub use rotate::LogRotation;
pub(crate) use rotate::RotatingLog;

/// At most this many bytes (the end) of [`last_lines`].
pub const LAST_LINES_CAP: usize = 2048;

/// What part of a log to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines logged at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many bytes of output; what follows is cut off, maybe mid-line.
    pub limit_bytes: Option<usize>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
}

/// Reads the log at `path` with its rotated files (`path.1` ... , oldest first); a missing
/// log reads as empty. Malformed lines are skipped; an unfinished last line is left out.
pub fn read(path: &Path, q: &LogQuery) -> io::Result<String> {
    let mut c = Collector::new(q);
    let mut asm = Assembler::default();
    for mut f in files::open_all(path)? {
        files::scan(&mut f.file, &mut asm, |line| c.push(line))?;
        if c.full() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&c.finish()).into_owned())
}

/// The last `n` lines of the log at `path` (at most [`LAST_LINES_CAP`] bytes, from the end),
/// e.g. for the message of a failed container's event. Empty when there is no log.
pub fn last_lines(path: &Path, n: usize) -> String {
    let q = LogQuery {
        tail: Some(n),
        ..Default::default()
    };
    let text = read(path, &q).unwrap_or_default();
    let text = text.trim_end_matches('\n');
    let mut start = text.len().saturating_sub(LAST_LINES_CAP);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Applies a query to lines in log order.
pub(crate) struct Collector<'q> {
    q: &'q LogQuery,
    out: Vec<u8>,
    tail: VecDeque<Line>,
}

impl<'q> Collector<'q> {
    pub fn new(q: &'q LogQuery) -> Self {
        Self {
            q,
            out: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    /// Takes the next line; `false` once the byte budget is spent.
    pub fn push(&mut self, line: Line) -> bool {
        if line.before(self.q.since) {
            return true;
        }
        match self.q.tail {
            Some(0) => {}
            Some(n) => {
                if self.tail.len() == n {
                    self.tail.pop_front();
                }
                self.tail.push_back(line);
            }
            None => line.emit(&mut self.out, self.q.timestamps),
        }
        !self.full()
    }

    pub fn full(&self) -> bool {
        self.q.tail.is_none() && self.q.limit_bytes.is_some_and(|l| self.out.len() >= l)
    }

    pub fn finish(mut self) -> Vec<u8> {
        for line in &self.tail {
            line.emit(&mut self.out, self.q.timestamps);
        }
        if let Some(limit) = self.q.limit_bytes {
            self.out.truncate(limit);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2024-01-01T00:00:01.000000000Z stdout F one
2024-01-01T00:00:02.000000000Z stderr F two
garbage line
2024-01-01T00:00:03.000000000Z stdout P thr
2024-01-01T00:00:03.500000000Z stdout F ee
2024-01-01T00:00:04.000000000Z stdout F 
2024-01-01T00:00:05.000000000Z stdout F five
2024-01-01T00:00:06.000000000Z stdout F unfinished";

    fn read_with(q: LogQuery) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        std::fs::write(&p, LOG).unwrap();
        read(&p, &q).unwrap()
    }

    #[test]
    fn plain_text() {
        assert_eq!(read_with(LogQuery::default()), "one\ntwo\nthree\n\nfive\n");
    }

    #[test]
    fn with_timestamps() {
        let out = read_with(LogQuery {
            timestamps: true,
            tail: Some(2),
            ..Default::default()
        });
        assert_eq!(
            out,
            "2024-01-01T00:00:04.000000000Z \n2024-01-01T00:00:05.000000000Z five\n"
        );
    }

    #[test]
    fn tail() {
        assert_eq!(
            read_with(LogQuery {
                tail: Some(3),
                ..Default::default()
            }),
            "three\n\nfive\n"
        );
        assert_eq!(
            read_with(LogQuery {
                tail: Some(0),
                ..Default::default()
            }),
            ""
        );
        assert_eq!(
            read_with(LogQuery {
                tail: Some(100),
                ..Default::default()
            }),
            "one\ntwo\nthree\n\nfive\n"
        );
    }

    #[test]
    fn since() {
        let since = "2024-01-01T00:00:02.500000000Z".parse().unwrap();
        assert_eq!(
            read_with(LogQuery {
                since: Some(since),
                ..Default::default()
            }),
            "three\n\nfive\n"
        );
        let since = "2024-01-01T00:00:03.200000000Z".parse().unwrap();
        // A split line counts from its first piece.
        assert_eq!(
            read_with(LogQuery {
                since: Some(since),
                tail: Some(1),
                ..Default::default()
            }),
            "five\n"
        );
    }

    #[test]
    fn limit_bytes() {
        assert_eq!(
            read_with(LogQuery {
                limit_bytes: Some(6),
                ..Default::default()
            }),
            "one\ntw"
        );
        assert_eq!(
            read_with(LogQuery {
                limit_bytes: Some(5),
                tail: Some(2),
                timestamps: false,
                ..Default::default()
            }),
            "\nfive"
        );
    }

    #[test]
    fn missing_file_is_empty() {
        let q = LogQuery::default();
        assert_eq!(read(Path::new("/nonexistent/berth.log"), &q).unwrap(), "");
    }

    #[test]
    fn reads_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(
            dir.path().join("0.log.2"),
            "2024-01-01T00:00:01Z stdout F one\n2024-01-01T00:00:02Z stdout P tw\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("0.log.1"),
            "2024-01-01T00:00:03Z stdout F o\n",
        )
        .unwrap();
        std::fs::write(&p, "2024-01-01T00:00:04Z stderr F three\n").unwrap();
        assert_eq!(read(&p, &LogQuery::default()).unwrap(), "one\ntwo\nthree\n");
        let q = LogQuery {
            tail: Some(2),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            read(&p, &q).unwrap(),
            "2024-01-01T00:00:02Z two\n2024-01-01T00:00:04Z three\n"
        );
        let q = LogQuery {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(read(&p, &q).unwrap(), "one\nt");
        // Only rotated files left (the current one not yet created).
        std::fs::remove_file(&p).unwrap();
        assert_eq!(read(&p, &LogQuery::default()).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn last_lines_for_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        assert_eq!(last_lines(&p, 5), "");
        std::fs::write(&p, LOG).unwrap();
        assert_eq!(last_lines(&p, 2), "\nfive");
        let long: String = (0..500)
            .map(|i| format!("2024-01-01T00:00:01Z stdout F line é {i}\n"))
            .collect();
        std::fs::write(&p, long).unwrap();
        let text = last_lines(&p, 400);
        assert!(text.len() <= LAST_LINES_CAP && text.ends_with("line é 499"));
    }
}
