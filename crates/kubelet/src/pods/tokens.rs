//! The service-account tokens of the node's pods, as the kubelet's token manager keeps them:
//! each token is used until 80% of its lifetime passed (or 24 hours, whichever comes first)
//! and then requested again, so that a projected token volume always holds a valid token.
//! After a restart of the virtual kubelet the tokens its pods' groups already hold are taken
//! up again by their own claims ([`keep_held`]), so that a restart renews nothing early.

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

/// Most bytes of a token's claims read.
const MAX_CLAIMS: usize = 16 * 1024;

/// How long a token issued before (one a group holds) is still kept: until 80% of the
/// lifetime its `iat` and `exp` claims give (at most [`MAX_AGE`] after `iat`), from `now`.
/// `None` when it is due already or carries no such claims. The signature is not checked:
/// the token is the one the API server issued for the pod, only reused until it is due.
pub fn keep_held(token: &str, now: Timestamp) -> Option<Duration> {
    use base64::Engine;
    let claims = token.split('.').nth(1).filter(|c| c.len() <= MAX_CLAIMS)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let (iat, exp) = (v.get("iat")?.as_i64()?, v.get("exp")?.as_i64()?);
    if exp <= iat {
        return None;
    }
    let keep = Duration::from_secs((exp - iat).unsigned_abs() * 4 / 5).min(MAX_AGE);
    let until = iat.checked_add(i64::try_from(keep.as_secs()).ok()?)?;
    let left = until - now.as_second();
    (left > 0).then(|| Duration::from_secs(left.unsigned_abs()))
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

    /// Whether a token is held for the pod's `key`, due or not.
    pub fn has(&self, uid: &str, key: &str) -> bool {
        self.map().get(uid).is_some_and(|m| m.contains_key(key))
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

    fn jwt(claims: serde_json::Value) -> String {
        use base64::Engine;
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b(br#"{"alg":"RS256"}"#),
            b(claims.to_string().as_bytes()),
            b(b"sig")
        )
    }

    #[test]
    fn a_held_token_is_kept_by_its_own_claims() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let t = now.as_second();
        // Issued 100 s ago for an hour: kept until 2880 s after issue.
        let token = jwt(serde_json::json!({"iat": t - 100, "exp": t + 3500}));
        assert_eq!(keep_held(&token, now), Some(Duration::from_secs(2780)));
        // Past 80% of its life: due.
        let token = jwt(serde_json::json!({"iat": t - 3000, "exp": t + 600}));
        assert_eq!(keep_held(&token, now), None);
        for bad in [
            "not a token".to_string(),
            jwt(serde_json::json!({"exp": t + 3600})),
            jwt(serde_json::json!({"iat": t, "exp": t})),
            "a.!!!.c".to_string(),
        ] {
            assert_eq!(keep_held(&bad, now), None, "{bad}");
        }
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
