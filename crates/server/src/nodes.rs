//! The node protocol's endpoints on the API address (docs/NODE_PROTOCOL.md), served by a
//! control plane that runs in a cluster: `/node/v1/join` with a join token, and the watch,
//! report, heartbeat, seccomp and cache calls signed with the node's key. Handlers check and translate; the
//! answers are the control plane's (`berth_control::cluster`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_control::cluster::protocol::{
    CacheQuery, Heartbeat, JoinRequest, Refusal, ReportBatch, SeccompQuery, MAX_BODY, PREFIX,
};
use berth_control::cluster::signing::Presented;
use berth_control::cluster::NodeCallError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::AppState;

/// The node endpoints, with their own body limit.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{PREFIX}/join"), post(join))
        .route(&format!("{PREFIX}/watch"), get(watch))
        .route(&format!("{PREFIX}/report"), post(report))
        .route(&format!("{PREFIX}/heartbeat"), post(heartbeat))
        .route(&format!("{PREFIX}/seccomp"), post(seccomp))
        .route(&format!("{PREFIX}/cache"), post(cache))
        .route(&format!("{PREFIX}/caches"), post(caches))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

fn refuse(status: u16, code: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(Refusal {
            code: code.to_owned(),
            message: message.into(),
        }),
    )
        .into_response()
}

fn answer<T: Serialize>(res: Result<T, NodeCallError>) -> Response {
    match res {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => {
            if let NodeCallError::Store(inner) = &e {
                tracing::error!(error = %inner, "a node call failed in the store");
            }
            refuse(e.status(), e.code(), e.to_string())
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(refuse(
            400,
            "MalformedBody",
            format!("the body is not valid: {e}"),
        ))
    })
}

/// The node whose signature the call carries, once it holds.
async fn signed_by(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, Box<Response>> {
    let unsigned = |e: String| Box::new(refuse(401, "Unauthorized", e));
    let presented = Presented::read(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map_err(|e| unsigned(e.to_string()))?;
    let key = match s.control.node_key(&presented.node).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(unsigned(format!("no node {}", presented.node))),
        Err(e) => return Err(Box::new(answer::<()>(Err(e)))),
    };
    presented
        .verify(
            &key,
            method.as_str(),
            uri.path(),
            uri.query().unwrap_or(""),
            body,
            chrono::Utc::now().timestamp(),
            &s.node_nonces,
        )
        .map_err(|e| unsigned(e.to_string()))?;
    Ok(presented.node)
}

async fn join(State(s): State<AppState>, body: Bytes) -> Response {
    let req: JoinRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    answer(s.control.node_join(req).await)
}

async fn watch(
    State(s): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let node = match signed_by(&s, &method, &uri, &headers, b"").await {
        Ok(n) => n,
        Err(resp) => return *resp,
    };
    let after = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .map(str::parse::<u64>);
    let after = match after {
        Some(Ok(a)) => a,
        _ => return refuse(400, "InvalidParameter", "the watch needs after=REVISION"),
    };
    answer(s.control.node_watch(&node, after).await)
}

/// A node's signed call: the node, and the call's body (JSON; `()` for an empty one).
struct NodeCall<T>(String, T);

impl<T: DeserializeOwned> FromRequest<AppState> for NodeCall<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| refuse(400, "MalformedBody", e.to_string()))?;
        let node = signed_by(s, &parts.method, &parts.uri, &parts.headers, &body)
            .await
            .map_err(|r| *r)?;
        let call = if body.is_empty() {
            parse(b"null")
        } else {
            parse(&body)
        };
        Ok(NodeCall(node, call.map_err(|r| *r)?))
    }
}

async fn report(
    State(s): State<AppState>,
    NodeCall(node, batch): NodeCall<ReportBatch>,
) -> Response {
    answer(s.control.node_report(&node, batch).await)
}

async fn heartbeat(State(s): State<AppState>, NodeCall(node, hb): NodeCall<Heartbeat>) -> Response {
    answer(s.control.node_heartbeat(&node, hb).await)
}

async fn seccomp(State(s): State<AppState>, NodeCall(node, q): NodeCall<SeccompQuery>) -> Response {
    answer(s.control.node_seccomp(&node, q).await)
}

async fn cache(State(s): State<AppState>, NodeCall(node, q): NodeCall<CacheQuery>) -> Response {
    answer(s.control.node_cache(&node, q).await)
}

async fn caches(State(s): State<AppState>, NodeCall(node, ()): NodeCall<()>) -> Response {
    answer(s.control.node_caches(&node).await)
}
