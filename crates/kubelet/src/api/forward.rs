//! `/portForward/{namespace}/{pod}`: `kubectl port-forward` over SPDY/3.1 with
//! `X-Stream-Protocol-Version: portforward.k8s.io`, the way the API server reaches kubelets
//! (with `kubectl` speaking SPDY, or WebSocket that the API server turns into SPDY). Each
//! forwarded connection becomes a berth PortForward: a connection to the port on the pod's
//! own loopback (`spdy/portforward.rs`). A WebSocket request is refused with a reason: the
//! API server never sends one to a kubelet.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::exec::take_upgrade;
use super::pods::group_of_pod;
use super::reply::Refusal;
use super::spdy::{serve_port_forward, PORTFORWARD_PROTOCOL};
use super::AppState;

pub(crate) async fn port_forward(
    State(state): State<AppState>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Refusal> {
    let (mut parts, _body) = request.into_parts();
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !upgrade.trim().eq_ignore_ascii_case("SPDY/3.1") {
        return Err(Refusal::bad_request(format!(
            "port forwarding is served over SPDY/3.1 ({PORTFORWARD_PROTOCOL}), as the API \
             server speaks it to kubelets; not over {:?}",
            if upgrade.is_empty() {
                "plain HTTP"
            } else {
                upgrade
            }
        )));
    }
    let offered = parts
        .headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == PORTFORWARD_PROTOCOL);
    if !offered {
        return Err(Refusal::bad_request(format!(
            "no stream protocol in common: {PORTFORWARD_PROTOCOL} is served"
        )));
    }
    let on_upgrade = take_upgrade(&mut parts)?;
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "too many log streams, exec sessions and port forwards are open",
        )
    })?;
    let group = group_of_pod(&state, &namespace, &pod).await?;
    let backend = state.backend.clone();
    let name = format!("{namespace}/{pod}");
    tokio::spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(io) => {
                serve_port_forward(TokioIo::new(io), backend, group.container_group_id, name).await
            }
            Err(e) => tracing::debug!("port forward: the SPDY upgrade failed: {e}"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PORTFORWARD_PROTOCOL)
        .body(axum::body::Body::empty())
        .expect("static headers are valid"))
}
