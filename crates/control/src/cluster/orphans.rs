//! Work a replica that went away left half done, finished by the leader: deletions. A delete
//! is carried out by the replica that took it (the group is `Terminating` until its node has
//! removed it); one that died on the way leaves the group `Terminating` and its room held.
//! The leader takes up every deletion older than its grace period and a margin.

use std::sync::Arc;

use berth_core::GroupRecord;
use berth_store::StoreError;
use chrono::{TimeDelta, Utc};

use crate::Control;

/// How long after its grace period a deletion counts as left behind.
const MARGIN: TimeDelta = TimeDelta::seconds(15);
/// The most deletions one sweep looks at.
const BATCH: usize = 256;

/// When the group's deletion was asked for last.
fn asked(rec: &GroupRecord) -> Option<chrono::DateTime<Utc>> {
    rec.events
        .iter()
        .rev()
        .find(|e| e.reason == "Killing")
        .map(|e| e.last_timestamp)
}

impl Control {
    /// Takes up the deletions left behind; returns how many.
    pub(crate) async fn finish_deletions(self: &Arc<Self>) -> Result<usize, StoreError> {
        let now = Utc::now();
        let mut n = 0;
        for rec in self.store.terminating_groups(BATCH).await? {
            let grace = TimeDelta::seconds(
                i64::try_from(rec.spec.termination_grace_period_secs).unwrap_or(i64::MAX / 2),
            );
            let overdue = asked(&rec).is_none_or(|t| now - t > grace + MARGIN);
            if overdue && self.spawn_removal(rec.clone()) {
                tracing::info!(group = %rec.id, "taking up a deletion left behind");
                n += 1;
            }
        }
        Ok(n)
    }
}
