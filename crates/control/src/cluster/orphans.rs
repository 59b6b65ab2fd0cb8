//! Work a replica that went away left half done, finished by the leader: deletions and
//! deadlines. A delete is carried out by the replica that took it (the group is
//! `Terminating` until its node has removed it); one that died on the way leaves the group
//! `Terminating` and its room held: the leader takes up every deletion older than its grace
//! period and a margin. An `ActiveDeadlineSeconds` is watched by the replica that created
//! the group; the leader watches those of every unfinished group too, so that a deadline
//! holds when that replica is gone (ending a group at its deadline twice is harmless: the
//! second finds it ended).

use std::sync::Arc;

use berth_core::GroupRecord;
use berth_store::StoreError;
use chrono::{TimeDelta, Utc};

use crate::Control;

/// How long after its grace period a deletion counts as left behind.
const MARGIN: TimeDelta = TimeDelta::seconds(15);
/// The most deletions one sweep looks at.
const BATCH: usize = 256;
/// The most unfinished groups one look for deadlines reads.
const MAX_WATCHED: usize = 20_000;

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

    /// Watches on this replica the deadline of every unfinished group that has one and is
    /// not watched here yet; returns how many it started watching.
    pub(crate) async fn watch_all_deadlines(self: &Arc<Self>) -> Result<usize, StoreError> {
        let groups = self.store.unfinished_groups(MAX_WATCHED).await?;
        let with: Vec<&GroupRecord> = groups
            .iter()
            .filter(|g| g.spec.active_deadline_secs.is_some())
            .collect();
        let fresh: Vec<&GroupRecord> = {
            let mut watched = self
                .cluster
                .deadlines
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            watched.retain(|id| with.iter().any(|g| &g.id == id));
            with.into_iter()
                .filter(|g| watched.insert(g.id.clone()))
                .collect()
        };
        for g in &fresh {
            self.watch_deadline(g);
        }
        Ok(fresh.len())
    }
}
