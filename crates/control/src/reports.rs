//! The queue between the node's status reports and the store. A node reports from its own
//! tasks and must not wait for the store; the control plane folds each report into its
//! group's record in the order it was made. Reports are spread over a few queues by group,
//! each served by one task: a group's reports stay in order, different groups' are written
//! side by side.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use berth_core::{GroupId, ObservedGroup};
use tokio::sync::mpsc;

use crate::Control;

/// How many queues (and tasks) reports are spread over.
const QUEUES: usize = 4;

type Report = (GroupId, ObservedGroup);

/// Where a node's reports go; cheap to clone. Made by [`Control::report_queue`].
#[derive(Clone)]
pub struct Reports {
    queues: Arc<Vec<mpsc::UnboundedSender<Report>>>,
}

impl Reports {
    /// Queues a report; it is written after every earlier report of the same group.
    pub fn send(&self, id: &GroupId, obs: ObservedGroup) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let queue = &self.queues[(h.finish() as usize) % self.queues.len()];
        if queue.send((id.clone(), obs)).is_err() {
            tracing::warn!(group = %id, "a status report came after the control plane stopped");
        }
    }
}

impl Control {
    /// Starts the tasks that write reports into the store; they end when every [`Reports`]
    /// is dropped, after writing what was queued.
    pub fn report_queue(self: &Arc<Self>) -> Reports {
        let queues = (0..QUEUES)
            .map(|_| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
                let control = Arc::clone(self);
                tokio::spawn(async move {
                    while let Some((id, obs)) = rx.recv().await {
                        control.report(&id, obs).await;
                    }
                });
                tx
            })
            .collect();
        Reports {
            queues: Arc::new(queues),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_core::{
        normalize_size, ContainerState, ContainerStatus, GroupRecord, GroupSpec, GroupStatus,
    };
    use berth_store::{SqliteStore, Store};
    use chrono::Utc;

    use super::*;

    #[tokio::test]
    async fn reports_of_a_group_are_written_in_order() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let control = Control::new(store.clone(), "local");
        let size = normalize_size(None, None).unwrap();
        let spec = GroupSpec {
            name: "g".into(),
            cpu: size.cpu,
            memory: size.memory,
            containers: vec![Default::default()],
            ..Default::default()
        };
        let rec = GroupRecord::new(GroupId::from_random([3; 20]), "a", spec, Utc::now());
        store.insert_group(&rec).await.unwrap();
        let reports = control.report_queue();
        let with_restarts = |n: u32| ObservedGroup {
            containers: vec![ContainerStatus {
                name: "c".into(),
                restart_count: n,
                current: ContainerState::running(Utc::now()),
                ..Default::default()
            }],
            ..Default::default()
        };
        for n in 0..200 {
            reports.send(&rec.id, with_restarts(n));
        }
        drop(reports);
        let mut last = None;
        for _ in 0..500 {
            let got = store.get_group(None, &rec.id).await.unwrap().unwrap();
            last = got.containers.first().map(|c| c.restart_count);
            if last == Some(199) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(last, Some(199), "the last report is the one that stays");
        let got = store.get_group(None, &rec.id).await.unwrap().unwrap();
        assert_eq!(got.status, GroupStatus::Running);
    }
}
