//! Waiting for a burst of group starts to be over before a pool refills: the spare
//! directories (`spare`) and the gVisor sandboxes (`gvisor_pool`) are made ahead of time, and
//! making them while groups start would compete with those starts for the CPU and the disk.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How long no group may have taken from the pool, with no start in progress, before it
/// refills...
const QUIET: Duration = Duration::from_millis(100);
/// ...but at the latest this long after something was taken.
const MAX_DEFER: Duration = Duration::from_secs(3);

/// Returns once `claims` (the pool's count of takes) has not moved for [`QUIET`] while
/// `starting` (the node's starts in progress) was zero, or [`MAX_DEFER`] after the call.
pub(crate) async fn until_quiet(claims: &AtomicU64, starting: &AtomicUsize) {
    let began = tokio::time::Instant::now();
    loop {
        let seen = claims.load(Ordering::Relaxed);
        tokio::time::sleep(QUIET).await;
        let calm = claims.load(Ordering::Relaxed) == seen && starting.load(Ordering::Relaxed) == 0;
        if calm || began.elapsed() >= MAX_DEFER {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_calm_or_gives_up() {
        let claims = AtomicU64::new(0);
        let calm = AtomicUsize::new(0);
        let began = tokio::time::Instant::now();
        until_quiet(&claims, &calm).await;
        assert_eq!(began.elapsed(), QUIET);
        let busy = AtomicUsize::new(1);
        let began = tokio::time::Instant::now();
        until_quiet(&claims, &busy).await;
        assert!(began.elapsed() >= MAX_DEFER);
        assert!(began.elapsed() < MAX_DEFER + QUIET + QUIET);
    }
}
