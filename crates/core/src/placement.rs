//! Placement of container groups on a node of bounded capacity (ADR 0012): whether a waiting
//! group fits, which preemptible groups to reclaim to make room for a pay-as-you-go one, and
//! the order in which waiting groups are served. Pure (groups, sizes and a clock in, a
//! decision out): the control plane's scheduler owns the state and carries the decisions out.
//!
//! Policy:
//! - A group holds room from its creation until it is deleted or reaches a final status
//!   (Succeeded, Failed, Expired, ScheduleFailed).
//! - Waiters are served strictly in order of arrival: a waiter that does not fit stops the
//!   pass, so later (smaller) groups never overtake it and a big group cannot starve. A
//!   waiter waits at most the schedule timeout, so the head of the queue blocks for a bounded
//!   time.
//! - A pay-as-you-go waiter that does not fit reclaims preemptible groups whose protection
//!   has ended, the cheapest to lose first (lowest hourly price, then the youngest), only as
//!   many as needed and only when that makes it fit. Groups already being reclaimed count as
//!   room to come. A preemptible waiter never reclaims.
//! - A group larger than the whole node never fits: it fails at once.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// CPU and memory, in thousandths of a vCPU and MiB, and container slots: the processes
/// berth watches (one open file each in `berth serve`), which the node's open-files limit
/// bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Room {
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub containers: u64,
}

impl Room {
    /// The room of a group of `cpu` vCPU and `memory` GiB, with no container slot.
    pub fn of(cpu: f64, memory: f64) -> Self {
        let milli = |x: f64, per: f64| (x * per).round().clamp(0.0, u64::MAX as f64) as u64;
        Self {
            cpu_milli: milli(cpu, 1000.0),
            memory_mib: milli(memory, 1024.0),
            containers: 0,
        }
    }

    /// The same room with `n` container slots.
    pub fn with_containers(self, n: u64) -> Self {
        Self {
            containers: n,
            ..self
        }
    }

    pub fn fits_in(self, other: Room) -> bool {
        self.cpu_milli <= other.cpu_milli
            && self.memory_mib <= other.memory_mib
            && self.containers <= other.containers
    }

    pub fn plus(self, other: Room) -> Room {
        Room {
            cpu_milli: self.cpu_milli.saturating_add(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_add(other.memory_mib),
            containers: self.containers.saturating_add(other.containers),
        }
    }

    pub fn minus(self, other: Room) -> Room {
        Room {
            cpu_milli: self.cpu_milli.saturating_sub(other.cpu_milli),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            containers: self.containers.saturating_sub(other.containers),
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPU, {} GiB",
            Decimal::new(self.cpu_milli.min(i64::MAX as u64) as i64, 3).normalize(),
            (Decimal::from(self.memory_mib) / Decimal::from(1024))
                .round_dp(3)
                .normalize()
        )?;
        match self.containers {
            // No slot asked, or a node whose open files bound no count of containers.
            0 | u64::MAX => Ok(()),
            1 => write!(f, ", 1 container slot"),
            n => write!(f, ", {n} container slots"),
        }
    }
}

/// What a preemptible group is, for the choice of the groups to reclaim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpotHold {
    /// The hourly price in force.
    pub hour_price: Decimal,
    pub created: DateTime<Utc>,
    /// It may be reclaimed from then on.
    pub protected_until: DateTime<Utc>,
}

/// A group that holds room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder<K> {
    pub key: K,
    pub room: Room,
    pub spot: Option<SpotHold>,
    /// Told it is reclaimed; it holds its room until it has ended.
    pub reclaiming: bool,
}

/// A group waiting for room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter<K> {
    pub key: K,
    pub room: Room,
    pub spot: Option<SpotHold>,
}

/// What is short for a group: what it needs and what is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short {
    pub need: Room,
    pub free: Room,
    pub capacity: Room,
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut what = Vec::new();
        if self.need.cpu_milli > self.free.cpu_milli {
            what.push("cpu");
        }
        if self.need.memory_mib > self.free.memory_mib {
            what.push("memory");
        }
        if self.need.containers > self.free.containers {
            what.push("container slots (the open-files limit of berth serve)");
        }
        // On a node whose open files bound nothing, slots are not worth a word.
        let bounded = self.capacity.containers != u64::MAX;
        let shown = |r: Room| {
            let cpu_memory = r.with_containers(0).to_string();
            match (bounded, r.containers) {
                (false, _) => cpu_memory,
                (true, 1) => format!("{cpu_memory}, 1 container slot"),
                (true, n) => format!("{cpu_memory}, {n} container slots"),
            }
        };
        write!(
            f,
            "insufficient {} on the node: the group needs {}, {} free of {}",
            what.join(" and "),
            shown(self.need),
            shown(self.free),
            shown(self.capacity)
        )
    }
}

/// The decision for one waiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<K> {
    /// It fits: place it now.
    Place,
    /// Reclaim these groups (in this order); the waiter goes on waiting for their room.
    Reclaim(Vec<K>),
    /// It does not fit now.
    Wait(Short),
    /// It is larger than the whole node.
    Never(Short),
}

fn used<K>(holders: &[Holder<K>]) -> Room {
    holders.iter().fold(Room::default(), |a, h| a.plus(h.room))
}

/// The decision for `w` on a node of `capacity` held by `holders` at `now`.
pub fn decide<K: Clone>(
    capacity: Room,
    holders: &[Holder<K>],
    w: &Waiter<K>,
    now: DateTime<Utc>,
) -> Decision<K> {
    let free = capacity.minus(used(holders));
    let short = Short {
        need: w.room,
        free,
        capacity,
    };
    if !w.room.fits_in(capacity) {
        return Decision::Never(short);
    }
    if w.room.fits_in(free) {
        return Decision::Place;
    }
    if w.spot.is_some() {
        return Decision::Wait(short);
    }
    let coming = holders
        .iter()
        .filter(|h| h.reclaiming)
        .fold(free, |a, h| a.plus(h.room));
    if w.room.fits_in(coming) {
        return Decision::Wait(short);
    }
    let mut candidates: Vec<(&Holder<K>, &SpotHold)> = holders
        .iter()
        .filter(|h| !h.reclaiming)
        .filter_map(|h| h.spot.as_ref().map(|s| (h, s)))
        .filter(|(_, s)| s.protected_until <= now)
        .collect();
    // The cheapest to lose first: the lowest price paid, then the youngest.
    candidates.sort_by(|(_, a), (_, b)| {
        a.hour_price
            .cmp(&b.hour_price)
            .then(b.created.cmp(&a.created))
    });
    let mut taken: Vec<&Holder<K>> = Vec::new();
    let mut room = coming;
    for (h, _) in candidates {
        if w.room.fits_in(room) {
            break;
        }
        let helps = (room.cpu_milli < w.room.cpu_milli && h.room.cpu_milli > 0)
            || (room.memory_mib < w.room.memory_mib && h.room.memory_mib > 0);
        if helps {
            room = room.plus(h.room);
            taken.push(h);
        }
    }
    if !w.room.fits_in(room) {
        return Decision::Wait(short);
    }
    // Spare the dearest of those taken that are not needed after all.
    let mut i = taken.len();
    while i > 0 {
        i -= 1;
        let without = room.minus(taken[i].room);
        if w.room.fits_in(without) {
            room = without;
            taken.remove(i);
        }
    }
    Decision::Reclaim(taken.into_iter().map(|h| h.key.clone()).collect())
}

/// One pass over the waiting queue, in order: the decision for each waiter looked at. Placed
/// waiters join `holders`, reclaimed groups are marked in `holders`; the pass stops at the
/// first waiter that has to wait (strict FIFO), after deciding for it.
pub fn plan<K: Clone + PartialEq>(
    capacity: Room,
    holders: &mut Vec<Holder<K>>,
    queue: &[Waiter<K>],
    now: DateTime<Utc>,
) -> Vec<(K, Decision<K>)> {
    let mut out = Vec::new();
    for w in queue {
        let d = decide(capacity, holders, w, now);
        match &d {
            Decision::Place => holders.push(Holder {
                key: w.key.clone(),
                room: w.room,
                spot: w.spot.clone(),
                reclaiming: false,
            }),
            Decision::Reclaim(keys) => {
                for h in holders.iter_mut().filter(|h| keys.contains(&h.key)) {
                    h.reclaiming = true;
                }
            }
            Decision::Wait(_) | Decision::Never(_) => {}
        }
        let stop = matches!(d, Decision::Wait(_) | Decision::Reclaim(_));
        out.push((w.key.clone(), d));
        if stop {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn room(cpu: f64, mem: f64) -> Room {
        Room::of(cpu, mem)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn spot(price: &str, created_min: i64, protect_h: i64) -> SpotHold {
        let created = t0() + Duration::minutes(created_min);
        SpotHold {
            hour_price: price.parse().unwrap(),
            created,
            protected_until: created + Duration::hours(protect_h),
        }
    }

    fn holder(key: &'static str, cpu: f64, s: Option<SpotHold>) -> Holder<&'static str> {
        Holder {
            key,
            room: room(cpu, cpu * 2.0),
            spot: s,
            reclaiming: false,
        }
    }

    fn waiter(key: &'static str, cpu: f64, s: Option<SpotHold>) -> Waiter<&'static str> {
        Waiter {
            key,
            room: room(cpu, cpu * 2.0),
            spot: s,
        }
    }

    const CAP: Room = Room {
        cpu_milli: 4000,
        memory_mib: 8192,
        containers: u64::MAX,
    };

    #[test]
    fn a_group_that_fits_is_placed_and_one_larger_than_the_node_never_is() {
        let now = t0() + Duration::hours(2);
        let hs = [holder("a", 2.0, None)];
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 2.0, None), now),
            Decision::Place
        );
        match decide(CAP, &hs, &waiter("w", 8.0, None), now) {
            Decision::Never(s) => {
                let m = s.to_string();
                assert!(m.contains("insufficient cpu and memory"), "{m}");
                assert!(m.contains("needs 8 vCPU, 16 GiB"), "{m}");
                assert!(m.contains("of 4 vCPU, 8 GiB"), "{m}");
            }
            d => panic!("{d:?}"),
        }
        match decide(CAP, &hs, &waiter("w", 3.0, None), now) {
            Decision::Wait(s) => assert!(s.to_string().contains("2 vCPU, 4 GiB free"), "{s}"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn container_slots_bound_the_node_as_cpu_and_memory_do() {
        let now = t0() + Duration::hours(2);
        let cap = CAP.with_containers(3);
        let mut a = holder("a", 1.0, None);
        a.room = a.room.with_containers(2);
        let hs = [a];
        let mut w = waiter("w", 1.0, None);
        w.room = w.room.with_containers(1);
        assert_eq!(decide(cap, &hs, &w, now), Decision::Place);
        w.room = w.room.with_containers(2);
        match decide(cap, &hs, &w, now) {
            Decision::Wait(s) => {
                let m = s.to_string();
                assert!(m.starts_with("insufficient container slots"), "{m}");
                assert!(m.contains("needs 1 vCPU, 2 GiB, 2 container slots"), "{m}");
                assert!(m.contains("1 container slot free of"), "{m}");
            }
            d => panic!("{d:?}"),
        }
        w.room = w.room.with_containers(4);
        assert!(matches!(decide(cap, &hs, &w, now), Decision::Never(_)));
        // A node whose open files bound nothing does not name them.
        let unbounded = CAP.with_containers(u64::MAX);
        assert_eq!(unbounded.to_string(), "4 vCPU, 8 GiB");
    }

    #[test]
    fn the_cheapest_unprotected_spot_groups_go_first_and_only_as_many_as_needed() {
        let now = t0() + Duration::hours(2);
        let hs = [
            holder("payg", 1.0, None),
            holder("dear", 1.0, Some(spot("0.5", 0, 0))),
            holder("cheap-old", 1.0, Some(spot("0.1", 0, 0))),
            holder("cheap-young", 1.0, Some(spot("0.1", 10, 0))),
        ];
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 1.0, None), now),
            Decision::Reclaim(vec!["cheap-young"])
        );
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 2.0, None), now),
            Decision::Reclaim(vec!["cheap-young", "cheap-old"])
        );
        // Spot waiters never reclaim.
        assert!(matches!(
            decide(CAP, &hs, &waiter("w", 1.0, Some(spot("1", 60, 1))), now),
            Decision::Wait(_)
        ));
    }

    #[test]
    fn protected_groups_survive_and_nothing_is_reclaimed_in_vain() {
        let hs = [
            holder("payg", 2.0, None),
            holder("unprotected", 1.0, Some(spot("0.1", 0, 0))),
            holder("protected", 1.0, Some(spot("0.1", 0, 1))),
        ];
        let early = t0() + Duration::minutes(30);
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 1.0, None), early),
            Decision::Reclaim(vec!["unprotected"])
        );
        // Two would need the protected one too: nothing is reclaimed.
        assert!(matches!(
            decide(CAP, &hs, &waiter("w", 2.0, None), early),
            Decision::Wait(_)
        ));
        // Once its protection has ended, both go.
        let late = t0() + Duration::minutes(61);
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 2.0, None), late),
            Decision::Reclaim(vec!["unprotected", "protected"])
        );
    }

    #[test]
    fn groups_being_reclaimed_count_as_room_to_come() {
        let now = t0() + Duration::hours(2);
        let mut hs = vec![
            holder("payg", 2.0, None),
            holder("s1", 1.0, Some(spot("0.1", 0, 0))),
            holder("s2", 1.0, Some(spot("0.2", 0, 0))),
        ];
        hs[1].reclaiming = true;
        assert!(matches!(
            decide(CAP, &hs, &waiter("w", 1.0, None), now),
            Decision::Wait(_)
        ));
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 2.0, None), now),
            Decision::Reclaim(vec!["s2"])
        );
    }

    #[test]
    fn only_groups_that_help_with_what_is_short_are_taken() {
        let now = t0() + Duration::hours(2);
        let hs = [
            Holder {
                key: "mem-only",
                room: room(0.0, 6.0),
                spot: Some(spot("0.01", 0, 0)),
                reclaiming: false,
            },
            holder("cpu", 2.0, Some(spot("0.2", 0, 0))),
            Holder {
                key: "payg",
                room: room(2.0, 0.0),
                spot: None,
                reclaiming: false,
            },
        ];
        assert_eq!(
            decide(CAP, &hs, &waiter("w", 1.0, None), now),
            Decision::Reclaim(vec!["cpu"])
        );
    }

    #[test]
    fn the_queue_is_served_in_order_and_a_waiter_blocks_later_ones() {
        let now = t0() + Duration::hours(2);
        let mut hs = vec![holder("a", 3.0, None)];
        let queue = [
            waiter("big", 2.0, None),
            waiter("small", 1.0, None),
            waiter("huge", 9.0, None),
        ];
        let d = plan(CAP, &mut hs, &queue, now);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(matches!(d[0], ("big", Decision::Wait(_))));
        assert_eq!(hs.len(), 1);
        // Room frees: both are placed in order, the one too large fails.
        hs.clear();
        let d = plan(CAP, &mut hs, &queue, now);
        let keys: Vec<_> = d
            .iter()
            .map(|(k, d)| (*k, matches!(d, Decision::Place)))
            .collect();
        assert_eq!(keys, [("big", true), ("small", true), ("huge", false)]);
        assert!(matches!(d[2].1, Decision::Never(_)));
        assert_eq!(hs.len(), 2);
    }

    #[test]
    fn a_reclaim_marks_its_groups_and_stops_the_pass() {
        let now = t0() + Duration::hours(2);
        let mut hs = vec![
            holder("payg", 3.0, None),
            holder("s", 1.0, Some(spot("0.1", 0, 0))),
        ];
        let queue = [waiter("w", 1.0, None), waiter("w2", 1.0, None)];
        let d = plan(CAP, &mut hs, &queue, now);
        assert_eq!(d, [("w", Decision::Reclaim(vec!["s"]))]);
        assert!(hs[1].reclaiming);
        // A second pass does not reclaim again.
        let d = plan(CAP, &mut hs, &queue, now);
        assert!(matches!(d[..], [("w", Decision::Wait(_))]));
    }
}
