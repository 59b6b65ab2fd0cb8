//! Replay protection: a nonce may be used once per access key within the 15-minute window in
//! which its timestamp is accepted at all.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Nonces seen within the acceptance window.
pub struct NonceCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<(String, String), DateTime<Utc>>,
    order: VecDeque<(DateTime<Utc>, (String, String))>,
}

/// How long a nonce is remembered: the clock-skew window on both sides.
const WINDOW_MINUTES: i64 = 31;

impl NonceCache {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records a nonce; `false` if it was used before.
    pub fn insert(&self, access_key_id: &str, nonce: &str, at: DateTime<Utc>) -> bool {
        let now = Utc::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((t, _)) = inner.order.front() {
            if now - *t < Duration::minutes(WINDOW_MINUTES) {
                break;
            }
            if let Some((_, key)) = inner.order.pop_front() {
                inner.seen.remove(&key);
            }
        }
        let key = (access_key_id.to_string(), nonce.to_string());
        if inner.seen.contains_key(&key) {
            return false;
        }
        inner.seen.insert(key.clone(), at);
        inner.order.push_back((now, key));
        true
    }
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_key() {
        let c = NonceCache::new();
        let t = Utc::now();
        assert!(c.insert("ak", "n1", t));
        assert!(!c.insert("ak", "n1", t));
        assert!(c.insert("ak2", "n1", t));
        assert!(c.insert("ak", "n2", t));
    }
}
