//! The console's sessions, kept in the store (`console_sessions`, so a restart of berth signs
//! no one out): a random id (the cookie's value, of which the store holds only a SHA-256
//! digest) to the account and access key it signed in with, its CSRF token, and two expiries
//! — idle (since last use) and absolute (since sign-in). The count is bounded: per account (a
//! new session of an account that holds its most drops that account's least recently used
//! one, so no tenant can push other tenants' sessions out by signing in again and again) and
//! in all (expired sessions go first, then the one used least recently). Expired rows are
//! deleted when met and at every sign-in. The last use is written when it moved by a
//! thirtieth of the idle time (a minute of the default 30), not at every request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_store::{ConsoleSession, SessionBounds, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};

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

/// The session table.
pub struct Sessions {
    config: SessionConfig,
    store: Arc<dyn Store>,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What the store keys a session by: the SHA-256 of its id, hex.
fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Seconds since the epoch.
fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn whole_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Sessions {
    pub fn new(config: SessionConfig, store: Arc<dyn Store>) -> Self {
        Self { config, store }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn expired(&self, s: &ConsoleSession, now: i64) -> bool {
        now.saturating_sub(s.used) >= whole_secs(self.config.idle)
            || now.saturating_sub(s.created) >= whole_secs(self.config.absolute)
    }

    /// A new session; answers its id.
    pub async fn create(
        &self,
        account: &str,
        key_id: &str,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        let id = random_token();
        let now = secs(now);
        let session = ConsoleSession {
            id_hash: digest(&id),
            account: account.to_string(),
            access_key_id: key_id.to_string(),
            csrf: random_token(),
            created: now,
            used: now,
        };
        let bounds = SessionBounds {
            idle_before: now.saturating_sub(whole_secs(self.config.idle)),
            created_before: now.saturating_sub(whole_secs(self.config.absolute)),
            per_account: self.config.per_account,
            max: self.config.max,
        };
        self.store.create_console_session(&session, bounds).await?;
        Ok(id)
    }

    /// The session `id` when it is live, marked used at `now`; an expired one is deleted.
    /// A store that cannot answer is no session (the caller signs in again).
    pub async fn get(&self, id: &str, now: SystemTime) -> Option<SessionView> {
        let hash = digest(id);
        let s = match self.store.console_session(&hash).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "reading a console session");
                return None;
            }
        };
        let now = secs(now);
        if self.expired(&s, now) {
            self.remove(id).await;
            return None;
        }
        let every = (whole_secs(self.config.idle) / 30).max(1);
        if now.saturating_sub(s.used) >= every {
            if let Err(e) = self.store.touch_console_session(&hash, now).await {
                tracing::warn!(error = %e, "marking a console session used");
            }
        }
        Some(SessionView {
            account: s.account,
            key_id: s.access_key_id,
            csrf: s.csrf,
        })
    }

    /// Ends the session `id` (sign-out, or a key no longer valid).
    pub async fn remove(&self, id: &str) {
        if let Err(e) = self.store.delete_console_session(&digest(id)).await {
            tracing::warn!(error = %e, "deleting a console session");
        }
    }

    /// Sessions held now (expired ones not yet deleted included).
    pub async fn len(&self) -> usize {
        self.store.console_sessions().await.unwrap_or(0)
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(config: SessionConfig) -> Sessions {
        let store = berth_store::SqliteStore::in_memory().unwrap();
        Sessions::new(config, Arc::new(store))
    }

    fn config() -> SessionConfig {
        SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
            max: 3,
            per_account: 3,
        }
    }

    #[tokio::test]
    async fn an_account_signing_in_again_and_again_drops_only_its_own_sessions() {
        let s = sessions(SessionConfig {
            max: 10,
            per_account: 2,
            ..config()
        });
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let other = s.create("b", "BK", t0).await.unwrap();
        let first = s
            .create("a", "AK", t0 + Duration::from_secs(1))
            .await
            .unwrap();
        let second = s
            .create("a", "AK", t0 + Duration::from_secs(2))
            .await
            .unwrap();
        for i in 3..20 {
            s.create("a", "AK", t0 + Duration::from_secs(i))
                .await
                .unwrap();
        }
        assert_eq!(s.len().await, 3, "two of a's and b's");
        assert!(s.get(&first, t0 + Duration::from_secs(20)).await.is_none());
        assert!(s.get(&second, t0 + Duration::from_secs(20)).await.is_none());
        assert!(s.get(&other, t0 + Duration::from_secs(20)).await.is_some());
    }

    #[tokio::test]
    async fn a_session_ends_after_its_idle_time() {
        let s = sessions(config());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let id = s.create("a", "AK", t0).await.unwrap();
        assert_eq!(id.len(), 64);
        let view = s.get(&id, t0 + Duration::from_secs(59)).await.unwrap();
        assert_eq!((view.account.as_str(), view.key_id.as_str()), ("a", "AK"));
        // Used at 59 s: idle counts from there.
        assert!(s.get(&id, t0 + Duration::from_secs(118)).await.is_some());
        assert!(s.get(&id, t0 + Duration::from_secs(178)).await.is_none());
        assert!(s.is_empty().await);
    }

    #[tokio::test]
    async fn a_busy_session_still_ends_at_its_absolute_expiry() {
        let s = sessions(config());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let id = s.create("a", "AK", t0).await.unwrap();
        for m in 1..5 {
            assert!(s.get(&id, t0 + Duration::from_secs(m * 59)).await.is_some());
        }
        assert!(s.get(&id, t0 + Duration::from_secs(300)).await.is_none());
    }

    #[tokio::test]
    async fn sign_out_removes_and_ids_and_tokens_differ() {
        let s = sessions(config());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = s.create("a", "AK", t0).await.unwrap();
        let b = s.create("a", "AK", t0).await.unwrap();
        assert_ne!(a, b);
        assert_ne!(
            s.get(&a, t0).await.unwrap().csrf,
            s.get(&b, t0).await.unwrap().csrf
        );
        s.remove(&a).await;
        assert!(s.get(&a, t0).await.is_none());
        assert!(s.get(&b, t0).await.is_some());
        assert!(s.get("not-a-session", t0).await.is_none());
    }

    #[tokio::test]
    async fn the_table_is_bounded_dropping_the_least_recently_used() {
        let s = sessions(config());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut ids: Vec<String> = vec![];
        for i in 0..3 {
            ids.push(
                s.create("a", "AK", t0 + Duration::from_secs(i))
                    .await
                    .unwrap(),
            );
        }
        // The first is used again: the second is now the least recently used.
        assert!(s.get(&ids[0], t0 + Duration::from_secs(10)).await.is_some());
        let d = s
            .create("a", "AK", t0 + Duration::from_secs(11))
            .await
            .unwrap();
        assert_eq!(s.len().await, 3);
        assert!(s.get(&ids[1], t0 + Duration::from_secs(11)).await.is_none());
        assert!(s.get(&ids[0], t0 + Duration::from_secs(11)).await.is_some());
        assert!(s.get(&d, t0 + Duration::from_secs(11)).await.is_some());
    }
}
