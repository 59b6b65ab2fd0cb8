//! The pod controller against kube's mocked service playing a v1.33 API server (objects with
//! resourceVersion and uid, Status bodies for errors, watch events with BOOKMARK and a 410
//! ERROR) and a fake berth that keeps its groups in memory.

mod reconcile;
mod refresh;
mod watch;
mod workers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_client::response::ContainerGroup;
use berth_client::CreateParams;
use http::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use serde_json::{json, Value};

use super::*;

pub const NODE: &str = "vk-1";
pub const UID: &str = "0b6c1c6e-1111-4222-8333-944445555666";

/// berth, in memory: one group per ClientToken, as berth's idempotent create.
#[derive(Clone, Default)]
pub struct FakeBerth(pub Arc<Mutex<Fake>>);

#[derive(Default)]
pub struct Fake {
    pub groups: Vec<ContainerGroup>,
    pub creates: Vec<CreateParams>,
    pub deletes: Vec<String>,
    /// The grace period each delete gave.
    pub delete_graces: Vec<Option<u64>>,
    /// Creates to answer with a 503 first.
    pub fail_creates: usize,
    /// Full lists and follows of changed groups made.
    pub lists: usize,
    pub follows: usize,
    /// How long each create takes.
    pub create_delay: std::time::Duration,
    /// Creates under way, the most at once, and the most at once for one pod.
    pub creating: Vec<String>,
    pub most_creating: usize,
    pub most_creating_one_pod: usize,
    /// Volume updates: the group and the volumes given.
    pub updates: Vec<(String, Vec<berth_core::Volume>)>,
}

impl FakeBerth {
    pub fn state(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.0.lock().unwrap()
    }

    /// The groups being deleted go.
    pub fn finish_deletes(&self) {
        self.state().groups.retain(|g| g.status != "Terminating");
    }

    /// A group of the pod `uid` as DescribeContainerGroups shows it.
    pub fn add(&self, id: &str, uid: &str, status: &str) {
        self.state().groups.push(group(id, uid, status));
    }
}

pub fn group(id: &str, uid: &str, status: &str) -> ContainerGroup {
    serde_json::from_value(json!({
        "ContainerGroupId": id, "ContainerGroupName": "shop-web-1", "Status": status,
        "IntranetIp": "10.1.0.7", "CreationTime": "2026-01-01T00:00:00Z",
        "Tags": [{"Key": "k8s.pod.uid", "Value": uid}],
        "Containers": [{"Name": "app", "Ready": status == "Running", "RestartCount": 0,
            "CurrentState": if status == "Running" {
                json!({"State": "Running", "StartTime": "2026-01-01T00:00:05Z"})
            } else { json!({"State": "Waiting", "DetailStatus": "ContainerCreating"}) }}]
    }))
    .unwrap()
}

#[async_trait]
impl Groups for FakeBerth {
    async fn create(&self, p: &CreateParams) -> Result<String, GroupsError> {
        let token = p.client_token.clone().unwrap_or_default();
        let delay = {
            let mut s = self.state();
            s.creating.push(token.clone());
            s.most_creating = s.most_creating.max(s.creating.len());
            let same = s.creating.iter().filter(|t| **t == token).count();
            s.most_creating_one_pod = s.most_creating_one_pod.max(same);
            s.create_delay
        };
        tokio::time::sleep(delay).await;
        let mut s = self.state();
        if let Some(i) = s.creating.iter().position(|t| *t == token) {
            s.creating.remove(i);
        }
        if s.fail_creates > 0 {
            s.fail_creates -= 1;
            return Err(GroupsError::Transient(
                "ServiceUnavailable (HTTP 503)".into(),
            ));
        }
        s.creates.push(p.clone());
        if let Some(g) = s.groups.iter().find(|g| pod_uid(g) == Some(&token)) {
            return Ok(g.container_group_id.clone());
        }
        let id = format!("eci-{}", s.creates.len());
        let mut g = group(&id, &token, "Pending");
        g.volumes = p
            .volumes
            .iter()
            .map(berth_client::response::Volume::from_spec)
            .collect();
        s.groups.push(g);
        Ok(id)
    }

    async fn list(&self) -> Result<Vec<ContainerGroup>, GroupsError> {
        let mut s = self.state();
        s.lists += 1;
        Ok(s.groups.clone())
    }

    /// Every group: more than what changed, which the trait allows.
    async fn changed(&self, _: std::time::Duration) -> Result<Vec<ContainerGroup>, GroupsError> {
        let mut s = self.state();
        s.follows += 1;
        Ok(s.groups.clone())
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<ContainerGroup>, GroupsError> {
        let s = self.state();
        Ok(s.groups
            .iter()
            .filter(|g| ids.contains(&g.container_group_id))
            .cloned()
            .collect())
    }

    async fn delete(&self, id: &str, grace: Option<u64>) -> Result<(), GroupsError> {
        let mut s = self.state();
        s.deletes.push(id.to_string());
        s.delete_graces.push(grace);
        // As berth: Terminating until the containers are stopped (`finish_deletes`).
        for g in s.groups.iter_mut().filter(|g| g.container_group_id == id) {
            g.status = "Terminating".into();
        }
        Ok(())
    }

    /// As berth's IncrementalUpdate: the volumes of the same names are replaced.
    async fn update_volumes(
        &self,
        id: &str,
        volumes: &[berth_core::Volume],
    ) -> Result<(), GroupsError> {
        let mut s = self.state();
        s.updates.push((id.to_string(), volumes.to_vec()));
        for g in s.groups.iter_mut().filter(|g| g.container_group_id == id) {
            for v in volumes {
                if let Some(o) = g.volumes.iter_mut().find(|o| o.name == v.name) {
                    *o = berth_client::response::Volume::from_spec(v);
                }
            }
        }
        Ok(())
    }
}

/// One request the API server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

/// The API server's answer to a request.
pub enum Reply {
    Json(u16, Value),
    /// A watch response: these events, one JSON object a line, then the end of the stream
    /// (after 50 ms when there are none, as a watch that times out, so that the client
    /// watches again without spinning).
    Watch(Vec<Value>),
}

pub type Route = Box<dyn FnMut(&Seen) -> Reply + Send>;

/// A client whose API server answers with `route`; the requests are recorded.
pub fn apiserver(mut route: Route) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let s = Seen {
                method,
                path,
                query,
                body,
            };
            log.lock().unwrap().push(s.clone());
            let (code, body, delay) = match route(&s) {
                Reply::Json(code, v) => (code, serde_json::to_vec(&v).unwrap(), 0),
                Reply::Watch(events) => {
                    let delay = if events.is_empty() { 50 } else { 0 };
                    let mut out = Vec::new();
                    for e in events {
                        out.extend(serde_json::to_vec(&e).unwrap());
                        out.push(b'\n');
                    }
                    (200, out, delay)
                }
            };
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                send.send_response(resp);
            });
        }
    });
    (kube::Client::new(mock, "default"), seen)
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The pod `web-1` in `shop`, bound to the node, as the API server stores it.
pub fn pod_json(rv: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": UID, "resourceVersion": rv,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "nginx:1.27"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "dnsPolicy": "ClusterFirst"},
        "status": {"phase": "Pending", "qosClass": "BestEffort"}
    })
}

pub fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

pub fn pod_list(rv: &str, items: Vec<Value>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})
}

/// The full resync period of the tests' controllers: short, so tests wait little for it.
pub const RESYNC: Duration = Duration::from_secs(2);

pub fn controller(client: kube::Client, berth: &FakeBerth) -> PodController<FakeBerth> {
    PodController::new(
        client,
        berth.clone(),
        PodConfig {
            node_name: NODE.into(),
            host_ip: "192.0.2.10".into(),
            cluster_dns: None,
            full_resync: RESYNC,
            workers: POD_SYNC_WORKERS,
            volume_resync: VOLUME_RESYNC,
        },
    )
}

/// The requests of `seen` as `METHOD path`.
pub fn calls(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

pub const POD: &str = "/api/v1/namespaces/shop/pods/web-1";
pub const POD_STATUS: &str = "/api/v1/namespaces/shop/pods/web-1/status";
