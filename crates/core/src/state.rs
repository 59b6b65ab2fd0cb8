//! Container and group states (ECI_API.md §8.4) and how a group's status follows from its
//! containers'.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::RestartPolicy;

/// The lifecycle status of a container group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupStatus {
    Scheduling,
    ScheduleFailed,
    Pending,
    Running,
    Succeeded,
    Failed,
    Restarting,
    Updating,
    Terminating,
    Expired,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduling => "Scheduling",
            Self::ScheduleFailed => "ScheduleFailed",
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Restarting => "Restarting",
            Self::Updating => "Updating",
            Self::Terminating => "Terminating",
            Self::Expired => "Expired",
        }
    }

    /// Every status, in the order of a group's life.
    pub const ALL: [Self; 10] = [
        Self::Scheduling,
        Self::ScheduleFailed,
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Restarting,
        Self::Updating,
        Self::Terminating,
        Self::Expired,
    ];

    /// The statuses that are final ([`Self::is_final`]) or that are not.
    pub fn ended(ended: bool) -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(move |s| s.is_final() == ended)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the group will not change any more by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Expired | Self::ScheduleFailed
        )
    }

    /// Whether seconds in this status are billed (ECI_API.md §8.4).
    pub fn is_billed(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Running | Self::Restarting | Self::Updating | Self::Terminating
        )
    }

    /// The Kubernetes pod phase of this status.
    pub fn pod_phase(self) -> &'static str {
        match self {
            Self::Scheduling | Self::Pending | Self::Restarting | Self::Updating => "Pending",
            Self::Running | Self::Terminating => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed | Self::Expired | Self::ScheduleFailed => "Failed",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateKind {
    #[default]
    Waiting,
    Running,
    Terminated,
}

impl StateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Running => "Running",
            Self::Terminated => "Terminated",
        }
    }
}

/// One state of a container (`CurrentState` / `PreviousState`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub state: StateKind,
    /// Waiting: `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`…
    #[serde(default)]
    pub detail_status: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// Terminated: `Completed`, `Error`, `OOMKilled`.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finish_time: Option<DateTime<Utc>>,
}

impl ContainerState {
    pub fn waiting(detail: &str) -> Self {
        Self {
            state: StateKind::Waiting,
            detail_status: Some(detail.to_string()),
            ..Default::default()
        }
    }

    pub fn running(since: DateTime<Utc>) -> Self {
        Self {
            state: StateKind::Running,
            start_time: Some(since),
            ..Default::default()
        }
    }

    /// A terminated state with the reason ECI reports for it.
    pub fn terminated(
        exit_code: i32,
        signal: Option<i32>,
        oom_killed: bool,
        started: Option<DateTime<Utc>>,
        finished: DateTime<Utc>,
    ) -> Self {
        let reason = if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        Self {
            state: StateKind::Terminated,
            detail_status: None,
            exit_code: Some(exit_code),
            signal,
            reason: Some(reason.to_string()),
            message: None,
            start_time: started,
            finish_time: Some(finished),
        }
    }
}

/// The observed status of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub current: ContainerState,
    #[serde(default)]
    pub previous: Option<ContainerState>,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub ready: bool,
    /// Started this many times in a row without 10 minutes of running in between.
    #[serde(default)]
    pub crash_streak: u32,
}

/// The status a group shows, from its init and app containers (ECI_API.md §8.4).
///
/// `restarting` says whether any container is waiting to be started again by its restart policy.
pub fn derive_group_status(
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    policy: RestartPolicy,
) -> GroupStatus {
    let failed = |c: &ContainerStatus| {
        c.current.state == StateKind::Terminated && c.current.exit_code.unwrap_or(0) != 0
    };
    // An init container that failed and will not be retried fails the group.
    if policy == RestartPolicy::Never && init.iter().any(failed) {
        return GroupStatus::Failed;
    }
    let inits_done = init
        .iter()
        .all(|c| c.current.state == StateKind::Terminated && c.current.exit_code == Some(0));
    if !inits_done || app.is_empty() {
        return GroupStatus::Pending;
    }
    let all_terminated = app.iter().all(|c| c.current.state == StateKind::Terminated);
    if all_terminated {
        let will_restart = app.iter().any(|c| match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed(c),
            RestartPolicy::Never => false,
        });
        if !will_restart {
            return if app.iter().any(failed) {
                GroupStatus::Failed
            } else {
                GroupStatus::Succeeded
            };
        }
    }
    let ever_started = app.iter().any(|c| {
        c.current.state != StateKind::Waiting || c.previous.is_some() || c.restart_count > 0
    });
    if ever_started {
        GroupStatus::Running
    } else {
        GroupStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            current: ContainerState::terminated(code, None, false, None, Utc::now()),
            ..Default::default()
        }
    }

    fn running() -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            current: ContainerState::running(Utc::now()),
            ..Default::default()
        }
    }

    fn waiting() -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            current: ContainerState::waiting("ContainerCreating"),
            ..Default::default()
        }
    }

    #[test]
    fn group_status_table() {
        use GroupStatus::*;
        use RestartPolicy::*;
        assert_eq!(derive_group_status(&[], &[waiting()], Always), Pending);
        assert_eq!(
            derive_group_status(&[running()], &[waiting()], Always),
            Pending
        );
        assert_eq!(
            derive_group_status(&[term(0)], &[running()], Always),
            Running
        );
        assert_eq!(
            derive_group_status(&[], &[running(), term(0)], Never),
            Running
        );
        assert_eq!(
            derive_group_status(&[], &[term(0), term(0)], Never),
            Succeeded
        );
        assert_eq!(derive_group_status(&[], &[term(0), term(1)], Never), Failed);
        assert_eq!(derive_group_status(&[], &[term(0)], OnFailure), Succeeded);
        assert_eq!(derive_group_status(&[], &[term(1)], OnFailure), Running);
        assert_eq!(derive_group_status(&[], &[term(0)], Always), Running);
        assert_eq!(derive_group_status(&[term(1)], &[waiting()], Never), Failed);
        assert_eq!(
            derive_group_status(&[term(1)], &[waiting()], OnFailure),
            Pending
        );
    }

    #[test]
    fn terminated_reasons() {
        let t = Utc::now();
        assert_eq!(
            ContainerState::terminated(0, None, false, None, t)
                .reason
                .as_deref(),
            Some("Completed")
        );
        assert_eq!(
            ContainerState::terminated(3, None, false, None, t)
                .reason
                .as_deref(),
            Some("Error")
        );
        assert_eq!(
            ContainerState::terminated(137, Some(9), true, None, t)
                .reason
                .as_deref(),
            Some("OOMKilled")
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            "Scheduling",
            "Pending",
            "Running",
            "Succeeded",
            "Failed",
            "Restarting",
            "Expired",
        ] {
            assert_eq!(GroupStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(GroupStatus::parse("running").is_none());
    }
}
