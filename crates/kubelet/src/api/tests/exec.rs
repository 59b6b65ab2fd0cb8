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
    // As berth does: the peer's messages are read until its Close before the connection goes.
    while let Some(Ok(m)) = ws.recv().await {
        if matches!(m, AxumMessage::Close(_)) {
            break;
        }
    }
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

pub(super) type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(pki: &Pki, addr: SocketAddr, query: &str, protocol: &str) -> Client {
    connect_to(
        pki,
        addr,
        &format!("/exec/shop/web-1/app?{query}"),
        protocol,
    )
    .await
}

/// A WebSocket to `path` (with its query) offering `protocol`, which must be chosen.
pub(super) async fn connect_to(pki: &Pki, addr: SocketAddr, path: &str, protocol: &str) -> Client {
    let mut req = format!("wss://{addr}{path}").into_client_request().unwrap();
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
pub(super) async fn frames(ws: &mut Client) -> Vec<Vec<u8>> {
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
async fn unserved_spdy_versions_and_subprotocols_are_refused() {
    let (pki, addr, berth, _received, _stop) = setup().await;
    let http = pki.http(false);
    let r = http
        .post(format!(
            "https://{addr}/exec/shop/web-1/app?command=ls&stdout=1"
        ))
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "v5.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    let m = v["message"].as_str().unwrap();
    assert!(m.contains("no stream protocol in common"), "{v}");
    let r = http
        .post(format!(
            "https://{addr}/exec/shop/web-1/app?command=ls&stdout=1"
        ))
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/2")
        .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
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

/// Upgrades `/exec` to SPDY/3.1 over raw TLS; the response head and the connection.
async fn spdy_connect(
    pki: &Pki,
    addr: SocketAddr,
    query: &str,
) -> (
    String,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    spdy_connect_to(pki, addr, &format!("/exec/shop/web-1/app?{query}")).await
}

/// Upgrades `path` (with its query) to SPDY/3.1 over raw TLS, offering v4 and v3; the
/// response head and the connection.
pub(super) async fn spdy_connect_to(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
) -> (
    String,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tokio_tungstenite::Connector::Rustls(config) = pki.ws_tls() else {
        panic!("a rustls connector")
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tls.read_u8().await.unwrap());
    }
    (String::from_utf8(head).unwrap(), tls)
}

#[tokio::test]
async fn spdy_session_relays_streams_resize_and_status() {
    use super::spdy::frame::{encode, read_frame, Frame};
    use super::spdy::headers::{Deflater, Inflater};
    use tokio::io::AsyncWriteExt;

    let (pki, addr, berth, received, _stop) = setup().await;
    let (head, mut tls) = spdy_connect(&pki, addr, "command=cat&stdin=1&stdout=1&tty=1").await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );

    let mut d = Deflater::default();
    let syn = |stream: u32, kind: &str| Frame::SynStream {
        stream,
        fin: false,
        headers: vec![("streamtype".into(), kind.into())],
    };
    let data = |stream: u32, fin: bool, data: &[u8]| Frame::Data {
        stream,
        fin,
        data: data.to_vec(),
    };
    let out = [
        syn(1, "error"),
        syn(3, "stdin"),
        syn(5, "stdout"),
        syn(7, "resize"),
        // Not asked for (no stderr with a tty): reset.
        syn(9, "stderr"),
        // One object split over two frames, then a second whole.
        data(7, false, br#"{"Width":80,"#),
        data(7, false, br#""Height":24}{"Width":100,"Height":30}"#),
        Frame::Ping(1),
        data(3, false, b"hi"),
        data(3, true, b""),
    ];
    for f in &out {
        tls.write_all(&encode(f, &mut d)).await.unwrap();
    }

    let mut inflater = Inflater::default();
    let mut got = Vec::new();
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut tls, &mut inflater))
            .await
            .unwrap()
            .unwrap();
        match f {
            Some(f @ Frame::GoAway { .. }) => {
                got.push(f);
                break;
            }
            Some(f) => got.push(f),
            None => break,
        }
    }
    let bytes_on = |s: u32| -> Vec<u8> {
        got.iter()
            .filter_map(|f| match f {
                Frame::Data { stream, data, .. } if *stream == s => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let fin_on = |s: u32| {
        got.iter()
            .any(|f| matches!(f, Frame::Data { stream, fin: true, .. } if *stream == s))
    };
    for stream in [1, 3, 5, 7] {
        assert!(
            got.contains(&Frame::SynReply { stream, fin: false }),
            "{got:?}"
        );
    }
    assert!(got.contains(&Frame::RstStream {
        stream: 9,
        status: 3
    }));
    assert!(got.contains(&Frame::Ping(1)));
    assert!(got.contains(&Frame::WindowUpdate {
        stream: 3,
        delta: 2
    }));
    assert!(got.contains(&Frame::WindowUpdate {
        stream: 0,
        delta: 2
    }));
    // berth's stderr greeting is dropped: no stderr with a tty.
    assert_eq!(bytes_on(5), b"ready\nhi");
    let status: Value = serde_json::from_slice(&bytes_on(1)).unwrap();
    assert_eq!(status["status"], "Success");
    assert!(fin_on(1) && fin_on(5), "{got:?}");
    assert_eq!(
        got.last(),
        Some(&Frame::GoAway {
            last_stream: 9,
            status: 0
        })
    );

    let (protocol, frames) = received.lock().unwrap().clone();
    assert_eq!(protocol, "v5.channel.k8s.io");
    let size = |f: &[u8]| serde_json::from_slice::<Value>(&f[1..]).unwrap();
    assert_eq!(frames[0][0], 4);
    assert_eq!(size(&frames[0]), json!({"Width": 80, "Height": 24}));
    assert_eq!(size(&frames[1]), json!({"Width": 100, "Height": 30}));
    assert_eq!(&frames[2..], [frame(0, b"hi"), vec![255, 0]]);
    let q = berth.exec_queries.lock().unwrap()[0].clone();
    assert!(q.tty && q.stdin);
    assert_eq!(q.protocol, "v5.channel.k8s.io");
}

#[tokio::test]
async fn spdy_unknown_container_is_refused_before_the_upgrade() {
    let (pki, addr, berth, _received, _stop) = setup().await;
    let r = pki
        .http(false)
        .post(format!(
            "https://{addr}/exec/shop/web-1/nosuch?command=ls&stdout=1"
        ))
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(berth.exec_queries.lock().unwrap().is_empty());
}

/// A SPDY session served on an in-memory connection, with the fake berth socket; the
/// client's end of the connection.
async fn spdy_direct(
    version: super::spdy::SpdyVersion,
    wanted: super::spdy::Wanted,
    wait: Duration,
) -> (tokio::io::DuplexStream, Received) {
    let (uri, received) = fake_berth_socket().await;
    let socket = super::backend::connect_exec(&uri, "v5.channel.k8s.io", None)
        .await
        .unwrap();
    let (client, server) = tokio::io::duplex(1 << 16);
    let socket = super::backend::Upstream::socket(socket);
    tokio::spawn(super::spdy::serve(server, socket, wanted, version, wait));
    (client, received)
}

/// Every frame the server sends until it closes the connection.
async fn spdy_frames(conn: &mut tokio::io::DuplexStream) -> Vec<super::spdy::frame::Frame> {
    let mut inflater = super::spdy::headers::Inflater::default();
    let mut got = Vec::new();
    loop {
        let f = tokio::time::timeout(
            Duration::from_secs(5),
            super::spdy::frame::read_frame(conn, &mut inflater),
        )
        .await
        .unwrap();
        match f {
            Ok(Some(f)) => got.push(f),
            Ok(None) | Err(_) => return got,
        }
    }
}

#[tokio::test]
async fn spdy_streams_not_opened_in_time_end_the_session() {
    use super::spdy::frame::{encode, Frame};
    use tokio::io::AsyncWriteExt;
    let wanted = super::spdy::Wanted {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let (mut conn, received) = spdy_direct(
        super::spdy::SpdyVersion::V4,
        wanted,
        Duration::from_millis(200),
    )
    .await;
    let mut d = super::spdy::headers::Deflater::default();
    let syn = Frame::SynStream {
        stream: 1,
        fin: false,
        headers: vec![("streamtype".into(), "error".into())],
    };
    conn.write_all(&encode(&syn, &mut d)).await.unwrap();
    let got = spdy_frames(&mut conn).await;
    assert_eq!(
        got[0],
        Frame::SynReply {
            stream: 1,
            fin: false
        }
    );
    // Nothing of berth's (its greeting) is relayed: stdout was never opened.
    assert!(!got
        .iter()
        .any(|f| matches!(f, Frame::Data { data, .. } if !data.is_empty())));
    assert_eq!(
        got.last(),
        Some(&Frame::GoAway {
            last_stream: 1,
            status: 0
        })
    );
    // berth's socket was closed without a byte of stdin.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(received.lock().unwrap().1.is_empty());
}

#[tokio::test]
async fn spdy_v2_error_stream_carries_the_message_only() {
    use super::spdy::frame::{encode, Frame};
    use tokio::io::AsyncWriteExt;
    let wanted = super::spdy::Wanted {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let (mut conn, _received) =
        spdy_direct(super::spdy::SpdyVersion::V2, wanted, Duration::from_secs(5)).await;
    let mut d = super::spdy::headers::Deflater::default();
    let syn = |stream: u32, kind: &str| Frame::SynStream {
        stream,
        fin: false,
        headers: vec![("streamtype".into(), kind.into())],
    };
    for f in [
        syn(1, "error"),
        syn(3, "stdin"),
        syn(5, "stdout"),
        Frame::Data {
            stream: 3,
            fin: false,
            data: b"exit\n".to_vec(),
        },
    ] {
        conn.write_all(&encode(&f, &mut d)).await.unwrap();
    }
    let got = spdy_frames(&mut conn).await;
    let on = |s: u32| -> Vec<u8> {
        got.iter()
            .filter_map(|f| match f {
                Frame::Data { stream, data, .. } if *stream == s => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert_eq!(on(5), b"ready\n");
    assert_eq!(
        String::from_utf8(on(1)).unwrap(),
        "command terminated with non-zero exit code: exit status 3"
    );
}

#[tokio::test]
async fn spdy_garbage_ends_the_session_with_a_protocol_error() {
    use super::spdy::frame::Frame;
    use tokio::io::AsyncWriteExt;
    let wanted = super::spdy::Wanted {
        stdin: false,
        stdout: true,
        stderr: false,
        tty: false,
    };
    let (mut conn, _received) =
        spdy_direct(super::spdy::SpdyVersion::V4, wanted, Duration::from_secs(5)).await;
    // A control frame of SPDY version 2.
    conn.write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    let got = spdy_frames(&mut conn).await;
    assert_eq!(
        got,
        [Frame::GoAway {
            last_stream: 0,
            status: 1
        }]
    );
}

/// A client that goes on sending after berth ended the session still gets the status and a
/// Close: the kubelet reads its messages until its Close instead of closing the connection on
/// them (which resets it, dropping what was still queued to the client).
#[tokio::test]
async fn the_status_reaches_a_client_that_goes_on_sending() {
    let (pki, addr, _berth, _received, _stop) = setup().await;
    let q = "command=sh&stdin=1&stdout=1";
    for round in 0..10 {
        let mut ws = connect(&pki, addr, q, "v4.channel.k8s.io").await;
        assert_eq!(
            next_frame(&mut ws).await,
            frame(1, b"ready\n"),
            "round {round}"
        );
        let (mut tx, mut rx) = ws.split();
        let sender = tokio::spawn(async move {
            let _ = tx.send(Message::Binary(frame(0, b"exit\n").into())).await;
            let filler = std::iter::repeat_n(frame(0, &[b'x'; 4096]), 64);
            let _ = tx
                .send_all(&mut futures_util::stream::iter(
                    filler.map(|f| Ok(Message::Binary(f.into()))),
                ))
                .await;
            tx
        });
        let (mut got, mut closed) = (None, false);
        while let Some(m) = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .unwrap()
        {
            match m.unwrap_or_else(|e| panic!("round {round}: the connection failed: {e}")) {
                Message::Binary(b) if b[0] == 3 => got = Some(b[1..].to_vec()),
                Message::Close(_) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(got.as_deref(), Some(status(3).as_bytes()), "round {round}");
        assert!(closed, "round {round}: no Close");
        let mut tx = sender.await.unwrap();
        let _ = tx.close().await;
    }
}
