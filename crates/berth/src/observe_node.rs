//! The observe half of `berth serve`'s in-process node: exec, metrics and log following of
//! the local agent, translated to the control plane's types.

use std::time::Duration;

use async_trait::async_trait;
use berth_control::{
    ExecOutput, ExecProcess, ExecRequest, ExecStream, LogRequest, MetricRange, NodeError,
    NodeObserve, PortStream,
};
use berth_core::metric::MetricPoint;
use berth_core::GroupId;
use berth_node::{Agent, LogSelector};
use berth_runtime::ExecSession;

use crate::serve::LocalNode;

/// The runtime's log query of a DescribeContainerLog request.
pub(crate) fn log_query(req: &LogRequest) -> berth_runtime::logs::LogQuery {
    berth_runtime::logs::LogQuery {
        tail: req.tail,
        since: req
            .since_seconds
            .map(|s| chrono::Utc::now() - chrono::Duration::seconds(s.min(i64::MAX as u64) as i64)),
        limit_bytes: req.limit_bytes,
        timestamps: req.timestamps,
    }
}

fn failed(e: berth_node::NodeError) -> NodeError {
    match e {
        berth_node::NodeError::NoLog(c) => NodeError::NotFound(c),
        other => NodeError::Failed(berth_node_error_chain(&other)),
    }
}

fn berth_node_error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn runtime_request(req: &ExecRequest) -> berth_runtime::ExecRequest {
    berth_runtime::ExecRequest {
        args: req.command.clone(),
        tty: req.tty,
        stdin: req.stdin,
        size: req.size,
        ..Default::default()
    }
}

/// The process of an interactive exec.
struct Process(ExecSession);

#[async_trait]
impl ExecProcess for Process {
    fn resize(&self, cols: u16, rows: u16) -> Result<(), NodeError> {
        self.0
            .resize(cols, rows)
            .map_err(|e| NodeError::Failed(e.to_string()))
    }

    async fn wait(&mut self) -> Result<i32, NodeError> {
        self.0
            .wait()
            .await
            .map_err(|e| NodeError::Failed(e.to_string()))
    }

    fn kill(&self) {
        self.0.kill();
    }
}

#[async_trait]
impl NodeObserve for LocalNode {
    async fn exec_sync(
        &self,
        id: &GroupId,
        req: &ExecRequest,
        timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        let out = self
            .agent
            .exec_sync(id, &req.container, &runtime_request(req), timeout)
            .await
            .map_err(failed)?;
        Ok(ExecOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        })
    }

    async fn exec_start(&self, id: &GroupId, req: &ExecRequest) -> Result<ExecStream, NodeError> {
        let mut session = self
            .agent
            .exec_interactive(id, &req.container, &runtime_request(req))
            .await
            .map_err(failed)?;
        Ok(ExecStream {
            stdin: session.stdin.take(),
            stdout: session.stdout.take(),
            stderr: session.stderr.take(),
            tty: session.is_tty(),
            process: Box::new(Process(session)),
        })
    }

    async fn metrics(
        &self,
        id: &GroupId,
        range: &MetricRange,
    ) -> Result<Vec<MetricPoint>, NodeError> {
        Ok(self.agent.metrics(id, range.start, range.end))
    }

    async fn dial(&self, id: &GroupId, port: u16) -> Result<PortStream, NodeError> {
        let stream = self.agent.dial_loopback(id, port).await.map_err(failed)?;
        Ok(Box::new(stream))
    }

    async fn follow_log(
        &self,
        id: &GroupId,
        req: &LogRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, NodeError> {
        if req.previous {
            // The previous run has ended: its log, read once, is the whole stream.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let text = self
                .agent
                .read_log(id, &req.container, LogSelector::Previous, &log_query(req))
                .map_err(failed)?;
            let _ = tx.send(text).await;
            return Ok(rx);
        }
        self.agent
            .follow_log(id, &req.container, &log_query(req))
            .map_err(failed)
    }
}

/// Log text of one container of a group on this node (`NodeClient::read_log`).
pub(crate) async fn read_log(
    agent: &Agent,
    id: &GroupId,
    req: &LogRequest,
) -> Result<String, NodeError> {
    let q = log_query(req);
    let which = match (req.restart_count, req.previous) {
        (Some(n), false) => LogSelector::Run(n),
        (Some(0), true) => return Err(NodeError::NotFound(req.container.clone())),
        (Some(n), true) => LogSelector::Run(n - 1),
        (None, false) => LogSelector::Current,
        (None, true) => LogSelector::Previous,
    };
    let agent = agent.clone();
    let id = id.clone();
    let container = req.container.clone();
    tokio::task::spawn_blocking(move || agent.read_log(&id, &container, which, &q))
        .await
        .map_err(|e| NodeError::Failed(e.to_string()))?
        .map_err(|e| match e {
            berth_node::NodeError::NoLog(c) => NodeError::NotFound(c),
            other => NodeError::Failed(other.to_string()),
        })
}
