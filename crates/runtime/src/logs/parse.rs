//! CRI log entries back into lines: `<timestamp> <stream> <tag> <text>`, where `P` (partial)
//! pieces of a long line are joined with the `F` piece that ends them.

use chrono::{DateTime, Utc};

/// One logical line of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// The timestamp of its first piece.
    pub ts: String,
    pub text: Vec<u8>,
}

impl Line {
    /// Whether the line was logged before `since`.
    pub fn before(&self, since: Option<DateTime<Utc>>) -> bool {
        since.is_some_and(|s| parse_ts(&self.ts).is_some_and(|t| t < s))
    }

    /// Appends the line as the API shows it, with a newline.
    pub fn emit(&self, out: &mut Vec<u8>, timestamps: bool) {
        if timestamps {
            out.extend_from_slice(self.ts.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.text);
        out.push(b'\n');
    }
}

/// Joins pieces into lines; it carries a split line over from one file to the next.
#[derive(Default)]
pub(crate) struct Assembler {
    partial: Option<Line>,
}

impl Assembler {
    /// Takes one entry (without its newline); returns the line it completes. Malformed
    /// entries are skipped.
    pub fn feed(&mut self, raw: &[u8]) -> Option<Line> {
        let (ts, full, text) = parse(raw)?;
        let line = match self.partial.take() {
            Some(mut p) => {
                p.text.extend_from_slice(text);
                p
            }
            None => Line {
                ts: ts.to_string(),
                text: text.to_vec(),
            },
        };
        if full {
            Some(line)
        } else {
            self.partial = Some(line);
            None
        }
    }
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

    #[test]
    fn joins_pieces_and_skips_garbage() {
        let mut a = Assembler::default();
        assert!(a.feed(b"garbage").is_none());
        assert!(a.feed(b"2024-01-01T00:00:01Z stdin F x").is_none());
        assert!(a.feed(b"2024-01-01T00:00:01Z stdout P ab").is_none());
        let l = a.feed(b"2024-01-01T00:00:02Z stdout F:x cd").unwrap();
        assert_eq!(
            (l.ts.as_str(), l.text.as_slice()),
            ("2024-01-01T00:00:01Z", &b"abcd"[..])
        );
        let l = a.feed(b"2024-01-01T00:00:03Z stderr F").unwrap();
        assert!(l.text.is_empty());
        assert!(l.before(Some("2024-01-01T00:00:04Z".parse().unwrap())));
        assert!(!l.before(None));
    }
}
