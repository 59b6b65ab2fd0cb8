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

/// The records the node was last given, by group (a removal reads a group's spec here), and
/// the runs the control plane removed.
#[derive(Default)]
pub(crate) struct Desired {
    records: Mutex<HashMap<GroupId, GroupRecord>>,
    /// For a group the control plane removed from this node, the last `restart_generation`
    /// it had here: a record of that run is not applied again (a report written after the
    /// removal brings the group back through the watch before the control plane places it
    /// elsewhere, with a newer generation).
    removed: Mutex<HashMap<GroupId, u64>>,
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

    /// The control plane removed the group: its run here is over.
    pub(crate) fn removed(&self, id: &GroupId) {
        let generation = self.lock().remove(id).map(|r| r.restart_generation);
        if let Some(g) = generation {
            self.removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), g);
        }
    }

    /// Whether `rec` is of a run the control plane removed here.
    fn is_removed(&self, rec: &GroupRecord) -> bool {
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        match removed.get(&rec.id) {
            Some(&g) if rec.restart_generation <= g => true,
            Some(_) => {
                removed.remove(&rec.id);
                false
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
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
            }
        }
    }

    fn forget_all_but(&self, known: &[GroupId]) {
        let keep: std::collections::HashSet<&GroupId> = known.iter().collect();
        self.desired.lock().retain(|id, _| keep.contains(id));
        self.desired
            .removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| keep.contains(id));
    }

    /// Applies a record after the group's application before it.
    fn apply(&mut self, rec: GroupRecord) {
        let id = rec.id.clone();
        if self.desired.is_removed(&rec) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: u64) -> GroupRecord {
        let mut r = GroupRecord::new(
            GroupId::from_random([5; 20]),
            "a",
            Default::default(),
            chrono::Utc::now(),
        );
        r.restart_generation = generation;
        r
    }

    #[test]
    fn a_removed_run_is_not_applied_again_but_a_newer_one_is() {
        let d = Desired::default();
        let rec = record(3);
        d.lock().insert(rec.id.clone(), rec.clone());
        d.removed(&rec.id);
        assert!(d.spec(&rec.id).is_none(), "forgotten");
        assert!(d.is_removed(&rec), "the run removed");
        assert!(d.is_removed(&record(2)), "an older one too");
        assert!(!d.is_removed(&record(4)), "placed here again as a new run");
        assert!(!d.is_removed(&rec), "the fence went with the newer run");
    }
}
