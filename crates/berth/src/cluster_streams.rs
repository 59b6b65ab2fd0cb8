//! A replica's side of the streams of a group on a node of a cluster, each a WebSocket to the
//! node's server signed with the node's key: an interactive exec (`/agent/v1/exec-stream`,
//! framing in `berth_control::cluster::stream`) turned into the [`ExecStream`] the API's
//! exec relays, a followed log (`/agent/v1/log-stream`, a text message a chunk), and a port
//! forward's connection (`/agent/v1/dial`, the bytes as binary messages).

use async_trait::async_trait;
use berth_control::cluster::protocol::{DialCall, LogQuery, NODE_PREFIX};
use berth_control::cluster::signing;
use berth_control::cluster::stream::{
    frame, ExecStreamCall, ERROR, EXIT, KILL, READY, RESIZE, STDERR, STDIN, STDIN_EOF, STDOUT,
};
use berth_control::{ExecProcess, ExecStream, NodeError};
use berth_core::NodeRecord;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::node_tls::Trust;

/// Bytes buffered between the WebSocket and the API's relay, each way.
const PIPE: usize = 64 * 1024;

fn failed(e: impl std::fmt::Display) -> NodeError {
    NodeError::Failed(e.to_string())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `path?query` on `node`, signed; over TLS to a node that speaks it,
/// trusting `trust` (else the system's roots).
async fn connect(
    node: &NodeRecord,
    path: &str,
    query: &str,
    trust: Option<&Trust>,
) -> Result<Socket, NodeError> {
    let signed = signing::sign(
        &node.info.id,
        &node.key,
        "GET",
        path,
        query,
        b"",
        chrono::Utc::now().timestamp(),
    );
    let scheme = if node.info.offer.tls { "wss" } else { "ws" };
    let mut req = format!("{scheme}://{}{path}?{query}", node.info.address)
        .into_client_request()
        .map_err(failed)?;
    for (name, value) in signed.headers() {
        req.headers_mut()
            .insert(name, value.parse().map_err(failed)?);
    }
    let (ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            trust.map(Trust::connector),
        ),
    )
    .await
    .map_err(|_| failed(format!("node {}: no answer in 10 s", node.info.name)))?
    .map_err(|e| failed(format!("node {}: {e}", node.info.name)))?;
    Ok(ws)
}

/// Follows a container's log on `node`: each chunk the node sends, until it ends.
pub(crate) async fn follow_log(
    node: &NodeRecord,
    q: &LogQuery,
    trust: Option<&Trust>,
) -> Result<mpsc::Receiver<String>, NodeError> {
    let query = format!(
        "call={}",
        hex::encode(serde_json::to_vec(q).map_err(failed)?)
    );
    let ws = connect(node, &format!("{NODE_PREFIX}/log-stream"), &query, trust).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let (_sink, mut stream) = ws.split();
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(t) if tx.send(t.to_string()).await.is_err() => {
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Ok(rx)
}

/// A connection to `port` on the group's loopback, made by `node`.
pub(crate) async fn dial(
    node: &NodeRecord,
    call: &DialCall,
    trust: Option<&Trust>,
) -> Result<berth_control::PortStream, NodeError> {
    let query = format!(
        "call={}",
        hex::encode(serde_json::to_vec(call).map_err(failed)?)
    );
    let ws = connect(node, &format!("{NODE_PREFIX}/dial"), &query, trust).await?;
    let (mut sink, mut stream) = ws.split();
    // The node says whether it reached the port before any byte flows.
    match stream.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "ok" => {}
        Some(Ok(Message::Text(t))) => return Err(NodeError::Failed(t.to_string())),
        other => {
            return Err(failed(format!(
                "node {}: no connection ({other:?})",
                node.info.name
            )))
        }
    }
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    tokio::spawn(async move {
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
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => {
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    Ok(Box::new(ours))
}

/// Starts `call` on `node`: returns once the node started the process.
pub(crate) async fn exec(
    node: &NodeRecord,
    call: &ExecStreamCall,
    trust: Option<&Trust>,
) -> Result<ExecStream, NodeError> {
    let ws = connect(
        node,
        &format!("{NODE_PREFIX}/exec-stream"),
        &call.query(),
        trust,
    )
    .await?;
    let (mut sink, mut stream) = ws.split();
    // The first message says whether the process started.
    match stream.next().await {
        Some(Ok(Message::Binary(b))) if b.first() == Some(&READY) => {}
        Some(Ok(Message::Binary(b))) if b.first() == Some(&ERROR) => {
            return Err(NodeError::Failed(
                String::from_utf8_lossy(&b[1..]).into_owned(),
            ))
        }
        other => {
            return Err(failed(format!(
                "node {}: the exec did not start ({other:?})",
                node.info.name
            )))
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::Binary(m.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let stdin = if call.stdin {
        let (ours, mut theirs) = tokio::io::duplex(PIPE);
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match theirs.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(frame(STDIN_EOF, &[])).await;
                        break;
                    }
                    Ok(n) => {
                        if tx.send(frame(STDIN, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Some(Box::new(ours) as berth_control::ExecWriter)
    } else {
        None
    };
    let (mut stdout_w, stdout_r) = tokio::io::duplex(PIPE);
    let (mut stderr_w, stderr_r) = tokio::io::duplex(PIPE);
    let (exit_tx, exit_rx) = oneshot::channel::<Result<i32, String>>();
    tokio::spawn(async move {
        let mut exit_tx = Some(exit_tx);
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Binary(data) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let Some((&ch, rest)) = data.split_first() else {
                continue;
            };
            let end = match ch {
                // A relay that stopped reading loses the rest of the output, not the exit.
                STDOUT => {
                    let _ = stdout_w.write_all(rest).await;
                    false
                }
                STDERR => {
                    let _ = stderr_w.write_all(rest).await;
                    false
                }
                EXIT if rest.len() == 4 => {
                    let code = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                    if let Some(tx) = exit_tx.take() {
                        let _ = tx.send(Ok(code));
                    }
                    true
                }
                ERROR => {
                    if let Some(tx) = exit_tx.take() {
                        let _ = tx.send(Err(String::from_utf8_lossy(rest).into_owned()));
                    }
                    true
                }
                _ => false,
            };
            if end {
                break;
            }
        }
        if let Some(tx) = exit_tx.take() {
            let _ = tx.send(Err(
                "the node's exec stream ended without an exit code".into()
            ));
        }
        // Dropping the writers ends the output.
    });
    Ok(ExecStream {
        stdin,
        stdout: Some(Box::new(stdout_r)),
        stderr: (!call.tty).then(|| Box::new(stderr_r) as berth_control::ExecReader),
        tty: call.tty,
        process: Box::new(RemoteProcess {
            ctl: out_tx,
            exit: exit_rx,
            code: None,
            tty: call.tty,
        }),
    })
}

/// The process on the node, as the API's relay drives it.
struct RemoteProcess {
    ctl: mpsc::Sender<Vec<u8>>,
    exit: oneshot::Receiver<Result<i32, String>>,
    code: Option<Result<i32, String>>,
    tty: bool,
}

#[async_trait]
impl ExecProcess for RemoteProcess {
    fn resize(&self, cols: u16, rows: u16) -> Result<(), NodeError> {
        if !self.tty {
            return Err(NodeError::Failed("the exec has no terminal".into()));
        }
        let mut data = cols.to_be_bytes().to_vec();
        data.extend_from_slice(&rows.to_be_bytes());
        self.ctl
            .try_send(frame(RESIZE, &data))
            .map_err(|e| NodeError::Failed(e.to_string()))
    }

    async fn wait(&mut self) -> Result<i32, NodeError> {
        if self.code.is_none() {
            // Awaiting the receiver by reference: a wait cut short (a select) loses nothing.
            let got = (&mut self.exit)
                .await
                .unwrap_or_else(|_| Err("the node's exec stream ended".into()));
            self.code = Some(got);
        }
        match self.code.clone() {
            Some(Ok(code)) => Ok(code),
            Some(Err(e)) => Err(NodeError::Failed(e)),
            None => Err(NodeError::Failed("no exit code".into())),
        }
    }

    fn kill(&self) {
        let _ = self.ctl.try_send(frame(KILL, &[]));
    }
}
