//! The loops of a cluster that must run once, on the replica holding the lease
//! [`LEADER_LEASE`] (ADR 0016): placing groups that wait for a node, handling nodes that
//! fell silent, and moving groups off draining nodes. Every write is a change of one record that checks, where it is written,
//! that the record is still as the decision saw it (a group still unplaced, a node still
//! silent), so a replica that lost the lease without knowing it changes nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::placement::Room;
use berth_core::{Event, EventType, GroupRecord, GroupStatus, NodeInfo, NodeState, RestartPolicy};
use berth_store::StoreError;
use chrono::Utc;

use super::protocol::{MAX_WATCH_GROUPS, NODE_LOST_SECS};
use crate::Control;

/// The lease of the replica that runs the once-only loops.
pub const LEADER_LEASE: &str = "cluster-leader";
/// The lease held through a placement pass: one replica places at a time (each pass reads
/// the nodes' room as the passes before it left it), the leader in its loop, any replica at
/// once for a group created through it.
pub const PLACEMENT_LEASE: &str = "cluster-placement";
const PLACEMENT_TTL: Duration = Duration::from_secs(5);
/// How often, and how far apart, a replica tries for the placement lease another holds.
const PLACEMENT_TRIES: u32 = 10;
const PLACEMENT_RETRY: Duration = Duration::from_millis(10);
/// How long the lease is taken for, and how often it is renewed.
const LEASE_TTL: Duration = Duration::from_secs(6);
const LEASE_RENEW: Duration = Duration::from_secs(2);
/// How often the leader looks for groups waiting for a node written by other replicas.
const PLACEMENT_POLL: Duration = Duration::from_millis(250);
/// How often the leader deletes image caches whose retention ended and takes up deletions
/// and image cache builds other replicas left behind.
const SWEEP: Duration = Duration::from_secs(10);
/// Every how many sweeps the leader looks for deadlines to watch.
const DEADLINE_SWEEPS: u64 = 3;
/// The most waiting groups one placement pass looks at.
const PLACEMENT_BATCH: usize = 256;
/// The event of a group a node holds; of a group whose node was lost.
const REASON_SCHEDULED: &str = "Scheduled";
const REASON_NODE_LOST: &str = "NodeLost";
const REASON_DRAINED: &str = "Drained";

/// What holding a group's images is worth in the share of room left a node is chosen by.
const IMAGE_BONUS: f64 = 0.2;
/// A node with less temporary storage free takes no group.
const MIN_FREE_STORAGE: i128 = 1 << 30;

/// What a group needs of a node.
#[derive(Clone, Copy, Debug)]
struct Need {
    room: Room,
    /// Bytes of temporary storage (`EphemeralStorage`).
    storage: u64,
}

impl Need {
    fn of(spec: &berth_core::GroupSpec) -> Self {
        Self {
            room: Room::of(spec.cpu, spec.memory),
            storage: u64::from(spec.ephemeral_storage_gib()) << 30,
        }
    }
}

/// What a node has left for groups.
#[derive(Clone, Copy, Debug)]
struct Free {
    cpu_milli: i128,
    memory_mib: i128,
    /// Bytes of temporary storage free; `None`: the node's storage is not bounded.
    storage: Option<i128>,
    capacity: Room,
}

impl Free {
    /// CPU and memory for `need`, and storage not all but used up.
    fn fits(&self, need: Need) -> bool {
        self.cpu_milli >= i128::from(need.room.cpu_milli)
            && self.memory_mib >= i128::from(need.room.memory_mib)
            && self.storage.is_none_or(|s| s >= MIN_FREE_STORAGE)
    }

    /// The group's whole `EphemeralStorage` free (a group's storage is thin: it takes only
    /// what it writes, so this is a preference, not a bound).
    fn storage_for(&self, need: Need) -> bool {
        self.storage.is_none_or(|s| s >= i128::from(need.storage))
    }

    /// The share of the node left after `need` is taken: the lesser of CPU's and memory's.
    fn left_after(&self, need: Need) -> f64 {
        let share = |free: i128, need: u64, cap: u64| {
            if cap == 0 {
                return 0.0;
            }
            (free - i128::from(need)) as f64 / cap as f64
        };
        share(self.cpu_milli, need.room.cpu_milli, self.capacity.cpu_milli).min(share(
            self.memory_mib,
            need.room.memory_mib,
            self.capacity.memory_mib,
        ))
    }

    /// Takes `need`'s CPU and memory; its storage is taken as it writes, and seen in the
    /// node's next offer.
    fn take(&mut self, need: Need) {
        self.cpu_milli -= i128::from(need.room.cpu_milli);
        self.memory_mib -= i128::from(need.room.memory_mib);
    }
}

/// An image reference in the form a node's store lists it (`busybox` →
/// `docker.io/library/busybox:latest`), for comparing with a node's offer: the usual forms
/// only (the node's image store parses references fully).
fn image_key(reference: &str) -> String {
    let r = reference.trim();
    let (name, suffix) = match r.split_once('@') {
        Some((n, d)) => (n, format!("@{d}")),
        None => {
            let last = r.rsplit('/').next().unwrap_or(r);
            if last.contains(':') {
                (r, String::new())
            } else {
                (r, ":latest".to_string())
            }
        }
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let name = if has_host {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{name}{suffix}")
}

/// Whether node `n` lists every image of `rec`.
fn holds_images(n: &NodeInfo, images: &[String]) -> bool {
    !images.is_empty() && images.iter().all(|i| n.offer.images.contains(i))
}

/// The node a group goes to: of the schedulable nodes running its class, allowing its
/// volumes and with room for it (CPU, memory, [`MIN_FREE_STORAGE`]), one that holds its
/// image cache (`cached`) if any does, then one with its whole `EphemeralStorage` free, then
/// the one left with the largest share free (groups spread over the nodes), a node holding
/// the group's images counted [`IMAGE_BONUS`] emptier.
fn choose<'a>(
    rec: &GroupRecord,
    nodes: &'a [NodeInfo],
    free: &HashMap<String, Free>,
    cached: &[String],
) -> Option<&'a NodeInfo> {
    let need = Need::of(&rec.spec);
    let class = rec.spec.runtime_class().to_string();
    let mut images: Vec<String> = rec
        .spec
        .all_containers()
        .map(|c| image_key(&c.image))
        .collect();
    images.dedup();
    nodes
        .iter()
        .filter(|n| n.schedulable() && n.offer.runtime_classes.contains(&class))
        .filter(|n| n.offer.volumes.check(&rec.spec).is_ok())
        .filter_map(|n| {
            free.get(&n.id)
                .filter(|f| f.fits(need))
                .map(|f| (n, f.storage_for(need), f.left_after(need)))
        })
        .max_by(|a, b| {
            let rank =
                |(n, storage, _): &(&NodeInfo, bool, f64)| (cached.contains(&n.id), *storage);
            // Holding the images is worth a share of the room, no more: groups still spread.
            let score = |(n, _, left): &(&NodeInfo, bool, f64)| {
                left + if holds_images(n, &images) {
                    IMAGE_BONUS
                } else {
                    0.0
                }
            };
            rank(a)
                .cmp(&rank(b))
                .then_with(|| score(a).total_cmp(&score(b)))
                .then_with(|| b.0.name.cmp(&a.0.name))
        })
        .map(|(n, _, _)| n)
}

/// Why [`choose`] found no node for `rec`, for its events.
fn why_no_node(rec: &GroupRecord, nodes: &[NodeInfo]) -> String {
    let class = rec.spec.runtime_class().to_string();
    let running: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.schedulable() && n.offer.runtime_classes.contains(&class))
        .collect();
    if running.is_empty() {
        return format!("no node of the cluster that takes groups runs the {class} runtime class");
    }
    let refused: Vec<_> = running
        .iter()
        .filter_map(|n| n.offer.volumes.check(&rec.spec).err())
        .collect();
    if let (Some(e), true) = (refused.first(), refused.len() == running.len()) {
        return format!(
            "no node of the cluster that takes groups allows its volumes ({}: {})",
            e.param, e.reason
        );
    }
    "no node of the cluster has room for it".to_string()
}

impl Control {
    /// A placement pass under [`PLACEMENT_LEASE`], unless another replica runs one (the
    /// leader's next pass then places what this one would have).
    pub(crate) async fn place_now(&self) {
        let Some(holder) = self.cluster.holder.get() else {
            return;
        };
        // A pass under way elsewhere is short: wait a little for it rather than leave the
        // group to the leader's next poll.
        let mut tries = 0;
        loop {
            match self
                .store
                .take_lease(PLACEMENT_LEASE, holder, PLACEMENT_TTL)
                .await
            {
                Ok(Some(_)) => break,
                Ok(None) if tries < PLACEMENT_TRIES => {
                    tries += 1;
                    tokio::time::sleep(PLACEMENT_RETRY).await;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the placement lease");
                    return;
                }
            }
        }
        if let Err(e) = self.place_waiting().await {
            tracing::warn!(error = %e, "placement failed");
        }
        if let Err(e) = self.store.release_lease(PLACEMENT_LEASE, holder).await {
            tracing::warn!(error = %e, "cannot release the placement lease");
        }
    }

    /// Places groups that wait for a node; returns how many it placed. Run under
    /// [`PLACEMENT_LEASE`].
    pub async fn place_waiting(&self) -> Result<usize, StoreError> {
        let waiting = self.store.unplaced_groups(PLACEMENT_BATCH).await?;
        if waiting.is_empty() {
            return Ok(0);
        }
        let nodes = self.store.list_nodes().await?;
        let used: HashMap<String, berth_store::NodeUsage> = self
            .store
            .placed_usage()
            .await?
            .into_iter()
            .map(|u| (u.node.clone(), u))
            .collect();
        let mut free: HashMap<String, Free> = nodes
            .iter()
            .map(|n| {
                let u = used.get(&n.id);
                let cap = n.offer.capacity;
                (
                    n.id.clone(),
                    Free {
                        cpu_milli: i128::from(cap.cpu_milli)
                            - i128::from(u.map_or(0, |u| u.cpu_milli)),
                        memory_mib: i128::from(cap.memory_mib)
                            - i128::from(u.map_or(0, |u| u.memory_mib)),
                        storage: (n.offer.storage_bytes > 0)
                            .then(|| i128::from(n.offer.storage_free_bytes)),
                        capacity: cap,
                    },
                )
            })
            .collect();
        let mut placed = 0;
        // The nodes holding each image cache the waiting groups name.
        let mut holders: HashMap<String, Vec<String>> = HashMap::new();
        let mut reclaims = super::reclaim::NodeHolders::default();
        for rec in waiting {
            let cached = match &rec.spec.image_snapshot_id {
                Some(id) => {
                    if !holders.contains_key(id) {
                        let nodes = self.store.get_cache(None, id).await?.map(|c| c.nodes);
                        holders.insert(id.clone(), nodes.unwrap_or_default());
                    }
                    holders[id].as_slice()
                }
                None => &[],
            };
            let Some(node) = choose(&rec, &nodes, &free, cached) else {
                let why = if self.reclaim_for(&rec, &nodes, &mut reclaims).await? {
                    "spot groups are being reclaimed to make room for it".to_string()
                } else {
                    why_no_node(&rec, &nodes)
                };
                self.no_node_for(&rec, &why).await;
                continue;
            };
            let (node_id, node_name) = (node.id.clone(), node.name.clone());
            let now = Utc::now();
            let mut took = false;
            let res = self
                .store
                .modify_group(&rec.id, &mut |r| {
                    took = r.node.is_none()
                        && !r.status.is_final()
                        && r.status != GroupStatus::Terminating;
                    if took {
                        r.node = Some(node_id.clone());
                        r.waiting = false;
                        r.push_event(Event::new(
                            EventType::Normal,
                            REASON_SCHEDULED,
                            format!("Successfully assigned {} to node {node_name}", r.id),
                            None,
                            now,
                        ));
                    }
                })
                .await;
            match res {
                Ok(_) if took => {
                    if let Some(f) = free.get_mut(&node_id) {
                        f.take(Need::of(&rec.spec));
                    }
                    placed += 1;
                    tracing::info!(group = %rec.id, node = %node_name, "container group placed");
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if placed > 0 {
            self.cluster.changed.notify_waiters();
        }
        Ok(placed)
    }

    /// A group no node has room for: told once, and `ScheduleFailed` past the schedule
    /// timeout from its creation.
    async fn no_node_for(&self, rec: &GroupRecord, why: &str) {
        let timeout = self.schedule_policy().timeout;
        let now = Utc::now();
        let expired = now - rec.creation_time
            > chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let told = rec
            .events
            .iter()
            .any(|e| e.reason == crate::schedule::REASON_WAITING);
        if told && !expired {
            return;
        }
        let res = self
            .store
            .modify_group(&rec.id, &mut |r| {
                if r.node.is_some() || r.status.is_final() || r.status == GroupStatus::Terminating {
                    return;
                }
                if expired {
                    r.status = GroupStatus::ScheduleFailed;
                    r.waiting = false;
                    r.failed_time = Some(now);
                    r.push_event(Event::new(
                        EventType::Warning,
                        crate::schedule::REASON_NO_STOCK,
                        format!("Create ECI failed because the specified instance is out of stock: {why}"),
                        None,
                        now,
                    ));
                } else if !r.events.iter().any(|e| e.reason == crate::schedule::REASON_WAITING) {
                    r.push_event(Event::new(
                        EventType::Warning,
                        crate::schedule::REASON_WAITING,
                        format!(
                            "Not placed yet: {why}; waiting at most {} s",
                            timeout.as_secs()
                        ),
                        None,
                        now,
                    ));
                }
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(group = %rec.id, error = %e, "cannot record that no node has room");
        }
    }

    /// Marks nodes silent for [`NODE_LOST_SECS`] `NotReady` and handles their groups per
    /// restart policy: `Always` is placed again, `Never` and `OnFailure` end `Failed`.
    pub async fn handle_lost_nodes(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        let lost_after = chrono::Duration::seconds(NODE_LOST_SECS as i64);
        for n in self.store.list_nodes().await? {
            if n.state == NodeState::Ready && now - n.last_heartbeat > lost_after {
                let mut marked = false;
                self.store
                    .modify_node(&n.id, &mut |x| {
                        marked = x.state == NodeState::Ready && now - x.last_heartbeat > lost_after;
                        if marked {
                            x.state = NodeState::NotReady;
                        }
                    })
                    .await?;
                if !marked {
                    continue;
                }
                tracing::warn!(node = %n.id, name = %n.name, silent_s = (now - n.last_heartbeat).num_seconds(), "a node fell silent: NotReady");
            } else if n.state == NodeState::Ready {
                continue;
            }
            // NotReady (now or before, if a former leader stopped halfway).
            self.fail_over(&n).await?;
        }
        Ok(())
    }

    /// Moves the unfinished groups off draining nodes that are heard from: each group's
    /// containers are stopped and released on the node (its grace period given), then it
    /// is placed again, as a new run, on another node. One task per group; a group whose
    /// removal fails is tried again at a later pass.
    pub async fn drain_nodes(&self) -> Result<(), StoreError> {
        for n in self.store.list_nodes().await? {
            if !n.draining || n.state != NodeState::Ready {
                continue;
            }
            let mut after = 0;
            loop {
                let page = self
                    .store
                    .node_groups(&n.id, after, MAX_WATCH_GROUPS)
                    .await?;
                let full = page.groups.len() >= MAX_WATCH_GROUPS;
                for (revision, rec) in page.groups {
                    after = after.max(revision);
                    if rec.status.is_final() || rec.status == GroupStatus::Terminating {
                        continue;
                    }
                    self.spawn_move(&n, rec);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    fn spawn_move(&self, n: &NodeInfo, rec: GroupRecord) {
        let fresh = self
            .cluster
            .moving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id.clone());
        let Some(this) = self.me.upgrade() else {
            return;
        };
        if !fresh {
            return;
        }
        let (node_id, name) = (n.id.clone(), n.name.clone());
        tokio::spawn(async move {
            let id = rec.id.clone();
            if let Err(e) = this.move_off(&node_id, &name, rec).await {
                tracing::warn!(group = %id, node = %name, error = %e, "cannot move a group off a draining node yet");
            }
            this.cluster
                .moving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    async fn move_off(&self, node_id: &str, name: &str, rec: GroupRecord) -> Result<(), String> {
        let grace = Duration::from_secs(rec.spec.termination_grace_period_secs);
        tracing::info!(group = %rec.id, node = %name, "moving a group off a draining node");
        let node = self.node().map_err(|e| e.to_string())?;
        node.remove(&rec.id, grace)
            .await
            .map_err(|e| e.to_string())?;
        let now = Utc::now();
        let message = format!("The node {name} is drained; the group is placed again");
        let res = self
            .store
            .modify_group(&rec.id, &mut |r| {
                if r.node.as_deref() != Some(node_id)
                    || r.status.is_final()
                    || r.status == GroupStatus::Terminating
                {
                    return;
                }
                r.node = None;
                r.restart_generation += 1;
                r.status = GroupStatus::Scheduling;
                r.containers.clear();
                r.init_containers.clear();
                r.intranet_ip = None;
                r.push_event(Event::new(
                    EventType::Normal,
                    REASON_DRAINED,
                    message.clone(),
                    None,
                    now,
                ));
            })
            .await;
        match res {
            Ok(_) | Err(StoreError::NotFound(_)) => {
                self.cluster.wake_placement();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Handles the unfinished groups of a lost node.
    async fn fail_over(&self, n: &NodeInfo) -> Result<(), StoreError> {
        let mut after = 0;
        let mut moved = false;
        loop {
            let page = self
                .store
                .node_groups(&n.id, after, MAX_WATCH_GROUPS)
                .await?;
            let full = page.groups.len() >= MAX_WATCH_GROUPS;
            for (revision, rec) in page.groups {
                after = after.max(revision);
                if rec.status.is_final() || rec.status == GroupStatus::Terminating {
                    continue;
                }
                let now = Utc::now();
                let message = format!("The node {} was lost", n.name);
                let node_id = n.id.clone();
                let res = self
                    .store
                    .modify_group(&rec.id, &mut |r| {
                        if r.node.as_deref() != Some(node_id.as_str())
                            || r.status.is_final()
                            || r.status == GroupStatus::Terminating
                        {
                            return;
                        }
                        if r.spec.restart_policy == RestartPolicy::Always {
                            r.node = None;
                            r.restart_generation += 1;
                            r.status = GroupStatus::Scheduling;
                            r.containers.clear();
                            r.init_containers.clear();
                            r.intranet_ip = None;
                            r.push_event(Event::new(
                                EventType::Warning,
                                REASON_NODE_LOST,
                                format!("{message}; the group is placed again"),
                                None,
                                now,
                            ));
                        } else {
                            r.status = GroupStatus::Failed;
                            r.failed_time = Some(now);
                            r.push_event(Event::new(
                                EventType::Warning,
                                REASON_NODE_LOST,
                                format!(
                                    "{message}; the group failed (restart policy {:?})",
                                    r.spec.restart_policy
                                ),
                                None,
                                now,
                            ));
                        }
                    })
                    .await;
                match res {
                    Ok(r) => {
                        moved |= r.node.is_none();
                        if r.status.is_final() {
                            self.release(&r.id);
                        }
                    }
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if !full {
                break;
            }
        }
        if moved {
            self.cluster.wake_placement();
        }
        Ok(())
    }

    /// Takes and keeps the leader's lease as `holder`, running the once-only loops while it
    /// holds it; releases it when `stop` resolves.
    pub async fn run_cluster_leader(
        self: Arc<Self>,
        holder: String,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        let mut stop = std::pin::pin!(stop);
        let mut epoch: Option<u64> = None;
        let mut renewed = tokio::time::Instant::now() - LEASE_RENEW;
        let mut swept = tokio::time::Instant::now();
        let mut sweeps: u64 = 0;
        loop {
            if renewed.elapsed() >= LEASE_RENEW {
                renewed = tokio::time::Instant::now();
                let taken = self
                    .store
                    .take_lease(LEADER_LEASE, &holder, LEASE_TTL)
                    .await;
                let now = match taken {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the leader's lease");
                        None
                    }
                };
                if now != epoch {
                    match now {
                        Some(e) => {
                            tracing::info!(epoch = e, holder = %holder, "leading the cluster");
                            // What the former leader left: swept at once.
                            swept = tokio::time::Instant::now() - SWEEP;
                            sweeps = 0;
                        }
                        None => tracing::info!(holder = %holder, "not leading the cluster"),
                    }
                    epoch = now;
                }
            }
            if epoch.is_some() {
                self.place_now().await;
                if let Err(e) = self.handle_lost_nodes().await {
                    tracing::warn!(error = %e, "cannot handle lost nodes");
                }
                if let Err(e) = self.drain_nodes().await {
                    tracing::warn!(error = %e, "cannot drain nodes");
                }
                if swept.elapsed() >= SWEEP {
                    swept = tokio::time::Instant::now();
                    if let Err(e) = self.expire_image_caches().await {
                        tracing::warn!(error = %e, "cannot expire image caches");
                    }
                    if let Err(e) = self.finish_deletions().await {
                        tracing::warn!(error = %e, "cannot take up deletions left behind");
                    }
                    if let Err(e) = self.resume_image_caches().await {
                        tracing::warn!(error = %e, "cannot take up image cache builds left behind");
                    }
                    if sweeps.is_multiple_of(DEADLINE_SWEEPS) {
                        if let Err(e) = self.watch_all_deadlines().await {
                            tracing::warn!(error = %e, "cannot watch the groups' deadlines");
                        }
                    }
                    sweeps += 1;
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = self.cluster.placement.notified() => {}
                _ = tokio::time::sleep(if epoch.is_some() { PLACEMENT_POLL } else { LEASE_RENEW }) => {}
            }
        }
        if epoch.is_some() {
            if let Err(e) = self.store.release_lease(LEADER_LEASE, &holder).await {
                tracing::warn!(error = %e, "cannot release the leader's lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{GroupId, GroupSpec, NodeOffer};

    fn node(id: &str, cpu: u64, mem: u64) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            name: id.into(),
            address: "127.0.0.1:1".into(),
            state: NodeState::Ready,
            cordoned: false,
            draining: false,
            offer: NodeOffer {
                capacity: Room {
                    cpu_milli: cpu,
                    memory_mib: mem,
                    containers: 100,
                },
                storage_bytes: 0,
                runtime_classes: vec!["runc".into()],
                ..Default::default()
            },
            joined: Utc::now(),
            last_heartbeat: Utc::now(),
        }
    }

    fn group(cpu: f64, memory: f64) -> GroupRecord {
        GroupRecord::new(
            GroupId::from_random([4; 20]),
            "a",
            GroupSpec {
                cpu,
                memory,
                ..Default::default()
            },
            Utc::now(),
        )
    }

    fn free_of(nodes: &[NodeInfo]) -> HashMap<String, Free> {
        nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    Free {
                        cpu_milli: n.offer.capacity.cpu_milli.into(),
                        memory_mib: n.offer.capacity.memory_mib.into(),
                        storage: (n.offer.storage_bytes > 0)
                            .then(|| i128::from(n.offer.storage_free_bytes)),
                        capacity: n.offer.capacity,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn groups_spread_and_go_only_where_they_fit() {
        let nodes = vec![node("a", 2000, 4096), node("b", 4000, 8192)];
        let mut free = free_of(&nodes);
        let g = group(1.0, 2.0);
        let need = Need {
            room: Room::of(1.0, 2.0),
            storage: 0,
        };
        let mut order = Vec::new();
        for _ in 0..5 {
            let n = choose(&g, &nodes, &free, &[]).expect("room").id.clone();
            free.get_mut(&n).unwrap().take(need);
            order.push(n);
        }
        assert_eq!(order, ["b", "a", "b", "b", "a"], "the emptier node first");
        assert!(
            choose(&g, &nodes, &free, &[]).is_some(),
            "b has 1 vCPU left"
        );
        free.get_mut("b").unwrap().take(need);
        assert!(choose(&g, &nodes, &free, &[]).is_none(), "full");
    }

    #[test]
    fn cordoned_silent_and_classless_nodes_take_nothing() {
        let mut nodes = vec![
            node("a", 2000, 4096),
            node("b", 2000, 4096),
            node("c", 2000, 4096),
        ];
        nodes[0].cordoned = true;
        nodes[1].state = NodeState::NotReady;
        nodes[2].offer.runtime_classes = vec!["gvisor".into()];
        let free = free_of(&nodes);
        assert!(choose(&group(1.0, 2.0), &nodes, &free, &[]).is_none());
        nodes[2].offer.runtime_classes.push("runc".into());
        assert_eq!(
            choose(&group(1.0, 2.0), &nodes, &free, &[]).unwrap().id,
            "c"
        );
        assert!(
            choose(&group(4.0, 2.0), &nodes, &free, &[]).is_none(),
            "too big"
        );
    }

    #[test]
    fn groups_with_host_paths_go_only_to_nodes_that_allow_them() {
        use berth_core::{HostPathType, Volume, VolumePolicy, VolumeSource};
        let mut nodes = vec![node("a", 4000, 8192), node("b", 2000, 4096)];
        let free = free_of(&nodes);
        let mut g = group(1.0, 2.0);
        g.spec.volumes = vec![Volume {
            name: "data".into(),
            source: VolumeSource::HostPath {
                path: "/srv/data/x".into(),
                kind: HostPathType::Any,
            },
        }];
        assert!(choose(&g, &nodes, &free, &[]).is_none());
        let why = why_no_node(&g, &nodes);
        assert!(
            why.contains("allows its volumes") && why.contains("Volume.1.HostPathVolume.Path"),
            "{why}"
        );
        nodes[1].offer.volumes = VolumePolicy::default().with_host_path_prefixes(["/srv/data"]);
        assert_eq!(
            choose(&g, &nodes, &free, &[]).unwrap().id,
            "b",
            "a has more room"
        );
        nodes[1].cordoned = true;
        assert!(why_no_node(&g, &nodes).contains("allows its volumes"));
        nodes[0].offer.runtime_classes.clear();
        assert!(why_no_node(&g, &nodes).contains("runs the runc runtime class"));
    }

    #[test]
    fn a_node_holding_the_groups_image_cache_comes_first_if_it_has_room() {
        let nodes = vec![node("a", 4000, 8192), node("b", 2000, 4096)];
        let mut free = free_of(&nodes);
        let g = group(1.0, 2.0);
        assert_eq!(choose(&g, &nodes, &free, &[]).unwrap().id, "a");
        assert_eq!(choose(&g, &nodes, &free, &["b".into()]).unwrap().id, "b");
        free.get_mut("b").unwrap().take(Need {
            room: Room::of(2.0, 4.0),
            storage: 0,
        });
        assert_eq!(
            choose(&g, &nodes, &free, &["b".into()]).unwrap().id,
            "a",
            "b is full"
        );
    }

    #[test]
    fn a_node_needs_the_groups_storage_free_and_one_holding_its_images_comes_first() {
        let mut nodes = vec![node("a", 4000, 8192), node("b", 2000, 4096)];
        let mut g = group(1.0, 2.0);
        g.spec.containers = vec![berth_core::ContainerSpec {
            name: "c".into(),
            image: "10.0.0.1:5000/app:v1".into(),
            ..Default::default()
        }];
        // a has its storage all but used up: it takes nothing.
        nodes[0].offer.storage_bytes = 100 << 30;
        nodes[0].offer.storage_free_bytes = 1 << 29;
        nodes[1].cordoned = true;
        assert!(choose(&g, &nodes, &free_of(&nodes), &[]).is_none());
        nodes[1].cordoned = false;
        // Less than the default 30 GiB free: b (unbounded) comes first although a has more
        // room left.
        nodes[0].offer.storage_free_bytes = 20 << 30;
        assert_eq!(choose(&g, &nodes, &free_of(&nodes), &[]).unwrap().id, "b");
        nodes[0].offer.storage_free_bytes = 40 << 30;
        assert_eq!(choose(&g, &nodes, &free_of(&nodes), &[]).unwrap().id, "a");
        // b holds the images: worth a fifth of the room (a is left with 75 %, b with 50 %).
        nodes[1].offer.images = vec!["10.0.0.1:5000/app:v1".into()];
        assert_eq!(choose(&g, &nodes, &free_of(&nodes), &[]).unwrap().id, "a");
        nodes[0].offer.capacity.cpu_milli = 2500;
        assert_eq!(choose(&g, &nodes, &free_of(&nodes), &[]).unwrap().id, "b");
        assert_eq!(
            choose(&g, &nodes, &free_of(&nodes), &["a".into()])
                .unwrap()
                .id,
            "a",
            "the image cache first"
        );
    }

    #[test]
    fn image_references_take_the_form_node_stores_list() {
        for (given, key) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("library/busybox:1", "docker.io/library/busybox:1"),
            ("10.0.0.1:5000/app", "10.0.0.1:5000/app:latest"),
            ("reg.example/a/b:2", "reg.example/a/b:2"),
            ("localhost/x", "localhost/x:latest"),
            ("busybox@sha256:ab", "docker.io/library/busybox@sha256:ab"),
        ] {
            assert_eq!(image_key(given), key, "{given}");
        }
    }
}
