//! Spot groups reclaimed on a node of a cluster (ADR 0012, per node): a pay-as-you-go group
//! that no node has room for has the node where the fewest unprotected spot groups have to
//! go reclaim them (the same choice as a single machine's, `berth_core::placement::decide`),
//! and waits for their room. The reclaim is kept in the records (the `SpotToBeReleased`
//! event), so a leader that takes over finishes one its predecessor announced.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_core::placement::{decide, Decision, Holder, Waiter};
use berth_core::{GroupId, GroupRecord, NodeInfo};
use berth_store::StoreError;
use chrono::Utc;

use crate::spot::REASON_TO_BE_RELEASED;
use crate::Control;

/// The most groups of one node read to decide (finished ones included).
const MAX_NODE_GROUPS: usize = 20_000;
/// How often one waiting group has the nodes' groups read again.
const RECLAIM_LOOK: Duration = Duration::from_secs(2);
/// Past its notice by this much, a reclaim its announcer did not finish is finished here.
const OVERDUE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The unfinished groups of each node, read once per placement pass.
#[derive(Default)]
pub(crate) struct NodeHolders(HashMap<String, Vec<GroupRecord>>);

/// When each waiting group last had the nodes looked at (this replica's).
#[derive(Default)]
pub(crate) struct Looks(std::sync::Mutex<HashMap<GroupId, Instant>>);

impl Looks {
    /// Whether `id` may look now; records the look.
    fn may_look(&self, id: &GroupId) -> bool {
        let mut looks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        looks.retain(|_, t| now.duration_since(*t) < RECLAIM_LOOK * 10);
        match looks.get(id) {
            Some(t) if now.duration_since(*t) < RECLAIM_LOOK => false,
            _ => {
                looks.insert(id.clone(), now);
                true
            }
        }
    }
}

/// The time a group was told it is reclaimed, if it was.
fn announced(rec: &GroupRecord) -> Option<chrono::DateTime<Utc>> {
    rec.events
        .iter()
        .rev()
        .find(|e| e.reason == REASON_TO_BE_RELEASED)
        .map(|e| e.last_timestamp)
}

impl Control {
    async fn holders_of<'a>(
        &self,
        node: &str,
        pass: &'a mut NodeHolders,
    ) -> Result<&'a [GroupRecord], StoreError> {
        if !pass.0.contains_key(node) {
            let mut out = Vec::new();
            let mut after = 0;
            let mut read = 0;
            loop {
                let page = self.store.node_groups(node, after, 500).await?;
                let n = page.groups.len();
                read += n;
                out.extend(
                    page.groups
                        .into_iter()
                        .map(|(_, r)| r)
                        .filter(crate::schedule::holds_room),
                );
                if n < 500 || read >= MAX_NODE_GROUPS || page.revision <= after {
                    break;
                }
                after = page.revision;
            }
            pass.0.insert(node.to_string(), out);
        }
        Ok(&pass.0[node])
    }

    /// For pay-as-you-go `rec`, which no node has room for: has spot groups reclaimed on the
    /// node where the fewest must go, unless a reclaim under way makes room already. Returns
    /// whether room is coming for it.
    pub(crate) async fn reclaim_for(
        &self,
        rec: &GroupRecord,
        nodes: &[NodeInfo],
        pass: &mut NodeHolders,
    ) -> Result<bool, StoreError> {
        if rec.spec.spot.is_some() || !self.cluster.looks.may_look(&rec.id) {
            return Ok(false);
        }
        let class = rec.spec.runtime_class().to_string();
        let now = Utc::now();
        let notice = chrono::TimeDelta::from_std(self.schedule_policy().notice)
            .unwrap_or(chrono::TimeDelta::MAX);
        let waiter = Waiter {
            key: rec.id.clone(),
            room: crate::schedule::room(rec),
            spot: None,
        };
        let mut best: Option<(&NodeInfo, Vec<GroupId>)> = None;
        for n in nodes.iter().filter(|n| {
            n.schedulable()
                && n.offer.runtime_classes.contains(&class)
                && n.offer.volumes.check(&rec.spec).is_ok()
        }) {
            let groups = self.holders_of(&n.id, pass).await?;
            // A reclaim announced by a leader that went away is finished here.
            for g in groups {
                if announced(g).is_some_and(|t| now - t > notice + OVERDUE) {
                    let why = "its notice time is over".to_string();
                    if let Err(e) = self.expire_reclaimed(&g.id, &why).await {
                        tracing::warn!(group = %g.id, error = %e, "cannot end a reclaimed spot group");
                    }
                }
            }
            let holders: Vec<Holder<GroupId>> = groups
                .iter()
                .map(|g| Holder {
                    key: g.id.clone(),
                    room: crate::schedule::room(g),
                    spot: crate::schedule::spot_hold(g),
                    // Its room is coming: told it is reclaimed, or being deleted.
                    reclaiming: announced(g).is_some()
                        || g.status == berth_core::GroupStatus::Terminating,
                })
                .collect();
            match decide(n.offer.capacity, &holders, &waiter, now) {
                Decision::Reclaim(victims)
                    if best.as_ref().is_none_or(|(_, b)| victims.len() < b.len()) =>
                {
                    best = Some((n, victims));
                }
                // Room comes from a reclaim under way here.
                Decision::Wait(_) if holders.iter().any(|h| h.reclaiming) => return Ok(true),
                _ => {}
            }
        }
        let Some((node, victims)) = best else {
            return Ok(false);
        };
        let why = format!(
            "to make room for the pay-as-you-go group {} on node {}",
            rec.id, node.name
        );
        tracing::info!(group = %rec.id, node = %node.name, victims = victims.len(), "reclaiming spot groups on a node");
        if let Some(this) = self.me.upgrade() {
            for v in victims {
                this.spawn_reclaim(v, why.clone(), now);
            }
        }
        Ok(true)
    }
}
