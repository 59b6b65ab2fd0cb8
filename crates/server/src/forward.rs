//! PortForward (berth's extension, docs/API-EXTENSIONS.md) and its WebSocket: the signed call
//! checks the group and answers `ws://<host>/portforward/<token>` (`wss://` over TLS), a
//! one-time token valid 30 s. Connecting there opens a TCP connection to the port on
//! 127.0.0.1 inside the group's network namespace — as `kubectl port-forward` reaches a
//! pod's port — and relays bytes: each binary message carries the next bytes of the stream,
//! either way. An empty binary message from the client ends its sending half (the connection
//! to the port gets a FIN) while the port's answer still comes back. The port's end closing
//! closes the WebSocket; the WebSocket closing closes the connection. At most
//! [`MAX_FORWARDS_PER_ACCOUNT`] run at once per account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_control::PortStream;
use berth_core::GroupId;
use berth_eci::request::PortForwardRequest;
use berth_eci::ApiError;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actions::{group_id, map_err};
use crate::{linger, AppState};

/// Most port forwards open at once for one account.
pub const MAX_FORWARDS_PER_ACCOUNT: usize = 64;
/// Largest message relayed at once from the TCP end.
const CHUNK: usize = 32 * 1024;

/// What a port-forward token stands for.
pub struct ForwardGrant {
    account: String,
    group: GroupId,
    port: u16,
}

/// The forwards open per account.
#[derive(Default)]
pub struct OpenForwards(Mutex<HashMap<String, usize>>);

/// One open forward, counted until dropped.
struct Slot {
    open: Arc<OpenForwards>,
    account: String,
}

impl OpenForwards {
    fn take(self: &Arc<Self>, account: &str) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(account.to_string()).or_default();
        if *n >= MAX_FORWARDS_PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: Arc::clone(self),
            account: account.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.account);
            }
        }
    }
}

/// PortForward.
pub async fn action(
    state: &AppState,
    account: &str,
    r: PortForwardRequest,
    host: &str,
) -> Result<serde_json::Value, ApiError> {
    let id = group_id(&r.container_group_id)?;
    state
        .control
        .check_port_forward(account, &id)
        .await
        .map_err(map_err)?;
    let token = state.forward_tokens.issue(ForwardGrant {
        account: account.to_string(),
        group: id,
        port: r.port,
    });
    Ok(serde_json::json!({
        "WebSocketUri": format!("{}://{host}/portforward/{token}", state.url_scheme(true)),
    }))
}

/// `GET /portforward/<token>`: connects to the port, then relays.
pub async fn socket(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(grant) = state.forward_tokens.take(&token) else {
        return (
            StatusCode::UNAUTHORIZED,
            "the port-forward token is unknown, used or expired\n",
        )
            .into_response();
    };
    let Some(slot) = state.open_forwards.take(&grant.account) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {MAX_FORWARDS_PER_ACCOUNT} port forwards may be open at once\n"),
        )
            .into_response();
    };
    let stream = match state
        .control
        .port_forward(&grant.account, &grant.group, grant.port)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("cannot connect to port {}: {e}\n", grant.port),
            )
                .into_response()
        }
    };
    ws.on_upgrade(move |socket| async move {
        relay(socket, stream).await;
        drop(slot);
    })
}

/// Relays until the port's side ends, or the client goes.
async fn relay(socket: WebSocket, stream: PortStream) {
    let (mut sink, mut input) = socket.split();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let outward = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    };
    // Ok: the client ended its half (an empty message); Err: it went.
    let inward = async {
        while let Some(Ok(msg)) = input.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if data.is_empty() {
                let _ = wr.shutdown().await;
                return Ok(());
            }
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
        Err(())
    };
    tokio::pin!(outward);
    let client_done = tokio::select! {
        _ = &mut outward => false,
        half = inward => {
            if half.is_ok() {
                outward.await;
            }
            half.is_err()
        }
    };
    if !client_done {
        linger::drain(&mut input).await;
    }
}
