//! Server-side sessions of the console: a random id (the cookie's value) to the account and
//! access key it signed in with, its CSRF token, and two expiries — idle (since last use) and
//! absolute (since sign-in). The count is bounded: per account (a new session of an account
//! that holds its most drops that account's least recently used one, so no tenant can push
//! other tenants' sessions out by signing in again and again) and in all (a full table first
//! drops expired sessions, then the one used least recently). Nothing is written to disk; a
//! restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// Limits of the session table.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// A session unused this long is over.
    pub idle: Duration,
    /// A session this old is over, however busy.
    pub absolute: Duration,
    /// Sessions held at most.
    pub max: usize,
    /// Sessions of one account held at most.
    pub per_account: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max: 10_000,
            per_account: 32,
        }
    }
}

/// What a live session stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub account: String,
    pub key_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

struct Entry {
    view: SessionView,
    created: Instant,
    used: Instant,
}

impl Entry {
    fn expired(&self, c: &SessionConfig, now: Instant) -> bool {
        now.saturating_duration_since(self.used) >= c.idle
            || now.saturating_duration_since(self.created) >= c.absolute
    }
}

/// The session table.
pub struct Sessions {
    config: SessionConfig,
    map: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// A new session; answers its id.
    pub fn create(&self, account: &str, key_id: &str, now: Instant) -> String {
        let id = random_token();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let (held, oldest) = map.iter().filter(|(_, e)| e.view.account == account).fold(
                (0usize, None::<(&String, Instant)>),
                |(n, o), (k, e)| {
                    let older = o.is_none_or(|(_, t)| e.used < t);
                    (n + 1, if older { Some((k, e.used)) } else { o })
                },
            );
            match oldest {
                Some((k, _)) if held >= self.config.per_account.max(1) => {
                    let k = k.clone();
                    map.remove(&k);
                }
                _ => break,
            }
        }
        if map.len() >= self.config.max {
            map.retain(|_, e| !e.expired(&self.config, now));
        }
        while map.len() >= self.config.max.max(1) {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Entry {
                view: SessionView {
                    account: account.to_string(),
                    key_id: key_id.to_string(),
                    csrf: random_token(),
                },
                created: now,
                used: now,
            },
        );
        id
    }

    /// The session `id` when it is live, marked used at `now`; an expired one is dropped.
    pub fn get(&self, id: &str, now: Instant) -> Option<SessionView> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get_mut(id)?;
        if entry.expired(&self.config, now) {
            map.remove(id);
            return None;
        }
        entry.used = now;
        Some(entry.view.clone())
    }

    /// Ends the session `id` (sign-out).
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            max: 3,
            per_account: 3,
        }
    }

    #[test]
    fn an_account_signing_in_again_and_again_drops_only_its_own_sessions() {
        let s = Sessions::new(SessionConfig {
            max: 10,
            per_account: 2,
            ..config()
        });
        let t0 = Instant::now();
        let other = s.create("b", "BK", t0);
        let first = s.create("a", "AK", t0 + Duration::from_secs(1));
        let second = s.create("a", "AK", t0 + Duration::from_secs(2));
        for i in 3..20 {
            s.create("a", "AK", t0 + Duration::from_secs(i));
        }
        assert_eq!(s.len(), 3, "two of a's and b's");
        assert!(s.get(&first, t0 + Duration::from_secs(20)).is_none());
        assert!(s.get(&second, t0 + Duration::from_secs(20)).is_none());
        assert!(s.get(&other, t0 + Duration::from_secs(20)).is_some());
    }

    #[test]
    fn a_session_ends_after_its_idle_time() {
        let s = Sessions::new(config());
        let t0 = Instant::now();
        let id = s.create("a", "AK", t0);
        assert_eq!(id.len(), 64);
        let view = s.get(&id, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!((view.account.as_str(), view.key_id.as_str()), ("a", "AK"));
        // Used at 59 s: idle counts from there.
        assert!(s.get(&id, t0 + Duration::from_secs(118)).is_some());
        assert!(s.get(&id, t0 + Duration::from_secs(178)).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn a_busy_session_still_ends_at_its_absolute_expiry() {
        let s = Sessions::new(config());
        let t0 = Instant::now();
        let id = s.create("a", "AK", t0);
        for m in 1..5 {
            assert!(s.get(&id, t0 + Duration::from_secs(m * 59)).is_some());
        }
        assert!(s.get(&id, t0 + Duration::from_secs(300)).is_none());
    }

    #[test]
    fn sign_out_removes_and_ids_and_tokens_differ() {
        let s = Sessions::new(config());
        let t0 = Instant::now();
        let a = s.create("a", "AK", t0);
        let b = s.create("a", "AK", t0);
        assert_ne!(a, b);
        assert_ne!(s.get(&a, t0).unwrap().csrf, s.get(&b, t0).unwrap().csrf);
        s.remove(&a);
        assert!(s.get(&a, t0).is_none());
        assert!(s.get(&b, t0).is_some());
        assert!(s.get("not-a-session", t0).is_none());
    }

    #[test]
    fn the_table_is_bounded_dropping_the_least_recently_used() {
        let s = Sessions::new(config());
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|i| s.create("a", "AK", t0 + Duration::from_secs(i)))
            .collect();
        // The first is used again: the second is now the least recently used.
        assert!(s.get(&ids[0], t0 + Duration::from_secs(10)).is_some());
        let d = s.create("a", "AK", t0 + Duration::from_secs(11));
        assert_eq!(s.len(), 3);
        assert!(s.get(&ids[1], t0 + Duration::from_secs(11)).is_none());
        assert!(s.get(&ids[0], t0 + Duration::from_secs(11)).is_some());
        assert!(s.get(&d, t0 + Duration::from_secs(11)).is_some());
    }
}
