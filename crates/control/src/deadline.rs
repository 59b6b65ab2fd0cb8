//! `ActiveDeadlineSeconds`: a group that is still active that many seconds after it was
//! created ends Failed with reason `DeadlineExceeded`, and its containers are stopped (SIGTERM,
//! its termination grace period, SIGKILL), as Kubernetes does with a pod's
//! `activeDeadlineSeconds`. The group keeps its record, logs and address until it is deleted,
//! as any failed group, and holds no quota any more.
//!
//! One sleeping task per group with a deadline, started when the group is created and again
//! for every recorded group when berth starts (a deadline that passed while berth was down
//! fires at once). The task looks at the record when it wakes: a group deleted, finished or
//! being deleted in the meantime is left alone.

use std::sync::Arc;
use std::time::Duration;

use berth_core::{ContainerState, Event, EventType, GroupRecord, GroupStatus, StateKind};
use chrono::Utc;

use crate::service::Control;

/// The reason of the group's failure and of its containers' termination.
pub const REASON: &str = "DeadlineExceeded";

impl Control {
    /// Watches the deadline of `rec`, if it has one and is not finished.
    pub(crate) fn watch_deadline(self: &Arc<Self>, rec: &GroupRecord) {
        let Some(secs) = rec.spec.active_deadline_secs else {
            return;
        };
        if rec.status.is_final() || rec.status == GroupStatus::Terminating {
            return;
        }
        let at = rec.creation_time + chrono::Duration::seconds(secs.min(i64::MAX as u64) as i64);
        let this = Arc::clone(self);
        let id = rec.id.clone();
        tokio::spawn(async move {
            let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(left).await;
            if let Err(e) = this.deadline_passed(&id, secs).await {
                tracing::warn!(group = %id, error = %e, "cannot end a group at its deadline");
            }
        });
    }

    async fn deadline_passed(
        self: &Arc<Self>,
        id: &berth_core::GroupId,
        secs: u64,
    ) -> Result<(), crate::ControlError> {
        let mut ended = false;
        let res = self.store.modify_group(id, &mut |r| {
            ended = false;
            if r.status.is_final() || r.status == GroupStatus::Terminating {
                return;
            }
            let now = Utc::now();
            r.status = GroupStatus::Failed;
            r.failed_time = Some(now);
            r.push_event(Event::new(
                EventType::Warning,
                REASON,
                format!("The container group was active longer than its ActiveDeadlineSeconds ({secs} s)"),
                None,
                now,
            ));
            ended = true;
        }).await;
        let rec = match res {
            Ok(rec) => rec,
            Err(berth_store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !ended {
            return Ok(());
        }
        tracing::info!(group = %id, deadline_s = secs, "container group passed its deadline");
        // The node stops what still runs; a final record is what it converges to.
        self.node()?.apply(rec).await;
        self.release(id);
        // Then every container that had not ended counts as terminated by the deadline.
        self.terminate_containers(id, REASON, "stopped at the group's ActiveDeadlineSeconds")
            .await
    }

    /// Records every container of the group that had not ended as terminated for `reason`
    /// (after the node stopped them for a deadline or a reclaim).
    pub(crate) async fn terminate_containers(
        &self,
        id: &berth_core::GroupId,
        reason: &str,
        message: &str,
    ) -> Result<(), crate::ControlError> {
        let res = self
            .store
            .modify_group(id, &mut |r| {
                let now = Utc::now();
                for c in r.init_containers.iter_mut().chain(r.containers.iter_mut()) {
                    if c.current.state != StateKind::Terminated {
                        let started = c.current.start_time;
                        c.current = ContainerState {
                            state: StateKind::Terminated,
                            reason: Some(reason.to_string()),
                            message: Some(message.to_string()),
                            start_time: started,
                            finish_time: Some(now),
                            ..Default::default()
                        };
                        c.ready = false;
                    }
                }
            })
            .await;
        match res {
            Ok(_) | Err(berth_store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
