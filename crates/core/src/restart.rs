//! Restart decisions: which exits restart a container and how long to back off first
//! (10 s doubling to 5 min, reset after 10 min of running, as Kubernetes does).

use std::time::Duration;

use crate::spec::RestartPolicy;

pub const BACKOFF_START: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting starts its back-off from the beginning.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

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

#[cfg(test)]
mod tests {
    use super::*;

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
