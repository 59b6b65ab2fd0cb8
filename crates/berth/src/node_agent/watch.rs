//! The node's desired state: the groups placed on it, watched from the control plane and
//! applied to the agent. The first watch, and the first after the control plane could not
//! be reached, reads them all (a resync) and removes what the node runs that is no longer
//! placed on it (deleted, or placed elsewhere while the node was away); then each answer
//! holds the groups written since the one before. A group's applications run in the order
//! they came, each after the one before it (a finished record stops containers, which takes
//! the group's grace period); different groups' run side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::{GroupId, GroupRecord, GroupStatus};
use berth_node::Agent;
use tokio::task::JoinHandle;

use super::link::ControlLink;

/// The records the node was last given, by group (a removal reads a group's spec here).
#[derive(Default)]
pub(crate) struct Desired {
    records: Mutex<HashMap<GroupId, GroupRecord>>,
}

impl Desired {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, GroupRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn spec(&self, id: &GroupId) -> Option<berth_core::GroupSpec> {
        self.lock().get(id).map(|r| r.spec.clone())
    }

    pub(crate) fn forget(&self, id: &GroupId) {
        self.lock().remove(id);
    }

    /// The `restart_generation` of the group's record, if the node has one.
    pub(crate) fn generation(&self, id: &GroupId) -> Option<u64> {
        self.lock().get(id).map(|r| r.restart_generation)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether a group the node was given names image cache `id`.
    fn names_cache(&self, id: &str) -> bool {
        self.lock()
            .values()
            .any(|r| r.spec.image_snapshot_id.as_deref() == Some(id))
    }
}

/// What of a record makes the agent act: a record that differs from the last applied one
/// only in what the node itself reported is not applied again.
fn applied_key(rec: &GroupRecord) -> (u64, GroupStatus) {
    (rec.restart_generation, rec.status)
}

pub(crate) struct Watcher {
    pub(crate) agent: Agent,
    pub(crate) link: ControlLink,
    pub(crate) desired: Arc<Desired>,
    /// The last application of each group, which the next one waits for.
    last: HashMap<GroupId, JoinHandle<()>>,
}

impl Watcher {
    pub(crate) fn new(agent: Agent, link: ControlLink, desired: Arc<Desired>) -> Self {
        Self {
            agent,
            link,
            desired,
            last: HashMap::new(),
        }
    }

    /// Watches until the task is aborted.
    pub(crate) async fn run(mut self, mut refused: tokio::sync::mpsc::UnboundedReceiver<GroupId>) {
        let mut after = 0u64;
        let mut resync: Option<Vec<GroupId>> = Some(Vec::new());
        let mut first = true;
        let mut delay = Duration::from_millis(200);
        loop {
            while let Ok(id) = refused.try_recv() {
                self.stop(id);
            }
            let reply = tokio::select! {
                r = self.link.watch(after) => r,
                Some(id) = refused.recv() => {
                    self.stop(id);
                    continue;
                }
            };
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, "cannot watch the control plane");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    after = 0;
                    resync = Some(Vec::new());
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            for rec in reply.groups {
                if let Some(seen) = resync.as_mut() {
                    seen.push(rec.id.clone());
                }
                self.apply(rec);
            }
            after = after.max(reply.revision);
            if reply.more {
                continue;
            }
            if let Some(known) = resync.take() {
                self.forget_all_but(&known);
                tracing::info!(groups = known.len(), revision = after, "desired state read");
                let agent = self.agent.clone();
                self.last.retain(|_, h| !h.is_finished());
                // What the node runs that is not placed on it any more.
                tokio::spawn(async move { agent.collect_garbage(&known).await });
                if std::mem::take(&mut first) {
                    // No cache is being built before the first read: those the control
                    // plane does not know of here were deleted while the node was away.
                    let (agent, link) = (self.agent.clone(), self.link.clone());
                    let desired = self.desired.clone();
                    tokio::spawn(
                        async move { release_unknown_caches(&agent, &link, &desired).await },
                    );
                }
            }
        }
    }

    fn forget_all_but(&self, known: &[GroupId]) {
        let keep: std::collections::HashSet<&GroupId> = known.iter().collect();
        self.desired.lock().retain(|id, _| keep.contains(id));
    }

    /// Applies a record after the group's application before it.
    fn apply(&mut self, rec: GroupRecord) {
        let id = rec.id.clone();
        {
            let mut records = self.desired.lock();
            let same = records
                .get(&id)
                .is_some_and(|old| applied_key(old) == applied_key(&rec));
            records.insert(id.clone(), rec.clone());
            // A removal comes as a call of its own (`server.rs`); a group being removed is
            // never started again.
            if same || rec.status == GroupStatus::Terminating {
                return;
            }
        }
        if self.last.len() > 4096 {
            self.last.retain(|_, h| !h.is_finished());
        }
        let before = self.last.remove(&id);
        let agent = self.agent.clone();
        let handle = tokio::spawn(async move {
            if let Some(h) = before {
                let _ = h.await;
            }
            agent.apply(rec).await;
        });
        self.last.insert(id, handle);
    }

    /// Stops a group the control plane says is not this node's.
    fn stop(&mut self, id: GroupId) {
        let spec = self.desired.spec(&id);
        if let Some(generation) = self.desired.generation(&id) {
            self.agent.fence(&id, generation);
        }
        self.desired.forget(&id);
        let before = self.last.remove(&id);
        let agent = self.agent.clone();
        let group = id.clone();
        let handle = tokio::spawn(async move {
            if let Some(h) = before {
                let _ = h.await;
            }
            if let Err(e) = agent
                .remove(&group, spec.as_ref(), Duration::from_secs(10))
                .await
            {
                tracing::warn!(group = %group, error = %e, "cannot stop a group placed elsewhere");
            }
        });
        self.last.insert(id, handle);
    }
}

/// Releases the image caches on the node that the control plane does not list for it and
/// no group given to the node names (one may be making it now).
async fn release_unknown_caches(agent: &Agent, link: &ControlLink, desired: &Desired) {
    let held = match link.caches().await {
        Ok(h) => h.ids,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read which image caches this node holds");
            return;
        }
    };
    let local = match agent.image_caches() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the image caches of this node");
            return;
        }
    };
    for id in local.into_iter().filter(|id| !held.contains(id)) {
        if desired.names_cache(&id) {
            continue;
        }
        match agent.delete_image_cache(&id) {
            Ok(()) => {
                tracing::info!(cache = %id, "released an image cache deleted while the node was away")
            }
            Err(e) => tracing::warn!(cache = %id, error = %e, "cannot release an image cache"),
        }
    }
}
