use berth_client::response::ContainerGroup;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
        "spec": {"nodeName": "vk-1",
                 "initContainers": [{"name": "migrate", "image": "busybox:1.36"}],
                 "containers": [{"name": "app", "image": "nginx:1.27"},
                                {"name": "side", "image": "envoy:1", "startupProbe": {"exec": {"command": ["true"]}}}]}
    }))
    .unwrap()
}

/// A DescribeContainerGroups entry as berth's server writes it.
fn group(status: &str, init: Value, app: Value) -> ContainerGroup {
    serde_json::from_value(json!({
        "ContainerGroupId": "eci-0a1b2c", "Status": status, "IntranetIp": "10.1.0.7",
        "CreationTime": "2026-01-01T00:00:00Z",
        "InitContainers": init, "Containers": app,
        "Events": [
            {"Count": 1, "Type": "Normal", "Name": "eci-0a1b2c.1", "Reason": "Pulled", "Message": "pulled nginx",
             "FirstTimestamp": "2026-01-01T00:00:01Z", "LastTimestamp": "2026-01-01T00:00:01Z"},
            {"Count": 3, "Type": "Warning", "Name": "eci-0a1b2c.2", "Reason": "BackOff", "Message": "back-off restarting",
             "FirstTimestamp": "2026-01-01T00:00:02Z", "LastTimestamp": "2026-01-01T00:00:09Z"}
        ]
    }))
    .unwrap()
}

fn running(name: &str, ready: bool, restarts: u32) -> Value {
    json!({"Name": name, "Ready": ready, "RestartCount": restarts,
           "CurrentState": {"State": "Running", "StartTime": "2026-01-01T00:00:05Z"},
           "PreviousState": if restarts > 0 {
               json!({"State": "Terminated", "ExitCode": 137, "Signal": 9, "Reason": "OOMKilled",
                      "StartTime": "2026-01-01T00:00:03Z", "FinishTime": "2026-01-01T00:00:04Z"})
           } else { json!({}) }})
}

fn done(name: &str, code: i32) -> Value {
    json!({"Name": name, "CurrentState": {"State": "Terminated", "ExitCode": code,
           "Reason": if code == 0 { "Completed" } else { "Error" },
           "StartTime": "2026-01-01T00:00:01Z", "FinishTime": "2026-01-01T00:00:02Z"}})
}

fn now() -> Timestamp {
    "2026-01-01T00:10:00Z".parse().unwrap()
}

fn t(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
    s.conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap()
}

#[test]
fn group_statuses_give_pod_phases() {
    for (status, phase) in [
        ("Scheduling", "Pending"),
        ("Pending", "Pending"),
        ("Restarting", "Pending"),
        ("Updating", "Pending"),
        ("Running", "Running"),
        ("Terminating", "Running"),
        ("Succeeded", "Succeeded"),
        ("Failed", "Failed"),
        ("ScheduleFailed", "Failed"),
        ("Expired", "Failed"),
        ("SomethingNew", "Unknown"),
    ] {
        let u = group_to_pod_status(
            &pod(),
            &group(status, json!([]), json!([])),
            "192.0.2.1",
            now(),
        );
        assert_eq!(u.status.phase.as_deref(), Some(phase), "{status}");
    }
}

#[test]
fn an_update_its_containers_run_through_keeps_the_pod_running() {
    let app = json!([running("app", true, 0), running("side", true, 0)]);
    let u = group_to_pod_status(
        &pod(),
        &group("Updating", json!([]), app),
        "192.0.2.1",
        now(),
    );
    assert_eq!(u.status.phase.as_deref(), Some("Running"));
    let recreating = json!([
        running("app", true, 0),
        {"Name": "side", "CurrentState": {"State": "Waiting", "DetailStatus": "ContainerCreating"}}
    ]);
    let u = group_to_pod_status(
        &pod(),
        &group("Updating", json!([]), recreating),
        "192.0.2.1",
        now(),
    );
    assert_eq!(u.status.phase.as_deref(), Some("Pending"));
}

#[test]
fn a_running_ready_group_makes_a_ready_pod() {
    let g = group(
        "Running",
        json!([done("migrate", 0)]),
        json!([running("app", true, 0), running("side", true, 2)]),
    );
    let s = group_to_pod_status(&pod(), &g, "192.0.2.1", now()).status;
    assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.7"));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.1.0.7");
    assert_eq!(s.host_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "192.0.2.1");
    assert_eq!(s.start_time, Some(t("2026-01-01T00:00:00Z")));
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(cond(&s, kind).status, "True", "{kind}");
    }
    assert_eq!(
        cond(&s, "PodScheduled").last_transition_time,
        Some(t("2026-01-01T00:00:00Z"))
    );
    assert_eq!(
        cond(&s, "Initialized").last_transition_time,
        Some(t("2026-01-01T00:00:02Z"))
    );
    assert_eq!(cond(&s, "Ready").last_transition_time, Some(Time(now())));
    let cs = s.container_statuses.as_ref().unwrap();
    let app = &cs[0];
    assert_eq!(
        (app.name.as_str(), app.ready, app.started, app.restart_count),
        ("app", true, Some(true), 0)
    );
    assert_eq!(app.image, "nginx:1.27");
    assert_eq!(app.image_id, "nginx:1.27");
    assert_eq!(app.container_id.as_deref(), Some("berth://eci-0a1b2c/app"));
    assert_eq!(
        app.state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at,
        Some(t("2026-01-01T00:00:05Z"))
    );
    assert_eq!(app.last_state, Some(Default::default()));
    let side = &cs[1];
    assert_eq!(side.restart_count, 2);
    let last = side
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(
        (last.exit_code, last.signal, last.reason.as_deref()),
        (137, Some(9), Some("OOMKilled"))
    );
    assert_eq!(last.finished_at, Some(t("2026-01-01T00:00:04Z")));
    let init = &s.init_container_statuses.as_ref().unwrap()[0];
    let term = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(
        term.container_id.as_deref(),
        Some("berth://eci-0a1b2c/migrate")
    );
    assert_eq!(init.started, Some(false));
}

#[test]
fn unready_and_initialising_pods_say_why() {
    let g = group(
        "Pending",
        json!([{"Name": "migrate", "CurrentState": {"State": "Running", "StartTime": "2026-01-01T00:00:01Z"}}]),
        json!([{"Name": "app", "CurrentState": {"State": "Waiting", "DetailStatus": "PodInitializing"}}]),
    );
    let s = group_to_pod_status(&pod(), &g, "", now()).status;
    let init = cond(&s, "Initialized");
    assert_eq!(
        (init.status.as_str(), init.reason.as_deref()),
        ("False", Some("ContainersNotInitialized"))
    );
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [migrate]")
    );
    let ready = cond(&s, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app side]")
    );
    let cs = s.container_statuses.as_ref().unwrap();
    let w = cs[0].state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("PodInitializing"));
    assert_eq!(cs[0].container_id, None);
    assert_eq!(cs[0].image_id, "");
    // A container berth does not list yet is being created.
    let w = cs[1].state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
    assert_eq!(
        s.init_container_statuses.as_ref().unwrap()[0].started,
        Some(true)
    );
    assert_eq!((s.pod_ip.as_deref(), s.host_ip), (Some("10.1.0.7"), None));
}

#[test]
fn a_running_container_behind_its_startup_probe_has_not_started() {
    let g = group(
        "Running",
        json!([done("migrate", 0)]),
        json!([running("app", true, 0), running("side", false, 0)]),
    );
    let s = group_to_pod_status(&pod(), &g, "192.0.2.1", now()).status;
    let cs = s.container_statuses.as_ref().unwrap();
    assert_eq!(cs[1].started, Some(false));
    assert!(!cs[1].ready);
    assert_eq!(cond(&s, "ContainersReady").status, "False");
}

#[test]
fn unchanged_conditions_keep_their_transition_time() {
    let g = group(
        "Running",
        json!([done("migrate", 0)]),
        json!([running("app", true, 0), running("side", true, 0)]),
    );
    let mut p = pod();
    let first = group_to_pod_status(&p, &g, "192.0.2.1", now()).status;
    p.status = Some(first.clone());
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    let again = group_to_pod_status(&p, &g, "192.0.2.1", later).status;
    assert_eq!(
        cond(&again, "Ready").last_transition_time,
        Some(Time(now()))
    );
    // When readiness changes, the condition moves to the new time.
    let g = group(
        "Running",
        json!([done("migrate", 0)]),
        json!([running("app", false, 0), running("side", true, 0)]),
    );
    let changed = group_to_pod_status(&p, &g, "192.0.2.1", later).status;
    assert_eq!(
        cond(&changed, "Ready").last_transition_time,
        Some(Time(later))
    );
    assert_eq!(
        cond(&changed, "PodScheduled").last_transition_time,
        cond(&first, "PodScheduled").last_transition_time
    );
}

#[test]
fn finished_and_failed_groups_give_a_reason() {
    let g = group(
        "Succeeded",
        json!([done("migrate", 0)]),
        json!([done("app", 0), done("side", 0)]),
    );
    let s = group_to_pod_status(&pod(), &g, "192.0.2.1", now()).status;
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(s.reason, None);
    let g = group("ScheduleFailed", json!([]), json!([]));
    let s = group_to_pod_status(&pod(), &g, "", now()).status;
    assert_eq!(s.reason.as_deref(), Some("ScheduleFailed"));
    assert_eq!(s.message.as_deref(), Some("back-off restarting"));
    let mut p = pod();
    p.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    let s = group_to_pod_status(&p, &group("Expired", json!([]), json!([])), "", now()).status;
    assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    // A reclaimed spot group: Failed, reason Expired, the release's message.
    let mut g = group("Expired", json!([]), json!([]));
    let mut ev = g.events[1].clone();
    ev.reason = "SpotReleased".into();
    ev.message = "The preemptible container group was released: to make room".into();
    g.events.push(ev);
    let s = group_to_pod_status(&p, &g, "", now()).status;
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(s.reason.as_deref(), Some("Expired"));
    assert!(s.message.unwrap().contains("released"));
    let g = group("Failed", json!([done("migrate", 1)]), json!([]));
    let s = group_to_pod_status(&pod(), &g, "", now()).status;
    let term = s.init_container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((term.exit_code, term.reason.as_deref()), (1, Some("Error")));
    assert_eq!(cond(&s, "Initialized").status, "False");
}

#[test]
fn group_events_become_pod_events() {
    let g = group("Running", json!([]), json!([]));
    let ev = group_to_pod_status(&pod(), &g, "192.0.2.1", now()).events;
    assert_eq!(ev.len(), 2);
    let e = &ev[1];
    assert_eq!(e.metadata.name.as_deref(), Some("web-1.eci-0a1b2c.2"));
    assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(e.involved_object.uid.as_deref(), Some("u-1"));
    assert_eq!(
        (e.type_.as_deref(), e.reason.as_deref(), e.count),
        (Some("Warning"), Some("BackOff"), Some(3))
    );
    assert_eq!(e.message.as_deref(), Some("back-off restarting"));
    assert_eq!(e.first_timestamp, Some(t("2026-01-01T00:00:02Z")));
    assert_eq!(e.last_timestamp, Some(t("2026-01-01T00:00:09Z")));
    let src = e.source.as_ref().unwrap();
    assert_eq!(
        (src.component.as_deref(), src.host.as_deref()),
        (Some(EVENT_COMPONENT), Some("vk-1"))
    );
    assert_eq!(ev[0].type_.as_deref(), Some("Normal"));
}
