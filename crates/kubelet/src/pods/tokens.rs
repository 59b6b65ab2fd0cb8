//! The service-account tokens of the node's pods, as the kubelet's token manager keeps them:
//! each token is used until 80% of its lifetime passed (or 24 hours, whichever comes first)
//! and then requested again, so that a projected token volume always holds a valid token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

/// The lifetime asked for when the projected source gives none (the API server's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the API server grants.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest a token is kept, whatever its lifetime.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The lifetime to request for a source's `expirationSeconds`.
pub fn requested_seconds(source: Option<i64>) -> i64 {
    source
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS)
        .max(MIN_EXPIRATION_SECONDS)
}

/// How long a token issued `now` is kept: 80% of its lifetime (until the answer's
/// `expirationTimestamp`, else what was asked), at most [`MAX_AGE`].
pub fn keep_for(requested: i64, expires: Option<&Time>, now: Timestamp) -> Duration {
    let lifetime = expires
        .map(|t| t.0.as_second() - now.as_second())
        .unwrap_or(requested)
        .max(0);
    Duration::from_secs(lifetime.unsigned_abs() * 4 / 5).min(MAX_AGE)
}

struct Held {
    token: String,
    refresh_at: Instant,
}

/// The tokens held, by pod uid and `VOLUME/PATH`.
#[derive(Default)]
pub struct Tokens(Mutex<HashMap<String, HashMap<String, Held>>>);

impl Tokens {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Held>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod's token for `key`, unless it is due to be requested again.
    pub fn fresh(&self, uid: &str, key: &str) -> Option<String> {
        let now = Instant::now();
        self.map()
            .get(uid)
            .and_then(|m| m.get(key))
            .filter(|h| h.refresh_at > now)
            .map(|h| h.token.clone())
    }

    /// Holds a token just issued, to be requested again after `keep`.
    pub fn put(&self, uid: &str, key: &str, token: String, keep: Duration) {
        let refresh_at = Instant::now() + keep;
        self.map()
            .entry(uid.to_string())
            .or_default()
            .insert(key.to_string(), Held { token, refresh_at });
    }

    /// Whether a token of the pod is due to be requested again.
    pub fn due(&self, uid: &str) -> bool {
        let now = Instant::now();
        self.map()
            .get(uid)
            .is_some_and(|m| m.values().any(|h| h.refresh_at <= now))
    }

    pub fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_follow_the_kubelet() {
        assert_eq!(requested_seconds(None), 3600);
        assert_eq!(requested_seconds(Some(60)), 600);
        assert_eq!(requested_seconds(Some(7200)), 7200);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: &str| Time(s.parse().unwrap());
        assert_eq!(
            keep_for(3600, Some(&at("2026-01-01T00:10:00Z")), now),
            Duration::from_secs(480),
            "80% of what the API server granted"
        );
        assert_eq!(keep_for(3600, None, now), Duration::from_secs(2880));
        assert_eq!(
            keep_for(3600, Some(&at("2026-01-03T00:00:00Z")), now),
            MAX_AGE
        );
        assert_eq!(
            keep_for(3600, Some(&at("2025-12-31T00:00:00Z")), now),
            Duration::ZERO
        );
    }

    #[test]
    fn a_token_is_due_after_its_time() {
        let t = Tokens::default();
        t.put("u", "v/token", "a".into(), Duration::from_secs(480));
        assert_eq!(t.fresh("u", "v/token").as_deref(), Some("a"));
        assert!(!t.due("u"));
        t.put("u", "w/token", "b".into(), Duration::ZERO);
        assert!(t.due("u"));
        assert_eq!(t.fresh("u", "w/token"), None);
        assert!(!t.due("other"));
        t.forget("u");
        assert_eq!(t.fresh("u", "v/token"), None);
    }
}
