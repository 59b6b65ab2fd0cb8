//! The observe operations over real HTTP on loopback with a fake node: sync exec, the exec
//! WebSocket (v4.channel.k8s.io framing, resize, exit status, one-time tokens), metric
//! queries, the log stream extension and /metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_client::{Client, ClientError};
use berth_control::{
    ExecOutput, ExecProcess, ExecRequest, ExecStream, LogRequest, MetricRange, NodeClient,
    NodeError, NodeObserve,
};
use berth_core::metric::{ContainerMetric, CpuUsage, MetricPoint};
use berth_core::{ContainerState, ContainerStatus, GroupId, GroupRecord, ObservedGroup};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{p, serve_with};

#[derive(Default)]
struct FakeNode {
    execs: Mutex<Vec<ExecRequest>>,
    resizes: Arc<Mutex<Vec<(u16, u16)>>>,
    points: Mutex<Vec<MetricPoint>>,
}

/// Exits with the number of bytes read from stdin once it closes.
struct FakeProcess {
    resizes: Arc<Mutex<Vec<(u16, u16)>>>,
    done: Option<tokio::sync::oneshot::Receiver<i32>>,
}

#[async_trait]
impl ExecProcess for FakeProcess {
    fn resize(&self, cols: u16, rows: u16) -> Result<(), NodeError> {
        self.resizes.lock().unwrap().push((cols, rows));
        Ok(())
    }
    async fn wait(&mut self) -> Result<i32, NodeError> {
        match self.done.as_mut() {
            Some(rx) => {
                let code = rx.await.unwrap_or(137);
                self.done = None;
                Ok(code)
            }
            None => Ok(0),
        }
    }
    fn kill(&self) {}
}

#[async_trait]
impl NodeObserve for FakeNode {
    async fn exec_sync(
        &self,
        _id: &GroupId,
        req: &ExecRequest,
        _timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        self.execs.lock().unwrap().push(req.clone());
        Ok(ExecOutput {
            stdout: req.command.join("|").into_bytes(),
            stderr: b"warn\n".to_vec(),
            exit_code: 3,
        })
    }

    /// Echoes stdin upper-cased to stdout until a line `exit N`, then exits with N (and reads
    /// no more).
    async fn exec_start(&self, _id: &GroupId, req: &ExecRequest) -> Result<ExecStream, NodeError> {
        self.execs.lock().unwrap().push(req.clone());
        let (stdin_w, mut stdin_r) = tokio::io::duplex(1024);
        let (mut out_w, out_r) = tokio::io::duplex(1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let mut text = String::new();
            loop {
                let n = stdin_r.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    let _ = tx.send(0);
                    return;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if let Some(code) = text.lines().find_map(|l| l.trim().strip_prefix("exit ")) {
                    let _ = tx.send(code.parse().unwrap_or(1));
                    return;
                }
                let _ = out_w.write_all(text.to_uppercase().as_bytes()).await;
                text.clear();
            }
        });
        Ok(ExecStream {
            stdin: Some(Box::new(stdin_w)),
            stdout: Some(Box::new(out_r)),
            stderr: None,
            tty: req.tty,
            process: Box::new(FakeProcess {
                resizes: self.resizes.clone(),
                done: Some(rx),
            }),
        })
    }

    async fn metrics(
        &self,
        _id: &GroupId,
        range: &MetricRange,
    ) -> Result<Vec<MetricPoint>, NodeError> {
        Ok(self
            .points
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.timestamp >= range.start && p.timestamp <= range.end)
            .cloned()
            .collect())
    }

    async fn follow_log(
        &self,
        _id: &GroupId,
        req: &LogRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, NodeError> {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let tail = req.tail;
        tokio::spawn(async move {
            let _ = tx.send(format!("backlog tail={tail:?}\n")).await;
            for i in 0..3 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(format!("line {i}\n")).await;
            }
        });
        Ok(rx)
    }
}

impl berth_control::CacheNode for FakeNode {}

#[async_trait]
impl NodeClient for FakeNode {
    async fn apply(&self, _rec: GroupRecord) {}
    async fn remove(&self, _id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        Ok(())
    }
    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        Ok(String::new())
    }
}

struct Api {
    client: Client,
    node: Arc<FakeNode>,
    endpoint: String,
    group: String,
}

async fn start() -> Api {
    let node = Arc::new(FakeNode::default());
    let served = serve_with(node.clone()).await;
    let (client, control, endpoint) = (served.client, served.control, served.endpoint);
    let v = client
        .call(
            "CreateContainerGroup",
            &p(&[
                ("ContainerGroupName", "obs"),
                ("Container.1.Name", "c1"),
                ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
                ("Container.1.Cpu", "0.5"),
                ("Container.1.Memory", "1.0"),
            ]),
        )
        .await
        .unwrap();
    let group = v["ContainerGroupId"].as_str().unwrap().to_string();
    control
        .report(
            &GroupId::parse(&group).unwrap(),
            ObservedGroup {
                containers: vec![ContainerStatus {
                    name: "c1".into(),
                    current: ContainerState::running(Utc::now()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
    Api {
        client,
        node,
        endpoint,
        group,
    }
}

#[tokio::test]
async fn sync_exec_returns_the_output() {
    let api = start().await;
    let v = api
        .client
        .call(
            "ExecContainerCommand",
            &p(&[
                ("ContainerGroupId", &api.group),
                ("ContainerName", "c1"),
                ("Command", r#"["sh","-c","echo a b","x y"]"#),
                ("Sync", "true"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(v["SyncResponse"], "sh|-c|echo a b|x ywarn\n");
    assert_eq!(v["ExitCode"], 3);
    assert_eq!(v["WebSocketUri"], "");
    assert_eq!(v["HttpUrl"], "");
    assert_eq!(
        api.node.execs.lock().unwrap()[0].command,
        ["sh", "-c", "echo a b", "x y"]
    );

    let err = api
        .client
        .call(
            "ExecContainerCommand",
            &p(&[
                ("ContainerGroupId", &api.group),
                ("ContainerName", "nope"),
                ("Command", r#"["true"]"#),
                ("Sync", "true"),
            ]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 404, .. }), "{err}");
}

type ExecSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An interactive `sh` in `c1` (with a terminal when `tty` is "true"): its WebSocket URI and
/// its socket, opened with `protocol`, which the server must choose.
async fn open_exec(api: &Api, tty: &str, protocol: &str) -> (String, ExecSocket) {
    let v = api
        .client
        .call(
            "ExecContainerCommand",
            &p(&[
                ("ContainerGroupId", &api.group),
                ("ContainerName", "c1"),
                ("Command", r#"["sh"]"#),
                ("TTY", tty),
                ("Stdin", "true"),
            ]),
        )
        .await
        .unwrap();
    let uri = v["WebSocketUri"].as_str().unwrap().to_string();
    let mut req = uri.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    (uri, ws)
}

#[tokio::test]
async fn websocket_exec_speaks_channel_k8s_io() {
    let api = start().await;
    let (uri, mut ws) = open_exec(&api, "true", "v4.channel.k8s.io").await;
    assert!(
        uri.starts_with(&format!("ws://{}/exec/", api.endpoint)),
        "{uri}"
    );
    ws.send(Message::Binary(
        b"\x04{\"Width\":90,\"Height\":20}".to_vec().into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(b"\x00hello\n".to_vec().into()))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut status = None;
    let mut sent_exit = false;
    while let Some(Ok(m)) = ws.next().await {
        let Message::Binary(b) = m else { continue };
        match b[0] {
            1 => out.extend_from_slice(&b[1..]),
            3 => {
                status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..]).unwrap());
                break;
            }
            _ => {}
        }
        if out.ends_with(b"HELLO\n") && !sent_exit {
            sent_exit = true;
            ws.send(Message::Binary(b"\x00exit 9\n".to_vec().into()))
                .await
                .unwrap();
        }
    }
    assert_eq!(out, b"HELLO\n");
    let status = status.unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["details"]["causes"][0]["message"], "9");
    assert_eq!(*api.node.resizes.lock().unwrap(), [(90, 20)]);
    assert!(api.node.execs.lock().unwrap()[0].tty);

    // The token is spent.
    let mut again = uri.as_str().into_client_request().unwrap();
    again.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(again).await.is_err());
}

/// A client that goes on sending after the command ended (stdin it no longer reads) still
/// gets the last output, the status and a Close: the server reads its messages until its
/// Close instead of closing the connection on them (which resets it, dropping what was still
/// queued to the client).
#[tokio::test]
async fn the_status_reaches_a_client_that_goes_on_sending() {
    let api = start().await;
    for round in 0..20 {
        let (_, ws) = open_exec(&api, "false", "v5.channel.k8s.io").await;
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::Binary(b"\x00hi\n".to_vec().into()))
            .await
            .unwrap();
        let mut out = Vec::new();
        while out != b"HI\n" {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) if b[0] == 1 => out.extend_from_slice(&b[1..]),
                other => panic!("round {round}: {other:?} before the echo"),
            }
        }
        let sender = tokio::spawn(async move {
            let _ = tx
                .send(Message::Binary(
                    format!("\x00exit {round}\n").into_bytes().into(),
                ))
                .await;
            let filler = std::iter::repeat_n([&[0u8][..], &[b'x'; 4096][..]].concat(), 64);
            let _ = tx
                .send_all(&mut futures_util::stream::iter(
                    filler.map(|f| Ok(Message::Binary(f.into()))),
                ))
                .await;
            tx
        });
        let mut status = None;
        let mut closed = false;
        while let Some(m) = rx.next().await {
            match m.unwrap_or_else(|e| panic!("round {round}: the connection failed: {e}")) {
                Message::Binary(b) if b[0] == 1 => out.extend_from_slice(&b[1..]),
                Message::Binary(b) if b[0] == 3 => {
                    status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..]).unwrap())
                }
                Message::Close(_) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(out, b"HI\n", "round {round}");
        let status = status.unwrap_or_else(|| panic!("round {round}: no status"));
        let code = status["details"]["causes"][0]["message"].clone();
        match round {
            0 => assert_eq!(status["status"], "Success"),
            _ => assert_eq!(code, round.to_string(), "{status}"),
        }
        assert!(closed, "round {round}: no Close");
        let mut tx = sender.await.unwrap();
        let _ = tx.close().await;
    }
}

fn point(at: DateTime<Utc>, nano_cores: u64) -> MetricPoint {
    MetricPoint {
        timestamp: at,
        cpu: CpuUsage {
            usage_core_ns: 1,
            usage_nano_cores: nano_cores,
            limit_millicores: 500,
        },
        containers: vec![ContainerMetric {
            name: "c1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn metric_queries() {
    let api = start().await;
    let now = Utc::now();
    {
        let mut pts = api.node.points.lock().unwrap();
        for i in (1..=40).rev() {
            pts.push(point(now - chrono::Duration::seconds(i * 15), 100));
        }
        pts.push(point(now, 400));
    }
    let v = api
        .client
        .call(
            "DescribeContainerGroupMetric",
            &p(&[("ContainerGroupId", &api.group), ("Period", "15")]),
        )
        .await
        .unwrap();
    assert_eq!(v["ContainerGroupId"], api.group.as_str());
    let recs = v["Records"].as_array().unwrap();
    // The last five minutes at 15 s: 20 or 21 buckets.
    assert!((20..=21).contains(&recs.len()), "{}", recs.len());
    assert_eq!(recs.last().unwrap()["CPU"]["UsageNanoCores"], 400);
    assert_eq!(recs[0]["Containers"][0]["Name"], "c1");

    let v = api
        .client
        .call(
            "DescribeContainerGroupMetric",
            &p(&[("ContainerGroupId", &api.group), ("Period", "600")]),
        )
        .await
        .unwrap();
    assert!(v["Records"].as_array().unwrap().len() <= 2);

    let ids = serde_json::to_string(&[&api.group, "eci-unknownunknownunkn"]).unwrap();
    let v = api
        .client
        .call(
            "DescribeMultiContainerGroupMetric",
            &p(&[("ContainerGroupIds", &ids)]),
        )
        .await
        .unwrap();
    let datas = v["MonitorDatas"].as_array().unwrap();
    assert_eq!(datas.len(), 1);
    assert_eq!(datas[0]["Records"].as_array().unwrap().len(), 1);
    assert_eq!(datas[0]["Records"][0]["CPU"]["UsageNanoCores"], 400);

    let err = api
        .client
        .call(
            "DescribeContainerGroupMetric",
            &p(&[("ContainerGroupId", &api.group), ("Period", "5")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 400, .. }), "{err}");
}

#[tokio::test]
async fn log_stream_with_a_one_time_token() {
    let api = start().await;
    let v = api
        .client
        .call(
            "DescribeContainerLog",
            &p(&[
                ("ContainerGroupId", &api.group),
                ("ContainerName", "c1"),
                ("Follow", "true"),
                ("Tail", "7"),
            ]),
        )
        .await
        .unwrap();
    let url = v["StreamUrl"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!(
            "http://{}/logs/{}/c1?token=",
            api.endpoint, api.group
        )),
        "{url}"
    );
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert_eq!(body, "backlog tail=Some(7)\nline 0\nline 1\nline 2\n");
    let again = reqwest::get(&url).await.unwrap();
    assert_eq!(again.status(), 401);

    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", api.endpoint))
        .bearer_auth(common::METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("berth_api_request_duration_seconds_count{action=\"DescribeContainerLog\",code=\"200\"} 1"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"));
}
