//! The node's calls to the control plane (docs/NODE_PROTOCOL.md): the join, then watch,
//! report and heartbeat, each signed with the node's key. The node may be given several
//! replicas' addresses: a call that cannot reach one goes to the next from then on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_control::cluster::protocol::{
    CacheOrder, CacheQuery, CachesHeld, Heartbeat, HeartbeatReply, JoinReply, JoinRequest,
    ReportBatch, ReportReply, SeccompQuery, SeccompReply, WatchReply, MAX_BODY, PREFIX,
    WATCH_WAIT_SECS,
};
use berth_control::cluster::signing;
use serde::de::DeserializeOwned;

/// A node's connection to the control plane; cheap to clone.
#[derive(Clone)]
pub(crate) struct ControlLink {
    http: reqwest::Client,
    /// The replicas' base URLs, without a trailing slash.
    bases: Arc<Vec<String>>,
    /// The one calls go to now.
    current: Arc<AtomicUsize>,
    node: String,
    key: Vec<u8>,
}

/// An answer of the control plane that refuses the node (4xx): retrying will not help.
#[derive(Debug, thiserror::Error)]
#[error("the control plane refused the call ({status}): {message}")]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// The HTTP client of the node's calls, trusting `trust` (`--control-ca`) for `https://`
/// replicas besides the system's roots.
fn client(trust: Option<&crate::node_tls::Trust>) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // A watch waits up to WATCH_WAIT_SECS for a change.
        .timeout(Duration::from_secs(WATCH_WAIT_SECS + 15));
    let builder = match trust {
        Some(t) => t.http(builder)?,
        None => builder,
    };
    builder.build().context("cannot make an HTTP client")
}

/// The replicas' base URLs of `--join URL[,URL…]`: `http://` or `https://`, no query, no
/// trailing slash; at most 16.
pub(crate) fn base_urls(list: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let parsed =
            reqwest::Url::parse(url).with_context(|| format!("--join {url:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            bail!("--join {url:?}: an http:// or https:// URL without a query is expected");
        }
        out.push(url.trim_end_matches('/').to_owned());
    }
    if out.is_empty() || out.len() > 16 {
        bail!("--join: 1 to 16 URLs of the control plane's replicas, comma-separated");
    }
    Ok(out)
}

/// Presents the join token to the first replica that answers; the answer holds the node's
/// id and key.
pub(crate) async fn join(
    bases: &[String],
    req: &JoinRequest,
    trust: Option<&crate::node_tls::Trust>,
) -> anyhow::Result<JoinReply> {
    let http = client(trust)?;
    let mut last = None;
    for base in bases {
        let sent = http
            .post(format!("{base}{PREFIX}/join"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(req)?)
            .send()
            .await;
        match sent {
            Ok(resp) => return read(resp).await,
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("cannot reach {base}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no control plane URL")))
}

async fn read<T: DeserializeOwned>(resp: reqwest::Response) -> anyhow::Result<T> {
    let status = resp.status();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.context("reading the answer")? {
        if body.len() + chunk.len() > MAX_BODY {
            bail!("the control plane's answer is larger than {MAX_BODY} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_client_error() {
        let message = serde_json::from_slice::<berth_control::cluster::protocol::Refusal>(&body)
            .map(|r| format!("{}: {}", r.code, r.message))
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(Refused {
            status: status.as_u16(),
            message,
        }
        .into());
    }
    if !status.is_success() {
        bail!(
            "the control plane answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("the control plane's answer is not what was expected")
}

impl ControlLink {
    pub(crate) fn new(
        bases: Vec<String>,
        node: String,
        key: Vec<u8>,
        trust: Option<&crate::node_tls::Trust>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: client(trust)?,
            bases: Arc::new(bases),
            current: Arc::default(),
            node,
            key,
        })
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<T> {
        let signed = signing::sign(
            &self.node,
            &self.key,
            method.as_str(),
            path,
            query,
            &body,
            chrono::Utc::now().timestamp(),
        );
        let at = self.current.load(Ordering::Relaxed) % self.bases.len();
        let base = &self.bases[at];
        let url = if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        };
        let mut req = self.http.request(method, url);
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                // The next call goes to the next replica (unless another call moved on already).
                let _ = self.current.compare_exchange(
                    at,
                    (at + 1) % self.bases.len(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot reach the control plane at {base}")));
            }
        };
        read(resp).await
    }

    /// The groups placed on the node written after `after`; waits for one when there is none.
    pub(crate) async fn watch(&self, after: u64) -> anyhow::Result<WatchReply> {
        self.call(
            reqwest::Method::GET,
            &format!("{PREFIX}/watch"),
            &format!("after={after}"),
            Vec::new(),
        )
        .await
    }

    /// `POST /node/v1/{name}` with `body` as JSON.
    async fn post<T: DeserializeOwned>(
        &self,
        name: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let path = format!("{PREFIX}/{name}");
        self.call(reqwest::Method::POST, &path, "", serde_json::to_vec(body)?)
            .await
    }

    pub(crate) async fn report(&self, batch: &ReportBatch) -> anyhow::Result<ReportReply> {
        self.post("report", batch).await
    }

    pub(crate) async fn heartbeat(&self, hb: &Heartbeat) -> anyhow::Result<HeartbeatReply> {
        self.post("heartbeat", hb).await
    }

    pub(crate) async fn seccomp(&self, q: &SeccompQuery) -> anyhow::Result<SeccompReply> {
        self.post("seccomp", q).await
    }

    pub(crate) async fn cache(&self, q: &CacheQuery) -> anyhow::Result<CacheOrder> {
        self.post("cache", q).await
    }

    /// The image caches the control plane knows this node to hold.
    pub(crate) async fn caches(&self) -> anyhow::Result<CachesHeld> {
        let path = format!("{PREFIX}/caches");
        self.call(reqwest::Method::POST, &path, "", Vec::new())
            .await
    }
}
