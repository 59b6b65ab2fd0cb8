//! Reading a container's CRI-format log file back as the API shows it: the text of each line,
//! optionally with its timestamp, filtered by time, the last N lines and a byte budget.
//! Pieces of a long line (`P` entries) are joined with the `F` entry that ends them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, Utc};

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

/// One logical line of a log.
struct Line {
    ts: String,
    text: Vec<u8>,
}

/// Reads the log at `path`; a missing file reads as empty. Malformed lines are skipped.
pub fn read(path: &Path, q: &LogQuery) -> io::Result<String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut tail: VecDeque<Line> = VecDeque::new();
    let mut partial: Option<Line> = None;
    let mut raw = Vec::new();
    let mut reader = BufReader::new(file);
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        if raw.last() == Some(&b'\n') {
            raw.pop();
        } else {
            // A line still being written: leave it for the next read.
            break;
        }
        let Some((ts, full, text)) = parse(&raw) else {
            continue;
        };
        let line = match partial.take() {
            Some(mut p) => {
                p.text.extend_from_slice(text);
                p
            }
            None => Line {
                ts: ts.to_string(),
                text: text.to_vec(),
            },
        };
        if !full {
            partial = Some(line);
            continue;
        }
        if let Some(since) = q.since {
            if parse_ts(&line.ts).is_some_and(|t| t < since) {
                continue;
            }
        }
        match q.tail {
            Some(n) => {
                if n == 0 {
                    continue;
                }
                if tail.len() == n {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            None => {
                emit(&mut out, &line, q.timestamps);
                if q.limit_bytes.is_some_and(|l| out.len() >= l) {
                    break;
                }
            }
        }
    }
    for line in &tail {
        emit(&mut out, line, q.timestamps);
    }
    if let Some(limit) = q.limit_bytes {
        out.truncate(limit);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn emit(out: &mut Vec<u8>, line: &Line, timestamps: bool) {
    if timestamps {
        out.extend_from_slice(line.ts.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.text);
    out.push(b'\n');
}

/// Splits `<timestamp> <stream> <tag> <text>`; the tag is `F` or `P`, maybe with `:`-suffixes.
fn parse(raw: &[u8]) -> Option<(&str, bool, &[u8])> {
    let mut parts = raw.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = parts.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    let tag = parts.next()?;
    let full = match tag.split(|b| *b == b':').next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or(b"");
    parse_ts(ts)?;
    Some((ts, full, text))
}

fn parse_ts(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
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
}
