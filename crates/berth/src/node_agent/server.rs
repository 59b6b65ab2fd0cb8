//! The node's own server (docs/NODE_PROTOCOL.md, under `/agent/v1`): what the control plane
//! asks of the node directly — remove a group, read a container's log. Every call must be
//! signed with the node's key by the control plane; anything else is refused.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use berth_control::cluster::protocol::{
    CacheCreated, CacheDelete, CacheOrder, ExecCall, ExecResult, LogQuery, MetricsCall,
    MetricsResult, Refusal, RemoveRequest, MAX_BODY, NODE_PREFIX,
};
use berth_control::cluster::signing::{Nonces, Presented};
use berth_control::NodeError;
use berth_core::GroupId;
use berth_node::Agent;
use serde::de::DeserializeOwned;

use super::watch::Desired;

/// The most seconds of grace a removal may ask for.
const MAX_GRACE_SECS: u64 = 3600;
/// The most seconds a synchronous exec may run.
const MAX_EXEC_SECS: u64 = 600;

#[derive(Clone)]
pub(crate) struct NodeServer {
    pub(crate) agent: Agent,
    pub(crate) node: String,
    pub(crate) key: Arc<Vec<u8>>,
    pub(crate) nonces: Arc<Nonces>,
    pub(crate) desired: Arc<Desired>,
}

pub(crate) fn router(server: NodeServer) -> Router {
    Router::new()
        .route(&format!("{NODE_PREFIX}/remove"), post(remove))
        .route(&format!("{NODE_PREFIX}/log"), post(log))
        .route(&format!("{NODE_PREFIX}/exec"), post(exec))
        .route(&format!("{NODE_PREFIX}/metrics"), post(metrics))
        .route(&format!("{NODE_PREFIX}/cache-create"), post(cache_create))
        .route(&format!("{NODE_PREFIX}/cache-delete"), post(cache_delete))
        .route(
            &format!("{NODE_PREFIX}/exec-stream"),
            axum::routing::get(super::streams::exec_stream),
        )
        .route(
            &format!("{NODE_PREFIX}/log-stream"),
            axum::routing::get(super::streams::log_stream),
        )
        .route(
            &format!("{NODE_PREFIX}/dial"),
            axum::routing::get(super::streams::dial),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(server)
}

pub(crate) fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(Refusal {
            code: code.to_owned(),
            message: message.into(),
        }),
    )
        .into_response()
}

/// Checks the call's signature: the control plane's, with this node's key.
pub(crate) fn check_signature(
    s: &NodeServer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let presented = Presented::read(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map_err(|e| Box::new(refuse(StatusCode::UNAUTHORIZED, "Unsigned", e.to_string())))?;
    if presented.node != s.node {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "WrongNode",
            "the call is signed for another node",
        )));
    }
    presented
        .verify(
            &s.key,
            method.as_str(),
            uri.path(),
            uri.query().unwrap_or(""),
            body,
            chrono::Utc::now().timestamp(),
            &s.nonces,
        )
        .map_err(|e| {
            Box::new(refuse(
                StatusCode::UNAUTHORIZED,
                "SignatureDoesNotMatch",
                e.to_string(),
            ))
        })
}

/// The body of a call of the control plane, once its signature holds.
pub(crate) struct Signed<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<NodeServer> for Signed<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &NodeServer) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, "MalformedBody", e.to_string()))?;
        check_signature(s, &parts.method, &parts.uri, &parts.headers, &body).map_err(|r| *r)?;
        serde_json::from_slice(&body)
            .map(Signed)
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, "MalformedBody", e.to_string()))
    }
}

/// A call about one group.
pub(crate) trait ForGroup {
    fn group(&self) -> &GroupId;
}

macro_rules! for_group {
    ($($t:ty),*) => {$(
        impl ForGroup for $t {
            fn group(&self) -> &GroupId {
                &self.group
            }
        }
    )*};
}
for_group!(RemoveRequest, LogQuery, ExecCall, MetricsCall);

/// A signed call about a group, with the group's id checked.
pub(crate) struct GroupCall<T>(pub(crate) GroupId, pub(crate) T);

impl<T: DeserializeOwned + ForGroup + Send> FromRequest<NodeServer> for GroupCall<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &NodeServer) -> Result<Self, Response> {
        let Signed(call) = Signed::<T>::from_request(req, s).await?;
        let id = group_id(call.group()).map_err(|r| *r)?;
        Ok(GroupCall(id, call))
    }
}

fn group_id(id: &GroupId) -> Result<GroupId, Box<Response>> {
    GroupId::parse(id.as_str()).ok_or_else(|| {
        Box::new(refuse(
            StatusCode::BAD_REQUEST,
            "InvalidGroupId",
            format!("{:?} is not a container group id", id.as_str()),
        ))
    })
}

async fn remove(
    State(s): State<NodeServer>,
    GroupCall(id, req): GroupCall<RemoveRequest>,
) -> Response {
    let grace = Duration::from_secs(req.grace_secs.min(MAX_GRACE_SECS));
    let spec = s.desired.spec(&id);
    // Before anything else: a record of this run on its way from the watch is not applied.
    s.agent.fence(
        &id,
        req.generation.max(s.desired.generation(&id).unwrap_or(0)),
    );
    tracing::info!(group = %id, grace_s = grace.as_secs(), "the control plane removes a group");
    // Its own task: a control plane that hangs up (or dies) does not cut a removal short.
    let (agent, group) = (s.agent.clone(), id.clone());
    let removal =
        tokio::spawn(async move { agent.remove_fully(&group, spec.as_ref(), grace).await });
    match removal.await {
        Ok(Ok(())) => {
            s.desired.forget(&id);
            axum::Json(serde_json::json!({})).into_response()
        }
        Ok(Err(e)) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "RemoveFailed",
            format!("{e:#}"),
        ),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "RemoveFailed",
            e.to_string(),
        ),
    }
}

async fn log(State(s): State<NodeServer>, GroupCall(id, q): GroupCall<LogQuery>) -> Response {
    if !runs_here(&s, &id, &q.container) {
        return refuse(
            StatusCode::NOT_FOUND,
            "NoLog",
            format!("no container {:?} in group {id} on this node", q.container),
        );
    }
    match crate::observe_node::read_log(&s.agent, &id, &q.request()).await {
        Ok(text) => axum::Json(serde_json::json!({ "text": text })).into_response(),
        Err(NodeError::NotFound(c)) => refuse(StatusCode::NOT_FOUND, "NoLog", c),
        Err(NodeError::Failed(m)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "LogFailed", m),
    }
}

/// Whether `container` is a container of a group placed here (by its name in the spec).
pub(crate) fn runs_here(s: &NodeServer, id: &GroupId, container: &str) -> bool {
    s.desired
        .spec(id)
        .is_some_and(|spec| spec.all_containers().any(|c| c.name == container))
}

async fn exec(State(s): State<NodeServer>, GroupCall(id, call): GroupCall<ExecCall>) -> Response {
    if !runs_here(&s, &id, &call.container) {
        return refuse(
            StatusCode::NOT_FOUND,
            "NoContainer",
            format!(
                "no container {:?} in group {id} on this node",
                call.container
            ),
        );
    }
    let req = berth_runtime::ExecRequest {
        args: call.command,
        tty: call.tty,
        stdin: call.stdin,
        ..Default::default()
    };
    let timeout = Duration::from_secs(call.timeout_secs.clamp(1, MAX_EXEC_SECS));
    match s.agent.exec_sync(&id, &call.container, &req, timeout).await {
        Ok(out) => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            axum::Json(ExecResult {
                stdout: b64.encode(&out.stdout),
                stderr: b64.encode(&out.stderr),
                exit_code: out.exit_code,
            })
            .into_response()
        }
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ExecFailed",
            format!("{e:#}"),
        ),
    }
}

async fn metrics(
    State(s): State<NodeServer>,
    GroupCall(id, call): GroupCall<MetricsCall>,
) -> Response {
    axum::Json(MetricsResult {
        points: s.agent.metrics(&id, call.start, call.end),
    })
    .into_response()
}

/// Builds an image cache for the control plane (CreateImageCache, UpdateImageCache).
async fn cache_create(State(s): State<NodeServer>, Signed(order): Signed<CacheOrder>) -> Response {
    let pull = berth_node::CachePull {
        account: order.account,
        credentials: order.registry_credentials,
        plain_http: order.plain_http_registries,
        insecure: order.insecure_registries,
    };
    tracing::info!(cache = %order.id, images = order.images.len(), "the control plane has the node build an image cache");
    // Its own task: a control plane that hangs up does not leave a build half made.
    let agent = s.agent.clone();
    let built = tokio::spawn(async move {
        agent
            .create_image_cache(&order.id, &order.images, &pull)
            .await
    });
    match built.await {
        Ok(Ok(info)) => axum::Json(CacheCreated {
            size_bytes: info.size_bytes,
        })
        .into_response(),
        Ok(Err(e)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CacheFailed",
            crate::cache_node::error_chain(&e),
        ),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CacheFailed",
            e.to_string(),
        ),
    }
}

/// Releases an image cache (DeleteImageCache, expiry, an older build).
async fn cache_delete(State(s): State<NodeServer>, Signed(req): Signed<CacheDelete>) -> Response {
    match s.agent.delete_image_cache(&req.id) {
        Ok(()) => axum::Json(serde_json::json!({})).into_response(),
        Err(e) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CacheFailed",
            crate::cache_node::error_chain(&e),
        ),
    }
}
