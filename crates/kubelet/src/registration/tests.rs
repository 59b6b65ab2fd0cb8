//! The controller against kube's mocked service: each test plays the API server's side, with
//! answers shaped as a v1.33 API server sends them (resourceVersion, uid, Status bodies for
//! 404 and 409).

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

use super::*;
use crate::node::TAINT_KEY;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the API server expects, and its answer.
struct Step {
    method: &'static str,
    path: &'static str,
    status: u16,
    body: Value,
}

fn step(method: &'static str, path: &'static str, status: u16, body: Value) -> Step {
    Step {
        method,
        path,
        status,
        body,
    }
}

/// Answers `steps` in order; returns the request bodies and content types.
async fn serve(mut handle: Handle, steps: Vec<Step>) -> Vec<(Value, String)> {
    let mut seen = Vec::new();
    for s in steps {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(
            (req.method().as_str(), req.uri().path()),
            (s.method, s.path),
            "request {}",
            seen.len() + 1
        );
        let kind = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = req.into_body().collect_bytes().await.unwrap();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        seen.push((body, kind));
        send.send_response(
            Response::builder()
                .status(s.status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&s.body).unwrap()))
                .unwrap(),
        );
    }
    seen
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn stored(mut obj: Value, rv: &str) -> Value {
    obj["metadata"]["resourceVersion"] = json!(rv);
    obj["metadata"]["uid"] = json!("9d0c8a1e-0000-4000-8000-000000000001");
    obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    obj
}

fn cfg() -> NodeConfig {
    NodeConfig {
        name: "vk-1".into(),
        internal_ip: "192.0.2.10".into(),
        kubelet_port: 10250,
        kubelet_version: "v1.33.0-berth".into(),
    }
}

fn cap() -> Capacity {
    Capacity::from_usage(&BTreeMap::from([
        ("MaxCpu".to_string(), json!(64.0)),
        ("MaxMemory".to_string(), json!(256.0)),
        ("MaxContainerGroupCount".to_string(), json!(1000.0)),
        ("MaxEphemeralStorage".to_string(), json!(2048.0)),
        ("UsedCpu".to_string(), json!(3.5)),
    ]))
}

fn now() -> Timestamp {
    "2026-01-01T00:00:10Z".parse().unwrap()
}

fn registration() -> (Registration, Handle) {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Registration::new(kube::Client::new(mock, "default"), cfg()),
        handle,
    )
}

fn node_json() -> Value {
    serde_json::to_value(node(&cfg(), &cap(), true, now())).unwrap()
}

const NODES: &str = "/api/v1/nodes";
const NODE: &str = "/api/v1/nodes/vk-1";
const NODE_STATUS: &str = "/api/v1/nodes/vk-1/status";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/vk-1";

#[tokio::test]
async fn registration_creates_the_node_and_sends_its_status() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![
            step("POST", NODES, 201, stored(node_json(), "1")),
            step("PATCH", NODE_STATUS, 200, stored(node_json(), "2")),
        ],
    ));
    r.register(&cap(), now()).await.unwrap();
    let seen = server.await.unwrap();
    let posted = &seen[0].0;
    let labels = &posted["metadata"]["labels"];
    assert_eq!(labels["type"], "virtual-kubelet");
    assert_eq!(labels["kubernetes.io/role"], "agent");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/hostname"], "vk-1");
    assert_eq!(
        posted["spec"]["taints"],
        json!([{"key": "virtual-kubelet.io/provider", "value": "berth", "effect": "NoSchedule"}])
    );
    let (patch, kind) = &seen[1];
    assert_eq!(kind, "application/merge-patch+json");
    let st = &patch["status"];
    assert_eq!(
        st["capacity"],
        json!({"cpu": "64000m", "memory": "262144Mi", "pods": "1000", "ephemeral-storage": "2048Gi"})
    );
    assert_eq!(st["allocatable"], st["capacity"]);
    assert_eq!(st["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    assert_eq!(
        st["addresses"][0],
        json!({"type": "InternalIP", "address": "192.0.2.10"})
    );
    let ready = &st["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["status"]),
        (&json!("Ready"), &json!("True"))
    );
    assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:00:10Z");
    for c in st["conditions"].as_array().unwrap().iter().skip(1) {
        assert_eq!(c["status"], "False", "{c}");
    }
    assert_eq!(st["nodeInfo"]["kubeletVersion"], "v1.33.0-berth");
}

#[tokio::test]
async fn a_restarted_node_merges_into_the_one_registered() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![
            step(
                "POST",
                NODES,
                409,
                status(409, "AlreadyExists", "nodes \"vk-1\" already exists"),
            ),
            step("PATCH", NODE, 200, stored(node_json(), "7")),
            step("PATCH", NODE_STATUS, 200, stored(node_json(), "8")),
        ],
    ));
    r.register(&cap(), now()).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[1].0["metadata"]["labels"]["type"], "virtual-kubelet");
    assert_eq!(seen[1].0["spec"]["taints"][0]["key"], TAINT_KEY);
    assert!(seen[1].0.get("status").is_none());
    assert_eq!(seen[2].0["status"]["conditions"][0]["status"], "True");
}

#[tokio::test]
async fn registration_errors_are_returned_not_swallowed() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![step(
            "POST",
            NODES,
            403,
            status(403, "Forbidden", "nodes is forbidden"),
        )],
    ));
    let e = r.register(&cap(), now()).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.is_forbidden()), "{e}");
    server.await.unwrap();
}

fn lease_json(rv: &str, renew: &str, holder: &str) -> Value {
    let mut l = serde_json::to_value(lease("vk-1", now())).unwrap();
    l["spec"]["renewTime"] = json!(renew);
    l["spec"]["holderIdentity"] = json!(holder);
    stored(l, rv)
}

#[tokio::test]
async fn the_lease_is_created_then_renewed_in_place() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![
            step(
                "GET",
                LEASE,
                404,
                status(
                    404,
                    "NotFound",
                    "leases.coordination.k8s.io \"vk-1\" not found",
                ),
            ),
            step(
                "POST",
                LEASES,
                201,
                lease_json("100", "2026-01-01T00:00:10.000000Z", "vk-1"),
            ),
            step(
                "PUT",
                LEASE,
                200,
                lease_json("101", "2026-01-01T00:00:20.000000Z", "vk-1"),
            ),
        ],
    ));
    r.renew_lease(now()).await.unwrap();
    let later: Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
    let l = r.renew_lease(later).await.unwrap();
    assert_eq!(l.metadata.resource_version.as_deref(), Some("101"));
    let seen = server.await.unwrap();
    let created = &seen[1].0;
    assert_eq!(created["metadata"]["namespace"], "kube-node-lease");
    assert_eq!(created["spec"]["holderIdentity"], "vk-1");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 40);
    let put = &seen[2].0;
    assert_eq!(
        put["metadata"]["resourceVersion"], "100",
        "the renewal is guarded by the version last written"
    );
    assert!(put["spec"]["renewTime"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-01T00:00:20"));
    assert_eq!(RENEW_INTERVAL, std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn a_lease_conflict_reads_the_lease_again() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![
            step("GET", LEASE, 200, lease_json("200", "2026-01-01T00:00:00.000000Z", "vk-1")),
            step("PUT", LEASE, 409, status(409, "Conflict", "Operation cannot be fulfilled on leases.coordination.k8s.io \"vk-1\": the object has been modified; please apply your changes to the latest version and try again")),
            step("GET", LEASE, 200, lease_json("205", "2026-01-01T00:00:05.000000Z", "someone-else")),
            step("PUT", LEASE, 200, lease_json("206", "2026-01-01T00:00:10.000000Z", "vk-1")),
        ],
    ));
    r.renew_lease(now()).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[1].0["metadata"]["resourceVersion"], "200");
    assert_eq!(seen[3].0["metadata"]["resourceVersion"], "205");
    assert_eq!(seen[3].0["spec"]["holderIdentity"], "vk-1");
}

#[tokio::test]
async fn lasting_conflicts_give_up_after_three_tries() {
    let (r, handle) = registration();
    let conflict = || status(409, "Conflict", "the object has been modified");
    let server = tokio::spawn(serve(
        handle,
        vec![
            step(
                "GET",
                LEASE,
                200,
                lease_json("1", "2026-01-01T00:00:00.000000Z", "vk-1"),
            ),
            step("PUT", LEASE, 409, conflict()),
            step(
                "GET",
                LEASE,
                200,
                lease_json("2", "2026-01-01T00:00:00.000000Z", "vk-1"),
            ),
            step("PUT", LEASE, 409, conflict()),
            step(
                "GET",
                LEASE,
                200,
                lease_json("3", "2026-01-01T00:00:00.000000Z", "vk-1"),
            ),
            step("PUT", LEASE, 409, conflict()),
        ],
    ));
    let e = r.renew_lease(now()).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.is_conflict()), "{e}");
    server.await.unwrap();
}

#[tokio::test]
async fn run_registers_renews_and_marks_the_node_not_ready_on_shutdown() {
    let (r, mut handle) = registration();
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(async move { r.run(cap(), &Fixed(Ok(cap())), shutdown).await });
    let mut seen = Vec::new();
    for (method, path, code, body) in [
        ("POST", NODES, 201, stored(node_json(), "1")),
        ("PATCH", NODE_STATUS, 200, stored(node_json(), "2")),
        ("GET", LEASE, 404, status(404, "NotFound", "not found")),
        (
            "POST",
            LEASES,
            201,
            lease_json("3", "2026-01-01T00:00:10.000000Z", "vk-1"),
        ),
    ] {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!((req.method().as_str(), req.uri().path()), (method, path));
        seen.push(req);
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }
    stop.send(true).unwrap();
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        (req.method().as_str(), req.uri().path()),
        ("PATCH", NODE_STATUS)
    );
    let body: Value =
        serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
    let ready = &body["status"]["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["status"], &ready["reason"]),
        (&json!("Ready"), &json!("False"), &json!("KubeletNotReady"))
    );
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(
                serde_json::to_vec(&stored(node_json(), "4")).unwrap(),
            ))
            .unwrap(),
    );
    run.await.unwrap();
}

/// A capacity source that answers the same each time.
struct Fixed(Result<Capacity, String>);

#[async_trait::async_trait]
impl CapacitySource for Fixed {
    async fn read(&self) -> Result<Capacity, String> {
        self.0.clone()
    }
}

#[tokio::test]
async fn the_status_carries_the_capacity_read_again() {
    let (r, handle) = registration();
    let server = tokio::spawn(serve(
        handle,
        vec![
            step("PATCH", NODE_STATUS, 200, stored(node_json(), "2")),
            step("PATCH", NODE_STATUS, 200, stored(node_json(), "3")),
            step("PATCH", NODE_STATUS, 200, stored(node_json(), "4")),
        ],
    ));
    let mut current = cap();
    let mut more = cap();
    more.cpu = 128.0;
    more.pods = 2000;
    assert!(r
        .refresh_status(&mut current, &Fixed(Ok(more)), now())
        .await
        .unwrap());
    assert_eq!(current, more);
    assert!(!r
        .refresh_status(&mut current, &Fixed(Ok(more)), now())
        .await
        .unwrap());
    // berth cannot be reached: the last capacity stays, the status is still sent.
    assert!(!r
        .refresh_status(&mut current, &Fixed(Err("503".into())), now())
        .await
        .unwrap());
    assert_eq!(current, more);
    let seen = server.await.unwrap();
    for (patch, _) in &seen {
        assert_eq!(patch["status"]["capacity"]["cpu"], "128000m");
        assert_eq!(patch["status"]["capacity"]["pods"], "2000");
        assert_eq!(patch["status"]["allocatable"], patch["status"]["capacity"]);
    }
}
