//! Restart decisions: which exits restart a container and how long to back off first
//! (10 s doubling to 5 min, reset after 10 min of running, as Kubernetes does).

use std::time::Duration;

use crate::spec::RestartPolicy;

pub const BACKOFF_START: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting starts its back-off from the beginning.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// The first wait after berth's own machinery failed to set a group or a container up (the
/// network, a mount, the monitor): such a failure is no exit of the container, so it is
/// retried under every restart policy, as Kubernetes retries FailedCreatePodSandBox.
pub const SETUP_BACKOFF_START: Duration = Duration::from_secs(1);

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

/// The wait before the next start, given how many restarts in a row came before it
/// (0 for the first restart).
pub fn backoff_delay(streak: u32) -> Duration {
    let factor = 1u64 << streak.min(16);
    BACKOFF_START.saturating_mul(factor as u32).min(BACKOFF_MAX)
}

/// The wait before attempt `attempt + 1` of a setup that failed `attempt + 1` times:
/// 1 s doubling to 5 min.
pub fn setup_backoff(attempt: u32) -> Duration {
    let factor = 1u64 << attempt.min(16);
    SETUP_BACKOFF_START
        .saturating_mul(factor as u32)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_backoff_doubles_from_one_second() {
        let secs: Vec<u64> = (0..10).map(|n| setup_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(setup_backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn policies() {
        assert!(should_restart(RestartPolicy::Always, 0));
        assert!(should_restart(RestartPolicy::Always, 1));
        assert!(!should_restart(RestartPolicy::OnFailure, 0));
        assert!(should_restart(RestartPolicy::OnFailure, 2));
        assert!(!should_restart(RestartPolicy::Never, 1));
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff_delay(u32::MAX).as_secs(), 300);
    }
}
