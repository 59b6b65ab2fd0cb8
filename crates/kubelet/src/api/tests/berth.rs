//! [`BerthBackend`] against a fake berth HTTP endpoint: the calls it makes (DescribeContainerLog
//! with Follow and its StreamUrl, ExecContainerCommand and its WebSocket,
//! DescribeMultiContainerGroupMetric 20 ids a call, DescribeContainerGroups by tags).

use std::collections::HashMap;

use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// Every call berth received: the action (or `GET path`) and its parameters.
type Calls = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    calls: Calls,
}

async fn action(
    AxumState(f): AxumState<Fake>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ([(&'static str, &'static str); 1], String) {
    let action = headers["x-acs-action"].to_str().unwrap().to_string();
    f.calls.lock().unwrap().push((action.clone(), q.clone()));
    let addr = f.addr;
    let body = match action.as_str() {
        "DescribeContainerLog" => {
            json!({"RequestId": "r", "StreamUrl": format!("http://{addr}/logs/eci-1/app?token=t")})
        }
        "ExecContainerCommand" => {
            json!({"RequestId": "r", "WebSocketUri": format!("ws://{addr}/exec/tok")})
        }
        "DescribeMultiContainerGroupMetric" => {
            let ids: Vec<String> = serde_json::from_str(&q["ContainerGroupIds"]).unwrap();
            let datas: Vec<Value> = ids
                .iter()
                .map(|id| json!({"ContainerGroupId": id, "Records": [{"Timestamp": "2026-01-01T00:00:00Z"}]}))
                .collect();
            json!({"RequestId": "r", "MonitorDatas": datas})
        }
        "DescribeContainerGroups" => {
            let g = serde_json::to_value(group("eci-1", UID, "2026-01-01T00:00:00Z")).unwrap();
            json!({"RequestId": "r", "TotalCount": 1, "NextToken": "", "ContainerGroups": [g]})
        }
        other => panic!("unexpected action {other}"),
    };
    ([("content-type", "application/json")], body.to_string())
}

async fn log_stream(
    AxumState(f): AxumState<Fake>,
    Query(q): Query<HashMap<String, String>>,
) -> &'static str {
    f.calls.lock().unwrap().push(("GET /logs".into(), q));
    "line 1\nline 2\n"
}

async fn exec_socket(ws: WebSocketUpgrade) -> axum::response::Response {
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(|mut s| async move {
            if let Some(Ok(AxumMessage::Binary(b))) = s.recv().await {
                let mut echo = vec![1u8];
                echo.extend_from_slice(&b[1..]);
                let _ = s.send(AxumMessage::Binary(echo.into())).await;
            }
            let _ = s.send(AxumMessage::Close(None)).await;
        })
}

async fn fake_berth() -> (berth_client::Client, Calls) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route("/", post(action))
        .route("/logs/eci-1/app", get(log_stream))
        .route("/exec/tok", get(exec_socket))
        .with_state(Fake {
            addr,
            calls: calls.clone(),
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = berth_client::Client::new(&format!("http://{addr}"), "ak", "secret").unwrap();
    (client, calls)
}

#[tokio::test]
async fn logs_are_read_from_the_stream_url() {
    let (client, calls) = fake_berth().await;
    let b = BerthBackend::new(client, None).unwrap();
    let q = LogQuery {
        group_id: "eci-1".into(),
        container: "app".into(),
        follow: false,
        tail: Some(5),
        since_seconds: Some(60),
        timestamps: true,
        previous: true,
    };
    let chunks: Vec<Bytes> = b
        .logs(&q)
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(chunks.concat(), b"line 1\nline 2\n");
    let calls = calls.lock().unwrap().clone();
    let (action, p) = &calls[0];
    assert_eq!(action, "DescribeContainerLog");
    for (k, v) in [
        ("ContainerGroupId", "eci-1"),
        ("ContainerName", "app"),
        ("Follow", "true"),
        ("Tail", "5"),
        ("SinceSeconds", "60"),
        ("Timestamps", "true"),
        ("LastTime", "true"),
    ] {
        assert_eq!(p.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!p.contains_key("LimitBytes"));
    // Read once: the stream is asked not to follow.
    assert_eq!(calls[1].0, "GET /logs");
    assert_eq!(calls[1].1.get("follow").map(String::as_str), Some("false"));
    assert_eq!(calls[1].1["token"], "t");
}

#[tokio::test]
async fn exec_opens_berths_socket_with_the_clients_protocol() {
    let (client, calls) = fake_berth().await;
    let b = BerthBackend::new(client, None).unwrap();
    let q = ExecQuery {
        group_id: "eci-1".into(),
        container: "app".into(),
        command: vec!["sh".into(), "-c".into(), "cat".into()],
        tty: true,
        stdin: true,
        protocol: "v4.channel.k8s.io".into(),
    };
    let mut ws = b.exec(&q).await.unwrap();
    ws.send(Message::Binary(vec![0, b'x'].into()))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(m))) => assert_eq!(&m[..], &[1, b'x']),
        other => panic!("{other:?}"),
    }
    let (action, p) = calls.lock().unwrap()[0].clone();
    assert_eq!(action, "ExecContainerCommand");
    assert_eq!(p["Command"], r#"["sh","-c","cat"]"#);
    assert_eq!(
        (p["TTY"].as_str(), p["Stdin"].as_str(), p["Sync"].as_str()),
        ("true", "true", "false")
    );
}

#[tokio::test]
async fn metrics_are_asked_twenty_groups_a_call_and_groups_by_tag() {
    let (client, calls) = fake_berth().await;
    let b = BerthBackend::new(client, None).unwrap();
    let ids: Vec<String> = (0..25).map(|i| format!("eci-{i}")).collect();
    let m = b.metrics(&ids).await.unwrap();
    assert_eq!(m.len(), 25);
    let groups = b.groups_of("shop", "web-1").await.unwrap();
    assert_eq!(groups[0].container_group_id, "eci-1");
    let calls = calls.lock().unwrap().clone();
    let sizes: Vec<usize> = calls
        .iter()
        .filter(|c| c.0 == "DescribeMultiContainerGroupMetric")
        .map(|c| {
            serde_json::from_str::<Vec<String>>(&c.1["ContainerGroupIds"])
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [20, 5]);
    let describe = &calls
        .iter()
        .find(|c| c.0 == "DescribeContainerGroups")
        .unwrap()
        .1;
    assert_eq!(describe["Tag.1.Key"], "k8s.pod.namespace");
    assert_eq!(describe["Tag.1.Value"], "shop");
    assert_eq!(describe["Tag.2.Key"], "k8s.pod.name");
    assert_eq!(describe["Tag.2.Value"], "web-1");
}
