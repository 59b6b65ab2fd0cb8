//! `/exec` with a WebSocket client speaking v4 and v5, relayed to a fake berth exec socket:
//! stdout, stderr, stdin, resize and the exit status pass both ways.

use std::time::Duration;

use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// What the fake berth socket received: the subprotocol and the frames.
type Received = Arc<Mutex<(String, Vec<Vec<u8>>)>>;

fn frame(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![ch];
    f.extend_from_slice(data);
    f
}

fn status(code: i32) -> String {
    if code == 0 {
        return r#"{"metadata":{},"status":"Success"}"#.into();
    }
    json!({"metadata": {}, "status": "Failure",
           "message": format!("command terminated with non-zero exit code: exit status {code}"),
           "reason": "NonZeroExitCode",
           "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    .to_string()
}

/// berth's exec socket, faked: greets on stdout and stderr, echoes stdin on stdout, ends
/// with exit code 3 on `exit\n` (or 0 when v5 closes stdin).
async fn session(mut ws: WebSocket, received: Received) {
    let send = |f: Vec<u8>| AxumMessage::Binary(f.into());
    let _ = ws.send(send(frame(1, b"ready\n"))).await;
    let _ = ws.send(send(frame(2, b"warning\n"))).await;
    while let Some(Ok(AxumMessage::Binary(b))) = ws.recv().await {
        received.lock().unwrap().1.push(b.to_vec());
        match (b[0], &b[1..]) {
            (0, b"exit\n") => {
                let _ = ws.send(send(frame(3, status(3).as_bytes()))).await;
                break;
            }
            (0, data) => {
                let _ = ws.send(send(frame(1, data))).await;
            }
            (255, [0]) => {
                let _ = ws.send(send(frame(3, status(0).as_bytes()))).await;
                break;
            }
            _ => {}
        }
    }
    let _ = ws.send(AxumMessage::Close(None)).await;
}

async fn fake_berth_socket() -> (String, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let app = axum::Router::new().route(
        "/exec/{token}",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let r = r.clone();
            async move {
                let ws = ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
                let p = ws
                    .selected_protocol()
                    .map(|p| p.to_str().unwrap().to_string())
                    .unwrap_or_default();
                r.lock().unwrap().0 = p;
                ws.on_upgrade(move |s| session(s, r))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("ws://{addr}/exec/tok"), received)
}

async fn setup() -> (
    Pki,
    SocketAddr,
    Arc<FakeBerth>,
    Received,
    tokio::sync::oneshot::Sender<()>,
) {
    let pki = Pki::new();
    let (uri, received) = fake_berth_socket().await;
    let berth = Arc::new(FakeBerth {
        groups: vec![group("eci-1", UID, "2026-01-01T00:00:00Z")],
        exec_uri: uri,
        ..Default::default()
    });
    let (addr, stop) = start(&pki, AuthConfig::Anonymous, berth.clone()).await;
    (pki, addr, berth, received, stop)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(pki: &Pki, addr: SocketAddr, query: &str, protocol: &str) -> Client {
    let mut req = format!("wss://{addr}/exec/shop/web-1/app?{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(pki.ws_tls()))
            .await
            .unwrap();
    let chosen = resp.headers().get("Sec-WebSocket-Protocol").unwrap();
    assert_eq!(
        chosen.to_str().unwrap(),
        protocol.split(',').next().unwrap().trim()
    );
    ws
}

/// Every frame until the socket closes.
async fn frames(ws: &mut Client) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
        match m {
            Some(Ok(Message::Binary(b))) => out.push(b.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    out
}

async fn next_frame(ws: &mut Client) -> Vec<u8> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
        if let Some(Ok(Message::Binary(b))) = m {
            return b.to_vec();
        }
    }
}

#[tokio::test]
async fn v4_session_relays_stdin_stdout_stderr_resize_and_exit_status() {
    let (pki, addr, berth, received, _stop) = setup().await;
    let q = "command=sh&command=-c&command=cat&stdin=1&stdout=1&stderr=1";
    let mut ws = connect(&pki, addr, q, "v4.channel.k8s.io").await;
    assert_eq!(next_frame(&mut ws).await, frame(1, b"ready\n"));
    assert_eq!(next_frame(&mut ws).await, frame(2, b"warning\n"));
    ws.send(Message::Binary(
        frame(4, br#"{"Width":80,"Height":24}"#).into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(frame(0, b"hello\n").into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut ws).await, frame(1, b"hello\n"));
    ws.send(Message::Binary(frame(0, b"exit\n").into()))
        .await
        .unwrap();
    let rest = frames(&mut ws).await;
    let last = rest.last().unwrap();
    assert_eq!(last[0], 3);
    let v: Value = serde_json::from_slice(&last[1..]).unwrap();
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(
        v["details"]["causes"][0],
        json!({"reason": "ExitCode", "message": "3"})
    );
    let (protocol, got) = received.lock().unwrap().clone();
    assert_eq!(protocol, "v4.channel.k8s.io");
    assert_eq!(got[0], frame(4, br#"{"Width":80,"Height":24}"#));
    let q = berth.exec_queries.lock().unwrap()[0].clone();
    assert_eq!(
        q,
        ExecQuery {
            group_id: "eci-1".into(),
            container: "app".into(),
            command: vec!["sh".into(), "-c".into(), "cat".into()],
            tty: false,
            stdin: true,
            protocol: "v4.channel.k8s.io".into(),
        }
    );
}

#[tokio::test]
async fn v5_session_closes_stdin_and_drops_unrequested_stderr() {
    let (pki, addr, berth, received, _stop) = setup().await;
    let q = "command=cat&stdin=true&stdout=true&tty=true";
    let mut ws = connect(&pki, addr, q, "v5.channel.k8s.io, v4.channel.k8s.io").await;
    assert_eq!(next_frame(&mut ws).await, frame(1, b"ready\n"));
    ws.send(Message::Binary(frame(0, b"hi").into()))
        .await
        .unwrap();
    // stderr was not asked for: its frame is not relayed, the echo comes next.
    assert_eq!(next_frame(&mut ws).await, frame(1, b"hi"));
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let rest = frames(&mut ws).await;
    assert_eq!(rest, vec![frame(3, status(0).as_bytes())]);
    assert_eq!(received.lock().unwrap().0, "v5.channel.k8s.io");
    assert!(berth.exec_queries.lock().unwrap()[0].tty);
}

#[tokio::test]
async fn spdy_and_unknown_subprotocols_are_refused() {
    let (pki, addr, berth, _received, _stop) = setup().await;
    let http = pki.http(false);
    let r = http
        .post(format!(
            "https://{addr}/exec/shop/web-1/app?command=ls&stdout=1"
        ))
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert!(v["message"].as_str().unwrap().contains("SPDY"), "{v}");
    let mut req = format!("wss://{addr}/exec/shop/web-1/app?command=ls&stdout=1")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "channel.k8s.io".parse().unwrap());
    let e = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(pki.ws_tls()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("400"), "{e}");
    assert!(berth.exec_queries.lock().unwrap().is_empty());
}
