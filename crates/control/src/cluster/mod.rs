//! Cluster mode (docs/CLUSTER.md, ADR 0016): the node protocol's messages and signatures,
//! the control plane's answers to node calls (`calls.rs`), and the loops the replica that
//! holds the leader's lease runs (`leader.rs`): placing groups on nodes (reclaiming spot
//! groups for them, `reclaim.rs`), handling nodes that fell silent, and finishing deletions
//! and watching deadlines of replicas that went away (`orphans.rs`). The server serves
//! the calls under `/node/v1`; `berth node` is the node's side.

mod calls;
mod leader;
mod orphans;
pub mod protocol;
mod reclaim;
pub mod signing;
pub mod stream;

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

pub use calls::NodeCallError;
pub use leader::LEADER_LEASE;

/// A control plane's cluster state: whether it runs in a cluster, and what wakes its node
/// watches and its placement.
#[derive(Default)]
pub(crate) struct Cluster {
    enabled: AtomicBool,
    /// Who this replica is in leases (set by `enable_cluster`).
    pub(crate) holder: std::sync::OnceLock<String>,
    /// A group of some node was written by this replica.
    pub(crate) changed: Notify,
    /// A group may wait for a node, or a node may have room again.
    pub(crate) placement: Notify,
    /// When waiting groups last had spot groups looked for (`reclaim.rs`).
    pub(crate) looks: reclaim::Looks,
    /// The groups whose deadlines this replica watches as the leader (`orphans.rs`).
    pub(crate) deadlines: std::sync::Mutex<std::collections::HashSet<berth_core::GroupId>>,
    /// Groups being moved off a draining node (`leader.rs`).
    pub(crate) moving: std::sync::Mutex<std::collections::HashSet<berth_core::GroupId>>,
}

impl Cluster {
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn wake_placement(&self) {
        self.placement.notify_one();
    }
}

impl crate::Control {
    /// Runs this control plane as a replica of a cluster, known in leases as `holder`: groups
    /// are placed on the nodes that joined, not handed to a node of its own.
    pub fn enable_cluster(&self, holder: String) {
        let _ = self.cluster.holder.set(holder);
        self.cluster.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether this control plane runs in a cluster.
    pub fn in_cluster(&self) -> bool {
        self.cluster.enabled()
    }

    /// A group was written that a node watches, or that waits for a node: wakes the node
    /// watches this replica serves and its placement.
    pub fn cluster_changed(&self, placed: bool) {
        if placed {
            self.cluster.changed.notify_waiters();
            return;
        }
        self.cluster.wake_placement();
        // Placed at once by this replica when no other places now (`leader.rs`).
        if let Some(this) = self.me.upgrade() {
            tokio::spawn(async move { this.place_now().await });
        }
    }
}
