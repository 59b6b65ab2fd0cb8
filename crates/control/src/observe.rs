//! The observe operations of [`Control`]: exec in a container, metric samples, log following.
//! Each checks that the group belongs to the account and names a container it has, then asks
//! the node.

use std::time::Duration;

use berth_core::metric::MetricPoint;
use berth_core::{GroupId, GroupRecord, GroupStatus};

use crate::{
    Control, ControlError, ExecOutput, ExecRequest, ExecStream, LogRequest, MetricRange, NodeError,
    PortStream,
};

fn node_err(e: NodeError) -> ControlError {
    match e {
        NodeError::NotFound(m) | NodeError::Failed(m) => ControlError::Node(m),
    }
}

impl Control {
    /// The group, checked to run a container of that name.
    async fn running_container(
        &self,
        account: &str,
        id: &GroupId,
        container: &str,
    ) -> Result<GroupRecord, ControlError> {
        let rec = self.get(account, id).await?;
        if !rec.spec.all_containers().any(|c| c.name == container) {
            return Err(ControlError::NoSuchContainer(container.to_string()));
        }
        if !matches!(rec.status, GroupStatus::Running | GroupStatus::Pending) {
            return Err(ControlError::IncorrectStatus {
                id: id.to_string(),
                status: rec.status.as_str(),
                needs: "Running",
            });
        }
        Ok(rec)
    }

    /// Checks that the exec can run: the group is the account's and runs the container.
    pub async fn check_exec(
        &self,
        account: &str,
        id: &GroupId,
        req: &ExecRequest,
    ) -> Result<(), ControlError> {
        self.running_container(account, id, &req.container)
            .await
            .map(|_| ())
    }

    /// Runs a command in a container to its end.
    pub async fn exec_sync(
        &self,
        account: &str,
        id: &GroupId,
        req: &ExecRequest,
        timeout: Duration,
    ) -> Result<ExecOutput, ControlError> {
        self.running_container(account, id, &req.container).await?;
        self.node()?
            .exec_sync(id, req, timeout)
            .await
            .map_err(node_err)
    }

    /// Starts an interactive command in a container.
    pub async fn exec_start(
        &self,
        account: &str,
        id: &GroupId,
        req: &ExecRequest,
    ) -> Result<ExecStream, ControlError> {
        self.running_container(account, id, &req.container).await?;
        self.node()?.exec_start(id, req).await.map_err(node_err)
    }

    /// Checks that a port forward can be made: the group is the account's and runs.
    pub async fn check_port_forward(
        &self,
        account: &str,
        id: &GroupId,
    ) -> Result<(), ControlError> {
        let rec = self.get(account, id).await?;
        if !matches!(rec.status, GroupStatus::Running | GroupStatus::Pending) {
            return Err(ControlError::IncorrectStatus {
                id: id.to_string(),
                status: rec.status.as_str(),
                needs: "Running",
            });
        }
        Ok(())
    }

    /// A connection to `port` on the group's own loopback (127.0.0.1 in its network
    /// namespace), for a port forward.
    pub async fn port_forward(
        &self,
        account: &str,
        id: &GroupId,
        port: u16,
    ) -> Result<PortStream, ControlError> {
        self.check_port_forward(account, id).await?;
        self.node()?.dial(id, port).await.map_err(node_err)
    }

    /// The metric samples of a group within `range`, oldest first, with the group record.
    pub async fn metrics(
        &self,
        account: &str,
        id: &GroupId,
        range: &MetricRange,
    ) -> Result<(GroupRecord, Vec<MetricPoint>), ControlError> {
        let rec = self.get(account, id).await?;
        let points = self.node()?.metrics(id, range).await.map_err(node_err)?;
        Ok((rec, points))
    }

    /// Follows a container's log.
    pub async fn follow_log(
        &self,
        account: &str,
        id: &GroupId,
        req: &LogRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, ControlError> {
        let rec = self.get(account, id).await?;
        if !rec.spec.all_containers().any(|c| c.name == req.container) {
            return Err(ControlError::NoSuchContainer(req.container.clone()));
        }
        self.node()?.follow_log(id, req).await.map_err(node_err)
    }
}
