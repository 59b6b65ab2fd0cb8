//! The queue between the node's status reports and the store. A node reports from its own
//! tasks and must not wait for the store; the control plane folds each report into its
//! group's record in the order it was made. Reports are spread over a few queues by group,
//! each served by one task: a group's reports stay in order, different groups' are written
//! side by side.
//!
//! A queue holds at most one report per group: a report of a group that still has one
//! waiting replaces it (a report is the group's whole observed state), keeping the events of
//! both. So a queue is bounded by the number of groups, however fast a node reports and
//! however slow the store is.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use berth_core::{GroupId, ObservedGroup};
use tokio::sync::Notify;

use crate::Control;

/// How many queues (and tasks) reports are spread over.
const QUEUES: usize = 4;

/// Most events a waiting report keeps; the oldest go first.
const MAX_WAITING_EVENTS: usize = 256;

/// Where a node's reports go; cheap to clone. Made by [`Control::report_queue`]; its tasks
/// end, after writing what waits, when the last clone is dropped.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<Arc<Queue>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for q in &self.queues {
            q.lock().closed = true;
            q.wake.notify_one();
        }
    }
}

#[derive(Default)]
struct Queue {
    waiting: Mutex<PendingReports>,
    wake: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingReports> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reports not yet written, oldest group first: at most one per group, a newer one replacing
/// the one waiting and keeping both's events (at most [`MAX_WAITING_EVENTS`]). The control
/// plane's queues hold them, and a node agent's outbox before it sends them.
#[derive(Default)]
pub struct PendingReports {
    order: VecDeque<GroupId>,
    by_group: HashMap<GroupId, ObservedGroup>,
    closed: bool,
}

impl PendingReports {
    /// How many groups have a report waiting.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds a report; one of a group that has one waiting replaces it, after the events of
    /// the one it replaces.
    pub fn push(&mut self, id: &GroupId, obs: ObservedGroup) {
        match self.by_group.get_mut(id) {
            Some(old) => {
                let mut events = std::mem::take(&mut old.events);
                events.extend(obs.events.iter().cloned());
                let over = events.len().saturating_sub(MAX_WAITING_EVENTS);
                events.drain(..over);
                *old = ObservedGroup { events, ..obs };
            }
            None => {
                self.order.push_back(id.clone());
                self.by_group.insert(id.clone(), obs);
            }
        }
    }

    /// The report of the group that has waited longest.
    pub fn pop(&mut self) -> Option<(GroupId, ObservedGroup)> {
        let id = self.order.pop_front()?;
        let obs = self.by_group.remove(&id)?;
        Some((id, obs))
    }
}

impl Reports {
    /// Queues a report; it is written after every earlier report of the same group.
    pub fn send(&self, id: &GroupId, obs: ObservedGroup) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let queue = &self.inner.queues[(h.finish() as usize) % self.inner.queues.len()];
        queue.lock().push(id, obs);
        queue.wake.notify_one();
    }
}

impl Control {
    /// Starts the tasks that write reports into the store.
    pub fn report_queue(self: &Arc<Self>) -> Reports {
        let queues: Vec<Arc<Queue>> = (0..QUEUES).map(|_| Arc::default()).collect();
        for q in &queues {
            let (q, control) = (Arc::clone(q), Arc::clone(self));
            tokio::spawn(async move {
                loop {
                    let next = {
                        let mut w = q.lock();
                        match w.pop() {
                            Some(r) => Some(r),
                            None if w.closed => return,
                            None => None,
                        }
                    };
                    match next {
                        Some((id, obs)) => control.report(&id, obs).await,
                        None => q.wake.notified().await,
                    }
                }
            });
        }
        Reports {
            inner: Arc::new(Inner { queues }),
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

    fn event(reason: &str) -> berth_core::Event {
        berth_core::Event::new(
            berth_core::EventType::Normal,
            reason,
            reason,
            None,
            Utc::now(),
        )
    }

    #[test]
    fn a_waiting_report_is_replaced_keeping_the_events_of_both() {
        let (a, b) = (GroupId::from_random([1; 20]), GroupId::from_random([2; 20]));
        let mut w = PendingReports::default();
        let report = |generation: u64, reasons: &[&str]| ObservedGroup {
            generation,
            events: reasons.iter().map(|r| event(r)).collect(),
            ..Default::default()
        };
        w.push(&a, report(1, &["Pulled"]));
        w.push(&b, report(1, &["Started"]));
        w.push(&a, report(2, &["Created", "Started"]));
        let (id, obs) = w.pop().unwrap();
        assert_eq!(id, a, "the group that reported first is written first");
        assert_eq!(obs.generation, 2, "the later report is the state");
        let reasons: Vec<_> = obs.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["Pulled", "Created", "Started"]);
        assert_eq!(w.pop().unwrap().0, b);
        assert!(w.pop().is_none());
        // However many reports come, one group holds one waiting report, its events bounded.
        for _ in 0..1000 {
            w.push(&a, report(3, &["BackOff"]));
        }
        assert_eq!(w.by_group.len(), 1);
        assert_eq!(w.pop().unwrap().1.events.len(), MAX_WAITING_EVENTS);
    }

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
