//! The kubelet API against real clients (reqwest, tokio-tungstenite) through its TLS and
//! auth layer: berth is a fake [`Backend`] (whose exec socket is a fake berth WebSocket
//! served by axum), the API server kube's mocked service answering TokenReview and
//! SubjectAccessReview.

mod attach;
mod auth;
mod berth;
mod exec;
mod forward;
mod logs;
mod stats;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Bytes;
use berth_client::response::{ContainerGroup, MonitorData};
use futures_util::StreamExt;
use http::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::client::Body;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::*;

pub const NODE: &str = "vk-1";
pub const UID: &str = "0b6c1c6e-1111-4222-8333-944445555666";

/// A test CA, the API's serving certificate and a client certificate (CN alice, O devs),
/// as PEM files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub client_pem: String,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "berth test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "alice");
        client
            .distinguished_name
            .push(DnType::OrganizationName, "devs");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("ca.pem", &ca_cert.pem(), 0o644);
        write("server.pem", &server_cert.pem(), 0o644);
        write("server-key.pem", &server_key.serialize_pem(), 0o600);
        Self {
            ca_pem: ca_cert.pem(),
            client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
            dir,
        }
    }

    pub fn source(&self) -> TlsSource {
        TlsSource::Files {
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server-key.pem"),
        }
    }

    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// An HTTPS client trusting the test CA; with `cert`, presenting the client certificate.
    pub fn http(&self, cert: bool) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        let mut b = reqwest::Client::builder().tls_certs_only([ca]);
        if cert {
            b = b.identity(reqwest::Identity::from_pem(self.client_pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    /// A rustls client configuration trusting the test CA, for WebSockets.
    pub fn ws_tls(&self) -> tokio_tungstenite::Connector {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_tungstenite::Connector::Rustls(Arc::new(config))
    }
}

/// berth, faked: groups of pods in memory, a log fed by the test, an exec socket at
/// `exec_uri`, metric records.
#[derive(Default)]
pub struct FakeBerth {
    pub groups: Vec<ContainerGroup>,
    pub log: Mutex<Option<mpsc::Receiver<Bytes>>>,
    pub log_queries: Mutex<Vec<LogQuery>>,
    pub exec_uri: String,
    pub exec_queries: Mutex<Vec<ExecQuery>>,
    pub metrics: Vec<MonitorData>,
    /// berth's PortForward socket; port 9 is refused.
    pub forward_uri: String,
    pub forwards: Mutex<Vec<(String, u16)>>,
}

#[async_trait]
impl Backend for FakeBerth {
    async fn pod_groups(&self) -> Result<Vec<ContainerGroup>, BackendError> {
        Ok(self.groups.clone())
    }

    async fn groups_of(&self, ns: &str, name: &str) -> Result<Vec<ContainerGroup>, BackendError> {
        let has = |g: &ContainerGroup, k: &str, v: &str| {
            g.tags.iter().any(|t| t.key == k && t.value == v)
        };
        Ok(self
            .groups
            .iter()
            .filter(|g| has(g, "k8s.pod.namespace", ns) && has(g, "k8s.pod.name", name))
            .cloned()
            .collect())
    }

    async fn logs(&self, q: &LogQuery) -> Result<LogStream, BackendError> {
        self.log_queries.lock().unwrap().push(q.clone());
        let rx = self
            .log
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| BackendError::Unavailable("no log".into()))?;
        let s = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        Ok(s.boxed())
    }

    async fn exec(&self, q: &ExecQuery) -> Result<ExecSocket, BackendError> {
        self.exec_queries.lock().unwrap().push(q.clone());
        backend::connect_exec(&self.exec_uri, &q.protocol, None).await
    }

    async fn port_forward(&self, group_id: &str, port: u16) -> Result<ExecSocket, BackendError> {
        self.forwards
            .lock()
            .unwrap()
            .push((group_id.to_string(), port));
        if port == 9 {
            return Err(BackendError::Unavailable(
                "dial tcp 127.0.0.1:9: connection refused".into(),
            ));
        }
        backend::connect_forward(&self.forward_uri, None).await
    }

    async fn metrics(&self, ids: &[String]) -> Result<Vec<MonitorData>, BackendError> {
        Ok(self
            .metrics
            .iter()
            .filter(|m| ids.contains(&m.container_group_id))
            .cloned()
            .collect())
    }
}

/// The group of the pod `shop/web-1` (`app` running, `sidecar` too).
pub fn group(id: &str, uid: &str, created: &str) -> ContainerGroup {
    serde_json::from_value(json!({
        "ContainerGroupId": id, "ContainerGroupName": "shop-web-1", "Status": "Running",
        "CreationTime": created,
        "Tags": [{"Key": "k8s.pod.uid", "Value": uid},
                 {"Key": "k8s.pod.namespace", "Value": "shop"},
                 {"Key": "k8s.pod.name", "Value": "web-1"}],
        "Containers": [
            {"Name": "app", "Image": "nginx:1.27", "Ready": true,
             "CurrentState": {"State": "Running", "StartTime": "2026-01-01T00:00:05Z"}},
            {"Name": "sidecar", "Image": "busybox:1", "Ready": true,
             "CurrentState": {"State": "Running", "StartTime": "2026-01-01T00:00:06Z"}}]
    }))
    .unwrap()
}

pub fn pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": UID},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "nginx:1.27"}]},
    }))
    .unwrap()
}

/// The node's pods, fixed.
pub struct Pods(pub Vec<Arc<Pod>>);

impl NodePods for Pods {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.0.clone()
    }
}

/// The kubelet API serving `berth`, on a port of 127.0.0.1; stops when the returned sender
/// is dropped.
pub async fn start(
    pki: &Pki,
    auth: AuthConfig,
    berth: Arc<FakeBerth>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        node_name: NODE.into(),
        tls: pki.source(),
        auth,
    };
    let api = KubeletApi::bind(config, berth, Arc::new(Pods(vec![Arc::new(pod())])))
        .await
        .unwrap();
    let addr = api.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api.run(async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// One request the API server received: method, path and JSON body.
pub type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A kube client whose API server answers with `route(path, body)`.
pub fn apiserver(
    route: impl Fn(&str, &Value) -> (u16, Value) + Send + 'static,
) -> (kube::Client, Seen) {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, answer) = route(&path, &body);
            log.lock().unwrap().push((method, path, body));
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    (kube::Client::new(mock, "default"), seen)
}

#[tokio::test]
async fn pods_healthz_and_refusals_with_anonymous_auth() {
    let pki = Pki::new();
    let berth = Arc::new(FakeBerth {
        groups: vec![group("eci-1", UID, "2026-01-01T00:00:00Z")],
        ..Default::default()
    });
    let (addr, _stop) = start(&pki, AuthConfig::Anonymous, berth).await;
    let http = pki.http(false);
    let get = |path: &str| http.get(format!("https://{addr}{path}")).send();
    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let v: Value = get("/pods")
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["items"][0]["metadata"]["uid"], UID);
    let v: Value = get("/runningpods/")
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "web-1");
    assert_eq!(v["items"][0]["spec"]["containers"][1]["image"], "busybox:1");
    for (path, code) in [
        // Attach is a WebSocket or SPDY session: a plain GET is refused with the reason.
        ("/attach/shop/web-1/app?stdout=1", 400),
        // Port forwarding is SPDY only: a plain GET is refused with the reason.
        ("/portForward/shop/web-1", 400),
        ("/configz", 404),
        ("/containerLogs/shop/web-2/app", 404),
        ("/containerLogs/shop/web-1/nope", 404),
        ("/exec/shop/web-1/app?command=ls&stdout=1", 400),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
        let v: Value = r
            .text()
            .await
            .map(|t| serde_json::from_str::<Value>(&t).unwrap())
            .unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["code"].as_u64()),
            (Some("Status"), Some(code as u64)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_generated_certificate_serves() {
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        node_name: NODE.into(),
        tls: TlsSource::SelfSigned {
            names: vec!["127.0.0.1".into(), NODE.into()],
        },
        auth: AuthConfig::Anonymous,
    };
    let api = KubeletApi::bind(
        config,
        Arc::new(FakeBerth::default()),
        Arc::new(Pods(vec![])),
    )
    .await
    .unwrap();
    let addr = api.local_addr();
    let cert = reqwest::Certificate::from_der(api.certificate_der()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api.run(async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .tls_certs_only([cert])
        .build()
        .unwrap();
    let r = http
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(tx);
}
