//! Whether the OOM killer struck a container's cgroup while it ran: the `oom_kill` counter of
//! `memory.oom_control` (v1, Linux 4.13 and later) or `memory.events` (v2) grew since before
//! the container started. On kernels without the counter, v1's `memory.failcnt` (the limit was
//! hit) together with an end by SIGKILL stands in for it. The kernel counts a kill right after
//! sending SIGKILL, so an end by SIGKILL with no kill counted yet is read again briefly.

use std::path::Path;
use std::time::Duration;

use crate::cgroup::read_oom_kills;
use crate::stats::read_u64;

const SIGKILL: i32 = 9;
const RECHECKS: u32 = 5;
const RECHECK_EVERY: Duration = Duration::from_millis(10);

/// The OOM counters of a cgroup at one moment; missing files read as `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OomProbe {
    kills: Option<u64>,
    failcnt: Option<u64>,
}

impl OomProbe {
    /// `file` is `memory.oom_control` (v1) or `memory.events` (v2).
    pub fn read(file: &Path) -> Self {
        Self {
            kills: read_oom_kills(file),
            failcnt: read_u64(&file.with_file_name("memory.failcnt")),
        }
    }
}

/// Whether the cgroup of `file` saw an OOM kill after `before`, for a container whose init
/// ended with `signal`.
pub(crate) fn killed(file: &Path, before: &OomProbe, signal: Option<i32>) -> bool {
    let sigkill = signal == Some(SIGKILL);
    let tries = if sigkill { RECHECKS } else { 1 };
    for i in 0..tries {
        if i > 0 {
            std::thread::sleep(RECHECK_EVERY);
        }
        let now = OomProbe::read(file);
        match decide(before, &now, sigkill) {
            Some(answer) => return answer,
            None => continue,
        }
    }
    false
}

/// `Some` when the readings settle it, `None` when a later reading might still show a kill.
fn decide(before: &OomProbe, now: &OomProbe, sigkill: bool) -> Option<bool> {
    match now.kills {
        Some(k) if k > before.kills.unwrap_or(0) => Some(true),
        Some(_) => (!sigkill).then_some(false),
        None => Some(sigkill && now.failcnt.unwrap_or(0) > before.failcnt.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kills: Option<u64>, failcnt: Option<u64>) -> OomProbe {
        OomProbe { kills, failcnt }
    }

    #[test]
    fn decisions() {
        let none = p(None, None);
        // Counter grew (from a cgroup that did not exist yet, or from an earlier count).
        assert_eq!(decide(&none, &p(Some(1), Some(3)), false), Some(true));
        assert_eq!(
            decide(&p(Some(2), None), &p(Some(2), None), false),
            Some(false)
        );
        assert_eq!(
            decide(&p(Some(1), None), &p(Some(2), None), true),
            Some(true)
        );
        // SIGKILL without a counted kill: look again.
        assert_eq!(decide(&none, &p(Some(0), Some(5)), true), None);
        // No counter: the limit was hit and SIGKILL ended it.
        assert_eq!(decide(&none, &p(None, Some(5)), true), Some(true));
        assert_eq!(decide(&none, &p(None, Some(5)), false), Some(false));
        assert_eq!(
            decide(&p(None, Some(5)), &p(None, Some(5)), true),
            Some(false)
        );
    }

    #[test]
    fn reads_v1_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.oom_control");
        std::fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        std::fs::write(dir.path().join("memory.failcnt"), "7\n").unwrap();
        assert_eq!(OomProbe::read(&f), p(Some(1), Some(7)));
        assert!(killed(&f, &OomProbe::default(), Some(SIGKILL)));
        assert!(!killed(&f, &OomProbe::read(&f), Some(SIGKILL)));
        assert!(!killed(
            &dir.path().join("gone/memory.events"),
            &OomProbe::default(),
            None
        ));
    }
}
