//! Times as people read them in tables: how long ago an RFC 3339 time was.

use chrono::{DateTime, Utc};

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`; the text itself when it is not RFC 3339, and
/// the empty string for an empty one.
pub(crate) fn ago(rfc3339: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    ago_secs((now - t.with_timezone(&Utc)).num_seconds().max(0) as u64)
}

/// The same for a number of seconds.
pub(crate) fn ago_secs(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ago("2026-12-04T11:59:30Z", now), "30s ago");
        assert_eq!(ago("2026-12-04T11:00:00Z", now), "1h ago");
        assert_eq!(ago("2026-12-01T12:00:00Z", now), "3d ago");
        assert_eq!(ago("2026-12-04T12:00:10Z", now), "0s ago");
        assert_eq!(ago("", now), "");
        assert_eq!(ago("yesterday", now), "yesterday");
    }
}
