//! One-time tokens: a signed API call leaves what a later unsigned connection may do (an exec
//! session, a log stream) under a random token that is valid for a short time and can be taken
//! once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// How long a token stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(30);
/// Most tokens outstanding at once; past that the oldest go.
const MAX_TOKENS: usize = 10_000;

/// Tokens handing out a `T` each, once.
pub struct Tokens<T> {
    map: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T> Default for Tokens<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Tokens<T> {
    /// Stores `value` under a new token and returns the token (64 hex digits).
    pub fn issue(&self, value: T) -> String {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| now.duration_since(*at) < TOKEN_TTL);
        if map.len() >= MAX_TOKENS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), (now, value));
        token
    }

    /// Takes what `token` stands for, once, while it is valid.
    pub fn take(&self, token: &str) -> Option<T> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (at, v) = map.remove(token)?;
        (at.elapsed() < TOKEN_TTL).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use() {
        let t = Tokens::default();
        let tok = t.issue(7);
        assert_eq!(tok.len(), 64);
        assert_eq!(t.take("nope"), None);
        assert_eq!(t.take(&tok), Some(7));
        assert_eq!(t.take(&tok), None);
    }
}
