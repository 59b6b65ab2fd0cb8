//! The node's capacity (ADR 0012): which groups hold room, which wait and in what order,
//! and the carrying out of the decisions of [`berth_core::placement`]: a placed waiter is
//! handed to the node, a waiter past the schedule timeout ends `ScheduleFailed`, spot groups
//! are reclaimed (`spot.rs`). One mutex guards the whole state: every decision and the change
//! it makes to the state are made under it (never check-then-act), and nothing is awaited
//! while it is held. The state is rebuilt from the store when berth starts.

use std::time::Duration;

use berth_core::placement::{self, Decision, Holder, Room, Short, SpotHold, Waiter};
use berth_core::{Event, EventType, GroupId, GroupRecord, GroupStatus};
use chrono::{DateTime, Utc};

use crate::service::Control;

/// How long a group waits for room before it ends `ScheduleFailed` (`--schedule-timeout`).
pub const DEFAULT_SCHEDULE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long before it is reclaimed a spot group is told (`--spot-notice`; ECI: 3 minutes).
pub const DEFAULT_SPOT_NOTICE: Duration = Duration::from_secs(180);
/// A `ScheduleFailed` group is deleted this long after it failed (ECI: 24 hours).
pub const SCHEDULE_FAILED_KEPT: Duration = Duration::from_secs(24 * 3600);
/// The event of a group that waits for room (Kubernetes' and ECI's reason).
pub const REASON_WAITING: &str = "FailedScheduling";
/// The event of a group that found no room in time (ECI's reason for no inventory).
pub const REASON_NO_STOCK: &str = "NoStock";

/// The room of the node and how long groups wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulePolicy {
    /// What groups may hold in all (allocatable CPU and memory).
    pub capacity: Room,
    pub timeout: Duration,
    pub notice: Duration,
    /// How long a `ScheduleFailed` group is kept before berth deletes it.
    pub failed_kept: Duration,
}

impl Default for SchedulePolicy {
    /// No bound on the room (a control plane without a node's capacity, as in tests).
    fn default() -> Self {
        Self {
            capacity: Room {
                cpu_milli: u64::MAX,
                memory_mib: u64::MAX,
                containers: u64::MAX,
            },
            timeout: DEFAULT_SCHEDULE_TIMEOUT,
            notice: DEFAULT_SPOT_NOTICE,
            failed_kept: SCHEDULE_FAILED_KEPT,
        }
    }
}

/// The accounting of the node's room, as `berth admin node` and the API show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityUse {
    pub capacity: Room,
    /// What the groups holding room hold.
    pub used: Room,
    pub holders: usize,
    pub waiting: usize,
}

/// What a new group gets before its record is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It holds its room now.
    Placed,
    /// It joins the queue once written.
    Wait(Short),
    /// It is larger than the whole node.
    Never(Short),
}

#[derive(Default)]
pub(crate) struct Scheduler {
    policy: SchedulePolicy,
    holders: Vec<Holder<GroupId>>,
    queue: Vec<Waiter<GroupId>>,
}

/// What a pass decided, carried out after the lock is released.
#[derive(Debug)]
pub(crate) enum Action {
    Place(GroupId),
    Reclaim {
        victims: Vec<GroupId>,
        for_group: GroupId,
    },
    Fail(GroupId, Short),
}

pub(crate) fn room(rec: &GroupRecord) -> Room {
    room_of(&rec.spec)
}

pub(crate) fn room_of(spec: &berth_core::GroupSpec) -> Room {
    Room::of(spec.cpu, spec.memory).with_containers(container_slots(spec))
}

/// The processes of `spec` berth watches at once: its containers, one init container at a
/// time, and the sandbox of a class that boots one per group.
pub(crate) fn container_slots(spec: &berth_core::GroupSpec) -> u64 {
    let init = u64::from(!spec.init_containers.is_empty());
    let sandbox = u64::from(spec.runtime_class() == berth_core::RuntimeClass::Gvisor);
    (spec.containers.len() as u64)
        .saturating_add(init)
        .saturating_add(sandbox)
}

pub(crate) fn spot_hold(rec: &GroupRecord) -> Option<SpotHold> {
    let t = rec.spec.spot.as_ref()?;
    Some(SpotHold {
        hour_price: t
            .hour_price
            .as_deref()
            .and_then(|p| berth_core::price::Decimal::from_str_exact(p).ok())
            .unwrap_or_default(),
        created: rec.creation_time,
        protected_until: t.protected_until(rec.creation_time),
    })
}

/// Whether `rec` holds room: it is not waiting, not final and not deleted.
pub(crate) fn holds_room(rec: &GroupRecord) -> bool {
    !rec.waiting && !rec.status.is_final()
}

impl Scheduler {
    fn used(&self) -> Room {
        self.holders
            .iter()
            .fold(Room::default(), |a, h| a.plus(h.room))
    }

    fn short(&self, need: Room) -> Short {
        Short {
            need,
            free: self.policy.capacity.minus(self.used()),
            capacity: self.policy.capacity,
        }
    }

    fn pass(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let decisions = placement::plan(self.policy.capacity, &mut self.holders, &self.queue, now);
        let mut out = Vec::new();
        for (id, d) in decisions {
            match d {
                Decision::Place => {
                    self.queue.retain(|w| w.key != id);
                    out.push(Action::Place(id));
                }
                Decision::Never(s) => {
                    self.queue.retain(|w| w.key != id);
                    out.push(Action::Fail(id, s));
                }
                Decision::Reclaim(victims) => out.push(Action::Reclaim {
                    victims,
                    for_group: id,
                }),
                Decision::Wait(_) => {}
            }
        }
        out
    }
}

impl Control {
    /// Sets the node's room and the waiting and notice times (the default: no bound).
    pub fn set_schedule_policy(&self, policy: SchedulePolicy) {
        self.sched().policy = policy;
    }

    pub fn schedule_policy(&self) -> SchedulePolicy {
        self.sched().policy
    }

    /// The room the node has, what groups hold and how many wait.
    pub fn capacity_use(&self) -> CapacityUse {
        let s = self.sched();
        CapacityUse {
            capacity: s.policy.capacity,
            used: s.used(),
            holders: s.holders.len(),
            waiting: s.queue.len(),
        }
    }

    pub(crate) fn sched(&self) -> std::sync::MutexGuard<'_, Scheduler> {
        self.scheduler.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides for a new group before its record is written: it holds its room at once when
    /// nobody waits and it fits.
    pub(crate) fn admit(&self, rec: &GroupRecord) -> Admission {
        let need = room(rec);
        let mut s = self.sched();
        let short = s.short(need);
        if !need.fits_in(s.policy.capacity) {
            return Admission::Never(short);
        }
        if s.queue.is_empty() && need.fits_in(short.free) {
            s.holders.push(Holder {
                key: rec.id.clone(),
                room: need,
                spot: spot_hold(rec),
                reclaiming: false,
            });
            return Admission::Placed;
        }
        Admission::Wait(short)
    }

    /// Puts a written waiting group in the queue and serves the queue.
    pub(crate) fn enqueue(&self, rec: &GroupRecord) {
        let actions = {
            let mut s = self.sched();
            s.queue.push(Waiter {
                key: rec.id.clone(),
                room: room(rec),
                spot: spot_hold(rec),
            });
            s.pass(Utc::now())
        };
        self.watch_schedule_timeout(rec);
        self.carry_out(actions);
    }

    /// The group holds no room any more and waits no more (deleted, ended, failed): the
    /// queue is served with what it frees.
    pub(crate) fn release(&self, id: &GroupId) {
        let actions = {
            let mut s = self.sched();
            let before = (s.holders.len(), s.queue.len());
            s.holders.retain(|h| h.key != *id);
            s.queue.retain(|w| w.key != *id);
            if before == (s.holders.len(), s.queue.len()) {
                return;
            }
            s.pass(Utc::now())
        };
        self.carry_out(actions);
    }

    /// Takes a waiting group out of the queue (deleted while it waited); a placed one keeps
    /// its room until its removal ends.
    pub(crate) fn unqueue(&self, id: &GroupId) {
        let actions = {
            let mut s = self.sched();
            let before = s.queue.len();
            s.queue.retain(|w| w.key != *id);
            if before == s.queue.len() {
                return;
            }
            s.pass(Utc::now())
        };
        self.carry_out(actions);
    }

    /// Changes the room a placed group holds to `to` if it fits (an update); returns the
    /// room it held, to be given back with [`Control::restore_room`] when the update is not
    /// made. A group that holds no room (waiting or ended) is left alone.
    pub(crate) fn resize(&self, id: &GroupId, to: Room) -> Result<Option<Room>, Short> {
        let mut s = self.sched();
        let capacity = s.policy.capacity;
        let used = s.used();
        let Some(h) = s.holders.iter_mut().find(|h| h.key == *id) else {
            return Ok(None);
        };
        let free = capacity.minus(used.minus(h.room));
        if !to.fits_in(free) {
            return Err(Short {
                need: to,
                free,
                capacity,
            });
        }
        let old = h.room;
        h.room = to;
        Ok(Some(old))
    }

    /// Gives back the room of an update that was not made.
    pub(crate) fn restore_room(&self, id: &GroupId, old: Room) {
        let actions = {
            let mut s = self.sched();
            if let Some(h) = s.holders.iter_mut().find(|h| h.key == *id) {
                h.room = old;
            }
            s.pass(Utc::now())
        };
        self.carry_out(actions);
    }

    /// Rebuilds the accounting from the recorded groups (at start): every group that holds
    /// room holds it again, the waiting ones wait again in the order they were created.
    pub(crate) fn rebuild(&self, groups: &[GroupRecord]) {
        let mut s = self.sched();
        s.holders = groups
            .iter()
            .filter(|r| holds_room(r))
            .map(|r| Holder {
                key: r.id.clone(),
                room: room(r),
                spot: spot_hold(r),
                reclaiming: false,
            })
            .collect();
        let mut waiting: Vec<&GroupRecord> = groups
            .iter()
            .filter(|r| r.waiting && r.status == GroupStatus::Scheduling)
            .collect();
        waiting.sort_by_key(|r| r.creation_time);
        s.queue = waiting
            .into_iter()
            .map(|r| Waiter {
                key: r.id.clone(),
                room: room(r),
                spot: spot_hold(r),
            })
            .collect();
    }

    /// Serves the queue once (at start, after the rebuild).
    pub(crate) fn serve_queue(&self) {
        let actions = self.sched().pass(Utc::now());
        self.carry_out(actions);
    }

    /// Marks `id` as being reclaimed, unless it is already or holds no room; returns
    /// whether it was marked.
    pub(crate) fn mark_reclaiming(&self, id: &GroupId) -> bool {
        let mut s = self.sched();
        match s.holders.iter_mut().find(|h| h.key == *id) {
            Some(h) if !h.reclaiming => {
                h.reclaiming = true;
                true
            }
            _ => false,
        }
    }

    fn carry_out(&self, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let Some(this) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            for a in actions {
                match a {
                    Action::Place(id) => this.place_waiter(&id).await,
                    Action::Fail(id, short) => this.schedule_failed(&id, &short).await,
                    Action::Reclaim { victims, for_group } => {
                        let why = format!("to make room for the pay-as-you-go group {for_group}");
                        for v in victims {
                            this.spawn_reclaim(v, why.clone(), Utc::now());
                        }
                    }
                }
            }
        });
    }

    async fn place_waiter(self: &std::sync::Arc<Self>, id: &GroupId) {
        let mut placed = false;
        let res = self
            .store
            .modify_group(id, &mut |r| {
                placed = r.waiting && r.status == GroupStatus::Scheduling;
                if !placed {
                    return;
                }
                r.waiting = false;
                r.push_event(scheduled_event(id, Utc::now()));
            })
            .await;
        match res {
            Ok(rec) if placed => {
                tracing::info!(group = %id, "container group placed after waiting for room");
                if let Ok(node) = self.node() {
                    node.apply(rec).await;
                }
            }
            Ok(_) | Err(berth_store::StoreError::NotFound(_)) => self.release(id),
            Err(e) => tracing::error!(group = %id, error = %e, "cannot place a waiting group"),
        }
    }

    /// Ends a waiting group `ScheduleFailed` with what was short, and deletes it later.
    async fn schedule_failed(self: &std::sync::Arc<Self>, id: &GroupId, short: &Short) {
        let mut failed = false;
        let res = self
            .store
            .modify_group(id, &mut |r| {
                failed = r.waiting && r.status == GroupStatus::Scheduling;
                if failed {
                    fail_record(r, short, Utc::now());
                }
            })
            .await;
        match res {
            Ok(rec) if failed => {
                tracing::info!(group = %id, reason = %short, "container group failed to schedule");
                self.watch_schedule_failed(&rec);
            }
            Ok(_) | Err(berth_store::StoreError::NotFound(_)) => {}
            Err(e) => tracing::error!(group = %id, error = %e, "cannot fail a waiting group"),
        }
    }

    /// Ends `rec` `ScheduleFailed` when it still waits at its creation plus the timeout.
    pub(crate) fn watch_schedule_timeout(&self, rec: &GroupRecord) {
        let Some(this) = self.me.upgrade() else {
            return;
        };
        let timeout = self.schedule_policy().timeout;
        let at = rec.creation_time
            + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let id = rec.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep((at - Utc::now()).to_std().unwrap_or(Duration::ZERO)).await;
            let (short, actions) = {
                let mut s = this.sched();
                let Some(pos) = s.queue.iter().position(|w| w.key == id) else {
                    return;
                };
                let w = s.queue.remove(pos);
                let short = s.short(w.room);
                (short, s.pass(Utc::now()))
            };
            this.schedule_failed(&id, &short).await;
            this.carry_out(actions);
        });
    }

    /// Deletes a `ScheduleFailed` group the policy's `failed_kept` after it failed.
    pub(crate) fn watch_schedule_failed(&self, rec: &GroupRecord) {
        if rec.status != GroupStatus::ScheduleFailed {
            return;
        }
        let Some(this) = self.me.upgrade() else {
            return;
        };
        let failed = rec.failed_time.unwrap_or(rec.creation_time);
        let kept = self.schedule_policy().failed_kept;
        let at = failed + chrono::Duration::from_std(kept).unwrap_or(chrono::Duration::MAX);
        let id = rec.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep((at - Utc::now()).to_std().unwrap_or(Duration::ZERO)).await;
            match this.store.get_group(None, &id).await {
                Ok(Some(r)) if r.status == GroupStatus::ScheduleFailed => {
                    match this.store.delete_group(&id).await {
                        Ok(()) | Err(berth_store::StoreError::NotFound(_)) => {
                            tracing::info!(group = %id, "ScheduleFailed container group deleted")
                        }
                        Err(e) => {
                            tracing::error!(group = %id, error = %e, "cannot delete a ScheduleFailed group")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(group = %id, error = %e, "cannot read a ScheduleFailed group")
                }
            }
        });
    }
}

/// The event of a group handed to the node.
pub(crate) fn scheduled_event(id: &GroupId, at: DateTime<Utc>) -> Event {
    Event::new(
        EventType::Normal,
        "Scheduled",
        format!("Successfully assigned {id} to node local"),
        None,
        at,
    )
}

/// The event of a group that waits for room.
pub(crate) fn waiting_event(short: &Short, timeout: Duration, at: DateTime<Utc>) -> Event {
    Event::new(
        EventType::Warning,
        REASON_WAITING,
        format!("Waiting for room, at most {} s: {short}", timeout.as_secs()),
        None,
        at,
    )
}

/// `r` ends `ScheduleFailed`: not billed, holding nothing.
pub(crate) fn fail_record(r: &mut GroupRecord, short: &Short, at: DateTime<Utc>) {
    r.status = GroupStatus::ScheduleFailed;
    r.waiting = false;
    r.failed_time = Some(at);
    r.push_event(Event::new(
        EventType::Warning,
        REASON_NO_STOCK,
        format!("Create ECI failed because the specified instance is out of stock: {short}"),
        None,
        at,
    ));
}
