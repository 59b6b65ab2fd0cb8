//! DescribeContainerGroupStatus: a Kubernetes-like `PodStatus` per group, with the SDK's odd
//! keys (`uuid`, `lastTransitionTime`, `status`, `type`, `StartedAtstartedAt`, `ImageID`).

use berth_core::{ContainerState, GroupRecord, GroupStatus, StateKind};
use serde::{Deserialize, Serialize};

use super::{group_uuid, time, time_or_empty};

/// DescribeContainerGroupStatus.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeContainerGroupStatusResponse {
    pub request_id: String,
    pub total_count: u64,
    pub next_token: String,
    pub data: Vec<StatusData>,
}

/// One group's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StatusData {
    pub container_group_id: String,
    pub name: String,
    pub namespace: String,
    pub annotations: String,
    pub status: String,
    #[serde(rename = "uuid")]
    pub uuid: String,
    pub pod_status: PodStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PodStatus {
    pub phase: String,
    pub conditions: Vec<PodCondition>,
    pub container_statuses: Vec<ContainerStatusInfo>,
    pub host_ip: String,
    pub pod_ip: String,
    pub pod_ips: Vec<PodIp>,
    pub qos_class: String,
    pub start_time: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub condition_type: String,
    #[serde(rename = "status")]
    pub status: String,
    #[serde(rename = "lastTransitionTime")]
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStatusInfo {
    pub name: String,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
    pub state: StateInfo,
    pub last_state: StateInfo,
}

/// One of `Waiting`, `Running`, `Terminated` (or none, `{}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StateInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitingState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<TerminatedState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitingState {
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningState {
    #[serde(rename = "StartedAtstartedAt")]
    pub started_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TerminatedState {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub exit_code: i32,
    pub signal: i32,
    pub reason: String,
    pub message: String,
    pub started_at: String,
    pub finished_at: String,
}

impl StateInfo {
    fn from_state(s: &ContainerState, container_id: &str) -> Self {
        match s.state {
            StateKind::Waiting => Self {
                waiting: Some(WaitingState {
                    reason: s.detail_status.clone().unwrap_or_default(),
                    message: s.message.clone().unwrap_or_default(),
                }),
                ..Default::default()
            },
            StateKind::Running => Self {
                running: Some(RunningState {
                    started_at: time_or_empty(s.start_time),
                }),
                ..Default::default()
            },
            StateKind::Terminated => Self {
                terminated: Some(TerminatedState {
                    container_id: container_id.to_string(),
                    exit_code: s.exit_code.unwrap_or_default(),
                    signal: s.signal.unwrap_or_default(),
                    reason: s.reason.clone().unwrap_or_default(),
                    message: s.message.clone().unwrap_or_default(),
                    started_at: time_or_empty(s.start_time),
                    finished_at: time_or_empty(s.finish_time),
                }),
                ..Default::default()
            },
        }
    }
}

fn condition(kind: &str, ok: bool, at: &str, reason: &str) -> PodCondition {
    PodCondition {
        condition_type: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: at.to_string(),
        reason: if ok {
            String::new()
        } else {
            reason.to_string()
        },
        message: String::new(),
    }
}

impl StatusData {
    pub fn from_record(r: &GroupRecord) -> Self {
        let id = r.id.to_string();
        let created = time(r.creation_time);
        let scheduled = !matches!(
            r.status,
            GroupStatus::Scheduling | GroupStatus::ScheduleFailed
        );
        let inits_done = r.init_containers.len() >= r.spec.init_containers.len()
            && r.init_containers.iter().all(|c| {
                c.current.state == StateKind::Terminated && c.current.exit_code == Some(0)
            });
        let all_ready = !r.containers.is_empty()
            && r.containers.len() >= r.spec.containers.len()
            && r.containers.iter().all(|c| c.ready);
        let last_start = r
            .containers
            .iter()
            .filter_map(|c| c.current.start_time)
            .max()
            .map(time)
            .unwrap_or_else(|| created.clone());
        let running = r.status == GroupStatus::Running;
        let conditions = vec![
            condition("PodScheduled", scheduled, &created, "Unschedulable"),
            condition(
                "Initialized",
                scheduled && inits_done,
                &created,
                "ContainersNotInitialized",
            ),
            condition(
                "ContainersReady",
                all_ready,
                &last_start,
                "ContainersNotReady",
            ),
            condition(
                "Ready",
                all_ready && running,
                &last_start,
                "ContainersNotReady",
            ),
        ];
        let container_statuses = r
            .spec
            .containers
            .iter()
            .map(|spec| {
                let st = r.containers.iter().find(|s| s.name == spec.name);
                let cid = format!("berth://{id}/{}", spec.name);
                let current = st.map_or_else(
                    || ContainerState::waiting("ContainerCreating"),
                    |s| s.current.clone(),
                );
                ContainerStatusInfo {
                    name: spec.name.clone(),
                    image: spec.image.clone(),
                    image_id: String::new(),
                    ready: st.is_some_and(|s| s.ready),
                    started: current.state == StateKind::Running,
                    restart_count: st.map_or(0, |s| s.restart_count),
                    state: StateInfo::from_state(&current, &cid),
                    last_state: st
                        .and_then(|s| s.previous.as_ref())
                        .map(|p| StateInfo::from_state(p, &cid))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let ip = r.intranet_ip.clone().unwrap_or_default();
        Self {
            uuid: group_uuid(&id),
            container_group_id: id,
            name: r.spec.name.clone(),
            namespace: String::new(),
            annotations: String::new(),
            status: r.status.as_str().to_string(),
            pod_status: PodStatus {
                phase: r.status.pod_phase().to_string(),
                conditions,
                container_statuses,
                host_ip: String::new(),
                pod_ips: if ip.is_empty() {
                    Vec::new()
                } else {
                    vec![PodIp { ip: ip.clone() }]
                },
                pod_ip: ip,
                qos_class: "Guaranteed".to_string(),
                start_time: created,
            },
        }
    }
}
