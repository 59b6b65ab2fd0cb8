//! The node's reports on their way to the control plane. The agent reports from its own
//! tasks and never waits: a report goes into the outbox (one waiting per group, a newer one
//! replacing it with both's events, `berth_control::PendingReports`), and one task sends
//! what waits in batches, in the order the groups reported. A batch that cannot be sent is
//! kept and sent again, so nothing is lost while the control plane is unreachable; the
//! outbox is bounded by the number of groups the node runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_control::cluster::protocol::{Report, ReportBatch, MAX_REPORTS};
use berth_control::PendingReports;
use berth_core::{GroupId, ObservedGroup};
use berth_node::Reporter;
use tokio::sync::Notify;

use super::link::ControlLink;

/// The outbox; the agent's [`Reporter`].
#[derive(Default)]
pub(crate) struct Outbox {
    pending: Mutex<PendingReports>,
    wake: Notify,
}

impl Reporter for Outbox {
    fn report(&self, id: &GroupId, obs: ObservedGroup) {
        self.lock().push(id, obs);
        self.wake.notify_one();
    }
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingReports> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What waits, at most [`MAX_REPORTS`] groups' reports, oldest first.
    fn take(&self) -> Vec<Report> {
        let mut pending = self.lock();
        std::iter::from_fn(|| pending.pop())
            .take(MAX_REPORTS)
            .map(|(group, observed)| Report { group, observed })
            .collect()
    }

    /// Puts back a batch that was not sent, before what was reported since (a group's
    /// newer report keeps its place and takes the older one's events first).
    fn put_back(&self, batch: Vec<Report>) {
        let mut pending = self.lock();
        let later: Vec<_> = std::iter::from_fn(|| pending.pop()).collect();
        for r in batch {
            pending.push(&r.group, r.observed);
        }
        for (id, obs) in later {
            pending.push(&id, obs);
        }
    }

    /// Sends what waits until the link is dropped; groups whose reports are refused (not
    /// placed on this node) are handed to `refused`.
    pub(crate) async fn send_loop(
        self: Arc<Self>,
        link: ControlLink,
        refused: tokio::sync::mpsc::UnboundedSender<GroupId>,
    ) {
        let mut delay = Duration::from_millis(200);
        loop {
            let batch = self.take();
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            match link
                .report(&ReportBatch {
                    reports: batch.clone(),
                })
                .await
            {
                Ok(reply) => {
                    delay = Duration::from_millis(200);
                    for id in reply.refused {
                        tracing::warn!(group = %id, "the control plane refused a report: the group is not placed on this node");
                        let _ = refused.send(id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, reports = batch.len(), "cannot send reports; kept");
                    self.put_back(batch);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(generation: u64, reason: &str) -> ObservedGroup {
        ObservedGroup {
            generation,
            events: vec![berth_core::Event::new(
                berth_core::EventType::Normal,
                reason,
                reason,
                None,
                chrono::Utc::now(),
            )],
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_put_back_goes_before_newer_reports() {
        let (a, b) = (GroupId::from_random([1; 20]), GroupId::from_random([2; 20]));
        let out = Outbox::default();
        out.report(&a, obs(1, "Pulled"));
        let batch = out.take();
        assert_eq!(batch.len(), 1);
        out.report(&b, obs(1, "Started"));
        out.report(&a, obs(2, "Created"));
        out.put_back(batch);
        let again = out.take();
        let order: Vec<_> = again.iter().map(|r| r.group.clone()).collect();
        assert_eq!(order, [a.clone(), b]);
        assert_eq!(
            again[0].observed.generation, 2,
            "the newer report is the state"
        );
        let reasons: Vec<_> = again[0]
            .observed
            .events
            .iter()
            .map(|e| e.reason.as_str())
            .collect();
        assert_eq!(reasons, ["Pulled", "Created"], "no event is lost");
    }
}
