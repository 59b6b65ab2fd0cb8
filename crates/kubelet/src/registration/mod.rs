//! The node's registration controller: creates the Node (or, after a restart, brings its
//! labels, taint and status up to date), renews its Lease in `kube-node-lease` every quarter
//! of the lease's 40 s, refreshes its status every minute (its capacity read again from a
//! [`CapacitySource`], berth's ListUsage, so that a change of the account's quotas reaches
//! the Node), and marks it NotReady on shutdown.
//! Errors of the API server are retried with back-off; none stops the controller.

#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

use crate::node::{
    lease, node, node_status, Capacity, NodeConfig, LEASE_DURATION_SECS, LEASE_NAMESPACE,
};

/// How often the lease is renewed: a quarter of its duration.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(LEASE_DURATION_SECS as u64 / 4);
/// How often the node's status is sent again while nothing changes.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(60);
/// Tries of one lease renewal that meets a conflict (someone else wrote the lease).
const LEASE_TRIES: usize = 3;
/// Longest wait between two tries of a failing registration.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the node's capacity comes from: read again with every status update.
#[async_trait::async_trait]
pub trait CapacitySource: Send + Sync {
    async fn read(&self) -> Result<Capacity, String>;
}

/// The virtual node's registration in one cluster.
pub struct Registration {
    nodes: Api<Node>,
    leases: Api<Lease>,
    cfg: NodeConfig,
    /// The lease as last written: renewed in place without reading it again, until a conflict.
    latest: Mutex<Option<Lease>>,
    /// How often the status is sent (and the capacity read) again.
    status_interval: Duration,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

impl Registration {
    pub fn new(client: kube::Client, cfg: NodeConfig) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            leases: Api::namespaced(client, LEASE_NAMESPACE),
            cfg,
            latest: Mutex::new(None),
            status_interval: STATUS_INTERVAL,
        }
    }

    /// Sends the status (and reads the capacity) every `every` instead of every
    /// [`STATUS_INTERVAL`] (the kubelet's `--node-status-update-frequency`).
    pub fn with_status_interval(mut self, every: Duration) -> Self {
        self.status_interval = every;
        self
    }

    /// Creates the Node; when it exists already, merges its labels and taint into it. Then
    /// sends its status (Ready).
    pub async fn register(&self, cap: &Capacity, now: Timestamp) -> Result<(), kube::Error> {
        let n = node(&self.cfg, cap, true, now);
        match self.nodes.create(&PostParams::default(), &n).await {
            Ok(_) => {}
            Err(e) if conflict(&e) => {
                let patch = json!({
                    "metadata": {"labels": n.metadata.labels},
                    "spec": {"taints": n.spec.as_ref().and_then(|s| s.taints.clone())},
                });
                self.nodes
                    .patch(
                        &self.cfg.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            Err(e) => return Err(e),
        }
        self.send_status(cap, true, now).await
    }

    /// Sends the node's status: conditions with `now` as heartbeat, capacity, addresses.
    pub async fn send_status(
        &self,
        cap: &Capacity,
        ready: bool,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        let status = node_status(&self.cfg, cap, ready, now);
        self.nodes
            .patch_status(
                &self.cfg.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .map(|_| ())
    }

    /// Reads the capacity again from `source` (keeping `cap` when it cannot be read) and
    /// sends the node's status with it. Returns whether the capacity changed.
    pub async fn refresh_status(
        &self,
        cap: &mut Capacity,
        source: &dyn CapacitySource,
        now: Timestamp,
    ) -> Result<bool, kube::Error> {
        let changed = match source.read().await {
            Ok(c) if c != *cap => {
                tracing::info!(node = %self.cfg.name, cpu = c.cpu, memory_gib = c.memory_gib, pods = c.pods, storage_gib = c.storage_gib, "the node's capacity changed");
                *cap = c;
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(node = %self.cfg.name, error = %e, "reading the node's capacity; the last one stays");
                false
            }
        };
        self.send_status(cap, true, now).await?;
        Ok(changed)
    }

    /// Renews the node's lease to `now`: writes the lease last written (its resourceVersion
    /// guards against a concurrent writer), reads it again after a conflict, creates it when
    /// there is none.
    pub async fn renew_lease(&self, now: Timestamp) -> Result<Lease, kube::Error> {
        let name = self.cfg.name.as_str();
        let mut tries = 0;
        loop {
            tries += 1;
            let known = self.latest.lock().unwrap_or_else(|p| p.into_inner()).take();
            let current = match known {
                Some(l) => Some(l),
                None => self.leases.get_opt(name).await?,
            };
            let result = match current {
                None => {
                    self.leases
                        .create(&PostParams::default(), &lease(name, now))
                        .await
                }
                Some(mut l) => {
                    let spec = l.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some(name.to_string());
                    spec.lease_duration_seconds = Some(LEASE_DURATION_SECS);
                    spec.renew_time = Some(MicroTime(now));
                    self.leases.replace(name, &PostParams::default(), &l).await
                }
            };
            match result {
                Ok(l) => {
                    *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(l.clone());
                    return Ok(l);
                }
                Err(e) if conflict(&e) && tries < LEASE_TRIES => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Registers the node with capacity `cap` (retrying with back-off), then renews its lease
    /// and refreshes its status and capacity (from `source`) until `shutdown` turns true, and
    /// marks the node NotReady before it returns.
    pub async fn run(
        &self,
        mut cap: Capacity,
        source: &dyn CapacitySource,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.register(&cap, Timestamp::now()).await {
                Ok(()) => break,
                Err(e) => tracing::warn!(node = %self.cfg.name, error = %e, "registering the node"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let mut renew = tokio::time::interval(RENEW_INTERVAL);
        let mut status = tokio::time::interval(self.status_interval);
        status.tick().await;
        while !*shutdown.borrow() {
            tokio::select! {
                _ = renew.tick() => {
                    if let Err(e) = self.renew_lease(Timestamp::now()).await {
                        tracing::warn!(node = %self.cfg.name, error = %e, "renewing the node's lease");
                    }
                }
                _ = status.tick() => {
                    if let Err(e) = self.refresh_status(&mut cap, source, Timestamp::now()).await {
                        tracing::warn!(node = %self.cfg.name, error = %e, "sending the node's status");
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        if let Err(e) = self.send_status(&cap, false, Timestamp::now()).await {
            tracing::warn!(node = %self.cfg.name, error = %e, "marking the node NotReady");
        }
    }
}
