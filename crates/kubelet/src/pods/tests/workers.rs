//! Reconciles of many pods run side by side, never two of one pod.

use std::time::Duration;

use serde_json::json;

use super::*;

const PODS: usize = 30;

fn uid(i: usize) -> String {
    format!("0b6c1c6e-1111-4222-8333-{i:012}")
}

fn pod(i: usize) -> Value {
    let mut p = pod_json("100");
    p["metadata"]["name"] = json!(format!("web-{i}"));
    p["metadata"]["uid"] = json!(uid(i));
    p
}

/// An API server holding `PODS` pods of the node; status patches are taken as sent.
fn many_pods() -> Route {
    let pods: Vec<Value> = (0..PODS).map(pod).collect();
    Box::new(move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1/pods") if s.query.contains("watch=true") => Reply::Watch(vec![]),
        ("GET", "/api/v1/pods") => Reply::Json(200, pod_list("100", pods.clone())),
        ("PATCH", path) if path.starts_with("/api/v1/namespaces/shop/pods/") => {
            let name = path.split('/').nth(6).unwrap_or_default();
            let p = pods
                .iter()
                .find(|p| p["metadata"]["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no pod {name}"));
            Reply::Json(200, p)
        }
        _ => panic!("{} {}", s.method, s.path),
    })
}

#[tokio::test]
async fn pods_are_reconciled_side_by_side_one_at_a_time_each() {
    let (client, _seen) = apiserver(many_pods());
    let berth = FakeBerth::default();
    berth.state().create_delay = Duration::from_millis(200);
    let c = Arc::new(controller(client, &berth));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let c = c.clone();
        async move { c.run(shutdown).await }
    });
    for _ in 0..200 {
        if berth.state().groups.len() == PODS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the loop stops")
        .unwrap();
    let s = berth.state();
    assert_eq!(s.groups.len(), PODS, "every pod got its group");
    assert!(
        s.most_creating > 1 && s.most_creating <= POD_SYNC_WORKERS,
        "{} creates at once",
        s.most_creating
    );
    assert_eq!(
        s.most_creating_one_pod, 1,
        "one reconcile per pod at a time"
    );
}

#[tokio::test]
async fn a_burst_of_new_pods_does_not_hold_back_the_status_of_a_running_one() {
    let berth = FakeBerth::default();
    berth.state().create_delay = Duration::from_millis(200);
    // The last pod listed already has a running group; the others are new.
    let last = PODS - 1;
    berth.add("eci-running", &uid(last), "Running");
    let creates_at_patch: Arc<Mutex<Option<usize>>> = Arc::default();
    let route: Route = {
        let mut inner = many_pods();
        let b = berth.clone();
        let at = creates_at_patch.clone();
        Box::new(move |s: &Seen| {
            if s.method == "PATCH" && s.path.ends_with(&format!("/web-{last}/status")) {
                let done = b.state().creates.len();
                at.lock().unwrap().get_or_insert(done);
            }
            inner(s)
        })
    };
    let (client, _seen) = apiserver(route);
    let c = Arc::new(controller(client, &berth));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let c = c.clone();
        async move { c.run(shutdown).await }
    });
    for _ in 0..200 {
        if creates_at_patch.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the loop stops")
        .unwrap();
    let done = creates_at_patch
        .lock()
        .unwrap()
        .expect("the running pod's status was patched");
    // In arrival order it would wait for the creates of the 29 pods before it (at least 20
    // done); ahead of them, it waits at most for one round of the workers.
    assert!(
        done <= POD_SYNC_WORKERS,
        "{done} creates finished before the running pod's status was patched"
    );
}
