//! Port forwarding over SPDY: pairs of streams relayed to berth's PortForward socket.

use std::time::Duration;

use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use tokio::io::AsyncWriteExt;

use super::spdy::frame::{encode, read_frame, Frame};
use super::spdy::headers::{Deflater, Inflater};
use super::*;

/// berth's PortForward socket, faked: what comes is sent back in upper case; the empty
/// message (the client's end of sending) is answered with `BYE` and a close.
async fn fake_forward_socket() -> String {
    async fn session(mut ws: WebSocket) {
        while let Some(Ok(AxumMessage::Binary(b))) = ws.recv().await {
            if b.is_empty() {
                let _ = ws.send(AxumMessage::Binary(b"BYE".to_vec().into())).await;
                break;
            }
            let up = b.to_ascii_uppercase();
            let _ = ws.send(AxumMessage::Binary(up.into())).await;
        }
        let _ = ws.send(AxumMessage::Close(None)).await;
    }
    let app = axum::Router::new().route(
        "/portforward/{token}",
        axum::routing::get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(session) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("ws://{addr}/portforward/tok")
}

fn syn(stream: u32, kind: &str, port: &str, id: &str) -> Frame {
    Frame::SynStream {
        stream,
        fin: false,
        headers: vec![
            ("streamtype".into(), kind.into()),
            ("port".into(), port.into()),
            ("requestid".into(), id.into()),
        ],
    }
}

/// Frames from the server until `done` says enough.
async fn until(
    conn: &mut tokio::io::DuplexStream,
    inflater: &mut Inflater,
    mut done: impl FnMut(&[Frame]) -> bool,
) -> Vec<Frame> {
    let mut got = Vec::new();
    while !done(&got) {
        let f = tokio::time::timeout(Duration::from_secs(5), read_frame(conn, inflater))
            .await
            .expect("a frame in time")
            .unwrap()
            .expect("the connection stays open");
        got.push(f);
    }
    got
}

fn data_of(frames: &[Frame], id: u32) -> Vec<u8> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { stream, data, .. } if *stream == id => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn fin_of(frames: &[Frame], id: u32) -> bool {
    frames
        .iter()
        .any(|f| matches!(f, Frame::Data { stream, fin: true, .. } if *stream == id))
}

#[tokio::test]
async fn pairs_of_streams_are_relayed_and_refusals_reported() {
    let berth = Arc::new(FakeBerth {
        forward_uri: fake_forward_socket().await,
        ..Default::default()
    });
    let (mut conn, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(super::spdy::serve_port_forward(
        server,
        berth.clone(),
        "eci-1".into(),
        "shop/web-1".into(),
    ));
    let mut d = Deflater::default();
    let mut inflater = Inflater::default();
    // Two forwarded connections at once, and one to a port berth cannot reach.
    for f in [
        syn(1, "error", "8080", "0"),
        syn(3, "data", "8080", "0"),
        syn(5, "error", "8080", "1"),
        syn(7, "data", "8080", "1"),
        syn(9, "error", "9", "2"),
        syn(11, "data", "9", "2"),
        // Unknown type, and a third stream for request 0: refused.
        syn(13, "stdin", "8080", "3"),
        syn(15, "data", "8080", "0"),
    ] {
        conn.write_all(&encode(&f, &mut d)).await.unwrap();
    }
    let data = |stream, fin, data: &[u8]| Frame::Data {
        stream,
        fin,
        data: data.to_vec(),
    };
    for f in [
        data(3, false, b"hello "),
        data(7, false, b"other"),
        data(3, true, b"world"),
    ] {
        conn.write_all(&encode(&f, &mut d)).await.unwrap();
    }
    let got = until(&mut conn, &mut inflater, |g| {
        fin_of(g, 3) && fin_of(g, 1) && fin_of(g, 9) && fin_of(g, 11) && data_of(g, 7) == b"OTHER"
    })
    .await;
    let replied: Vec<u32> = got
        .iter()
        .filter_map(|f| match f {
            Frame::SynReply { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(replied, [1, 3, 5, 7, 9, 11]);
    let reset: Vec<u32> = got
        .iter()
        .filter_map(|f| match f {
            Frame::RstStream { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(reset, [13, 15]);
    assert_eq!(data_of(&got, 3), b"HELLO WORLDBYE");
    assert!(data_of(&got, 1).is_empty(), "no error for request 0");
    let refused = String::from_utf8(data_of(&got, 9)).unwrap();
    assert!(
        refused.contains("error forwarding port 9 to pod shop/web-1")
            && refused.contains("connection refused"),
        "{refused}"
    );
    assert!(!fin_of(&got, 7), "request 1 is still open");
    // Every byte received is given back.
    assert!(got.iter().any(|f| matches!(
        f,
        Frame::WindowUpdate {
            stream: 3,
            delta: 6
        }
    )));
    let mut forwards = berth.forwards.lock().unwrap().clone();
    forwards.sort();
    assert_eq!(
        forwards,
        [
            ("eci-1".to_string(), 9),
            ("eci-1".to_string(), 8080),
            ("eci-1".to_string(), 8080)
        ]
    );
}
