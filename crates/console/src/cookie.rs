//! The session cookie: its name, the `Set-Cookie` values that set and clear it (HttpOnly,
//! SameSite=Strict, Path=/console, Secure when the console is served over TLS), and reading
//! it back from a request's `Cookie` headers.

use std::time::Duration;

use axum::http::HeaderMap;

/// The cookie's name.
pub const NAME: &str = "berth_console";

/// The `Set-Cookie` value of session `id`, living at most `max_age`.
pub fn set(id: &str, secure: bool, max_age: Duration) -> String {
    format!(
        "{NAME}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear(secure: bool) -> String {
    set("", secure, Duration::ZERO)
}

/// The session id a request carries, if any.
pub fn read(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == NAME && !v.is_empty() && v.len() <= 128)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_console() {
        let c = set("abc", false, Duration::from_secs(60));
        assert_eq!(
            c,
            "berth_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let c = set("abc", true, Duration::from_secs(60));
        assert!(c.ends_with("; Secure"), "{c}");
        assert!(clear(true).starts_with("berth_console=; "));
        assert!(clear(true).contains("Max-Age=0"));
    }

    #[test]
    fn reads_its_own_cookie_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(read(&h), None);
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; berth_console=xyz; b=2"),
        );
        assert_eq!(read(&h).as_deref(), Some("xyz"));
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("berth_console="));
        assert_eq!(read(&h), None);
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("x=berth_console"));
        h.append("cookie", HeaderValue::from_static("berth_console=q"));
        assert_eq!(read(&h).as_deref(), Some("q"));
    }
}
