//! A running pod's volumes: a service-account token near its expiry is requested again and
//! the group's files updated; a ConfigMap that did not change sends nothing, one that did
//! sends its volume.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use berth_core::VolumeSource;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::*;

const CONFIG_MAP: &str = "/api/v1/namespaces/shop/configmaps/cfg";
const TOKEN: &str = "/api/v1/namespaces/shop/serviceaccounts/default/token";

fn config_map(level: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cfg", "namespace": "shop", "resourceVersion": "7"},
           "data": {"level": level}})
}

/// The API server's answer to a TokenRequest: `token`, valid for `secs` from now.
fn token_answer(req: &Value, token: &str, secs: i64) -> Value {
    let exp = Timestamp::now() + SignedDuration::from_secs(secs);
    let mut v = req.clone();
    v["status"] = json!({"token": token, "expirationTimestamp": exp.to_string()});
    v
}

/// The pod with a projected token volume and a configMap volume.
fn pod_with_volumes() -> Pod {
    let mut v = pod_json("100");
    v["spec"]["volumes"] = json!([
        {"name": "kube-api-access", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}},
        {"name": "config", "configMap": {"name": "cfg"}}
    ]);
    v["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "config", "mountPath": "/etc/app"}
    ]);
    pod(v)
}

/// The files of the group's volume `name`, decoded.
fn files(v: &berth_core::Volume) -> Vec<(String, String)> {
    let VolumeSource::ConfigFile { files, .. } = &v.source else {
        panic!("not a config volume: {v:?}");
    };
    files
        .iter()
        .map(|f| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&f.content)
                .unwrap();
            (f.path.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// The pod's group as berth lists it once it runs.
fn running(berth: &FakeBerth) -> berth_client::response::ContainerGroup {
    let mut s = berth.state();
    s.groups[0].status = "Running".into();
    s.groups[0].clone()
}

fn echo_status(s: &Seen) -> Reply {
    let mut p = pod_json("101");
    crate::pods::merge(&mut p["status"], &s.body["status"]);
    Reply::Json(200, p)
}

#[tokio::test]
async fn a_token_near_its_expiry_is_requested_again_and_the_group_updated() {
    let issued = std::sync::Arc::new(AtomicUsize::new(0));
    let n = issued.clone();
    let (client, seen) = apiserver(Box::new(move |s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", CONFIG_MAP) => Reply::Json(200, config_map("debug")),
            ("POST", TOKEN) => {
                assert_eq!(s.body["spec"]["expirationSeconds"], 3607);
                assert_eq!(s.body["spec"]["boundObjectRef"]["uid"], UID);
                // The first token is at the end of its life already; the second lasts an hour.
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                let secs = if k == 1 { 0 } else { 3600 };
                Reply::Json(201, token_answer(&s.body, &format!("token-{k}"), secs))
            }
            ("PATCH", POD_STATUS) => echo_status(s),
            _ => panic!("unexpected request {} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let p = pod_with_volumes();
    assert_eq!(
        c.reconcile(&p, None).await.unwrap(),
        Outcome::Created("eci-1".into())
    );
    let created = berth.state().creates[0].volumes[0].clone();
    assert_eq!(
        files(&created),
        [("token".to_string(), "token-1".to_string())]
    );

    let g = running(&berth);
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2, "requested again");
    {
        let s = berth.state();
        assert_eq!(s.updates.len(), 1);
        let (id, volumes) = &s.updates[0];
        assert_eq!(id, "eci-1");
        assert_eq!(volumes.len(), 1, "only the volume whose files changed");
        assert_eq!(volumes[0].name, "kube-api-access");
        assert_eq!(
            files(&volumes[0]),
            [("token".to_string(), "token-2".to_string())]
        );
    }

    // The new token is kept: nothing is requested or sent again.
    let g = berth.state().groups[0].clone();
    let before = seen.lock().unwrap().len();
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(berth.state().updates.len(), 1);
    assert!(calls(&seen)[before..].iter().all(|c| !c.contains("/token")));
}

#[tokio::test]
async fn a_config_map_that_did_not_change_sends_no_update() {
    let level = std::sync::Arc::new(std::sync::Mutex::new("debug".to_string()));
    let current = level.clone();
    let (client, _seen) = apiserver(Box::new(move |s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", CONFIG_MAP) => Reply::Json(200, config_map(&current.lock().unwrap())),
            ("POST", TOKEN) => Reply::Json(201, token_answer(&s.body, "token-1", 3600)),
            ("PATCH", POD_STATUS) => echo_status(s),
            _ => panic!("unexpected request {} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let mut c = controller(client, &berth);
    // Rendered again at every reconcile.
    c.cfg.volume_resync = Duration::ZERO;
    let p = pod_with_volumes();
    c.reconcile(&p, None).await.unwrap();
    let g = running(&berth);
    c.reconcile(&p, Some(&g)).await.unwrap();
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert!(berth.state().updates.is_empty(), "nothing changed");

    *level.lock().unwrap() = "info".into();
    c.reconcile(&p, Some(&g)).await.unwrap();
    let s = berth.state();
    assert_eq!(s.updates.len(), 1);
    assert_eq!(s.updates[0].1.len(), 1);
    assert_eq!(s.updates[0].1[0].name, "config");
    assert_eq!(
        files(&s.updates[0].1[0]),
        [("level".to_string(), "info".to_string())]
    );
}

#[tokio::test]
async fn a_group_that_does_not_run_is_not_updated() {
    let (client, seen) = apiserver(Box::new(|s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", CONFIG_MAP) => Reply::Json(200, config_map("debug")),
            ("POST", TOKEN) => Reply::Json(201, token_answer(&s.body, "token-1", 0)),
            ("PATCH", POD_STATUS) => echo_status(s),
            _ => panic!("unexpected request {} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let c = controller(client, &berth);
    let p = pod_with_volumes();
    c.reconcile(&p, None).await.unwrap();
    let mut g = berth.state().groups[0].clone();
    g.status = "Succeeded".into();
    let before = calls(&seen).len();
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert!(berth.state().updates.is_empty());
    assert!(calls(&seen)[before..].iter().all(|c| !c.contains("/token")));
}

/// A token as the API server issues them: a JWT with `iat` and `exp`.
fn jwt(iat: i64, exp: i64) -> String {
    let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let claims = json!({"iat": iat, "exp": exp, "sub": "system:serviceaccount:shop:default"});
    format!(
        "{}.{}.sig",
        b(br#"{"alg":"RS256"}"#),
        b(claims.to_string().as_bytes())
    )
}

#[tokio::test]
async fn a_restarted_controller_keeps_the_tokens_groups_hold() {
    let now = Timestamp::now().as_second();
    let fresh = jwt(now - 100, now + 3500);
    let requested = std::sync::Arc::new(AtomicUsize::new(0));
    let n = requested.clone();
    let answer = fresh.clone();
    let (client, _seen) = apiserver(Box::new(move |s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", CONFIG_MAP) => Reply::Json(200, config_map("debug")),
            ("POST", TOKEN) => {
                n.fetch_add(1, Ordering::SeqCst);
                Reply::Json(201, token_answer(&s.body, &answer, 3500))
            }
            ("PATCH", POD_STATUS) => echo_status(s),
            _ => panic!("unexpected request {} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let p = pod_with_volumes();
    controller(client.clone(), &berth)
        .reconcile(&p, None)
        .await
        .unwrap();
    assert_eq!(requested.load(Ordering::SeqCst), 1);
    let g = running(&berth);

    // A new controller (the virtual kubelet started again) renders the volumes at once.
    let c = controller(client, &berth);
    c.reconcile(&p, Some(&g)).await.unwrap();
    assert_eq!(
        requested.load(Ordering::SeqCst),
        1,
        "the group's token is kept"
    );
    assert!(berth.state().updates.is_empty(), "nothing changed");
}

#[tokio::test]
async fn pods_sharing_a_config_map_read_it_once_a_period() {
    let reads = std::sync::Arc::new(AtomicUsize::new(0));
    let n = reads.clone();
    let (client, _seen) = apiserver(Box::new(move |s: &Seen| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", CONFIG_MAP) => {
                n.fetch_add(1, Ordering::SeqCst);
                Reply::Json(200, config_map("debug"))
            }
            ("POST", TOKEN) => Reply::Json(201, token_answer(&s.body, "token-1", 3600)),
            ("PATCH", "/api/v1/namespaces/shop/pods/web-2/status") | ("PATCH", POD_STATUS) => {
                echo_status(s)
            }
            _ => panic!("unexpected request {} {}", s.method, s.path),
        }
    }));
    let berth = FakeBerth::default();
    let first = controller(client.clone(), &berth);
    let a = pod_with_volumes();
    let mut v = serde_json::to_value(&a).unwrap();
    v["metadata"]["name"] = json!("web-2");
    v["metadata"]["uid"] = json!("1c6d2d7f-2222-4333-8444-a55556666777");
    let b = pod(v);
    first.reconcile(&a, None).await.unwrap();
    first.reconcile(&b, None).await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2, "a new pod reads afresh");
    let groups: Vec<_> = {
        let mut s = berth.state();
        for g in s.groups.iter_mut() {
            g.status = "Running".into();
        }
        s.groups.clone()
    };

    // Started again: both pods' volumes are rendered at once, the ConfigMap read once.
    let c = controller(client, &berth);
    c.reconcile(&a, Some(&groups[0])).await.unwrap();
    c.reconcile(&b, Some(&groups[1])).await.unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 3);
    assert!(berth.state().updates.is_empty());
}
