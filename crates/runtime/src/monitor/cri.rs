//! Turns the bytes a container writes into CRI log lines:
//! `2024-01-01T00:00:00.123456789Z stdout F text`, with lines longer than [`MAX_LINE`] split
//! into `P` (partial) pieces ending with an `F` piece.

use std::io::{self, Write};

use chrono::{DateTime, Utc};

/// The longest piece of a line written as one log entry (as containerd and CRI-O do).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Stdout => 0,
            Self::Stderr => 1,
        }
    }
}

/// Formats a timestamp as CRI logs do (RFC 3339 with nanoseconds, UTC).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Buffers partial lines per stream and appends finished entries to `out`.
pub struct CriWriter<W: Write> {
    out: W,
    pending: [Vec<u8>; 2],
    scratch: Vec<u8>,
}

impl<W: Write> CriWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            pending: [Vec::new(), Vec::new()],
            scratch: Vec::new(),
        }
    }

    /// Takes a chunk read from `stream` at `at` and writes every line it completes.
    pub fn feed(&mut self, stream: Stream, data: &[u8], at: DateTime<Utc>) -> io::Result<()> {
        let ts = timestamp(at);
        let pending = &mut self.pending[stream.index()];
        pending.extend_from_slice(data);
        self.scratch.clear();
        let mut start = 0;
        loop {
            let rest = &pending[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(nl) if nl <= MAX_LINE => {
                    entry(&mut self.scratch, &ts, stream, b'F', &rest[..nl]);
                    start += nl + 1;
                }
                _ if rest.len() >= MAX_LINE => {
                    entry(&mut self.scratch, &ts, stream, b'P', &rest[..MAX_LINE]);
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        pending.drain(..start);
        self.flush_scratch()
    }

    /// Writes what is left of unfinished lines as final entries (at end of stream).
    pub fn finish(&mut self, at: DateTime<Utc>) -> io::Result<()> {
        let ts = timestamp(at);
        self.scratch.clear();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = std::mem::take(&mut self.pending[stream.index()]);
            if !pending.is_empty() {
                entry(&mut self.scratch, &ts, stream, b'F', &pending);
            }
        }
        self.flush_scratch()?;
        self.out.flush()
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.scratch)
    }
}

fn entry(out: &mut Vec<u8>, ts: &str, stream: Stream, tag: u8, text: &[u8]) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.push(b' ');
    out.push(tag);
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::nanoseconds(123)
    }

    #[test]
    fn full_and_partial_lines() {
        let mut w = CriWriter::new(Vec::new());
        w.feed(Stream::Stdout, b"hello\nwor", at()).unwrap();
        w.feed(Stream::Stderr, b"err\n", at()).unwrap();
        w.feed(Stream::Stdout, b"ld\n", at()).unwrap();
        w.feed(Stream::Stdout, b"tail", at()).unwrap();
        w.finish(at()).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert_eq!(
            text,
            "2024-01-01T00:00:00.000000123Z stdout F hello\n\
             2024-01-01T00:00:00.000000123Z stderr F err\n\
             2024-01-01T00:00:00.000000123Z stdout F world\n\
             2024-01-01T00:00:00.000000123Z stdout F tail\n"
        );
    }

    #[test]
    fn long_lines_split() {
        let mut w = CriWriter::new(Vec::new());
        let mut line = vec![b'a'; MAX_LINE * 2 + 5];
        line.push(b'\n');
        w.feed(Stream::Stdout, &line, at()).unwrap();
        w.finish(at()).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "P", "F"]);
        assert_eq!(
            text.lines().last().unwrap().len(),
            30 + " stdout F ".len() + 5
        );
    }

    #[test]
    fn empty_lines_kept() {
        let mut w = CriWriter::new(Vec::new());
        w.feed(Stream::Stdout, b"\n\n", at()).unwrap();
        w.finish(at()).unwrap();
        assert_eq!(String::from_utf8(w.out).unwrap().lines().count(), 2);
    }
}
