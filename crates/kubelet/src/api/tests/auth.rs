//! 401 and 403 through TokenReview and SubjectAccessReview, client certificates, and the
//! token cache.

use super::*;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// `good` is bob (group ops), `admin` is root; bob may read stats only, root anything, alice
/// (from her certificate) the pods.
fn cluster(path: &str, body: &Value) -> (u16, Value) {
    match path {
        TOKEN_REVIEWS => {
            let user = match body["spec"]["token"].as_str() {
                Some("good") => Some(json!({"username": "bob", "uid": "u-bob", "groups": ["ops"]})),
                Some("admin") => Some(json!({"username": "root", "groups": ["system:masters"]})),
                _ => None,
            };
            let status = match user {
                Some(u) => json!({"authenticated": true, "user": u}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            let mut out = body.clone();
            out["status"] = status;
            (201, out)
        }
        ACCESS_REVIEWS => {
            let spec = &body["spec"];
            let attrs = &spec["resourceAttributes"];
            let allowed = match spec["user"].as_str() {
                Some("root") => true,
                Some("bob") => attrs["subresource"] == "stats",
                Some("alice") => attrs["subresource"] == "pods",
                _ => false,
            };
            let mut out = body.clone();
            out["status"] = json!({"allowed": allowed});
            (201, out)
        }
        _ => (404, json!({"kind": "Status", "code": 404})),
    }
}

#[tokio::test]
async fn tokens_and_certificates_are_reviewed_and_authorized() {
    let pki = Pki::new();
    let (client, seen) = apiserver(cluster);
    let berth = Arc::new(FakeBerth {
        groups: vec![group("eci-1", UID, "2026-01-01T00:00:00Z")],
        ..Default::default()
    });
    let auth = AuthConfig::Delegated {
        client,
        client_ca: Some(pki.ca_file()),
    };
    let (addr, _stop) = start(&pki, auth, berth).await;
    let http = pki.http(false);
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("https://{addr}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // No credentials, an unknown token: 401, and no authorization asked.
    let r = get("/pods", None).await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(v["reason"], "Unauthorized");
    assert_eq!(get("/pods", Some("nope")).await.unwrap().status(), 401);
    // bob may read stats, not pods (nor their proxy fallback).
    let r = get("/pods", Some("good")).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("user=bob, verb=get, resource=nodes, subresource(s)=[pods proxy]"),
        "{v}"
    );
    assert_eq!(
        get("/stats/summary", Some("good")).await.unwrap().status(),
        200
    );
    assert_eq!(
        get("/exec/shop/web-1/app?command=ls&stdout=1", Some("good"))
            .await
            .unwrap()
            .status(),
        403
    );
    // root may do anything.
    assert_eq!(get("/pods", Some("admin")).await.unwrap().status(), 200);
    {
        let seen = seen.lock().unwrap();
        let reviews: Vec<_> = seen.iter().filter(|s| s.1 == TOKEN_REVIEWS).collect();
        // bob's token was reviewed once, then cached.
        let bob = reviews
            .iter()
            .filter(|s| s.2["spec"]["token"] == "good")
            .count();
        assert_eq!(bob, 1);
        let sars: Vec<&Value> = seen
            .iter()
            .filter(|s| s.1 == ACCESS_REVIEWS)
            .map(|s| &s.2)
            .collect();
        let stats = sars
            .iter()
            .find(|b| b["spec"]["resourceAttributes"]["subresource"] == "stats")
            .unwrap();
        assert_eq!(
            stats["spec"]["resourceAttributes"],
            json!({"verb": "get", "group": "", "version": "v1", "resource": "nodes",
                   "subresource": "stats", "name": NODE})
        );
        assert_eq!(stats["spec"]["user"], "bob");
        assert_eq!(stats["spec"]["uid"], "u-bob");
        assert_eq!(stats["spec"]["groups"], json!(["ops"]));
        let exec = sars
            .iter()
            .find(|b| b["spec"]["resourceAttributes"]["verb"] == "create")
            .unwrap();
        assert_eq!(exec["spec"]["resourceAttributes"]["subresource"], "proxy");
    }
    // alice's certificate: her name and groups, no TokenReview.
    let before = seen.lock().unwrap().len();
    let alice = pki.http(true);
    let r = alice
        .get(format!("https://{addr}/pods"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = alice
        .get(format!("https://{addr}/stats/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let seen = seen.lock().unwrap();
    let after = &seen[before..];
    assert!(after.iter().all(|s| s.1 == ACCESS_REVIEWS), "{after:?}");
    assert_eq!(after[0].2["spec"]["user"], "alice");
    assert_eq!(after[0].2["spec"]["groups"], json!(["devs"]));
}

#[tokio::test]
async fn an_unreachable_api_server_admits_nobody() {
    let pki = Pki::new();
    let (client, _seen) = apiserver(|_, _| (503, json!({"kind": "Status", "code": 503})));
    let auth = AuthConfig::Delegated {
        client,
        client_ca: None,
    };
    let (addr, _stop) = start(&pki, auth, Arc::new(FakeBerth::default())).await;
    let r = pki
        .http(false)
        .get(format!("https://{addr}/healthz"))
        .bearer_auth("good")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
