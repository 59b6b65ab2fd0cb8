//! The seam between control plane and node agent.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{GroupId, GroupRecord, RegistryCredential};

/// What DescribeContainerLog asks of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub container: String,
    pub tail: Option<usize>,
    pub since_seconds: Option<u64>,
    pub limit_bytes: Option<usize>,
    pub timestamps: bool,
    /// The previous run of the container instead of the current one (`LastTime`).
    pub previous: bool,
    /// The container's restart count as the control plane knows it (filled in by
    /// [`crate::Control::logs`]): run `N` is the current run, `N - 1` the previous one.
    pub restart_count: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// A node agent as the control plane sees it.
#[async_trait]
pub trait NodeClient: NodeObserve + CacheNode + Send + Sync {
    /// Converge the node to this record (start it, restart it, re-adopt it). Returns at once,
    /// except for a finished record of a group that still runs: its containers are stopped
    /// (SIGTERM, the group's grace period, SIGKILL) before it returns, and everything else it
    /// holds stays until it is removed.
    async fn apply(&self, rec: GroupRecord);
    /// Stop every container of the group (SIGTERM, `grace`, SIGKILL) and release everything it
    /// holds on the node. Idempotent.
    async fn remove(&self, id: &GroupId, grace: Duration) -> Result<(), NodeError>;
    /// Log text of one container of a group.
    async fn read_log(&self, id: &GroupId, req: &LogRequest) -> Result<String, NodeError>;
}

/// What ExecContainerCommand asks of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub container: String,
    /// The command and its arguments, run as they are (no shell).
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    /// The initial terminal size, `(columns, rows)`.
    pub size: Option<(u16, u16)>,
}

/// What a sync exec printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// Output of an interactive exec.
pub type ExecReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
/// Input of an interactive exec.
pub type ExecWriter = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// The process side of an interactive exec: terminal size, exit code, kill.
#[async_trait]
pub trait ExecProcess: Send {
    /// Sets the terminal's size (columns, rows); fails without a terminal.
    fn resize(&self, cols: u16, rows: u16) -> Result<(), NodeError>;
    /// The exit code (128 + signal when a signal ended it).
    async fn wait(&mut self) -> Result<i32, NodeError>;
    /// Kills the process now.
    fn kill(&self);
}

/// A running interactive exec. Dropping it kills the process.
pub struct ExecStream {
    pub stdin: Option<ExecWriter>,
    /// stdout, or in TTY mode the terminal.
    pub stdout: Option<ExecReader>,
    /// `None` in TTY mode.
    pub stderr: Option<ExecReader>,
    pub tty: bool,
    pub process: Box<dyn ExecProcess>,
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream")
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// The samples of a group a metric query asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricRange {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// The node side of the observe operations: exec, metrics, log following. Every method has a
/// default that refuses, so a node that lacks one still serves the rest.
#[async_trait]
pub trait NodeObserve: Send + Sync {
    /// Runs a command to its end and returns its output.
    async fn exec_sync(
        &self,
        _id: &GroupId,
        _req: &ExecRequest,
        _timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        Err(NodeError::Failed(
            "exec is not supported by this node".into(),
        ))
    }
    /// Starts an interactive command.
    async fn exec_start(&self, _id: &GroupId, _req: &ExecRequest) -> Result<ExecStream, NodeError> {
        Err(NodeError::Failed(
            "exec is not supported by this node".into(),
        ))
    }
    /// The samples of the group within the range, oldest first.
    async fn metrics(
        &self,
        _id: &GroupId,
        _range: &MetricRange,
    ) -> Result<Vec<berth_core::metric::MetricPoint>, NodeError> {
        Ok(Vec::new())
    }
    /// Follows a container's log: what `req` selects of it, then each new line, until the
    /// container exits or the receiver is dropped.
    async fn follow_log(
        &self,
        _id: &GroupId,
        _req: &LogRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, NodeError> {
        Err(NodeError::Failed(
            "log following is not supported by this node".into(),
        ))
    }
    /// A TCP connection to `port` on the loopback address inside the group's network
    /// namespace (a port forward).
    async fn dial(&self, _id: &GroupId, port: u16) -> Result<PortStream, NodeError> {
        Err(NodeError::Failed(format!(
            "port forwarding (port {port}) is not supported by this node"
        )))
    }
}

/// A TCP connection made by a node for a port forward.
pub trait PortIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> PortIo for T {}
/// See [`PortIo`].
pub type PortStream = Box<dyn PortIo>;

/// Image caches on a node (part of [`NodeClient`]; the defaults are those of a node that
/// keeps none).
#[async_trait]
pub trait CacheNode: Send + Sync {
    /// Makes image cache `build.id` hold exactly `build.images` (pulled, unpacked, pinned)
    /// on a node and says which, with the bytes its layers take. Replaces the images of an
    /// existing cache; on failure an existing cache is left as it was.
    async fn create_image_cache(&self, build: &CacheBuild) -> Result<CacheMade, NodeError> {
        Err(NodeError::Failed(format!(
            "this node keeps no image caches, cannot build {}",
            build.id
        )))
    }
    /// Releases image cache `id` on the nodes that hold it (`holders`, a cluster's node ids;
    /// empty on a single machine). Idempotent.
    async fn delete_image_cache(&self, _id: &str, _holders: &[String]) -> Result<(), NodeError> {
        Ok(())
    }
    /// For every image cache on the node, how many of `images` it holds.
    async fn image_cache_matches(&self, _images: &[String]) -> Vec<(String, usize)> {
        Vec::new()
    }
}

/// An image cache a node built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheMade {
    /// The bytes its layers take.
    pub size_bytes: u64,
    /// The cluster node that holds it (`None` on a single machine).
    pub node: Option<String>,
}

/// What a node needs to build an image cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheBuild {
    pub id: String,
    /// The account the cache belongs to (its images are proved for it).
    pub account: String,
    pub images: Vec<String>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
}
