//! ExecContainerCommand and its WebSocket. A sync exec runs to its end and its output goes in
//! the response. Otherwise the response carries `ws://<host>/exec/<token>` (`wss://` when the
//! API is served over TLS), a one-time token valid for 30 s; connecting there starts the
//! command and speaks the Kubernetes `v4.channel.k8s.io` (or `v5.channel.k8s.io`) framing:
//! every binary message starts with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 the final
//! status (JSON), 4 terminal resize (`{"Width":..,"Height":..}`), and with v5, 255 to close a
//! stream (`[255, 0]` ends stdin). The server closes first, after the status, and reads the
//! client's messages until its Close (`linger.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_control::{Control, ExecRequest, ExecStream};
use berth_core::GroupId;
use berth_eci::response::ExecContainerCommandResponse;
use berth_eci::ApiError;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::actions::{group_id, map_err};
use crate::{linger, AppState};

/// How long a sync exec may run.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// The subprotocols spoken, preferred first.
pub const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
/// How long output is still forwarded after the process ended.
const DRAIN: Duration = Duration::from_secs(2);

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What an exec token stands for.
pub struct ExecGrant {
    account: String,
    group: GroupId,
    req: ExecRequest,
}

/// ExecContainerCommand.
pub async fn action(
    state: &AppState,
    account: &str,
    r: berth_eci::request::ExecRequest,
    host: &str,
) -> Result<serde_json::Value, ApiError> {
    let id = group_id(&r.container_group_id)?;
    let req = ExecRequest {
        container: r.container_name,
        command: r.command,
        tty: r.tty,
        stdin: r.stdin,
        size: None,
    };
    let body = if r.sync {
        let out = state
            .control
            .exec_sync(account, &id, &req, SYNC_TIMEOUT)
            .await
            .map_err(map_err)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ExecContainerCommandResponse {
            sync_response: format!("{stdout}{stderr}"),
            exit_code: Some(out.exit_code),
            stdout: Some(stdout),
            stderr: Some(stderr),
            ..Default::default()
        }
    } else {
        state
            .control
            .check_exec(account, &id, &req)
            .await
            .map_err(map_err)?;
        let token = state.exec_tokens.issue(ExecGrant {
            account: account.to_string(),
            group: id,
            req,
        });
        ExecContainerCommandResponse {
            web_socket_uri: format!("{}://{host}/exec/{token}", state.url_scheme(true)),
            ..Default::default()
        }
    };
    serde_json::to_value(body).map_err(ApiError::internal)
}

/// `GET /exec/<token>`: the WebSocket of an interactive exec.
pub async fn socket(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(grant) = state.exec_tokens.take(&token) else {
        return (
            StatusCode::UNAUTHORIZED,
            "the exec token is unknown, used or expired\n",
        )
            .into_response();
    };
    let ws = ws.protocols(PROTOCOLS);
    let v5 = ws
        .selected_protocol()
        .is_some_and(|p| p.as_bytes() == PROTOCOLS[0].as_bytes());
    let control = state.control.clone();
    ws.on_upgrade(move |socket| session(socket, control, grant, v5))
}

/// The status message of channel 3, as Kubernetes writes it.
pub fn status_json(result: Result<i32, String>) -> String {
    let v = match result {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(m) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": m,
            "reason": "InternalError",
        }),
    };
    v.to_string()
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Size {
    width: u16,
    height: u16,
}

async fn session(socket: WebSocket, control: Arc<Control>, grant: ExecGrant, v5: bool) {
    let (mut sink, mut input) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let stream = control
        .exec_start(&grant.account, &grant.group, &grant.req)
        .await;
    let ExecStream {
        stdin,
        stdout,
        stderr,
        mut process,
        ..
    } = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = out_tx
                .send(frame(STATUS, status_json(Err(e.to_string())).as_bytes()))
                .await;
            let _ = out_tx.send(Message::Close(None)).await;
            drop(out_tx);
            let _ = writer.await;
            linger::drain(&mut input).await;
            return;
        }
    };
    let mut pumps = Vec::new();
    for (ch, r) in [(STDOUT, stdout), (STDERR, stderr)] {
        if let Some(mut r) = r {
            let tx = out_tx.clone();
            pumps.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(frame(ch, &buf[..n])).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    // Input: stdin and resizes, until the client goes or closes, or the process ended (then
    // the client's socket is handed back, to be read until its Close).
    let (resize_tx, mut resize_rx) = mpsc::channel::<(u16, u16)>(16);
    let (gone_tx, mut gone_rx) = oneshot::channel::<()>();
    let (ended_tx, mut ended_rx) = oneshot::channel::<()>();
    let mut reader = tokio::spawn(async move {
        let mut stdin = stdin;
        loop {
            let next = tokio::select! {
                m = input.next() => m,
                _ = &mut ended_rx => return Some(input),
            };
            let Some(Ok(msg)) = next else { break };
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, rest)) = data.split_first() else {
                continue;
            };
            match ch {
                STDIN => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(rest).await.is_err() || w.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    if let Ok(s) = serde_json::from_slice::<Size>(rest) {
                        let _ = resize_tx.send((s.width, s.height)).await;
                    }
                }
                CLOSE if v5 && rest.first() == Some(&STDIN) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            }
        }
        let _ = gone_tx.send(());
        None
    });
    let code = loop {
        let size = tokio::select! {
            code = process.wait() => break code,
            s = resize_rx.recv() => s,
            _ = &mut gone_rx => {
                process.kill();
                break process.wait().await;
            }
        };
        match size {
            Some((cols, rows)) => {
                let _ = process.resize(cols, rows);
            }
            None => {
                break tokio::select! {
                    code = process.wait() => code,
                    _ = &mut gone_rx => {
                        process.kill();
                        process.wait().await
                    }
                };
            }
        }
    };
    for p in pumps {
        let _ = tokio::time::timeout(DRAIN, p).await;
    }
    let _ = ended_tx.send(());
    let status = status_json(code.map_err(|e| e.to_string()));
    let _ = out_tx.send(frame(STATUS, status.as_bytes())).await;
    let _ = out_tx.send(Message::Close(None)).await;
    drop(out_tx);
    let _ = tokio::time::timeout(DRAIN, writer).await;
    // The reader hands the socket back at once, unless it is writing to a stdin that a child
    // of the process still holds.
    match tokio::time::timeout(DRAIN, &mut reader).await {
        Ok(Ok(Some(mut input))) => linger::drain(&mut input).await,
        Ok(_) => {}
        Err(_) => reader.abort(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_kubernetes_writes_them() {
        assert_eq!(status_json(Ok(0)), r#"{"metadata":{},"status":"Success"}"#);
        let v: serde_json::Value = serde_json::from_str(&status_json(Ok(3))).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
    }
}
