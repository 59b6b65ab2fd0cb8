//! `/exec/{namespace}/{pod}/{container}`: `kubectl exec` over WebSocket
//! (`v5.channel.k8s.io` or `v4.channel.k8s.io`). The command is started with berth's
//! ExecContainerCommand and its WebSocket, which speaks the same framing (0 stdin, 1 stdout,
//! 2 stderr, 3 the final `metav1.Status`, 4 resize, and with v5 255 to close a stream), is
//! opened with the subprotocol the client chose; frames are relayed both ways unchanged, but
//! for the stdout or stderr the client did not ask for. berth's status on channel 3 is
//! Kubernetes' own (`Success`, or `Failure` with reason `NonZeroExitCode` and the code in
//! `details.causes[ExitCode]`), so it passes as it is.
//!
//! A request to upgrade to SPDY/3.1 (`kubectl` before 1.30, and the API server towards
//! kubelets even when `kubectl` speaks WebSocket to it) is answered 101 with the newest
//! `X-Stream-Protocol-Version` offered (`v4.channel.k8s.io` down to `channel.k8s.io`), and
//! its streams are relayed to berth's exec WebSocket (spoken with `v5.channel.k8s.io`, whose
//! close message ends stdin) by `spdy/`.
//!
//! The session's two sides, WebSocket and SPDY, are shared with `/attach` (`attach.rs`).

use std::pin::pin;
use std::time::Duration;

use axum::extract::ws::{Message as ClientMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message as BerthMessage;

use super::backend::{ExecQuery, Upstream, MAX_WS_MESSAGE};
use super::params::Query;
use super::pods::pod_group;
use super::reply::Refusal;
use super::spdy;
use super::AppState;

/// The subprotocols spoken, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// What berth's exec socket is spoken with behind SPDY: v5, whose close message ends stdin.
const BERTH_SPDY_PROTOCOL: &str = "v5.channel.k8s.io";
/// Most arguments of a command, and characters of one (berth's ExecContainerCommand bounds).
const MAX_ARGS: usize = 20;
const MAX_ARG_LEN: usize = 256;
/// How long berth's last frames are still relayed after the client went, and how long the
/// client has to answer the Close sent to it after berth closed.
const DRAIN: Duration = Duration::from_secs(2);

const STDOUT: u8 = 1;
const STDERR: u8 = 2;

const KNOWN: &[&str] = &[
    "command", "stdin", "stdout", "stderr", "tty", "input", "output",
];

/// What the request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ExecArgs {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Decodes the query as the kubelet does (`input`/`output` are the old names of
/// `stdin`/`stdout`).
pub(crate) fn parse(raw: Option<&str>) -> Result<ExecArgs, Refusal> {
    let q = Query::parse(raw, KNOWN)?;
    let mut a = streams(&q)?;
    let command = q.all("command");
    if command.is_empty() || command[0].is_empty() {
        return Err(Refusal::bad_request("a command is required (command=…)"));
    }
    if command.len() > MAX_ARGS {
        return Err(Refusal::bad_request(format!(
            "the command has more than {MAX_ARGS} arguments"
        )));
    }
    if command.iter().any(|a| a.chars().count() > MAX_ARG_LEN) {
        return Err(Refusal::bad_request(format!(
            "an argument of the command is longer than {MAX_ARG_LEN} characters"
        )));
    }
    a.command = command;
    Ok(a)
}

/// The streams a session asks for (exec and attach), checked as the kubelet does.
pub(crate) fn streams(q: &Query) -> Result<ExecArgs, Refusal> {
    let a = ExecArgs {
        command: Vec::new(),
        stdin: q.bool("stdin")? || q.bool("input")?,
        stdout: q.bool("stdout")? || q.bool("output")?,
        stderr: q.bool("stderr")?,
        tty: q.bool("tty")?,
    };
    if !(a.stdin || a.stdout || a.stderr) {
        return Err(Refusal::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if a.tty && a.stderr {
        return Err(Refusal::bad_request(
            "stderr cannot be requested with a tty: the terminal carries both",
        ));
    }
    Ok(a)
}

pub(crate) fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("spdy/"))
}

pub(crate) fn acquire(state: &AppState) -> Result<OwnedSemaphorePermit, Refusal> {
    state.streams.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "too many log streams and exec sessions are open",
        )
    })
}

pub(crate) async fn exec(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Result<Response, Refusal> {
    let (mut parts, _body) = request.into_parts();
    if is_spdy(&parts.headers) {
        let (version, on_upgrade) = spdy_upgrade(&mut parts)?;
        let args = parse(raw.as_deref())?;
        let permit = acquire(&state)?;
        let group = pod_group(&state, &namespace, &pod, &container).await?;
        let q = ExecQuery {
            group_id: group.container_group_id,
            container,
            command: args.command.clone(),
            tty: args.tty,
            stdin: args.stdin,
            protocol: BERTH_SPDY_PROTOCOL.into(),
        };
        let upstream = Upstream::socket(state.backend.exec(&q).await?);
        return Ok(over_spdy(on_upgrade, version, upstream, &args, permit));
    }
    let args = parse(raw.as_deref())?;
    let (ws, protocol) = websocket(&mut parts, &state, "exec").await?;
    let permit = acquire(&state)?;
    let group = pod_group(&state, &namespace, &pod, &container).await?;
    let q = ExecQuery {
        group_id: group.container_group_id,
        container,
        command: args.command.clone(),
        tty: args.tty,
        stdin: args.stdin,
        protocol,
    };
    let upstream = Upstream::socket(state.backend.exec(&q).await?);
    Ok(ws.on_upgrade(move |socket| relay(socket, upstream, args, permit)))
}

/// The request's WebSocket upgrade with the subprotocol chosen among [`PROTOCOLS`].
pub(crate) async fn websocket(
    parts: &mut Parts,
    state: &AppState,
    what: &str,
) -> Result<(WebSocketUpgrade, String), Refusal> {
    let ws = WebSocketUpgrade::from_request_parts(parts, state)
        .await
        .map_err(|e| {
            Refusal::bad_request(format!(
                "{what} needs a WebSocket upgrade ({}): {e}",
                PROTOCOLS.join(", ")
            ))
        })?;
    let ws = ws
        .protocols(PROTOCOLS)
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE);
    let protocol = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            Refusal::bad_request(format!(
                "no WebSocket subprotocol in common; offer one of {}",
                PROTOCOLS.join(", ")
            ))
        })?;
    Ok((ws, protocol))
}

/// The checks of an SPDY/3.1 upgrade, made before anything starts, so that a pod or
/// container that does not exist is answered with a plain error rather than a connection
/// that ends: the version chosen and the connection to take over.
pub(crate) fn spdy_upgrade(
    parts: &mut Parts,
) -> Result<(Option<spdy::SpdyVersion>, OnUpgrade), Refusal> {
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if !upgrade.is_some_and(|u| u.trim().eq_ignore_ascii_case("SPDY/3.1")) {
        return Err(Refusal::bad_request(format!(
            "SPDY/3.1 is the only SPDY served, not {}",
            upgrade.unwrap_or("this")
        )));
    }
    let version = spdy::negotiate(&parts.headers).map_err(Refusal::bad_request)?;
    Ok((version, take_upgrade(parts)?))
}

/// Answers 101 and serves the remote command protocol over SPDY with `upstream`.
pub(crate) fn over_spdy(
    on_upgrade: OnUpgrade,
    version: Option<spdy::SpdyVersion>,
    upstream: Upstream,
    args: &ExecArgs,
    permit: OwnedSemaphorePermit,
) -> Response {
    let wanted = spdy::Wanted {
        stdin: args.stdin,
        stdout: args.stdout,
        stderr: args.stderr,
        tty: args.tty,
    };
    let chosen = version.unwrap_or(spdy::SpdyVersion::V1);
    tokio::spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(io) => {
                let io = TokioIo::new(io);
                spdy::serve(io, upstream, wanted, chosen, spdy::STREAM_WAIT).await
            }
            Err(e) => tracing::debug!("the SPDY upgrade failed: {e}"),
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    if let Some(v) = version {
        response = response.header("X-Stream-Protocol-Version", v.name());
    }
    response
        .body(axum::body::Body::empty())
        .expect("static headers are valid")
}

/// The connection to take over after a 101 answer: a request with `Connection: Upgrade` over
/// HTTP/1.1.
pub(crate) fn take_upgrade(parts: &mut Parts) -> Result<OnUpgrade, Refusal> {
    let upgrades = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("upgrade"));
    parts
        .extensions
        .remove::<OnUpgrade>()
        .filter(|_| upgrades)
        .ok_or_else(|| {
            Refusal::bad_request("an SPDY/3.1 upgrade needs Connection: Upgrade over HTTP/1.1")
        })
}

/// Relays frames between the client and berth (or an attach's stream) until either closes.
pub(crate) async fn relay(
    client: WebSocket,
    berth: Upstream,
    args: ExecArgs,
    _permit: OwnedSemaphorePermit,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let Upstream {
        tx: mut berth_tx,
        rx: mut berth_rx,
    } = berth;
    // Reads the client until its Close or its end, also once berth is gone: a connection
    // closed with the client's messages unread is reset, and the reset drops what was still
    // queued to it (berth's last frames, the status, the Close).
    let to_berth = async {
        let mut berth_open = true;
        while let Some(Ok(m)) = client_rx.next().await {
            let frame = match m {
                ClientMessage::Binary(b) => b,
                ClientMessage::Text(t) => axum::body::Bytes::copy_from_slice(t.as_str().as_bytes()),
                ClientMessage::Close(_) => break,
                _ => continue,
            };
            if berth_open && berth_tx.send(BerthMessage::Binary(frame)).await.is_err() {
                berth_open = false;
            }
        }
        let _ = berth_tx.send(BerthMessage::Close(None)).await;
    };
    let to_client = async {
        while let Some(Ok(m)) = berth_rx.next().await {
            let frame = match m {
                BerthMessage::Binary(b) => b,
                BerthMessage::Text(t) => axum::body::Bytes::copy_from_slice(t.as_str().as_bytes()),
                BerthMessage::Close(_) => break,
                _ => continue,
            };
            let dropped = match frame.first() {
                Some(&STDOUT) => !args.stdout,
                Some(&STDERR) => !args.stderr,
                _ => false,
            };
            if !dropped && client_tx.send(ClientMessage::Binary(frame)).await.is_err() {
                break;
            }
        }
        let _ = client_tx.send(ClientMessage::Close(None)).await;
    };
    let mut to_client = pin!(to_client);
    let mut to_berth = pin!(to_berth);
    tokio::select! {
        _ = &mut to_client => {
            let _ = tokio::time::timeout(DRAIN, &mut to_berth).await;
        }
        _ = &mut to_berth => {
            let _ = tokio::time::timeout(DRAIN, &mut to_client).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let a = parse(Some(
            "command=sh&command=-c&command=ls%20-l&stdin=1&stdout=1&tty=1",
        ))
        .unwrap();
        assert_eq!(
            a,
            ExecArgs {
                command: vec!["sh".into(), "-c".into(), "ls -l".into()],
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true,
            }
        );
        assert!(parse(Some("command=ls&output=1")).unwrap().stdout);
        for bad in [
            "stdout=1",
            "command=ls",
            "command=ls&stdout=1&stderr=1&tty=1",
            "command=ls&stdout=1&x=1",
            "command=&stdout=1",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
        let many = vec!["command=a"; MAX_ARGS + 1].join("&") + "&stdout=1";
        assert!(parse(Some(&many)).is_err());
        let long = format!("command={}&stdout=1", "a".repeat(MAX_ARG_LEN + 1));
        assert!(parse(Some(&long)).is_err());
    }
}
