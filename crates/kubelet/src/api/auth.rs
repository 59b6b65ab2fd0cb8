//! Authentication and authorization of the kubelet API, as the kubelet's `Webhook` modes do
//! them: the user is the verified client certificate's (CN, groups O) or the bearer token's,
//! which the API server reviews (TokenReview; positive answers cached for
//! [`TOKEN_CACHE_TTL`]); the user is then authorized by a SubjectAccessReview on the node
//! (`resource: nodes`, `name: NODE`, the subresource and verb of the request, allowed answers
//! cached for [`DECISION_CACHE_TTL`]). No user: 401; not allowed: 403. [`AuthConfig::Anonymous`]
//! allows every request (the kubelet's `--anonymous-auth --authorization-mode=AlwaysAllow`).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::reply::Refusal;
use super::tls::Peer;
use super::AppState;

/// How long an authenticated token is trusted without asking again (the kubelet's
/// `--authentication-token-webhook-cache-ttl` default).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(120);
/// How long an allowed decision is remembered (the kubelet's
/// `--authorization-webhook-cache-authorized-ttl` default).
pub const DECISION_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most entries of each cache.
pub const MAX_CACHED: usize = 4096;
/// Longest bearer token read.
const MAX_TOKEN: usize = 16 * 1024;

/// How requests are authenticated and authorized.
#[derive(Clone)]
pub enum AuthConfig {
    /// Every request is allowed, with or without credentials. Only for a kubelet API that
    /// nothing but the API server can reach.
    Anonymous,
    /// Bearer tokens reviewed and every user authorized by the API server `client` talks to;
    /// with `client_ca`, client certificates signed by it authenticate too.
    Delegated {
        client: kube::Client,
        client_ca: Option<PathBuf>,
    },
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// What a request asks to do with the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub verb: &'static str,
    /// Tried in order: the first allowed one admits the request.
    pub subresources: Vec<&'static str>,
}

/// The verb and subresources of a request, as the kubelet maps them: `/stats` →
/// `nodes/stats`, `/metrics` → `nodes/metrics`, `/logs` → `nodes/log`, `/spec` →
/// `nodes/spec`, `/pods` and `/runningpods` → `nodes/pods`, `/healthz` → `nodes/healthz`
/// (the last three falling back to `nodes/proxy`, as the kubelet's fine-grained
/// authorization), anything else → `nodes/proxy`. The verb is the method's (`GET` → get,
/// `POST` → create, …), except that `/exec`, `/attach`, `/portForward` and `/run` always
/// need `create`: their WebSocket is opened with a GET but runs a command.
pub(crate) fn attributes(method: &Method, path: &str) -> Option<Attributes> {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    let subresources = if under("/stats") {
        vec!["stats"]
    } else if under("/metrics") {
        vec!["metrics"]
    } else if under("/logs") {
        vec!["log"]
    } else if under("/spec") {
        vec!["spec"]
    } else if under("/pods") || under("/runningpods") {
        vec!["pods", "proxy"]
    } else if under("/healthz") {
        vec!["healthz", "proxy"]
    } else {
        vec!["proxy"]
    };
    let runs = ["/exec", "/attach", "/portForward", "/run"]
        .iter()
        .any(|p| under(p));
    let verb = if runs {
        "create"
    } else {
        match *method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => return None,
        }
    };
    Some(Attributes { verb, subresources })
}

/// A small map whose entries expire; full, it takes nothing new until some expire.
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(k)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, v: V) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CACHED {
            map.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        if map.len() < MAX_CACHED {
            map.insert(k, (Instant::now(), v));
        }
    }
}

/// The authenticator and authorizer of the API.
pub(crate) enum Auth {
    Anonymous,
    Delegated(Box<Delegated>),
}

/// The API server that reviews tokens and access, and what it answered lately.
pub(crate) struct Delegated {
    client: kube::Client,
    tokens: TtlCache<[u8; 32], User>,
    decisions: TtlCache<String, ()>,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Self {
        match config {
            AuthConfig::Anonymous => Self::Anonymous,
            AuthConfig::Delegated { client, .. } => Self::Delegated(Box::new(Delegated {
                client,
                tokens: TtlCache::new(TOKEN_CACHE_TTL),
                decisions: TtlCache::new(DECISION_CACHE_TTL),
            })),
        }
    }

    /// Admits the request or says why not.
    pub async fn check(
        &self,
        node: &str,
        peer: Option<&Peer>,
        bearer: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<(), Refusal> {
        let Self::Delegated(d) = self else {
            return Ok(());
        };
        let Delegated {
            client,
            tokens,
            decisions,
        } = d.as_ref();
        let user = match peer.and_then(|p| p.identity.clone()) {
            Some((name, groups)) => User {
                name,
                uid: None,
                groups,
                extra: None,
            },
            None => {
                let token = bearer.ok_or_else(unauthorized)?;
                review_token(client, tokens, token).await?
            }
        };
        let attrs = attributes(method, path).ok_or_else(|| {
            Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not served"),
            )
        })?;
        for sub in &attrs.subresources {
            let key = format!("{}\0{:?}\0{}\0{sub}", user.name, user.groups, attrs.verb);
            if decisions.get(&key).is_some() {
                return Ok(());
            }
            if access_review(client, node, &user, attrs.verb, sub).await? {
                decisions.put(key, ());
                return Ok(());
            }
        }
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource(s)=[{}])",
                user.name,
                attrs.verb,
                attrs.subresources.join(" ")
            ),
        ))
    }
}

fn unauthorized() -> Refusal {
    Refusal::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

async fn review_token(
    client: &kube::Client,
    cache: &TtlCache<[u8; 32], User>,
    token: &str,
) -> Result<User, Refusal> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(unauthorized());
    }
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(u) = cache.get(&key) {
        return Ok(u);
    }
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: None,
        },
        ..Default::default()
    };
    let api: Api<TokenReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "TokenReview failed");
            unauthorized()
        })?;
    let status = answer.status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    let name = user.username.unwrap_or_default();
    if status.authenticated != Some(true) || name.is_empty() {
        return Err(unauthorized());
    }
    let user = User {
        name,
        uid: user.uid,
        groups: user.groups.unwrap_or_default(),
        extra: user.extra,
    };
    cache.put(key, user.clone());
    Ok(user)
}

async fn access_review(
    client: &kube::Client,
    node: &str,
    user: &User,
    verb: &str,
    subresource: &str,
) -> Result<bool, Refusal> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(String::new()),
                version: Some("v1".into()),
                resource: Some("nodes".into()),
                subresource: Some(subresource.to_string()),
                name: Some(node.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "SubjectAccessReview failed");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!(
                    "Authorization error (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                    user.name
                ),
            )
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Runs [`Auth::check`] before every handler.
pub(crate) async fn middleware(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let checked = state
        .auth
        .check(
            &state.node,
            peer.as_ref(),
            bearer.as_deref(),
            &method,
            &path,
        )
        .await;
    match checked {
        Ok(()) => next.run(req).await,
        Err(r) => {
            let from = peer.map(|p| p.addr);
            tracing::debug!(?from, %path, code = %r.code, "kubelet API request refused");
            r.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_as_the_kubelets() {
        let a = |m: Method, p: &str| attributes(&m, p).unwrap();
        let get = |p: &str| a(Method::GET, p);
        assert_eq!(get("/stats/summary").subresources, ["stats"]);
        assert_eq!(get("/metrics/resource").subresources, ["metrics"]);
        assert_eq!(get("/logs/").subresources, ["log"]);
        assert_eq!(get("/spec").subresources, ["spec"]);
        assert_eq!(get("/pods").subresources, ["pods", "proxy"]);
        assert_eq!(get("/healthz").subresources, ["healthz", "proxy"]);
        assert_eq!(get("/containerLogs/a/b/c").subresources, ["proxy"]);
        assert_eq!(get("/statsx").subresources, ["proxy"]);
        assert_eq!(get("/containerLogs/a/b/c").verb, "get");
        assert_eq!(get("/exec/a/b/c").verb, "create");
        assert_eq!(get("/exec/a/b/c").subresources, ["proxy"]);
        assert_eq!(a(Method::POST, "/attach/a/b/c").verb, "create");
        assert_eq!(a(Method::DELETE, "/pods").verb, "delete");
        assert!(attributes(&Method::OPTIONS, "/pods").is_none());
    }

    #[test]
    fn cache_expires_and_is_bounded() {
        let c: TtlCache<u32, u32> = TtlCache::new(Duration::from_millis(30));
        c.put(1, 10);
        assert_eq!(c.get(&1), Some(10));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&1), None);
        for i in 0..(MAX_CACHED as u32 + 10) {
            c.put(i, i);
        }
        assert!(c.entries.lock().unwrap().len() <= MAX_CACHED);
    }
}
