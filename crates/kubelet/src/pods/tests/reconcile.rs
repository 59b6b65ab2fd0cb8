//! One pod at a time: creation, refusal, retries, status patches, deletion, resync.

use serde_json::{json, Value};

use super::*;

fn never() -> Route {
    Box::new(|s: &Seen| panic!("unexpected request {} {}", s.method, s.path))
}

#[tokio::test]
async fn new_pod_creates_its_group_once() {
    let (client, seen) = apiserver(never());
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let p = pod(pod_json("100"));
    assert_eq!(
        c.reconcile(&p, None).await.unwrap(),
        Outcome::Created("eci-1".into())
    );
    // Created again before berth's list shows the group: the ClientToken makes it one.
    assert_eq!(
        c.reconcile(&p, None).await.unwrap(),
        Outcome::Created("eci-1".into())
    );
    let s = berth.state();
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.creates[0].client_token.as_deref(), Some(UID));
    assert!(s.creates[0]
        .tags
        .iter()
        .any(|t| t.key == crate::TAG_POD_UID && t.value == UID));
    assert!(calls(&seen).is_empty());
}

#[tokio::test]
async fn unsupported_pod_fails_once() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("PATCH", POD_STATUS));
        let mut p = pod_json("101");
        crate::pods::merge(&mut p["status"], &s.body["status"]);
        Reply::Json(200, p)
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let mut v = pod_json("100");
    v["spec"]["hostNetwork"] = json!(true);
    assert_eq!(
        c.reconcile(&pod(v.clone()), None).await.unwrap(),
        Outcome::Refused
    );
    let body = seen.lock().unwrap()[0].body.clone();
    assert_eq!(body["metadata"]["resourceVersion"], "100");
    assert_eq!(body["status"]["phase"], "Failed");
    assert_eq!(body["status"]["reason"], "ProviderFailed");
    assert!(body["status"]["message"]
        .as_str()
        .unwrap()
        .starts_with("spec.hostNetwork: "));
    // The pod as the patch left it: nothing more is done.
    crate::pods::merge(&mut v["status"], &body["status"]);
    assert_eq!(
        c.reconcile(&pod(v), None).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(berth.state().creates.is_empty());
}

#[tokio::test]
async fn berth_5xx_is_retried_not_failed() {
    let (client, seen) = apiserver(never());
    let berth = FakeBerth::default();
    berth.state().fail_creates = 1;
    let c = controller(client, &berth);
    let p = pod(pod_json("100"));
    let e = c.reconcile(&p, None).await.unwrap_err();
    assert!(matches!(e, Error::Berth(GroupsError::Transient(_))), "{e}");
    assert!(calls(&seen).is_empty(), "no Failed status for a 5xx");
    assert_eq!(
        c.reconcile(&p, None).await.unwrap(),
        Outcome::Created("eci-1".into())
    );
}

#[tokio::test]
async fn berth_error_mapping() {
    let api = |status: u16| berth_client::ClientError::Api {
        status,
        code: "X".into(),
        message: "m".into(),
        request_id: "r".into(),
    };
    assert!(matches!(
        GroupsError::from(api(503)),
        GroupsError::Transient(_)
    ));
    assert!(matches!(
        GroupsError::from(api(429)),
        GroupsError::Transient(_)
    ));
    assert!(matches!(
        GroupsError::from(api(400)),
        GroupsError::Refused(_)
    ));
}

#[tokio::test]
async fn missing_config_map_waits() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!(s.path, "/api/v1/namespaces/shop/configmaps/cfg");
        Reply::Json(404, status(404, "NotFound", "configmaps \"cfg\" not found"))
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let mut v = pod_json("100");
    v["spec"]["containers"][0]["env"] = json!([{"name": "LEVEL",
        "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}}]);
    let e = c.reconcile(&pod(v), None).await.unwrap_err();
    assert!(matches!(e, Error::Waiting(_)), "{e}");
    assert_eq!(calls(&seen).len(), 1);
    assert!(berth.state().creates.is_empty());
}

#[tokio::test]
async fn status_patch_after_group_change_retries_conflict() {
    let mut patches = 0;
    let (client, seen) = apiserver(Box::new(move |s: &Seen| match s.method.as_str() {
        "PATCH" => {
            patches += 1;
            if patches == 1 {
                return Reply::Json(
                    409,
                    status(409, "Conflict", "Operation cannot be fulfilled on pods \"web-1\": the object has been modified; please apply your changes to the latest version and try again"),
                );
            }
            let mut p = pod_json("103");
            crate::pods::merge(&mut p["status"], &s.body["status"]);
            Reply::Json(200, p)
        }
        "GET" => Reply::Json(200, pod_json("102")),
        _ => panic!("{} {}", s.method, s.path),
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let g = group("eci-1", UID, "Running");
    let mut v = pod_json("100");
    assert_eq!(
        c.reconcile(&pod(v.clone()), Some(&g)).await.unwrap(),
        Outcome::StatusPatched
    );
    assert_eq!(
        calls(&seen),
        [
            format!("PATCH {POD_STATUS}"),
            format!("GET {POD}"),
            format!("PATCH {POD_STATUS}")
        ]
    );
    let body = seen.lock().unwrap()[2].body.clone();
    assert_eq!(body["metadata"]["resourceVersion"], "102");
    assert_eq!(body["status"]["phase"], "Running");
    assert_eq!(body["status"]["podIP"], "10.1.0.7");
    assert_eq!(body["status"]["hostIP"], "192.0.2.10");
    // The same group again: the status is the pod's already (the API server merged the
    // patch into the qosClass it had set), nothing is sent.
    crate::pods::merge(&mut v["status"], &body["status"]);
    assert_eq!(
        c.reconcile(&pod(v), Some(&g)).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(calls(&seen).len(), 3);
    assert!(berth.state().creates.is_empty());
}

#[tokio::test]
async fn deleted_pod_deletes_group_then_pod() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("DELETE", POD));
        Reply::Json(200, pod_json("105"))
    }));
    let berth = FakeBerth::default();
    berth.add("eci-1", UID, "Running");
    let c = controller(client, &berth);
    let mut v = pod_json("104");
    v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    v["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let p = pod(v);
    let g = berth.state().groups[0].clone();
    assert_eq!(c.reconcile(&p, Some(&g)).await.unwrap(), Outcome::Deleting);
    // berth stops the containers: the group is Terminating, not deleted a second time.
    let g = berth.state().groups[0].clone();
    assert_eq!(g.status, "Terminating");
    assert_eq!(c.reconcile(&p, Some(&g)).await.unwrap(), Outcome::Deleting);
    assert_eq!(berth.state().deletes, ["eci-1"]);
    // Deleted again with a shorter grace period: berth is told, once.
    let mut v = pod_json("106");
    v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:32Z");
    v["metadata"]["deletionGracePeriodSeconds"] = json!(1);
    let shorter = pod(v);
    assert_eq!(
        c.reconcile(&shorter, Some(&g)).await.unwrap(),
        Outcome::Deleting
    );
    assert_eq!(
        c.reconcile(&shorter, Some(&g)).await.unwrap(),
        Outcome::Deleting
    );
    assert_eq!(berth.state().delete_graces, [Some(30), Some(1)]);
    assert!(
        calls(&seen).is_empty(),
        "the pod stays while its group does"
    );
    berth.finish_deletes();
    assert_eq!(c.reconcile(&p, None).await.unwrap(), Outcome::Removed);
    let body = seen.lock().unwrap()[0].body.clone();
    assert_eq!(body["gracePeriodSeconds"], 0);
    assert_eq!(body["preconditions"]["uid"], UID);
}

#[tokio::test]
async fn pod_whose_group_vanished_fails_not_recreated() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("PATCH", POD_STATUS));
        Reply::Json(200, pod_json("111"))
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let mut v = pod_json("110");
    v["status"] = json!({"phase": "Running", "hostIP": "192.0.2.10", "podIP": "10.1.0.7"});
    assert_eq!(c.reconcile(&pod(v), None).await.unwrap(), Outcome::Refused);
    assert!(berth.state().creates.is_empty());
    let body = seen.lock().unwrap()[0].body.clone();
    assert_eq!(body["status"]["phase"], "Failed");
    assert_eq!(body["status"]["reason"], "ProviderFailed");
}

#[tokio::test]
async fn resync_deletes_orphans_and_keeps_live_groups() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            ("GET", "/api/v1/pods")
        );
        assert!(
            s.query.contains("fieldSelector=spec.nodeName%3Dvk-1"),
            "{}",
            s.query
        );
        Reply::Json(200, pod_list("200", vec![pod_json("150")]))
    }));
    let berth = FakeBerth::default();
    berth.add("eci-live", UID, "Running");
    berth.add(
        "eci-orphan",
        "6f0e0000-0000-4000-8000-00000000dead",
        "Running",
    );
    let c = controller(client, &berth);
    let kept = c.resync().await.unwrap();
    assert_eq!(kept.keys().collect::<Vec<_>>(), [UID]);
    assert_eq!(berth.state().deletes, ["eci-orphan"]);
    assert_eq!(calls(&seen).len(), 1);
}

#[tokio::test]
async fn pod_with_too_many_references_is_refused_before_any_read() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("PATCH", POD_STATUS));
        Reply::Json(200, pod_json("101"))
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let mut v = pod_json("100");
    let env: Vec<Value> = (0..65)
        .map(|i| {
            json!({"name": format!("V{i}"),
            "valueFrom": {"configMapKeyRef": {"name": format!("cm-{i}"), "key": "k"}}})
        })
        .collect();
    v["spec"]["containers"][0]["env"] = json!(env);
    assert_eq!(c.reconcile(&pod(v), None).await.unwrap(), Outcome::Refused);
    assert_eq!(calls(&seen), [format!("PATCH {POD_STATUS}")]);
    let body = seen.lock().unwrap()[0].body.clone();
    assert_eq!(body["status"]["reason"], "ProviderFailed");
}

#[tokio::test]
async fn group_events_are_posted_once_and_updated_on_a_new_count() {
    const EVENTS: &str = "/api/v1/namespaces/shop/events";
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("PATCH", POD_STATUS) => Reply::Json(200, pod_json("101")),
            ("POST", EVENTS) if s.body["count"] == 1 => {
                let mut e = s.body.clone();
                e["metadata"]["resourceVersion"] = json!("300");
                Reply::Json(201, e)
            }
            // Posted before a restart: it exists.
            ("POST", EVENTS) => Reply::Json(
                409,
                status(
                    409,
                    "AlreadyExists",
                    "events \"web-1.pulled\" already exists",
                ),
            ),
            ("GET", p) if p.starts_with(EVENTS) => Reply::Json(
                200,
                json!({"kind": "Event", "apiVersion": "v1",
                    "metadata": {"name": "web-1.pulled", "namespace": "shop", "resourceVersion": "301"},
                    "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}),
            ),
            ("PUT", p) if p.starts_with(EVENTS) => Reply::Json(200, s.body.clone()),
            _ => panic!("{} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let mut g = group("eci-1", UID, "Running");
    g.events = serde_json::from_value(json!([{"Count": 1, "Type": "Normal", "Name": "eci-1.1",
        "Reason": "Pulled", "Message": "pulled nginx",
        "FirstTimestamp": "2026-01-01T00:00:01Z", "LastTimestamp": "2026-01-01T00:00:01Z"}]))
    .unwrap();
    let p = pod(pod_json("100"));
    c.reconcile(&p, Some(&g)).await.unwrap();
    let posts = |seen: &Arc<Mutex<Vec<Seen>>>| {
        calls(seen)
            .iter()
            .filter(|c| c.contains("/events"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(posts(&seen), [format!("POST {EVENTS}")]);
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert_eq!(
        posts(&seen).len(),
        1,
        "an unchanged event is not posted again"
    );
    g.events[0].count = 2;
    c.reconcile(&p, Some(&g)).await.unwrap();
    let all = posts(&seen);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all[2].starts_with("GET ") && all[3].starts_with("PUT "),
        "{all:?}"
    );
    let put = seen.lock().unwrap().last().unwrap().body.clone();
    assert_eq!(put["metadata"]["resourceVersion"], "301");
    assert_eq!(put["count"], 2);
    assert_eq!(put["involvedObject"]["uid"], UID);
}
