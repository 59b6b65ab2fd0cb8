//! berth as the kubelet API uses it, behind [`Backend`]: the groups of pods, a container's
//! log stream, an exec session's WebSocket and the groups' latest metrics.
//! [`BerthBackend`] implements it with berth's client; tests fake it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use berth_client::response::{ContainerGroup, MonitorData};
use berth_client::{Client, ClientError, DescribeParams, ExecParams, LogParams};
use berth_core::Tag;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::pod::{TAG_POD_NAME, TAG_POD_NAMESPACE};
use crate::pods::pod_uid;

/// Groups per DescribeContainerGroups page and ids per DescribeMultiContainerGroupMetric
/// (ECI's most for both).
const PAGE: usize = 20;
/// Largest WebSocket message relayed (berth and kubectl send at most 32 KiB a frame).
pub(crate) const MAX_WS_MESSAGE: usize = 1 << 20;

/// Why berth did not serve a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No such group or container (berth answered 404).
    #[error("{0}")]
    NotFound(String),
    /// berth refused the request (another 4xx).
    #[error("berth refused the request: {0}")]
    Refused(String),
    /// A 5xx, a transport error or an answer that cannot be read.
    #[error("berth is unavailable: {0}")]
    Unavailable(String),
}

impl From<ClientError> for BackendError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Api { status: 404, .. } => Self::NotFound(e.to_string()),
            ClientError::Api { status, .. } if (400..500).contains(status) && *status != 429 => {
                Self::Refused(e.to_string())
            }
            _ => Self::Unavailable(e.to_string()),
        }
    }
}

/// A container's log, as the kubelet API asks berth for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub group_id: String,
    pub container: String,
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// The last lines only.
    pub tail: Option<u32>,
    /// Only lines of the last seconds.
    pub since_seconds: Option<u64>,
    pub timestamps: bool,
    /// The previous run of a restarted container.
    pub previous: bool,
}

/// The log's bytes as they come.
pub type LogStream = BoxStream<'static, Result<Bytes, BackendError>>;

/// An interactive exec session to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecQuery {
    pub group_id: String,
    pub container: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    /// The WebSocket subprotocol to speak with berth: the one the client chose.
    pub protocol: String,
}

/// berth's exec WebSocket, open.
pub type ExecSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a remote command session (exec or attach) is relayed with: frames of the channel
/// protocol (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close) sent to `tx` and
/// read from `rx` until it ends. berth's exec WebSocket, or an attach's log stream.
pub(crate) struct Upstream {
    pub tx:
        std::pin::Pin<Box<dyn futures_util::Sink<UpstreamMessage, Error = UpstreamError> + Send>>,
    pub rx: BoxStream<'static, Result<UpstreamMessage, UpstreamError>>,
}

pub(crate) type UpstreamMessage = tokio_tungstenite::tungstenite::Message;
pub(crate) type UpstreamError = tokio_tungstenite::tungstenite::Error;

impl Upstream {
    /// berth's exec WebSocket.
    pub fn socket(s: ExecSocket) -> Self {
        let (tx, rx) = s.split();
        Self {
            tx: Box::pin(tx),
            rx: rx.boxed(),
        }
    }
}

/// berth's side of the kubelet API.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Every group of a pod (tagged with the pod's uid).
    async fn pod_groups(&self) -> Result<Vec<ContainerGroup>, BackendError>;
    /// The groups tagged with the pod `namespace/name` (more than one while a pod of the same
    /// name is replaced).
    async fn groups_of(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<ContainerGroup>, BackendError>;
    /// The container's log.
    async fn logs(&self, q: &LogQuery) -> Result<LogStream, BackendError>;
    /// Starts the command and opens its WebSocket with `q.protocol`.
    async fn exec(&self, q: &ExecQuery) -> Result<ExecSocket, BackendError>;
    /// The latest metric record of each of `ids` berth has one for.
    async fn metrics(&self, ids: &[String]) -> Result<Vec<MonitorData>, BackendError>;
    /// Opens berth's PortForward WebSocket to `port` on the group's loopback.
    async fn port_forward(&self, group_id: &str, port: u16) -> Result<ExecSocket, BackendError>;
}

/// [`Backend`] over berth's client.
pub struct BerthBackend {
    client: Client,
    /// For log streams, which last as long as the container runs.
    streams: reqwest::Client,
    ws_tls: Option<Connector>,
}

impl BerthBackend {
    /// berth through `client`; with `ca_pem`, berth's `https://` log streams and `wss://`
    /// exec sockets are trusted only if they chain to those certificates (as the client's
    /// calls), else to the system's roots.
    pub fn new(client: Client, ca_pem: Option<&[u8]>) -> Result<Self, BackendError> {
        let tls_error = |what: &str| BackendError::Unavailable(format!("the CA file: {what}"));
        // No overall timeout: a followed log lasts as long as the container runs.
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        let mut ws_tls = None;
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| tls_error(&e.to_string()))?;
            builder = builder.tls_certs_only(certs);
            ws_tls = Some(Connector::Rustls(
                ws_client_config(pem).map_err(|e| tls_error(&e))?,
            ));
        }
        let streams = builder
            .build()
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok(Self {
            client,
            streams,
            ws_tls,
        })
    }
}

fn ws_client_config(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Opens berth's PortForward WebSocket at `uri` (no subprotocol: bytes both ways).
pub(crate) async fn connect_forward(
    uri: &str,
    tls: Option<Connector>,
) -> Result<ExecSocket, BackendError> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(uri, Some(config), false, tls)
        .await
        .map_err(|e| BackendError::Unavailable(format!("port forward {uri}: {e}")))?;
    Ok(ws)
}

/// Opens the exec WebSocket at `uri` speaking `protocol`; berth must agree to it.
pub(crate) async fn connect_exec(
    uri: &str,
    protocol: &str,
    tls: Option<Connector>,
) -> Result<ExecSocket, BackendError> {
    let unavailable = |e: String| BackendError::Unavailable(format!("exec socket {uri}: {e}"));
    let mut req = uri
        .into_client_request()
        .map_err(|e| unavailable(e.to_string()))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        protocol
            .parse()
            .map_err(|_| unavailable("bad protocol".into()))?,
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    let (ws, resp) =
        tokio_tungstenite::connect_async_tls_with_config(req, Some(config), false, tls)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if chosen != Some(protocol) {
        return Err(unavailable(format!("berth did not agree to {protocol}")));
    }
    Ok(ws)
}

#[async_trait]
impl Backend for BerthBackend {
    async fn pod_groups(&self) -> Result<Vec<ContainerGroup>, BackendError> {
        let p = DescribeParams {
            limit: Some(PAGE as u32),
            ..Default::default()
        };
        let all = self.client.list_container_groups(&p).await?;
        Ok(all.into_iter().filter(|g| pod_uid(g).is_some()).collect())
    }

    async fn groups_of(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<ContainerGroup>, BackendError> {
        let tag = |key: &str, value: &str| Tag {
            key: key.into(),
            value: value.into(),
        };
        let p = DescribeParams {
            limit: Some(PAGE as u32),
            tags: vec![tag(TAG_POD_NAMESPACE, namespace), tag(TAG_POD_NAME, name)],
            ..Default::default()
        };
        Ok(self.client.list_container_groups(&p).await?)
    }

    async fn logs(&self, q: &LogQuery) -> Result<LogStream, BackendError> {
        let p = LogParams {
            container_group_id: q.group_id.clone(),
            container_name: q.container.clone(),
            tail: q.tail,
            since_seconds: q.since_seconds,
            limit_bytes: None,
            timestamps: q.timestamps,
            last_time: q.previous,
        };
        let mut url = self.client.container_log_stream_url(&p).await?;
        if !q.follow {
            url.push_str("&follow=false");
        }
        let unavailable = |e: reqwest::Error| BackendError::Unavailable(e.to_string());
        let resp = self.streams.get(&url).send().await.map_err(unavailable)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let text = text.trim().chars().take(512).collect::<String>();
            return Err(if status.as_u16() == 404 {
                BackendError::NotFound(text)
            } else {
                BackendError::Unavailable(format!("log stream: HTTP {status}: {text}"))
            });
        }
        let stream = futures_util::stream::unfold(Some(resp), |resp| async move {
            let mut resp = resp?;
            match resp.chunk().await {
                Ok(Some(b)) => Some((Ok(b), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(BackendError::Unavailable(e.to_string())), None)),
            }
        });
        Ok(stream.boxed())
    }

    async fn exec(&self, q: &ExecQuery) -> Result<ExecSocket, BackendError> {
        let p = ExecParams {
            container_group_id: q.group_id.clone(),
            container_name: q.container.clone(),
            command: q.command.clone(),
            tty: q.tty,
            stdin: q.stdin,
            sync: false,
        };
        let r = self.client.exec_container_command(&p).await?;
        if r.web_socket_uri.is_empty() {
            return Err(BackendError::Unavailable(
                "ExecContainerCommand returned no WebSocketUri".into(),
            ));
        }
        connect_exec(&r.web_socket_uri, &q.protocol, self.ws_tls.clone()).await
    }

    async fn port_forward(&self, group_id: &str, port: u16) -> Result<ExecSocket, BackendError> {
        let uri = self.client.port_forward(group_id, port).await?;
        if uri.is_empty() {
            return Err(BackendError::Unavailable(
                "PortForward returned no WebSocketUri".into(),
            ));
        }
        connect_forward(&uri, self.ws_tls.clone()).await
    }

    async fn metrics(&self, ids: &[String]) -> Result<Vec<MonitorData>, BackendError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(PAGE) {
            let r = self
                .client
                .describe_multi_container_group_metric(chunk)
                .await?;
            out.extend(r.monitor_datas);
        }
        Ok(out)
    }
}
