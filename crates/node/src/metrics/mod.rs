//! The metric samples of the groups on this node. Each group keeps its samples of the last
//! hour as they were taken ([`RECENT_SECS`], at most [`RECENT_POINTS`]) and, older than that,
//! one point per 10 minutes for 24 hours ([`COARSE_POINTS`]): the sample that ended each
//! 10-minute bucket, with the CPU rates averaged over the bucket, exactly what
//! DescribeContainerGroupMetric answers for its coarsest period. The API's finer periods
//! (15, 30 and 60 s, at most 50 entries) reach back 50 minutes; asked further back they get
//! the 10-minute points. A group that ran a day thus holds ~380 samples, not the 5,760 of
//! every 15-s sample, each packed (`packed`): what `berth serve` keeps per group stays small
//! however long it runs (72 KB after a day; 259 KB unpacked).

mod packed;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use berth_core::metric::{aggregate, MetricPoint};
use berth_core::GroupId;
use chrono::{DateTime, Utc};

use packed::Packed;

/// How far back a group's samples are kept as taken.
pub const RECENT_SECS: i64 = 3600;
/// The most samples a group keeps as taken, whatever the interval (an hour at 5 s).
pub const RECENT_POINTS: usize = 720;
/// The period of the older samples' points: DescribeContainerGroupMetric's coarsest.
pub const COARSE_SECS: u32 = 600;
/// The older points kept: 24 hours of 10-minute points.
pub const COARSE_POINTS: usize = 144;

/// One group's samples, packed: the last hour's as taken, then 10-minute points, both oldest
/// first.
#[derive(Default)]
struct Ring {
    recent: VecDeque<Packed>,
    coarse: VecDeque<Packed>,
}

fn bucket(p: &Packed) -> i64 {
    p.secs().div_euclid(i64::from(COARSE_SECS))
}

impl Ring {
    fn push(&mut self, p: MetricPoint) {
        let names = self.recent.back().or(self.coarse.back()).map(Packed::names);
        let p = Packed::pack(&p, names);
        let horizon = p.secs() - RECENT_SECS;
        self.recent.push_back(p);
        // Whole buckets leave the recent samples, oldest first, once all of the bucket is
        // older than the hour (or there are too many samples); the newest bucket never does.
        while let Some(front) = self.recent.front() {
            let b = bucket(front);
            let ended_before_horizon = (b + 1) * i64::from(COARSE_SECS) <= horizon;
            if !ended_before_horizon && self.recent.len() <= RECENT_POINTS {
                break;
            }
            let n = self.recent.iter().take_while(|q| bucket(q) == b).count();
            if n == self.recent.len() {
                break;
            }
            let taken: Vec<MetricPoint> = self.recent.drain(..n).map(|q| q.unpack()).collect();
            let (first, last) = (taken[0].timestamp, taken[n - 1].timestamp);
            if let Some(point) = aggregate(&taken, first, last, COARSE_SECS, 1).pop() {
                if self.coarse.len() >= COARSE_POINTS {
                    self.coarse.pop_front();
                }
                let names = self
                    .coarse
                    .back()
                    .or(self.recent.front())
                    .map(Packed::names);
                self.coarse.push_back(Packed::pack(&point, names));
            }
        }
    }

    fn last(&self) -> Option<MetricPoint> {
        self.recent
            .back()
            .or(self.coarse.back())
            .map(Packed::unpack)
    }

    fn range(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<MetricPoint> {
        self.coarse
            .iter()
            .chain(self.recent.iter())
            .filter(|p| {
                let t = p.timestamp();
                t >= start && t <= end
            })
            .map(Packed::unpack)
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.recent.len() + self.coarse.len()
    }
}

/// The samples of every group, each in a bounded [`Ring`].
#[derive(Default)]
pub struct MetricRings {
    rings: Mutex<HashMap<GroupId, Ring>>,
}

impl MetricRings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Ring>> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn last(&self, id: &GroupId) -> Option<MetricPoint> {
        self.lock().get(id).and_then(Ring::last)
    }

    pub fn push(&self, id: &GroupId, p: MetricPoint) {
        self.lock().entry(id.clone()).or_default().push(p);
    }

    /// Forgets a group's samples (when it is removed).
    pub fn forget(&self, id: &GroupId) {
        self.lock().remove(id);
    }

    /// The group's samples within `[start, end]`, oldest first (10-minute points before the
    /// last hour).
    pub fn range(
        &self,
        id: &GroupId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<MetricPoint> {
        self.lock()
            .get(id)
            .map(|r| r.range(start, end))
            .unwrap_or_default()
    }

    /// How many samples the group holds.
    #[cfg(test)]
    pub fn len(&self, id: &GroupId) -> usize {
        self.lock().get(id).map_or(0, Ring::len)
    }
}

/// Counts the bytes the calling thread has allocated and not freed, for the tests that bound
/// what a group's samples hold.
#[cfg(test)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|l| l.set(l.get() + n));
    }

    /// The bytes this thread holds.
    pub fn live() -> isize {
        LIVE.with(Cell::get)
    }

    struct Counting;

    // SAFETY: every call is passed on to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            System.dealloc(ptr, layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            System.realloc(ptr, layout, new_size)
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}

#[cfg(test)]
mod tests {
    use berth_core::metric::{ContainerMetric, CpuUsage};

    use super::*;

    fn id() -> GroupId {
        GroupId::from_random([7u8; 20])
    }

    /// A sample at `secs` with CPU rates that change every sample.
    fn sample(secs: i64) -> MetricPoint {
        let rate = (secs as u64 * 7919) % 1_000_000;
        MetricPoint {
            timestamp: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
            cpu: CpuUsage {
                usage_nano_cores: rate,
                usage_core_ns: secs as u64 * 1000,
                ..Default::default()
            },
            containers: vec![ContainerMetric {
                name: "c".into(),
                cpu: CpuUsage {
                    usage_nano_cores: rate / 2,
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    #[test]
    fn three_days_of_samples_keep_an_hour_and_a_day_of_ten_minute_points() {
        let rings = MetricRings::default();
        let id = id();
        let start = 1_700_000_000 - 1_700_000_000 % 600;
        let end = start + 3 * 86_400;
        for t in (start..end).step_by(15) {
            rings.push(&id, sample(t));
        }
        let n = rings.len(&id);
        assert!(
            n <= 3600 / 15 + 600 / 15 + COARSE_POINTS,
            "{n} samples kept"
        );
        let all = rings.range(&id, at(0), at(end));
        assert_eq!(all.len(), n);
        assert!(all.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        // The oldest point kept is a day and an hour old.
        let oldest = all[0].timestamp.timestamp();
        assert!(end - oldest <= 86_400 + 3600 + 600, "{}", end - oldest);
        assert_eq!(rings.last(&id).unwrap().timestamp, at(end - 15));
        rings.forget(&id);
        assert!(rings.last(&id).is_none());
    }

    #[test]
    fn the_answers_of_every_period_are_those_of_all_samples() {
        let rings = MetricRings::default();
        let id = id();
        let start = 1_700_000_007;
        let end = start + 86_400;
        let mut every = Vec::new();
        for t in (start..end).step_by(15) {
            rings.push(&id, sample(t));
            every.push(sample(t));
        }
        let now = end;
        // The API's periods, at most 50 entries, over the ranges they can reach.
        for (period, back) in [(15, 50 * 15), (30, 50 * 30), (60, 50 * 60), (600, 50 * 600)] {
            let (from, to) = (at(now - back), at(now));
            let kept = aggregate(&rings.range(&id, from, to), from, to, period, 50);
            let full = aggregate(&every, from, to, period, 50);
            assert_eq!(kept, full, "period {period}");
        }
        // Ten-minute points of a whole day (from the start of a bucket) are those of every
        // sample.
        let day = now - 86_400 + 600;
        let (from, to) = (at(day - day % 600), at(now));
        let kept = aggregate(&rings.range(&id, from, to), from, to, 600, 200);
        let full = aggregate(&every, from, to, 600, 200);
        assert_eq!(kept, full);
    }

    /// A sample as the node takes them of a one-container group: two interfaces, the
    /// temporary storage.
    fn full_sample(secs: i64) -> MetricPoint {
        use berth_core::metric::{InterfaceMetric, MemoryUsage};
        let mut p = sample(secs);
        let t = secs as u64 - 1_700_000_000;
        let memory = MemoryUsage {
            usage_bytes: 3 << 20,
            working_set_bytes: 2 << 20,
            rss_bytes: 300 << 10,
            cache_bytes: 1 << 20,
            available_bytes: 510 << 20,
        };
        p.memory = memory.clone();
        p.containers[0].memory = memory;
        p.containers[0].cpu.usage_core_ns = t * 1_000_000;
        p.containers[0].cpu.limit_millicores = 250;
        let interface = |name: &str, n: u64| InterfaceMetric {
            name: name.into(),
            rx_bytes: n * 1500,
            rx_packets: n,
            tx_bytes: n * 900,
            tx_packets: n / 2,
            ..Default::default()
        };
        p.interfaces = vec![interface("lo", t / 60), interface("eth0", t * 40)];
        p.filesystems = vec![super::packed::tests::temporary_storage()];
        p
    }

    #[test]
    fn a_day_of_samples_holds_under_100_kb() {
        let rings = MetricRings::default();
        let id = id();
        rings.push(&id, full_sample(1_700_000_000));
        let before = counting::live();
        let start = 1_700_000_015;
        for t in (start..start + 86_400).step_by(15) {
            rings.push(&id, full_sample(t));
        }
        let held = counting::live() - before;
        let kept = rings.len(&id) as isize;
        eprintln!(
            "a day of 15-s samples: {kept} kept, {held} bytes, {} a sample",
            held / kept
        );
        assert!(held < 100_000, "{held} bytes");
        assert_eq!(rings.last(&id), Some(full_sample(start + 86_400 - 15)));
    }

    #[test]
    fn a_short_interval_is_bounded_by_count() {
        let rings = MetricRings::default();
        let id = id();
        for t in 0..7200 {
            rings.push(&id, sample(1_700_000_000 + t));
        }
        assert!(rings.len(&id) <= RECENT_POINTS + 600 + COARSE_POINTS);
    }
}
