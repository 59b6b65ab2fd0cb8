//! The whole loop against an API server that keeps the node's pod: the watch (list, watch
//! with BOOKMARK, 410 Gone and a new list; MODIFIED after each status patch, DELETED after
//! the delete), the sweep of berth's groups, back-off after a 5xx, deletion, a restart.

use std::time::Duration;

use serde_json::json;

use super::*;

fn bookmark(rv: &str) -> Value {
    json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"resourceVersion": rv}}})
}

fn gone() -> Value {
    json!({"type": "ERROR", "object": status(410, "Expired", "too old resource version: 101 (180)")})
}

/// Waits until `f` holds (for at most 15 s).
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..150 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached");
}

/// The API server of one node holding `pod` (or none). `lists` answer the first lists in
/// turn (later ones show the pod as it is), `watches` the first watches; later watches
/// carry what changed since.
fn node_server(pod: Option<Value>, lists: Vec<Value>, watches: Vec<Vec<Value>>) -> Route {
    let (mut lists, mut watches) = (lists.into_iter(), watches.into_iter());
    let mut pod = pod;
    let mut rv = 500;
    let mut pending: Vec<Value> = Vec::new();
    Box::new(move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1/pods") if s.query.contains("watch=true") => {
            assert!(s.query.contains("allowWatchBookmarks=true"), "{}", s.query);
            assert!(s.query.contains("fieldSelector=spec.nodeName%3Dvk-1"));
            Reply::Watch(
                watches
                    .next()
                    .unwrap_or_else(|| std::mem::take(&mut pending)),
            )
        }
        ("GET", "/api/v1/pods") => {
            assert!(s.query.contains("fieldSelector=spec.nodeName%3Dvk-1"));
            let now = pod_list(&rv.to_string(), pod.iter().cloned().collect());
            pending.clear();
            Reply::Json(200, lists.next().unwrap_or(now))
        }
        ("PATCH", POD_STATUS) => {
            let p = pod.as_mut().expect("the pod");
            rv += 1;
            crate::pods::merge(&mut p["status"], &s.body["status"]);
            p["metadata"]["resourceVersion"] = json!(rv.to_string());
            pending.push(json!({"type": "MODIFIED", "object": p.clone()}));
            Reply::Json(200, p.clone())
        }
        ("DELETE", POD) => {
            let mut p = pod.take().expect("the pod");
            rv += 1;
            p["metadata"]["resourceVersion"] = json!(rv.to_string());
            pending.push(json!({"type": "DELETED", "object": p.clone()}));
            Reply::Json(200, p)
        }
        _ => panic!("{} {}", s.method, s.path),
    })
}

fn count(seen: &Arc<Mutex<Vec<Seen>>>, call: &str) -> usize {
    calls(seen).iter().filter(|c| *c == call).count()
}

/// The lists of the node's pods (not watches).
fn lists(seen: &Arc<Mutex<Vec<Seen>>>) -> usize {
    let seen = seen.lock().unwrap();
    seen.iter()
        .filter(|s| s.path == "/api/v1/pods" && !s.query.contains("watch=true"))
        .count()
}

fn patches(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.body.clone())
        .collect()
}

/// Runs the controller until `test` returns, then stops it.
async fn running<F: std::future::Future<Output = ()>>(
    client: kube::Client,
    berth: &FakeBerth,
    test: F,
) {
    let c = Arc::new(controller(client, berth));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let c = c.clone();
        async move { c.run(shutdown).await }
    });
    test.await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the loop stops")
        .unwrap();
}

#[tokio::test]
async fn watch_creates_on_added_relists_after_gone_and_follows_the_group() {
    let added = json!({"type": "ADDED", "object": pod_json("101")});
    let (client, seen) = apiserver(node_server(
        Some(pod_json("101")),
        vec![pod_list("100", vec![]), pod_list("100", vec![])],
        vec![vec![added, bookmark("150"), gone()]],
    ));
    let berth = FakeBerth::default();
    running(client, &berth, async {
        until(|| !berth.state().creates.is_empty()).await;
        // The 410 ends the watch: listed again (resync, first list, list after 410).
        until(|| lists(&seen) == 3).await;
        // The sweep finds the group Pending; the pod's status follows it once.
        until(|| patches(&seen).len() == 1).await;
        tokio::time::sleep(RESYNC * 2).await;
        assert_eq!(
            patches(&seen).len(),
            1,
            "an unchanged group patches nothing"
        );
        berth.state().groups[0] = group("eci-1", UID, "Running");
        until(|| patches(&seen).len() == 2).await;
    })
    .await;
    assert_eq!(patches(&seen)[0]["status"]["phase"], "Pending");
    assert_eq!(patches(&seen)[1]["status"]["phase"], "Running");
    let s = berth.state();
    assert_eq!(
        s.groups.len(),
        1,
        "one group, however often the pod is seen"
    );
    assert!(s
        .creates
        .iter()
        .all(|p| p.client_token.as_deref() == Some(UID)));
    assert!(s.deletes.is_empty());
    let watches: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.query.contains("watch=true"))
        .map(|s| s.query.clone())
        .collect();
    assert!(watches[0].contains("resourceVersion=100"), "{watches:?}");
    assert!(!watches[1].contains("resourceVersion=100"), "{watches:?}");
}

#[tokio::test]
async fn berth_5xx_is_retried_with_back_off() {
    let (client, seen) = apiserver(node_server(Some(pod_json("101")), vec![], vec![]));
    let berth = FakeBerth::default();
    berth.state().fail_creates = 2;
    running(client, &berth, async {
        until(|| berth.state().groups.len() == 1).await;
        until(|| patches(&seen).len() == 1).await;
    })
    .await;
    assert_eq!(berth.state().creates.len(), 1);
    assert_eq!(
        patches(&seen)[0]["status"]["phase"],
        "Pending",
        "never Failed"
    );
}

#[tokio::test]
async fn deletion_waits_for_the_group_then_removes_the_pod() {
    let mut deleting = pod_json("120");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    deleting["metadata"]["deletionGracePeriodSeconds"] = json!(7);
    let modified = json!({"type": "MODIFIED", "object": deleting.clone()});
    let (client, seen) = apiserver(node_server(
        Some(deleting),
        vec![
            pod_list("110", vec![pod_json("110")]),
            pod_list("110", vec![pod_json("110")]),
        ],
        vec![vec![modified]],
    ));
    let berth = FakeBerth::default();
    berth.add("eci-1", UID, "Running");
    running(client, &berth, async {
        until(|| !berth.state().deletes.is_empty()).await;
        tokio::time::sleep(RESYNC + Duration::from_millis(500)).await;
        assert_eq!(
            count(&seen, &format!("DELETE {POD}")),
            0,
            "the group is Terminating"
        );
        berth.finish_deletes();
        until(|| count(&seen, &format!("DELETE {POD}")) == 1).await;
    })
    .await;
    let del = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.method == "DELETE")
        .unwrap()
        .body
        .clone();
    assert_eq!(del["gracePeriodSeconds"], 0);
    let s = berth.state();
    assert_eq!(s.deletes, ["eci-1"]);
    assert_eq!(
        s.delete_graces,
        [Some(7)],
        "the pod's deletion grace period"
    );
    assert!(s.creates.is_empty());
}

#[tokio::test]
async fn restart_creates_nothing_twice_and_removes_orphans() {
    let (client, seen) = apiserver(node_server(
        Some(pod_json("120")),
        vec![],
        vec![vec![bookmark("140")]],
    ));
    let berth = FakeBerth::default();
    berth.add("eci-1", UID, "Running");
    berth.add("eci-9", "6f0e0000-0000-4000-8000-00000000dead", "Running");
    running(client, &berth, async {
        until(|| patches(&seen).len() == 1).await;
    })
    .await;
    let s = berth.state();
    assert!(s.creates.is_empty(), "the pod's group exists: no create");
    assert_eq!(s.deletes, ["eci-9"]);
    assert_eq!(patches(&seen)[0]["status"]["phase"], "Running");
}
