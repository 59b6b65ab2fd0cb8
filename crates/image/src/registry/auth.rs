//! Registry authentication: parsing `WWW-Authenticate` challenges and fetching bearer tokens
//! from the realm they name (the distribution token flow that Docker Hub, Harbor and
//! distribution with `auth: token` use), with a cache of tokens per login and scope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

/// A user name and password for one registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Login {
    pub user: String,
    pub password: String,
}

impl Login {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Whether the login of the registry at `registry` may be sent to the token realm `realm`:
/// only over HTTPS, or to the registry itself (same scheme, host and port), which is sent the
/// login anyway when it asks for basic auth.
pub(crate) fn may_send_login(registry: &reqwest::Url, realm: &reqwest::Url) -> bool {
    realm.scheme() == "https" || realm.origin() == registry.origin()
}

/// What a registry asks for in its `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. Quoted values may
/// hold commas; unknown parameters are ignored.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let realm = get("realm").filter(|r| !r.is_empty())?;
    Some(Challenge::Bearer {
        realm,
        service: get("service"),
        scope: get("scope"),
    })
}

fn parse_params(mut rest: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            return params;
        };
        let key = key.trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((key, value));
        rest = next;
    }
}

/// The answer of a token service.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it may be used (60 s when the service does not say, as the
    /// distribution specification prescribes).
    pub fn into_parts(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).clamp(1, 86_400));
        Some((token, lifetime))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenKey {
    login: Option<Login>,
    scope: String,
}

/// `Authorization` header values learnt for a registry, per login and scope. A login never
/// sees a token obtained with another login (or anonymously).
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<TokenKey, (String, Option<Instant>)>>,
}

impl TokenCache {
    pub fn get(&self, login: Option<&Login>, scope: &str) -> Option<String> {
        let key = TokenKey {
            login: login.cloned(),
            scope: scope.to_owned(),
        };
        let mut entries = self.lock();
        match entries.get(&key) {
            Some((_, Some(expires))) if *expires <= Instant::now() => {
                entries.remove(&key);
                None
            }
            Some((header, _)) => Some(header.clone()),
            None => None,
        }
    }

    /// Remembers `header`; bearer tokens expire 10 s before the service said.
    pub fn put(&self, login: Option<&Login>, scope: &str, header: String, ttl: Option<Duration>) {
        let expires = ttl.map(|ttl| Instant::now() + ttl.saturating_sub(Duration::from_secs(10)));
        let key = TokenKey {
            login: login.cloned(),
            scope: scope.to_owned(),
        };
        self.lock().insert(key, (header, expires));
    }

    pub fn forget(&self, login: Option<&Login>, scope: &str) {
        let key = TokenKey {
            login: login.cloned(),
            scope: scope.to_owned(),
        };
        self.lock().remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, (String, Option<Instant>)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=http://x/t, service=reg"),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("reg".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(
            parse_challenge("Bearer realm=\"unterminated"),
            Some(Challenge::Bearer {
                realm: "unterminated".into(),
                service: None,
                scope: None,
            })
        );
    }

    #[test]
    fn logins_go_only_to_https_realms_or_the_registry_itself() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let plain = url("http://127.0.0.1:5000");
        let tls = url("https://registry.example");
        for (registry, realm, sent) in [
            (&plain, "http://127.0.0.1:5000/token", true),
            (&plain, "https://auth.example/token", true),
            (&plain, "https://127.0.0.1:5001/token", true),
            (&plain, "http://127.0.0.1:5001/token", false),
            (&plain, "http://localhost:5000/token", false),
            (&plain, "http://evil.example/token", false),
            (&tls, "https://auth.example/token", true),
            (&tls, "http://registry.example/token", false),
            (&tls, "http://registry.example:443/token", false),
            (&tls, "https://registry.example:443/token", true),
        ] {
            assert_eq!(
                may_send_login(registry, &url(realm)),
                sent,
                "{registry} {realm}"
            );
        }
    }

    #[test]
    fn tokens_are_per_login_and_expire() {
        let cache = TokenCache::default();
        let alice = Login {
            user: "alice".into(),
            password: "a".into(),
        };
        cache.put(
            Some(&alice),
            "s",
            "Bearer a".into(),
            Some(Duration::from_secs(300)),
        );
        assert_eq!(cache.get(Some(&alice), "s").as_deref(), Some("Bearer a"));
        assert_eq!(cache.get(None, "s"), None);
        assert_eq!(cache.get(Some(&alice), "other"), None);
        cache.put(None, "s", "Bearer x".into(), Some(Duration::from_secs(5)));
        assert_eq!(cache.get(None, "s"), None, "expired at once (10 s margin)");
        let token: TokenResponse =
            serde_json::from_str(r#"{"access_token":"t","expires_in":300}"#).unwrap();
        assert_eq!(token.into_parts().unwrap().0, "t");
        let empty: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(empty.into_parts().is_none());
    }
}
