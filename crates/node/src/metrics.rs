//! The metric samples of the groups on this node, each group's in a bounded ring of
//! [`RING_POINTS`] (24 hours at the default interval of 15 s).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use berth_core::metric::MetricPoint;
use berth_core::GroupId;
use chrono::{DateTime, Utc};

/// Samples kept per group: 24 hours at the default interval of 15 s.
pub const RING_POINTS: usize = 5760;

/// The samples of every group, each in a bounded ring.
#[derive(Default)]
pub struct MetricRings {
    rings: Mutex<HashMap<GroupId, VecDeque<MetricPoint>>>,
}

impl MetricRings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, VecDeque<MetricPoint>>> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn last(&self, id: &GroupId) -> Option<MetricPoint> {
        self.lock().get(id).and_then(|r| r.back().cloned())
    }

    pub fn push(&self, id: &GroupId, p: MetricPoint) {
        let mut rings = self.lock();
        let ring = rings.entry(id.clone()).or_default();
        if ring.len() >= RING_POINTS {
            ring.pop_front();
        }
        ring.push_back(p);
    }

    /// Forgets a group's samples (when it is removed).
    pub fn forget(&self, id: &GroupId) {
        self.lock().remove(id);
    }

    pub fn range(
        &self,
        id: &GroupId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<MetricPoint> {
        self.lock()
            .get(id)
            .map(|r| {
                r.iter()
                    .filter(|p| p.timestamp >= start && p.timestamp <= end)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_bounded() {
        let rings = MetricRings::default();
        let id = GroupId::parse("eci-0123456789abcdefghij")
            .unwrap_or_else(|| GroupId::from_random([7u8; 20]));
        for i in 0..(RING_POINTS + 10) {
            rings.push(
                &id,
                MetricPoint {
                    timestamp: DateTime::from_timestamp(i as i64, 0).unwrap_or_default(),
                    ..Default::default()
                },
            );
        }
        let all = rings.range(
            &id,
            DateTime::from_timestamp(0, 0).unwrap_or_default(),
            Utc::now(),
        );
        assert_eq!(all.len(), RING_POINTS);
        assert_eq!(all[0].timestamp.timestamp(), 10);
        rings.forget(&id);
        assert!(rings.last(&id).is_none());
    }
}
