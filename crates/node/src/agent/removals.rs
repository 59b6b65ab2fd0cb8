//! The removals under way on this node, each with the time its containers are killed by:
//! a second removal of a group being removed only brings that time forward (a shorter
//! grace period of a later DeleteContainerGroup, a pod deleted again with a shorter
//! `--grace-period`), as the kubelet shortens a pod's termination in progress.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth_core::GroupId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::group::KillBy;

#[derive(Default)]
pub struct Removals(Mutex<HashMap<GroupId, watch::Sender<Instant>>>);

/// What a removal call is to do.
pub enum Claim {
    /// Remove the group; the containers are killed by this time at the latest.
    Remove(KillBy),
    /// A removal is under way; its time was brought forward to this call's, if sooner. The
    /// receiver's sender is dropped when it ends.
    Joined(watch::Receiver<Instant>),
}

impl Removals {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, watch::Sender<Instant>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the removal of `id` with `grace`, or brings the one under way forward.
    pub fn claim(&self, id: &GroupId, grace: Duration) -> Claim {
        let by = Instant::now() + grace;
        let mut map = self.map();
        if let Some(tx) = map.get(id) {
            tx.send_if_modified(|at| {
                let sooner = by < *at;
                if sooner {
                    *at = by;
                }
                sooner
            });
            return Claim::Joined(tx.subscribe());
        }
        let (tx, rx) = watch::channel(by);
        map.insert(id.clone(), tx);
        Claim::Remove(rx)
    }

    /// Whether a removal of `id` is under way.
    pub fn is_claimed(&self, id: &GroupId) -> bool {
        self.map().contains_key(id)
    }

    /// The removal of `id` ended (done or failed: the next one starts afresh).
    pub fn finish(&self, id: &GroupId) {
        self.map().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::brought_forward;

    fn id() -> GroupId {
        GroupId::from_random([7; 20])
    }

    #[tokio::test]
    async fn a_joined_removal_learns_when_the_one_under_way_ends() {
        let r = Removals::default();
        let g = id();
        let Claim::Remove(_by) = r.claim(&g, Duration::from_secs(60)) else {
            panic!("the first claim removes")
        };
        let Claim::Joined(mut under_way) = r.claim(&g, Duration::from_secs(1)) else {
            panic!("the second joins")
        };
        let waiter = tokio::spawn(async move { while under_way.changed().await.is_ok() {} });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the removal is still under way");
        r.finish(&g);
        waiter.await.expect("ends once the removal ended");
        assert!(
            matches!(r.claim(&g, Duration::ZERO), Claim::Remove(_)),
            "a new one starts afresh"
        );
    }

    #[tokio::test]
    async fn a_second_removal_only_brings_the_kill_forward() {
        let r = Removals::default();
        let g = id();
        let Claim::Remove(by) = r.claim(&g, Duration::from_secs(60)) else {
            panic!("the first claim removes")
        };
        let first = *by.borrow();
        assert!(matches!(
            r.claim(&g, Duration::from_secs(90)),
            Claim::Joined(_)
        ));
        assert_eq!(*by.borrow(), first, "a longer grace changes nothing");
        assert!(matches!(r.claim(&g, Duration::ZERO), Claim::Joined(_)));
        assert!(*by.borrow() < first, "a shorter one is taken");
        // Brought forward before the stop's own deadline: the wait ends.
        tokio::time::timeout(Duration::from_secs(5), brought_forward(by.clone(), first))
            .await
            .expect("ends at the new time");
        r.finish(&g);
        assert!(matches!(
            r.claim(&g, Duration::from_secs(1)),
            Claim::Remove(_)
        ));
    }

    #[tokio::test]
    async fn a_removal_not_brought_forward_waits_for_nothing() {
        let r = Removals::default();
        let g = id();
        let Claim::Remove(by) = r.claim(&g, Duration::from_secs(60)) else {
            panic!("the first claim removes")
        };
        let deadline = *by.borrow();
        let waited =
            tokio::time::timeout(Duration::from_millis(50), brought_forward(by, deadline)).await;
        assert!(waited.is_err(), "the stop's own deadline applies");
    }
}
