//! CSRF tokens: every form of a session carries the session's token in a hidden field named
//! [`FIELD`] (scripts send it in the [`HEADER`] header); a POST without the right one is
//! refused before anything it asks is done. The comparison takes the same time whatever the
//! tokens hold.

use subtle::ConstantTimeEq;

/// The form field of the token.
pub const FIELD: &str = "csrf";
/// The header of the token, for requests made by the console's script.
pub const HEADER: &str = "x-csrf-token";

/// Whether `given` is the session's token `expected`.
pub fn matches(expected: &str, given: Option<&str>) -> bool {
    match given {
        Some(g) if !expected.is_empty() => expected.as_bytes().ct_eq(g.as_bytes()).into(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sessions_own_token_passes() {
        let t = crate::session::random_token();
        assert!(matches(&t, Some(&t)));
        assert!(!matches(&t, None));
        assert!(!matches(&t, Some("")));
        assert!(!matches(&t, Some(&t[..63])));
        let mut other = t.clone();
        other.replace_range(0..1, if t.starts_with('0') { "1" } else { "0" });
        assert!(!matches(&t, Some(&other)));
        assert!(!matches("", Some("")));
    }
}
