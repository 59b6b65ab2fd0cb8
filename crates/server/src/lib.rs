//! The HTTP front of berth: one signed ECI RPC endpoint (`/`, GET or POST, the action in
//! `x-acs-action` or `Action`), answering with the JSON bodies and error codes of ECI.
//! Handlers only check and translate; the work is the control plane's.

mod actions;
mod bounded;
mod cache;
mod exec;
mod forward;
mod guard;
mod linger;
mod metrics;
mod nodes;
mod nonce;
mod observe;
mod price;
mod rendered;
mod sign_in;
mod tags;
mod throttle;
mod tls;
mod tokens;
mod usage;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_control::Control;
use berth_eci::{ApiError, Params, RawRequest};
use chrono::Utc;
use rand::RngCore;

use crate::nonce::NonceCache;
pub use crate::price::size_prices;
pub use crate::sign_in::{session_account, sign_in};
pub use crate::throttle::{Rate, ThrottleConfig};
pub use crate::tls::{server_config as tls_server_config, TlsError};

/// Largest request body accepted (ECI requests carry none).
const MAX_BODY: usize = 1 << 20;
/// API connections served at once by default (see [`AppState::with_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    control: Arc<Control>,
    nonces: Arc<NonceCache>,
    /// The nonces of node calls (cluster mode).
    node_nonces: Arc<berth_control::cluster::signing::Nonces>,
    exec_tokens: Arc<tokens::Tokens<exec::ExecGrant>>,
    log_tokens: Arc<tokens::Tokens<observe::LogGrant>>,
    forward_tokens: Arc<tokens::Tokens<forward::ForwardGrant>>,
    open_forwards: Arc<forward::OpenForwards>,
    api_metrics: Arc<metrics::ApiMetrics>,
    rendered: Arc<rendered::Rendered>,
    throttle: Arc<throttle::Throttle>,
    /// The operator's bearer token that opens `/metrics` on the API address; without one,
    /// `/metrics` is served only by [`metrics_router`].
    metrics_token: Option<Arc<str>>,
    /// Whether the API is served over TLS: the exec and log-stream URLs handed out are then
    /// `wss://` and `https://`.
    tls: bool,
    /// Connections served at once; further clients wait in the listen backlog.
    max_connections: usize,
}

impl AppState {
    pub fn new(control: Arc<Control>) -> Self {
        let api_metrics: Arc<metrics::ApiMetrics> = Arc::default();
        let m = Arc::clone(&api_metrics);
        control.on_event(Box::new(move |rec, ev| m.observe_event(rec, ev)));
        Self {
            control,
            nonces: Arc::new(NonceCache::new()),
            node_nonces: Arc::default(),
            exec_tokens: Arc::default(),
            log_tokens: Arc::default(),
            forward_tokens: Arc::default(),
            open_forwards: Arc::default(),
            api_metrics,
            rendered: Arc::default(),
            throttle: Arc::new(throttle::Throttle::new(ThrottleConfig::default())),
            metrics_token: None,
            tls: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The scheme of the URLs handed out for `/exec` (`ws`/`wss`) and `/logs` (`http`/`https`).
    pub(crate) fn url_scheme(&self, web_socket: bool) -> &'static str {
        match (web_socket, self.tls) {
            (true, false) => "ws",
            (true, true) => "wss",
            (false, false) => "http",
            (false, true) => "https",
        }
    }

    /// Whether the API is served over TLS (set by [`serve_tls`]).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The control plane the API calls.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Which volumes reaching outside a group (NFS, host paths) the operator allows: the
    /// console offers those types only when some are.
    pub fn volume_policy(&self) -> berth_core::VolumePolicy {
        self.control.volume_policy()
    }

    /// The same with other throttling limits.
    pub fn with_throttle(mut self, config: ThrottleConfig) -> Self {
        self.throttle = Arc::new(throttle::Throttle::new(config));
        self
    }

    /// Serves at most `n` connections at once (exec and log streams included); further
    /// clients wait in the listen backlog, so no client takes the open files of the node.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The same, served over TLS: exec and log-stream URLs are `wss://` and `https://`. Set it
    /// before handing the state to routers that read [`AppState::tls`].
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Opens `/metrics` on the API address to requests with `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: &str) -> Self {
        self.metrics_token = Some(Arc::from(token));
        self
    }
}

/// The account a call acts for. Made only by this crate: from a request whose signature was
/// verified with the account's key, or by [`sign_in`] with the key's secret (or
/// [`session_account`], which reads that key again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account(String);

impl Account {
    /// The account's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Why a request was refused: an ECI error, with the milliseconds after which a retry may
/// pass when it was throttled.
struct Refused {
    error: ApiError,
    retry_after_ms: Option<u64>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after_ms: None,
        }
    }
}

/// The router of the API.
pub fn router(state: AppState) -> Router {
    // A replica of a cluster serves its nodes' calls too.
    let nodes = if state.control.in_cluster() {
        nodes::routes()
    } else {
        Router::new()
    };
    Router::new()
        .route("/", axum::routing::any(handle))
        .route("/exec/{token}", axum::routing::get(exec::socket))
        .route("/portforward/{token}", axum::routing::get(forward::socket))
        .route(
            "/logs/{group}/{container}",
            axum::routing::get(observe::log_stream),
        )
        .route("/metrics", axum::routing::get(metrics::guarded))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .merge(nodes)
        .with_state(state)
        .layer(axum::middleware::map_response(guard::eci_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            guard::panic_response,
        ))
}

/// The router of a separate metrics address (`berth serve --metrics-listen`): `/metrics`
/// open to whoever reaches that address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::handler))
        .with_state(state)
        .layer(axum::middleware::map_response(guard::eci_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            guard::panic_response,
        ))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Vec::new(), shutdown).await
}

/// [`router`] with `extra` routers nested under their paths (each a path of its own, such
/// as `/console`): they keep their own answers, the API's layers do not touch them.
fn composed(state: AppState, extra: Vec<(&'static str, Router)>) -> Router {
    extra.into_iter().fold(router(state), |r, (path, nested)| {
        r.nest_service(path, nested)
    })
}

/// [`serve`] with `extra` routers nested under their paths.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Vec<(&'static str, Router)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    guard::install_panic_log();
    let listener = bounded::Bounded::new(listener, state.max_connections);
    axum::serve(listener, composed(state, extra))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the API over TLS with `config` (see [`tls_server_config`]) on `listener`, with
/// `extra` routers nested as [`serve_with`] does, until `shutdown` resolves; the exec and
/// log-stream URLs handed out are `wss://` and `https://`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: AppState,
    extra: Vec<(&'static str, Router)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    guard::install_panic_log();
    let state = state.with_tls();
    let listener = bounded::Bounded::new(
        tls::TlsListener::with_plain_answer(listener, config, tls::need_tls_response())?,
        state.max_connections,
    );
    axum::serve(listener, composed(state, extra))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves [`metrics_router`] on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A request id of the form ECI uses (`8-4-4-4-12` upper-case hex).
fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 0x0f) as usize] as char);
    }
    out
}

/// A success body: a JSON value that gets its `RequestId` when the answer is written, or JSON
/// text serialized straight from a response type that carries the `RequestId` already (no
/// intermediate `serde_json::Value` for the large answers of the Describe actions).
pub(crate) enum Reply {
    Value(serde_json::Value),
    Text(String),
}

impl Reply {
    fn into_text(self, rid: &str) -> String {
        match self {
            Reply::Value(mut v) => {
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("RequestId".into(), serde_json::Value::String(rid.into()));
                }
                v.to_string()
            }
            Reply::Text(t) => t,
        }
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rid = request_id();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %rid);
    let result = tracing::Instrument::instrument(
        process(&state, &method, &uri, &headers, &body, &rid),
        span,
    )
    .await;
    let action_name = match &result {
        Ok((a, _)) => *a,
        Err(_) => "error",
    };
    let mut retry_after = None;
    let (status, text) = match result {
        Ok((action, reply)) => {
            tracing::debug!(
                action,
                elapsed_us = started.elapsed().as_micros() as u64,
                "ok"
            );
            (StatusCode::OK, reply.into_text(&rid))
        }
        Err(Refused {
            error: e,
            retry_after_ms,
        }) => {
            tracing::info!(code = %e.code, status = e.status, message = %e.message, "request refused");
            retry_after = retry_after_ms;
            let st = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (st, e.to_body(&rid, &host).to_string())
        }
    };
    state.api_metrics.observe(
        action_name,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Some(ms) = retry_after {
        resp.headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    resp.headers_mut().insert(
        "x-acs-request-id",
        HeaderValue::from_str(&rid).unwrap_or(HeaderValue::from_static("")),
    );
    resp
}

async fn process(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    rid: &str,
) -> Result<(&'static str, Reply), Refused> {
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::new(
            400,
            "UnsupportedHTTPMethod",
            format!("The HTTP method is not supported: {method}"),
        )
        .into());
    }
    let raw_query = uri.query().unwrap_or("");
    let hdrs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw = RawRequest {
        method: method.as_str(),
        path: uri.path(),
        raw_query,
        headers: &hdrs,
        body,
    };
    let form_body = raw
        .header("content-type")
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        .then_some(body);
    let params = Params::parse(raw_query, form_body)?;
    let action_name = raw
        .header("x-acs-action")
        .map(str::to_string)
        .or_else(|| params.string("Action"))
        .ok_or_else(|| ApiError::missing_parameter("Action"))?;
    let action = berth_eci::Action::parse(&action_name)?;
    let version = raw
        .header("x-acs-version")
        .map(str::to_string)
        .or_else(|| params.string("Version"));
    berth_eci::request::check_version(version.as_deref())?;

    let account = authenticate(state, &raw, &action_name).await?;
    tracing::debug!(request_id = rid, action = action.as_str(), "request");
    let host = raw.header("host").unwrap_or("").to_string();
    let reply = call_reply(state, &account, action, &params, &host, rid).await?;
    Ok((action.as_str(), reply))
}

/// Runs `action` with `params` for `account`: throttling, decoding, ownership, quotas and
/// validation exactly as for a signed request, which goes through here once its signature is
/// verified. `host` is the address the caller reached (exec and log-stream URLs name it).
/// The answer is the JSON body without its `RequestId`.
pub async fn call(
    state: &AppState,
    account: &Account,
    action: berth_eci::Action,
    params: &Params,
    host: &str,
) -> Result<serde_json::Value, ApiError> {
    let rid = request_id();
    let reply = call_reply(state, account, action, params, host, &rid)
        .await
        .map_err(|r| r.error)?;
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Text(t) => {
            let mut v: serde_json::Value = serde_json::from_str(&t).map_err(ApiError::internal)?;
            if let Some(obj) = v.as_object_mut() {
                obj.remove("RequestId");
            }
            Ok(v)
        }
    }
}

async fn call_reply(
    state: &AppState,
    account: &Account,
    action: berth_eci::Action,
    params: &Params,
    host: &str,
    rid: &str,
) -> Result<Reply, Refused> {
    let account = account.name();
    if let Err(ms) = state.throttle.take(account, action) {
        return Err(Refused {
            error: throttle::throttled(action),
            retry_after_ms: Some(ms),
        });
    }
    let request = berth_eci::request::decode(action, params)?;
    let request = match observe::dispatch(state, account, request, params, host).await? {
        Ok(value) => return Ok(Reply::Value(value)),
        Err(request) => request,
    };
    Ok(actions::dispatch(&state.control, &state.rendered, account, request, rid).await?)
}

/// Checks the signature and the nonce of a request and answers the account of its key. A key
/// that is disabled, or whose account is, is refused before anything the request asks is done;
/// the key is read from the store for every request, so a change counts at once.
async fn authenticate(
    state: &AppState,
    raw: &RawRequest<'_>,
    action_name: &str,
) -> Result<Account, ApiError> {
    let control = &state.control;
    let now = Utc::now();
    // The key is read (asynchronously) between two passes of the check: the first finds which
    // key the request names, or its fault when it is not well formed; the second checks the
    // signature with that key's secret.
    let asked = std::cell::RefCell::new(None::<String>);
    let first = berth_eci::verify(
        raw,
        |ak| {
            *asked.borrow_mut() = Some(ak.to_string());
            None
        },
        now,
    );
    let Some(asked) = asked.into_inner() else {
        return Err(match first {
            Err(e) => e.into(),
            Ok(_) => ApiError::internal("a signature was checked without a key"),
        });
    };
    // A failed read is the server's fault, never an unknown key.
    let key = control
        .check_access_key(&asked)
        .await
        .map_err(ApiError::internal)?;
    let verified = berth_eci::verify(
        raw,
        |ak| {
            key.as_ref()
                .filter(|k| k.key.access_key_id == ak)
                .map(|k| k.key.secret.clone())
        },
        now,
    )?;
    if let Some(signed) = &verified.action {
        if signed != action_name {
            return Err(ApiError::new(400, "SignatureDoesNotMatch", format!("Specified signature is not matched with our calculation: the signed action is {signed}")));
        }
    }
    let Some(key) = key.filter(|k| k.key.access_key_id == verified.access_key_id) else {
        return Err(ApiError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            format!(
                "Specified access key is not found: {}",
                verified.access_key_id
            ),
        ));
    };
    if !key.active {
        return Err(ApiError::new(
            400,
            "InvalidAccessKeyId.Inactive",
            format!(
                "Specified access key is disabled: {}",
                verified.access_key_id
            ),
        ));
    }
    if !state
        .nonces
        .insert(&verified.access_key_id, &verified.nonce, verified.timestamp)
    {
        return Err(ApiError::signature_nonce_used(&verified.nonce));
    }
    Ok(Account(key.key.account))
}
