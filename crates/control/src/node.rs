//! The seam between control plane and node agent.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{GroupId, GroupRecord};

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
pub trait NodeClient: Send + Sync {
    /// Converge the node to this record (start it, restart it, re-adopt it). Returns at once.
    async fn apply(&self, rec: GroupRecord);
    /// Stop every container of the group (SIGTERM, `grace`, SIGKILL) and release everything it
    /// holds on the node. Idempotent.
    async fn remove(&self, id: &GroupId, grace: Duration) -> Result<(), NodeError>;
    /// Log text of one container of a group.
    async fn read_log(&self, id: &GroupId, req: &LogRequest) -> Result<String, NodeError>;
}
