//! What the metering ledger records of a group (ADR 0010): whether its status is billed
//! (ECI_API.md §8.4), what is billed while it is (size, temporary storage above the free
//! size), and when a billed period ends. Pure: the store applies it inside the transaction
//! that writes the record.

use chrono::{DateTime, Utc};

use crate::price::FREE_EPHEMERAL_STORAGE_GIB;
use crate::{GroupRecord, GroupStatus, StateKind};

/// What a billed period bills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BilledTerms {
    /// Thousandths of a vCPU.
    pub cpu_milli: u32,
    /// MiB of memory.
    pub memory_mib: u32,
    /// GiB of temporary storage above the free 30 GiB.
    pub storage_gib: u32,
}

/// Whether a group in `status` is billed; `was_billed` says whether it was just before (a
/// Terminating group is billed only when it was: deleting a finished or a never-started
/// group costs nothing).
pub fn is_billed(status: GroupStatus, was_billed: bool) -> bool {
    match status {
        GroupStatus::Pending
        | GroupStatus::Running
        | GroupStatus::Restarting
        | GroupStatus::Updating => true,
        GroupStatus::Terminating => was_billed,
        GroupStatus::Scheduling
        | GroupStatus::ScheduleFailed
        | GroupStatus::Succeeded
        | GroupStatus::Failed
        | GroupStatus::Expired => false,
    }
}

/// What `rec` is billed for now, or `None` when it is not billed.
pub fn terms(rec: &GroupRecord, was_billed: bool) -> Option<BilledTerms> {
    is_billed(rec.status, was_billed).then(|| BilledTerms {
        cpu_milli: (rec.spec.cpu * 1000.0).round().clamp(0.0, u32::MAX as f64) as u32,
        memory_mib: (rec.spec.memory * 1024.0)
            .round()
            .clamp(0.0, u32::MAX as f64) as u32,
        storage_gib: rec
            .spec
            .ephemeral_storage_gib()
            .saturating_sub(FREE_EPHEMERAL_STORAGE_GIB),
    })
}

/// When the billed period of `rec`, open since `started`, ends as the group leaves the billed
/// states at `now`: when no container runs any more and some have ended, the latest of their
/// ends (the monitors' exit records, so that seconds while berth was down are settled from
/// them), kept within `[started, now]`; else `now`.
pub fn period_end(rec: &GroupRecord, started: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let all = || rec.init_containers.iter().chain(&rec.containers);
    if all().any(|c| c.current.state == StateKind::Running) {
        return now;
    }
    all()
        .filter_map(|c| c.current.finish_time)
        .max()
        .map_or(now, |t| t.clamp(started.min(now), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContainerState, ContainerStatus, GroupId, GroupSpec};
    use chrono::Duration;

    fn record(status: GroupStatus) -> GroupRecord {
        GroupRecord {
            status,
            ..GroupRecord::new(
                GroupId::parse("eci-00000000000000000001").unwrap(),
                "a",
                GroupSpec {
                    cpu: 0.5,
                    memory: 1.0,
                    ephemeral_storage: Some(50),
                    ..Default::default()
                },
                Utc::now(),
            )
        }
    }

    fn container(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            current: state,
            ..Default::default()
        }
    }

    #[test]
    fn billed_states_are_ecis() {
        for s in [
            GroupStatus::Pending,
            GroupStatus::Running,
            GroupStatus::Restarting,
            GroupStatus::Updating,
        ] {
            assert!(is_billed(s, false), "{s:?}");
        }
        for s in [
            GroupStatus::Scheduling,
            GroupStatus::ScheduleFailed,
            GroupStatus::Succeeded,
            GroupStatus::Failed,
            GroupStatus::Expired,
        ] {
            assert!(!is_billed(s, true), "{s:?}");
        }
        assert!(is_billed(GroupStatus::Terminating, true));
        assert!(!is_billed(GroupStatus::Terminating, false));
    }

    #[test]
    fn terms_of_a_size() {
        let t = terms(&record(GroupStatus::Running), false).unwrap();
        assert_eq!(
            t,
            BilledTerms {
                cpu_milli: 500,
                memory_mib: 1024,
                storage_gib: 20
            }
        );
        assert!(terms(&record(GroupStatus::Scheduling), true).is_none());
    }

    #[test]
    fn a_period_ends_at_the_last_exit() {
        let now = Utc::now();
        let started = now - Duration::seconds(100);
        let mut r = record(GroupStatus::Failed);
        assert_eq!(period_end(&r, started, now), now);
        let ended = |secs: i64| {
            ContainerState::terminated(1, None, false, Some(started), now - Duration::seconds(secs))
        };
        r.containers = vec![container(ended(40)), container(ended(30))];
        assert_eq!(period_end(&r, started, now), now - Duration::seconds(30));
        // Never before the period began, never after now.
        r.containers = vec![container(ended(500))];
        assert_eq!(period_end(&r, started, now), started);
        r.containers = vec![container(ended(-50))];
        assert_eq!(period_end(&r, started, now), now);
        // A container still running: now.
        r.containers = vec![
            container(ended(40)),
            container(ContainerState {
                state: StateKind::Running,
                ..Default::default()
            }),
        ];
        assert_eq!(period_end(&r, started, now), now);
    }
}
