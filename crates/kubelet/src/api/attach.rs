//! `/attach/{namespace}/{pod}/{container}`: `kubectl attach` over WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`) or SPDY/3.1, as `/exec` is served.
//!
//! berth's containers have no stdin and no terminal (a pod asking for `stdin` or `tty` is
//! refused), so an attach relays what the container writes from now on: berth's log stream
//! of the container, followed without its past lines (`Tail=0`), goes out on stdout (on
//! stderr when only stderr is asked for: berth keeps one log per container), until the
//! container ends — then a `Success` status on the error channel, and the session ends. An
//! attach with `stdin` or `tty` gets the session and, on its error channel, a `Failure`
//! status saying why, as the kubelet answers an attach the container cannot take.

use std::convert::Infallible;

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;

use super::backend::{LogQuery, LogStream, Upstream, UpstreamError, UpstreamMessage};
use super::exec::{acquire, is_spdy, over_spdy, relay, spdy_upgrade, streams, websocket};
use super::params::Query;
use super::pods::pod_group;
use super::reply::Refusal;
use super::AppState;

const KNOWN: &[&str] = &["stdin", "stdout", "stderr", "tty", "input", "output"];

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;

fn status_frame(status: serde_json::Value) -> UpstreamMessage {
    let mut m = vec![STATUS];
    m.extend_from_slice(status.to_string().as_bytes());
    UpstreamMessage::Binary(m.into())
}

/// `metav1.Status` of a session that ended well.
fn success() -> UpstreamMessage {
    status_frame(json!({"metadata": {}, "status": "Success"}))
}

/// `metav1.Status` of a session that could not be served.
fn failure(reason: &str, code: u16, message: &str) -> UpstreamMessage {
    status_frame(json!({
        "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "code": code,
    }))
}

/// What the client sends is dropped: the container has no stdin.
fn no_input(
) -> std::pin::Pin<Box<dyn futures_util::Sink<UpstreamMessage, Error = UpstreamError> + Send>> {
    Box::pin(futures_util::sink::drain().sink_map_err(|e: Infallible| match e {}))
}

/// The container's output from `logs` on `channel`, then the status of its end (`Success`,
/// or `Failure` when the stream broke).
pub(crate) fn output(logs: LogStream, channel: u8) -> Upstream {
    let rx = futures_util::stream::unfold(Some(logs), move |logs| async move {
        let mut logs = logs?;
        Some(match logs.next().await {
            Some(Ok(bytes)) => {
                let mut m = Vec::with_capacity(bytes.len() + 1);
                m.push(channel);
                m.extend_from_slice(&bytes);
                (Ok(UpstreamMessage::Binary(m.into())), Some(logs))
            }
            Some(Err(e)) => {
                let message = format!("the container's output stream ended: {e}");
                (Ok(failure("InternalError", 500, &message)), None)
            }
            None => (Ok(success()), None),
        })
    });
    Upstream {
        tx: no_input(),
        rx: rx.boxed(),
    }
}

/// A session that carries only a Failure status: what the container cannot take.
pub(crate) fn refused(message: &str) -> Upstream {
    let rx = futures_util::stream::iter([Ok(failure("BadRequest", 400, message))]);
    Upstream {
        tx: no_input(),
        rx: rx.boxed(),
    }
}

/// Why the container cannot be attached as asked, in the kubelet's words.
fn refusal(container: &str, stdin: bool, tty: bool) -> Option<String> {
    if stdin {
        Some(format!(
            "stdin is not enabled for container {container:?}: berth's containers have no \
             stdin (use kubectl exec -i)"
        ))
    } else if tty {
        Some(format!(
            "tty is not enabled for container {container:?}: berth's containers have no \
             terminal (use kubectl exec -t)"
        ))
    } else {
        None
    }
}

pub(crate) async fn attach(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Result<Response, Refusal> {
    let (mut parts, _body) = request.into_parts();
    let spdy = if is_spdy(&parts.headers) {
        Some(spdy_upgrade(&mut parts)?)
    } else {
        None
    };
    let args = streams(&Query::parse(raw.as_deref(), KNOWN)?)?;
    let ws = match spdy {
        Some(_) => None,
        None => Some(websocket(&mut parts, &state, "attach").await?.0),
    };
    let permit = acquire(&state)?;
    let group = pod_group(&state, &namespace, &pod, &container).await?;
    let upstream = match refusal(&container, args.stdin, args.tty) {
        Some(message) => refused(&message),
        None => {
            let q = LogQuery {
                group_id: group.container_group_id,
                container,
                follow: true,
                tail: Some(0),
                ..Default::default()
            };
            let channel = if args.stdout { STDOUT } else { STDERR };
            output(state.backend.logs(&q).await?, channel)
        }
    };
    Ok(match (spdy, ws) {
        (Some((version, on_upgrade)), _) => over_spdy(on_upgrade, version, upstream, &args, permit),
        (None, Some(ws)) => ws.on_upgrade(move |socket| relay(socket, upstream, args, permit)),
        (None, None) => unreachable!("a session is WebSocket or SPDY"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    async fn frames(u: Upstream) -> Vec<Vec<u8>> {
        u.rx.map(|m| match m.unwrap() {
            UpstreamMessage::Binary(b) => b.to_vec(),
            other => panic!("{other:?}"),
        })
        .collect()
        .await
    }

    #[tokio::test]
    async fn output_then_success() {
        let logs = futures_util::stream::iter([Ok(Bytes::from("a\n")), Ok(Bytes::from("b\n"))]);
        let f = frames(output(logs.boxed(), STDOUT)).await;
        assert_eq!(f[0], b"\x01a\n");
        assert_eq!(f[1], b"\x01b\n");
        assert_eq!(f.len(), 3);
        let st: serde_json::Value = serde_json::from_slice(&f[2][1..]).unwrap();
        assert_eq!((f[2][0], &st["status"]), (STATUS, &json!("Success")));
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_a_failure_alone() {
        let logs = futures_util::stream::iter([
            Ok(Bytes::from("a\n")),
            Err(super::super::backend::BackendError::Unavailable(
                "gone".into(),
            )),
            Ok(Bytes::from("never\n")),
        ]);
        let f = frames(output(logs.boxed(), STDERR)).await;
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0], b"\x02a\n");
        let st: serde_json::Value = serde_json::from_slice(&f[1][1..]).unwrap();
        assert_eq!(st["status"], "Failure");
    }

    #[test]
    fn stdin_and_tty_are_refused_by_name() {
        assert!(refusal("app", true, false).unwrap().contains("stdin"));
        assert!(refusal("app", false, true).unwrap().contains("tty"));
        assert_eq!(refusal("app", false, false), None);
    }
}
