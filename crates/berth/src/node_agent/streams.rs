//! The node's side of the streams a replica relays, each a WebSocket: an interactive exec
//! (`GET /agent/v1/exec-stream`, framing in `berth_control::cluster::stream`: the process's
//! output to the replica, the replica's input, resizes and kill to the process, its exit
//! code last), a followed log (`/agent/v1/log-stream`) and a port forward's connection
//! (`/agent/v1/dial`).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use berth_control::cluster::protocol::{DialCall, LogQuery};
use berth_control::cluster::stream::{
    frame, ExecStreamCall, ERROR, EXIT, KILL, READY, RESIZE, STDERR, STDIN, STDIN_EOF, STDOUT,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::server::{check_signature, refuse, runs_here, NodeServer};

/// How long the output still flowing when the process ended is waited for.
const DRAIN: Duration = Duration::from_secs(2);

/// The call of a stream's query, `call=HEX` of its JSON.
fn call_of<T: serde::de::DeserializeOwned>(uri: &Uri) -> Option<T> {
    let hex_text = uri.query()?.strip_prefix("call=")?;
    serde_json::from_slice(&hex::decode(hex_text).ok()?).ok()
}

pub(crate) async fn log_stream(
    State(s): State<NodeServer>,
    ws: WebSocketUpgrade,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = check_signature(&s, &method, &uri, &headers, b"") {
        return *resp;
    }
    let Some(q) = call_of::<LogQuery>(&uri) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MalformedCall",
            "call=HEX expected",
        );
    };
    let Some(id) = berth_core::GroupId::parse(q.group.as_str()) else {
        return refuse(StatusCode::BAD_REQUEST, "InvalidGroupId", "not a group id");
    };
    if !runs_here(&s, &id, &q.container) {
        return refuse(
            StatusCode::NOT_FOUND,
            "NoLog",
            format!("no container {:?} in group {id} on this node", q.container),
        );
    }
    let req = q.request();
    let rx = if req.previous {
        // The previous run has ended: its log, read once, is the whole stream.
        crate::observe_node::read_log(&s.agent, &id, &req)
            .await
            .map(|text| {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(text);
                rx
            })
            .map_err(|e| e.to_string())
    } else {
        s.agent
            .follow_log(&id, &req.container, &crate::observe_node::log_query(&req))
            .map_err(|e| format!("{e:#}"))
    };
    let mut rx = match rx {
        Ok(rx) => rx,
        Err(e) => return refuse(StatusCode::NOT_FOUND, "NoLog", e),
    };
    ws.on_upgrade(move |socket| async move {
        let (mut sink, mut input) = socket.split();
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(text) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                // The replica hung up.
                msg = input.next() => if !matches!(msg, Some(Ok(_))) {
                    break;
                },
            }
        }
        let _ = sink.close().await;
    })
    .into_response()
}

pub(crate) async fn dial(
    State(s): State<NodeServer>,
    ws: WebSocketUpgrade,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = check_signature(&s, &method, &uri, &headers, b"") {
        return *resp;
    }
    let Some(call) = call_of::<DialCall>(&uri) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MalformedCall",
            "call=HEX expected",
        );
    };
    let Some(id) = berth_core::GroupId::parse(call.group.as_str()) else {
        return refuse(StatusCode::BAD_REQUEST, "InvalidGroupId", "not a group id");
    };
    if s.desired.spec(&id).is_none() {
        return refuse(
            StatusCode::NOT_FOUND,
            "NoGroup",
            format!("no group {id} on this node"),
        );
    }
    ws.on_upgrade(move |socket| async move {
        let (mut sink, mut input) = socket.split();
        let tcp = match s.agent.dial_loopback(&id, call.port).await {
            Ok(tcp) => tcp,
            Err(e) => {
                let _ = sink.send(Message::Text(format!("{e:#}").into())).await;
                let _ = sink.close().await;
                return;
            }
        };
        if sink.send(Message::Text("ok".into())).await.is_err() {
            return;
        }
        let (mut rd, mut wr) = tokio::io::split(tcp);
        let up = async {
            while let Some(Ok(msg)) = input.next().await {
                match msg {
                    Message::Binary(b) if wr.write_all(&b).await.is_err() => {
                        break;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        let down = async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink
                            .send(Message::Binary(buf[..n].to_vec().into()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        tokio::join!(up, down);
    })
    .into_response()
}

pub(crate) async fn exec_stream(
    State(s): State<NodeServer>,
    ws: WebSocketUpgrade,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = check_signature(&s, &method, &uri, &headers, b"") {
        return *resp;
    }
    let Some(call) = uri.query().and_then(ExecStreamCall::from_query) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "MalformedCall",
            "call=HEX expected",
        );
    };
    let Some(id) = berth_core::GroupId::parse(call.group.as_str()) else {
        return refuse(StatusCode::BAD_REQUEST, "InvalidGroupId", "not a group id");
    };
    if !runs_here(&s, &id, &call.container) || call.command.is_empty() || call.command.len() > 1024
    {
        return refuse(
            StatusCode::NOT_FOUND,
            "NoContainer",
            format!(
                "no container {:?} in group {id} on this node",
                call.container
            ),
        );
    }
    ws.on_upgrade(move |socket| session(socket, s, id, call))
        .into_response()
}

async fn session(socket: WebSocket, s: NodeServer, id: berth_core::GroupId, call: ExecStreamCall) {
    let (mut sink, mut input) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let last = matches!(m.first(), Some(&EXIT) | Some(&ERROR));
            if sink.send(Message::Binary(m.into())).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let req = berth_runtime::ExecRequest {
        args: call.command,
        tty: call.tty,
        stdin: call.stdin,
        size: call.size,
        ..Default::default()
    };
    let mut session = match s.agent.exec_interactive(&id, &call.container, &req).await {
        Ok(session) => session,
        Err(e) => {
            let _ = out_tx.send(frame(ERROR, format!("{e:#}").as_bytes())).await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    };
    let _ = out_tx.send(frame(READY, &[])).await;
    let mut pumps = Vec::new();
    for (ch, r) in [
        (STDOUT, session.stdout.take()),
        (STDERR, session.stderr.take()),
    ] {
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
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Option<(u16, u16)>>(16);
    let mut stdin = session.stdin.take();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = input.next().await {
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
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
                STDIN_EOF => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                RESIZE if rest.len() == 4 => {
                    let cols = u16::from_be_bytes([rest[0], rest[1]]);
                    let rows = u16::from_be_bytes([rest[2], rest[3]]);
                    let _ = ctl_tx.send(Some((cols, rows))).await;
                }
                KILL => {
                    let _ = ctl_tx.send(None).await;
                }
                _ => {}
            }
        }
        // The replica hung up: the process goes.
        let _ = ctl_tx.send(None).await;
    });
    let code = loop {
        let ctl = tokio::select! {
            code = session.wait() => break code,
            c = ctl_rx.recv() => c,
        };
        match ctl {
            Some(Some((cols, rows))) => {
                let _ = session.resize(cols, rows);
            }
            Some(None) | None => {
                session.kill();
                break session.wait().await;
            }
        }
    };
    for p in pumps {
        let _ = tokio::time::timeout(DRAIN, p).await;
    }
    reader.abort();
    let last = match code {
        Ok(code) => frame(EXIT, &code.to_be_bytes()),
        Err(e) => frame(ERROR, e.to_string().as_bytes()),
    };
    let _ = out_tx.send(last).await;
    drop(out_tx);
    let _ = tokio::time::timeout(DRAIN, writer).await;
}
