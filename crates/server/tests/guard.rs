//! Every answer is ECI-shaped: a panic in a handler is a 500 `InternalError` with a request
//! id, framework errors (body too large, unknown path) and the errors of the exec and log URLs
//! are JSON error bodies, numbers out of range are `InvalidParameter`, and `/metrics` answers
//! only the operator.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_client::ClientError;
use berth_control::{Control, LogRequest, NodeClient, NodeError, NodeObserve};
use berth_core::{GroupId, GroupRecord};
use berth_store::{SqliteStore, Store};

mod common;
use common::{p, serve_with, METRICS_TOKEN};

/// A node whose log reads panic: a bug a request can still reach.
struct PanickyNode;

impl NodeObserve for PanickyNode {}
impl berth_control::CacheNode for PanickyNode {}

#[async_trait]
impl NodeClient for PanickyNode {
    async fn apply(&self, _rec: GroupRecord) {}
    async fn remove(&self, _id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        Ok(())
    }
    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        panic!("a bug in the node's log reader")
    }
}

/// Asserts `resp` is an ECI error body with `status` and `code`; returns its message.
async fn eci_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let rid = resp.headers()["x-acs-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["Code"], code, "{body}");
    assert_eq!(body["RequestId"], rid.as_str(), "{body}");
    assert_eq!(rid.len(), 36, "{rid}");
    body["Message"].as_str().unwrap().to_string()
}

fn api_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn group(served: &common::Served) -> String {
    let v = served
        .client
        .call(
            "CreateContainerGroup",
            &p(&[
                ("ContainerGroupName", "panicky"),
                ("Container.1.Name", "c1"),
                ("Container.1.Image", "busybox"),
            ]),
        )
        .await
        .unwrap();
    v["ContainerGroupId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_panicking_handler_answers_an_eci_500_and_the_server_goes_on() {
    let served = serve_with(Arc::new(PanickyNode)).await;
    let id = group(&served).await;
    let err = served
        .client
        .call(
            "DescribeContainerLog",
            &p(&[("ContainerGroupId", &id), ("ContainerName", "c1")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (500, "InternalError".to_string()));
    let v = served
        .client
        .call("DescribeContainerGroups", &[])
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 1);
}

#[tokio::test]
async fn numbers_out_of_range_are_invalid_parameters_not_panics() {
    let served = serve_with(Arc::new(PanickyNode)).await;
    for (action, name) in [
        ("DescribeContainerGroupStatus", "SinceSecond"),
        ("DescribeContainerGroupEvents", "SinceSecond"),
    ] {
        let err = served
            .client
            .call(action, &p(&[(name, "18446744073709551615")]))
            .await
            .unwrap_err();
        assert_eq!(
            api_error(err),
            (400, "InvalidParameter.ValueExceeded".to_string()),
            "{action}"
        );
    }
    let ok = served
        .client
        .call(
            "DescribeContainerGroupStatus",
            &p(&[("SinceSecond", "3600")]),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn framework_and_stream_errors_are_eci_json() {
    let served = serve_with(Arc::new(PanickyNode)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", served.endpoint);
    let big = vec![b'a'; 2 << 20];
    let resp = http
        .post(format!("{base}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    eci_error(resp, 413, "InvalidParameter.LengthExceeded").await;
    let resp = http.get(format!("{base}/nowhere")).send().await.unwrap();
    eci_error(resp, 404, "NotFound").await;
    let resp = http
        .get(format!("{base}/logs/eci-x/c1?token=forged"))
        .send()
        .await
        .unwrap();
    eci_error(resp, 401, "Unauthorized").await;
    let resp = http
        .get(format!("{base}/logs/eci-x/c1"))
        .send()
        .await
        .unwrap();
    eci_error(resp, 401, "Unauthorized").await;
    let resp = http
        .get(format!("{base}/exec/forged"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    let code = if status == 401 {
        "Unauthorized"
    } else {
        "InvalidParameter"
    };
    eci_error(resp, status, code).await;
}

#[tokio::test]
async fn metrics_answer_only_the_operator() {
    let served = serve_with(Arc::new(PanickyNode)).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", served.endpoint);
    let resp = http.get(&url).send().await.unwrap();
    eci_error(resp, 401, "Unauthorized").await;
    let resp = http.get(&url).bearer_auth("guess").send().await.unwrap();
    eci_error(resp, 403, "Forbidden").await;
    let resp = http
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));
}

#[tokio::test]
async fn without_a_token_metrics_are_served_only_on_their_own_address() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let control = Control::new(store, "local");
    control.attach_node(Arc::new(PanickyNode));
    let state = berth_server::AppState::new(control);
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    tokio::spawn(berth_server::serve(
        api,
        state.clone(),
        std::future::pending(),
    ));
    tokio::spawn(berth_server::serve_metrics(
        metrics,
        state,
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    for auth in [None, Some("anything")] {
        let mut req = http.get(format!("http://{api_addr}/metrics"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        eci_error(req.send().await.unwrap(), 403, "Forbidden").await;
    }
    let resp = http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));
}
