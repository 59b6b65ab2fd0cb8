//! The whole loop: the watch of the node's pods (list, watch with BOOKMARK, 410 Gone and a
//! new list), the sweep of berth's groups, and a restart that creates nothing twice.

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

/// The API server of one node: `lists` answers the lists in turn (the last one again after
/// that), `watches` the watches (then they hang); status patches are taken.
fn node_server(lists: Vec<Value>, watches: Vec<Vec<Value>>) -> Route {
    let (mut lists, mut watches) = (lists.into_iter(), watches.into_iter());
    let mut last = Value::Null;
    Box::new(move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1/pods") if s.query.contains("watch=true") => {
            assert!(s.query.contains("allowWatchBookmarks=true"), "{}", s.query);
            assert!(s.query.contains("fieldSelector=spec.nodeName%3Dvk-1"));
            watches.next().map_or(Reply::Hang, Reply::Watch)
        }
        ("GET", "/api/v1/pods") => {
            assert!(s.query.contains("fieldSelector=spec.nodeName%3Dvk-1"));
            if let Some(l) = lists.next() {
                last = l;
            }
            Reply::Json(200, last.clone())
        }
        ("PATCH", POD_STATUS) => {
            let mut p = pod_json("190");
            p["status"] = s.body["status"].clone();
            Reply::Json(200, p)
        }
        _ => panic!("{} {}", s.method, s.path),
    })
}

fn count(seen: &Arc<Mutex<Vec<Seen>>>, call: &str) -> usize {
    calls(seen).iter().filter(|c| *c == call).count()
}

#[tokio::test]
async fn watch_creates_on_added_and_relists_after_gone() {
    let added = json!({"type": "ADDED", "object": pod_json("101")});
    let (client, seen) = apiserver(node_server(
        vec![
            pod_list("100", vec![]),
            pod_list("100", vec![]),
            pod_list("180", vec![pod_json("101")]),
        ],
        vec![vec![added, bookmark("150"), gone()]],
    ));
    let berth = FakeBerth::default();
    let c = Arc::new(controller(client, &berth));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let c = c.clone();
        async move { c.run(shutdown).await }
    });
    until(|| !berth.state().creates.is_empty()).await;
    // The 410 ends the watch; the watcher lists again (resync, first list, list after 410).
    until(|| count(&seen, "GET /api/v1/pods") >= 4).await;
    // The sweep finds the group and the pod's status follows it.
    until(|| count(&seen, &format!("PATCH {POD_STATUS}")) >= 1).await;
    stop.send(true).unwrap();
    run.await.unwrap();
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
    assert!(watches[1].contains("resourceVersion=180"), "{watches:?}");
}

#[tokio::test]
async fn restart_creates_nothing_twice_and_removes_orphans() {
    let running = pod_json("120");
    let (client, seen) = apiserver(node_server(
        vec![pod_list("130", vec![running])],
        vec![vec![bookmark("140")]],
    ));
    let berth = FakeBerth::default();
    berth.add("eci-1", UID, "Running");
    berth.add("eci-9", "6f0e0000-0000-4000-8000-00000000dead", "Running");
    let c = Arc::new(controller(client, &berth));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let c = c.clone();
        async move { c.run(shutdown).await }
    });
    until(|| count(&seen, &format!("PATCH {POD_STATUS}")) >= 1).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    let s = berth.state();
    assert!(s.creates.is_empty(), "the pod's group exists: no create");
    assert_eq!(s.deletes, ["eci-9"]);
    let patch = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.method == "PATCH")
        .unwrap()
        .body
        .clone();
    assert_eq!(patch["status"]["phase"], "Running");
}
