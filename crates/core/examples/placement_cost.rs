//! The cost of the placement decision a create makes under the scheduler's lock (ADR 0012):
//! `placement::decide` for one new group against N groups holding room, half of them spot
//! groups, on a node with room (the common path) and on a full one (the reclaim path, which
//! sorts the candidates).
//!
//!     cargo run --release -p berth-core --example placement_cost

use std::time::Instant;

use berth_core::placement::{decide, Holder, Room, SpotHold, Waiter};
use chrono::{Duration, Utc};

fn main() {
    let now = Utc::now();
    for n in [10usize, 100, 1_000, 10_000] {
        let holders: Vec<Holder<usize>> = (0..n)
            .map(|i| Holder {
                key: i,
                room: Room::of(0.5, 1.0),
                spot: (i % 2 == 0).then(|| SpotHold {
                    hour_price: (i as i64 % 97).into(),
                    created: now - Duration::hours(2),
                    protected_until: now - Duration::hours(1),
                }),
                reclaiming: false,
            })
            .collect();
        let used = Room::of(0.5 * n as f64, 1.0 * n as f64);
        let waiter = Waiter {
            key: usize::MAX,
            room: Room::of(2.0, 4.0),
            spot: None,
        };
        for (label, capacity) in [("room", used.plus(Room::of(4.0, 8.0))), ("full", used)] {
            let rounds = (2_000_000 / n).max(100);
            let t = Instant::now();
            let mut placed = 0usize;
            for _ in 0..rounds {
                let d = decide(capacity, &holders, &waiter, now);
                placed += matches!(d, berth_core::placement::Decision::Place) as usize;
            }
            let per = t.elapsed().as_secs_f64() / rounds as f64;
            println!(
                "{n:>6} holders, {label}: {:>9.2} µs per decision ({placed} placed of {rounds})",
                per * 1e6
            );
        }
    }
}
