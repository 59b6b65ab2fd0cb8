//! The nodes of a cluster as the control plane of `berth serve --no-node` sees them: one
//! [`NodeClient`] over every node that joined. A group's record goes to its node through
//! the node's watch (`apply` only wakes the watches, or the placement of a group that waits
//! for a node); a removal and a log read are calls to the node's own server, signed with its
//! key (docs/NODE_PROTOCOL.md).

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use berth_control::cluster::protocol::{
    CacheCreated, CacheDelete, CacheOrder, DialCall, ExecCall, ExecResult, LogQuery, MetricsCall,
    MetricsResult, Refusal, RemoveRequest, MAX_BODY, NODE_PREFIX,
};
use berth_control::cluster::signing;
use berth_control::cluster::stream::ExecStreamCall;
use berth_control::{
    CacheBuild, CacheMade, CacheNode, Control, ExecOutput, ExecRequest, ExecStream, LogRequest,
    MetricRange, NodeClient, NodeError, NodeObserve, PortStream,
};
use berth_core::metric::MetricPoint;
use berth_core::{GroupId, GroupRecord, NodeState};
use berth_store::Store;
use serde::Serialize;

pub(crate) struct ClusterNodes {
    control: Weak<Control>,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// The CAs trusted for nodes that speak TLS (`--node-ca`); else the system's roots.
    trust: Option<Arc<crate::node_tls::Trust>>,
}

impl ClusterNodes {
    pub(crate) fn new(
        control: &Arc<Control>,
        store: Arc<dyn Store>,
        trust: Option<crate::node_tls::Trust>,
    ) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        let builder = match &trust {
            Some(t) => t.http(builder)?,
            None => builder,
        };
        Ok(Self {
            control: Arc::downgrade(control),
            store,
            http: builder.build()?,
            trust: trust.map(Arc::new),
        })
    }

    /// The node of a group and its key; `None` when the group is placed on no node.
    async fn node_of(&self, id: &GroupId) -> Result<Option<berth_core::NodeRecord>, NodeError> {
        Ok(self.placed(id).await?.map(|(node, _)| node))
    }

    /// The node of a group, with the group's `restart_generation`.
    async fn placed(
        &self,
        id: &GroupId,
    ) -> Result<Option<(berth_core::NodeRecord, u64)>, NodeError> {
        let failed = |e: berth_store::StoreError| NodeError::Failed(e.to_string());
        let Some(rec) = self.store.get_group(None, id).await.map_err(failed)? else {
            return Ok(None);
        };
        let Some(node) = rec.node else {
            return Ok(None);
        };
        let node = self.store.get_node(&node).await.map_err(failed)?;
        Ok(node.map(|n| (n, rec.restart_generation)))
    }

    /// The node of a group, for a call that needs one.
    async fn reachable(&self, id: &GroupId) -> Result<berth_core::NodeRecord, NodeError> {
        self.node_of(id)
            .await?
            .ok_or_else(|| NodeError::Failed(format!("{id} is placed on no node now")))
    }

    /// A signed call to a node's server; the body of its answer.
    async fn call<T: Serialize>(
        &self,
        node: &berth_core::NodeRecord,
        what: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<Vec<u8>, NodeError> {
        let path = format!("{NODE_PREFIX}/{what}");
        let body = serde_json::to_vec(body).map_err(|e| NodeError::Failed(e.to_string()))?;
        let signed = signing::sign(
            &node.info.id,
            &node.key,
            "POST",
            &path,
            "",
            &body,
            chrono::Utc::now().timestamp(),
        );
        let mut req = self
            .http
            .post(format!(
                "{}://{}{path}",
                if node.info.offer.tls { "https" } else { "http" },
                node.info.address
            ))
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        let unreachable = |e: reqwest::Error| {
            NodeError::Failed(format!(
                "node {} ({}): {e}",
                node.info.name, node.info.address
            ))
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if out.len() + chunk.len() > MAX_BODY {
                return Err(NodeError::Failed(format!(
                    "node {}: answer larger than {MAX_BODY} bytes",
                    node.info.name
                )));
            }
            out.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(out);
        }
        let message = serde_json::from_slice::<Refusal>(&out)
            .map(|r| r.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&out).into_owned());
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(NodeError::NotFound(message));
        }
        Err(NodeError::Failed(format!(
            "node {} answered {status}: {message}",
            node.info.name
        )))
    }
}

#[async_trait]
impl NodeClient for ClusterNodes {
    async fn apply(&self, rec: GroupRecord) {
        if let Some(control) = self.control.upgrade() {
            control.cluster_changed(rec.node.is_some());
        }
    }

    async fn remove(&self, id: &GroupId, grace: Duration) -> Result<(), NodeError> {
        let Some((node, generation)) = self.placed(id).await? else {
            return Ok(());
        };
        let req = RemoveRequest {
            group: id.clone(),
            grace_secs: grace.as_secs(),
            generation,
        };
        match self
            .call(&node, "remove", &req, grace + Duration::from_secs(60))
            .await
        {
            Ok(_) => Ok(()),
            // A node that is not heard from and not reached removes the group itself when
            // it is back: its watch from 0 no longer lists it.
            Err(e) if node.info.state == NodeState::NotReady => {
                tracing::warn!(group = %id, node = %node.info.name, error = %e, "the group's node is NotReady and not reached; it removes the group when it is back");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn read_log(&self, id: &GroupId, req: &LogRequest) -> Result<String, NodeError> {
        let node = self
            .node_of(id)
            .await?
            .ok_or_else(|| NodeError::Failed(format!("the node of {id} is not reachable now")))?;
        let body = self
            .call(
                &node,
                "log",
                &LogQuery::of(id, req),
                Duration::from_secs(30),
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Text {
            text: String,
        }
        serde_json::from_slice::<Text>(&body)
            .map(|t| t.text)
            .map_err(|e| NodeError::Failed(format!("node answer: {e}")))
    }
}

/// Exec (synchronous, and interactive), metrics, log following and port forwards through
/// the node's server (the streams as WebSockets, `cluster_streams.rs`).
#[async_trait]
impl NodeObserve for ClusterNodes {
    async fn exec_sync(
        &self,
        id: &GroupId,
        req: &ExecRequest,
        timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        let node = self.reachable(id).await?;
        let call = ExecCall {
            group: id.clone(),
            container: req.container.clone(),
            command: req.command.clone(),
            tty: req.tty,
            stdin: req.stdin,
            timeout_secs: timeout.as_secs().max(1),
        };
        let body = self
            .call(&node, "exec", &call, timeout + Duration::from_secs(30))
            .await?;
        let out: ExecResult = serde_json::from_slice(&body)
            .map_err(|e| NodeError::Failed(format!("node answer: {e}")))?;
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |s: &str| {
            b64.decode(s)
                .map_err(|e| NodeError::Failed(format!("node answer: {e}")))
        };
        Ok(ExecOutput {
            stdout: decode(&out.stdout)?,
            stderr: decode(&out.stderr)?,
            exit_code: out.exit_code,
        })
    }

    async fn exec_start(&self, id: &GroupId, req: &ExecRequest) -> Result<ExecStream, NodeError> {
        let node = self.reachable(id).await?;
        let call = ExecStreamCall {
            group: id.clone(),
            container: req.container.clone(),
            command: req.command.clone(),
            tty: req.tty,
            stdin: req.stdin,
            size: req.size,
        };
        crate::cluster_streams::exec(&node, &call, self.trust.as_deref()).await
    }

    async fn follow_log(
        &self,
        id: &GroupId,
        req: &LogRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, NodeError> {
        let node = self.reachable(id).await?;
        crate::cluster_streams::follow_log(&node, &LogQuery::of(id, req), self.trust.as_deref())
            .await
    }

    async fn dial(&self, id: &GroupId, port: u16) -> Result<PortStream, NodeError> {
        let node = self.reachable(id).await?;
        let call = DialCall {
            group: id.clone(),
            port,
        };
        crate::cluster_streams::dial(&node, &call, self.trust.as_deref()).await
    }

    async fn metrics(
        &self,
        id: &GroupId,
        range: &MetricRange,
    ) -> Result<Vec<MetricPoint>, NodeError> {
        let Some(node) = self.node_of(id).await? else {
            return Ok(Vec::new());
        };
        let call = MetricsCall {
            group: id.clone(),
            start: range.start,
            end: range.end,
        };
        let body = self
            .call(&node, "metrics", &call, Duration::from_secs(30))
            .await?;
        serde_json::from_slice::<MetricsResult>(&body)
            .map(|m| m.points)
            .map_err(|e| NodeError::Failed(format!("node answer: {e}")))
    }
}

/// Image caches in a cluster (docs/CLUSTER.md): a cache is built on one node that takes
/// groups (the one holding the fewest caches), and made by any other node that a group of
/// it is placed on (`berth node`'s `caches.rs`); its record lists the nodes holding it.
#[async_trait]
impl CacheNode for ClusterNodes {
    async fn create_image_cache(&self, build: &CacheBuild) -> Result<CacheMade, NodeError> {
        let failed = |e: berth_store::StoreError| NodeError::Failed(e.to_string());
        let nodes = self.store.list_nodes().await.map_err(failed)?;
        let caches = self.store.list_caches(None).await.map_err(failed)?;
        let held = |id: &str| {
            caches
                .iter()
                .filter(|c| c.nodes.iter().any(|n| n == id))
                .count()
        };
        let Some(node) = nodes
            .iter()
            .filter(|n| n.schedulable())
            .min_by_key(|n| (held(&n.id), n.name.clone()))
        else {
            return Err(NodeError::Failed(
                "no node of the cluster that takes groups is Ready to build it".into(),
            ));
        };
        let node = self
            .store
            .get_node(&node.id)
            .await
            .map_err(failed)?
            .ok_or_else(|| NodeError::Failed(format!("node {} left", node.name)))?;
        tracing::info!(cache = %build.id, node = %node.info.name, "building an image cache on a node");
        let body = self
            .call(
                &node,
                "cache-create",
                &CacheOrder::of(build),
                CACHE_BUILD_TIMEOUT,
            )
            .await?;
        let made: CacheCreated = serde_json::from_slice(&body)
            .map_err(|e| NodeError::Failed(format!("node answer: {e}")))?;
        Ok(CacheMade {
            size_bytes: made.size_bytes,
            node: Some(node.info.id),
        })
    }

    async fn delete_image_cache(&self, id: &str, holders: &[String]) -> Result<(), NodeError> {
        let mut failed = Vec::new();
        for holder in holders {
            let node = match self.store.get_node(holder).await {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) => {
                    failed.push(format!("{holder}: {e}"));
                    continue;
                }
            };
            let req = CacheDelete { id: id.to_string() };
            if let Err(e) = self
                .call(&node, "cache-delete", &req, Duration::from_secs(30))
                .await
            {
                failed.push(e.to_string());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Failed(failed.join("; ")))
        }
    }

    /// By the caches' records: how many of `images` (normalised) each lists.
    async fn image_cache_matches(&self, images: &[String]) -> Vec<(String, usize)> {
        match self.store.list_caches(None).await {
            Ok(caches) => caches
                .into_iter()
                .map(|c| {
                    let n = berth_image::count_held(images, c.images.iter().map(String::as_str));
                    (c.id, n)
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list image caches");
                Vec::new()
            }
        }
    }
}

/// The longest an image cache's build on a node may take (its images pulled and unpacked).
const CACHE_BUILD_TIMEOUT: Duration = Duration::from_secs(3600);
