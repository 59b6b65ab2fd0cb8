//! Group → pod status: [`group_to_pod_status`] turns berth's DescribeContainerGroups entry of
//! a pod's group into the pod's `PodStatus` and the events to post on the pod.

#[cfg(test)]
mod tests;

use berth_client::response::{ContainerGroup, ContainerStateInfo, GroupEvent};
use berth_core::GroupStatus;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Event, EventSource, HostIP, ObjectReference, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// The `source.component` and `reportingComponent` of the events posted on pods.
pub const EVENT_COMPONENT: &str = "berth-virtual-kubelet";

/// A pod's status as its group shows it, and the group's events as Kubernetes events (named
/// after the pod and berth's event, so that posting one twice updates it: compare `count`).
#[derive(Clone, Debug, PartialEq)]
pub struct PodStatusUpdate {
    pub status: PodStatus,
    pub events: Vec<Event>,
}

/// The status of `pod` from its group. `host_ip` is the node's address; `now` is when the
/// status is made, the transition time of a condition that changes without a time of its
/// own in the group. A condition whose status is as in `pod.status` keeps its transition
/// time.
pub fn group_to_pod_status(
    pod: &Pod,
    group: &ContainerGroup,
    host_ip: &str,
    now: Timestamp,
) -> PodStatusUpdate {
    let spec = pod.spec.clone().unwrap_or_default();
    let previous = pod.status.as_ref();
    let created = time(&group.creation_time);
    let group_status = GroupStatus::parse(&group.status);
    // An update under which every app container runs on (new files of its volumes, a
    // refreshed token) leaves the pod Running and Ready, as the kubelet's volume updates do.
    let running_on = group_status == Some(GroupStatus::Updating)
        && !group.containers.is_empty()
        && group
            .containers
            .iter()
            .all(|c| c.current_state.state.as_deref() == Some("Running"));
    let phase = if running_on {
        "Running"
    } else {
        group_status.map_or("Unknown", GroupStatus::pod_phase)
    };
    let finished = matches!(phase, "Succeeded" | "Failed");
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let info = group.init_containers.iter().find(|i| i.name == c.name);
            container_status(
                group,
                c,
                info.map(|i| {
                    (
                        &i.current_state,
                        &i.previous_state,
                        i.ready,
                        i.restart_count,
                    )
                }),
                true,
            )
        })
        .collect();
    let app: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| {
            let info = group.containers.iter().find(|i| i.name == c.name);
            container_status(
                group,
                c,
                info.map(|i| {
                    (
                        &i.current_state,
                        &i.previous_state,
                        i.ready,
                        i.restart_count,
                    )
                }),
                false,
            )
        })
        .collect();
    let init_done = |s: &ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    };
    let app_started = app.iter().any(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.restart_count > 0
    });
    let initialized = init.iter().all(init_done) || app_started;
    let init_time = init
        .iter()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
        .max_by_key(|t| t.0)
        .or_else(|| created.clone());
    let unready: Vec<&str> = app
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && phase == "Running";
    let ready_reason = if finished {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let ready_message = (!all_ready && !finished)
        .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|s| !init_done(s))
        .map(|s| s.name.as_str())
        .collect();
    let conditions = vec![
        condition(
            previous,
            "PodScheduled",
            true,
            created.clone(),
            None,
            None,
            &now,
        ),
        condition(
            previous,
            "Initialized",
            initialized,
            init_time,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )
            }),
            &now,
        ),
        condition(
            previous,
            "ContainersReady",
            all_ready,
            None,
            (!all_ready).then_some(ready_reason),
            ready_message.clone(),
            &now,
        ),
        condition(
            previous,
            "Ready",
            all_ready,
            None,
            (!all_ready).then_some(ready_reason),
            ready_message,
            &now,
        ),
    ];
    let (reason, message) = match group_status {
        // A spot group reclaimed is Expired too: only its release event tells them apart.
        Some(GroupStatus::Expired)
            if spec.active_deadline_seconds.is_some()
                && !group.events.iter().any(|e| e.reason == SPOT_RELEASED) =>
        {
            (
                Some("DeadlineExceeded".to_string()),
                Some("Pod was active on the node longer than the specified deadline".to_string()),
            )
        }
        Some(s @ (GroupStatus::Expired | GroupStatus::ScheduleFailed | GroupStatus::Failed)) => {
            (Some(s.as_str().to_string()), last_warning(&group.events))
        }
        _ => (None, None),
    };
    let pod_ip = Some(group.intranet_ip.clone()).filter(|i| !i.is_empty());
    let host = Some(host_ip.to_string()).filter(|h| !h.is_empty());
    let status = PodStatus {
        phase: Some(phase.to_string()),
        reason,
        message,
        conditions: Some(conditions),
        pod_ips: pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]),
        pod_ip,
        host_ips: host.as_ref().map(|ip| vec![HostIP { ip: ip.clone() }]),
        host_ip: host,
        start_time: created,
        container_statuses: Some(app),
        init_container_statuses: (!init.is_empty()).then_some(init),
        qos_class: previous.and_then(|p| p.qos_class.clone()),
        ..Default::default()
    };
    PodStatusUpdate {
        status,
        events: group.events.iter().map(|e| event(pod, e)).collect(),
    }
}

/// The event of a reclaimed spot group (`berth_control::REASON_RELEASED`).
const SPOT_RELEASED: &str = "SpotReleased";

fn last_warning(events: &[GroupEvent]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.event_type == "Warning")
        .max_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp))
        .map(|e| e.message.clone())
}

/// A condition; its transition time is the previous one when its status did not change, else
/// `at` (a time the group gives), else `now`.
fn condition(
    previous: Option<&PodStatus>,
    kind: &str,
    ok: bool,
    at: Option<Time>,
    reason: Option<&str>,
    message: Option<String>,
    now: &Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let kept = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        last_transition_time: Some(kept.or(at).unwrap_or(Time(*now))),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

fn time(s: &str) -> Option<Time> {
    s.parse::<Timestamp>().ok().map(Time)
}

/// `berth://GROUP/CONTAINER`: berth keeps one id per container across restarts.
fn container_id(group: &ContainerGroup, name: &str) -> String {
    format!("berth://{}/{}", group.container_group_id, name)
}

fn state(group: &ContainerGroup, name: &str, s: &ContainerStateInfo) -> Option<ContainerState> {
    match s.state.as_deref() {
        Some("Running") => Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: s.start_time.as_deref().and_then(time),
            }),
            ..Default::default()
        }),
        Some("Terminated") => Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(container_id(group, name)),
                exit_code: s.exit_code.unwrap_or(0),
                signal: s.signal,
                reason: s.reason.clone().filter(|r| !r.is_empty()),
                message: s.message.clone().filter(|m| !m.is_empty()),
                started_at: s.start_time.as_deref().and_then(time),
                finished_at: s.finish_time.as_deref().and_then(time),
            }),
            ..Default::default()
        }),
        Some("Waiting") => Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(
                    s.detail_status
                        .clone()
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| "ContainerCreating".into()),
                ),
                message: s.message.clone().filter(|m| !m.is_empty()),
            }),
            ..Default::default()
        }),
        _ => None,
    }
}

/// A container's status. berth reports no image digest: `imageID` is the image reference as
/// the pod names it. `started` is whether it runs and, with a startup probe, passed it (which
/// berth shows as `ready` when there is no readiness probe, and readiness implies).
fn container_status(
    group: &ContainerGroup,
    c: &Container,
    info: Option<(&ContainerStateInfo, &ContainerStateInfo, bool, u32)>,
    init: bool,
) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let (current, last, ready, restarts) = match info {
        Some((cur, prev, ready, n)) => (
            state(group, &c.name, cur),
            state(group, &c.name, prev),
            ready,
            n,
        ),
        None => (None, None, false, 0),
    };
    let current = current.unwrap_or_else(|| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(
                if init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .into(),
            ),
            message: None,
        }),
        ..Default::default()
    });
    let running = current.running.is_some();
    let started = running && (init || c.startup_probe.is_none() || ready);
    let has_id = running || current.terminated.is_some() || last.is_some();
    ContainerStatus {
        name: c.name.clone(),
        image_id: if has_id { image.clone() } else { String::new() },
        image,
        container_id: has_id.then(|| container_id(group, &c.name)),
        ready: ready && running,
        restart_count: i32::try_from(restarts).unwrap_or(i32::MAX),
        started: Some(started),
        state: Some(current),
        last_state: Some(last.unwrap_or_default()),
        ..Default::default()
    }
}

/// A group event as an event on the pod.
fn event(pod: &Pod, e: &GroupEvent) -> Event {
    let meta = &pod.metadata;
    let pod_name = meta.name.clone().unwrap_or_default();
    let suffix: String = e
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{pod_name}.{suffix}")),
            namespace: meta.namespace.clone(),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            ..Default::default()
        },
        type_: Some(
            if e.event_type == "Warning" {
                "Warning"
            } else {
                "Normal"
            }
            .into(),
        ),
        reason: Some(e.reason.clone()),
        message: Some(e.message.clone()),
        count: Some(i32::try_from(e.count.max(1)).unwrap_or(i32::MAX)),
        first_timestamp: time(&e.first_timestamp),
        last_timestamp: time(&e.last_timestamp),
        source: Some(EventSource {
            component: Some(EVENT_COMPONENT.into()),
            host: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        }),
        reporting_component: Some(EVENT_COMPONENT.into()),
        reporting_instance: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ..Default::default()
    }
}
