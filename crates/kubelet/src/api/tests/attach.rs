//! `/attach` over WebSocket (v4, v5) and SPDY/3.1: the container's output from now on (berth's
//! log stream, followed without its past), a Success status when the container ends, and
//! stdin or a tty refused on the error channel.

use std::time::Duration;

use super::exec::{connect_to, frames, spdy_connect_to};
use super::*;

const PATH: &str = "/attach/shop/web-1/app";

/// The kubelet API with a fake berth whose log the test feeds through the sender.
async fn setup() -> (
    Pki,
    SocketAddr,
    Arc<FakeBerth>,
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::sync::oneshot::Sender<()>,
) {
    let pki = Pki::new();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let berth = Arc::new(FakeBerth {
        groups: vec![group("eci-1", UID, "2026-01-01T00:00:00Z")],
        log: Mutex::new(Some(rx)),
        ..Default::default()
    });
    let (addr, stop) = start(&pki, AuthConfig::Anonymous, berth.clone()).await;
    (pki, addr, berth, tx, stop)
}

fn status_of(frame: &[u8]) -> Value {
    assert_eq!(frame[0], 3, "{frame:?}");
    serde_json::from_slice(&frame[1..]).unwrap()
}

#[tokio::test]
async fn websocket_attach_relays_the_output_until_the_container_ends() {
    for protocol in ["v4.channel.k8s.io", "v5.channel.k8s.io"] {
        let (pki, addr, berth, log, _stop) = setup().await;
        let mut ws = connect_to(&pki, addr, &format!("{PATH}?stdout=1&stderr=1"), protocol).await;
        log.send(Bytes::from("one\n")).await.unwrap();
        log.send(Bytes::from("two\n")).await.unwrap();
        // The container ends: its log stream ends.
        drop(log);
        let got = frames(&mut ws).await;
        assert_eq!(got[0], b"\x01one\n", "{protocol}");
        assert_eq!(got[1], b"\x01two\n");
        assert_eq!(status_of(&got[2])["status"], "Success");
        assert_eq!(got.len(), 3);
        let q = berth.log_queries.lock().unwrap()[0].clone();
        assert!(q.follow, "followed");
        assert_eq!(q.tail, Some(0), "from now on");
        assert_eq!(
            (q.group_id.as_str(), q.container.as_str()),
            ("eci-1", "app")
        );
    }
}

#[tokio::test]
async fn websocket_attach_with_stdin_or_a_tty_is_refused_on_the_error_channel() {
    for (query, word) in [("stdin=1&stdout=1", "stdin"), ("stdout=1&tty=1", "tty")] {
        let (pki, addr, berth, _log, _stop) = setup().await;
        let mut ws = connect_to(&pki, addr, &format!("{PATH}?{query}"), "v5.channel.k8s.io").await;
        let got = frames(&mut ws).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let st = status_of(&got[0]);
        assert_eq!(st["status"], "Failure");
        assert_eq!(st["code"], 400);
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{word} is not enabled for container \"app\"")),
            "{st}"
        );
        assert!(berth.log_queries.lock().unwrap().is_empty(), "nothing read");
    }
}

#[tokio::test]
async fn attach_to_an_unknown_container_is_a_404() {
    let (pki, addr, _berth, _log, _stop) = setup().await;
    let r = pki
        .http(false)
        .get(format!("https://{addr}/attach/shop/web-1/nosuch?stdout=1"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn spdy_attach_relays_the_output_then_the_status() {
    use super::spdy::frame::{encode, read_frame, Frame};
    use super::spdy::headers::{Deflater, Inflater};
    use tokio::io::AsyncWriteExt;

    let (pki, addr, _berth, log, _stop) = setup().await;
    let (head, mut tls) = spdy_connect_to(&pki, addr, &format!("{PATH}?stdout=1")).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let mut d = Deflater::default();
    let syn = |stream: u32, kind: &str| Frame::SynStream {
        stream,
        fin: false,
        headers: vec![("streamtype".into(), kind.into())],
    };
    // stdin was not asked for: its stream is reset (opened first, so that it is seen before
    // the session is ready and may end).
    for f in [syn(1, "stdin"), syn(3, "error"), syn(5, "stdout")] {
        tls.write_all(&encode(&f, &mut d)).await.unwrap();
    }
    log.send(Bytes::from("hello\n")).await.unwrap();
    drop(log);
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
    assert!(
        got.contains(&Frame::RstStream {
            stream: 1,
            status: 3
        }),
        "{got:?}"
    );
    assert_eq!(bytes_on(5), b"hello\n");
    let st: Value = serde_json::from_slice(&bytes_on(3)).unwrap();
    assert_eq!(st["status"], "Success");
    assert!(matches!(got.last(), Some(Frame::GoAway { .. })));
}

#[tokio::test]
async fn spdy_attach_with_a_tty_gets_the_refusal_on_its_error_stream() {
    use super::spdy::frame::{encode, read_frame, Frame};
    use super::spdy::headers::{Deflater, Inflater};
    use tokio::io::AsyncWriteExt;

    let (pki, addr, berth, _log, _stop) = setup().await;
    let (head, mut tls) = spdy_connect_to(&pki, addr, &format!("{PATH}?stdout=1&tty=1")).await;
    assert!(
        head.to_ascii_lowercase().starts_with("http/1.1 101"),
        "{head}"
    );
    let mut d = Deflater::default();
    let syn = |stream: u32, kind: &str| Frame::SynStream {
        stream,
        fin: false,
        headers: vec![("streamtype".into(), kind.into())],
    };
    for f in [syn(1, "error"), syn(3, "stdout"), syn(5, "resize")] {
        tls.write_all(&encode(&f, &mut d)).await.unwrap();
    }
    let mut inflater = Inflater::default();
    let mut error = Vec::new();
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut tls, &mut inflater))
            .await
            .unwrap()
            .unwrap();
        match f {
            Some(Frame::Data {
                stream: 1, data, ..
            }) => error.extend(data),
            Some(Frame::GoAway { .. }) | None => break,
            Some(_) => {}
        }
    }
    let st: Value = serde_json::from_slice(&error).unwrap();
    assert_eq!(st["status"], "Failure");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("tty is not enabled"),
        "{st}"
    );
    assert!(berth.log_queries.lock().unwrap().is_empty());
}
