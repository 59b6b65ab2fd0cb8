//! `/containerLogs`: parameters passed to berth, the log followed as it comes, limitBytes.

use std::time::Duration;

use super::*;

fn berth_with_log() -> (Arc<FakeBerth>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(8);
    let berth = Arc::new(FakeBerth {
        // An older group of a pod of the same name, gone from the node: not the one read.
        groups: vec![
            group("eci-new", "other-uid", "2026-01-02T00:00:00Z"),
            group("eci-1", UID, "2026-01-01T00:00:00Z"),
        ],
        log: Mutex::new(Some(rx)),
        ..Default::default()
    });
    (berth, tx)
}

#[tokio::test]
async fn a_log_is_read_with_its_parameters() {
    let pki = Pki::new();
    let (berth, tx) = berth_with_log();
    let (addr, _stop) = start(&pki, AuthConfig::Anonymous, berth.clone()).await;
    tx.send(Bytes::from_static(b"one\ntwo\n")).await.unwrap();
    drop(tx);
    let url = format!(
        "https://{addr}/containerLogs/shop/web-1/sidecar?tailLines=2&timestamps=true&previous=1&sinceSeconds=60"
    );
    let r = pki.http(false).get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "one\ntwo\n");
    let q = berth.log_queries.lock().unwrap()[0].clone();
    assert_eq!(
        q,
        LogQuery {
            // The group of the pod the node knows, not the newer one.
            group_id: "eci-1".into(),
            container: "sidecar".into(),
            follow: false,
            tail: Some(2),
            since_seconds: Some(60),
            timestamps: true,
            previous: true,
        }
    );
    let r = pki
        .http(false)
        .get(format!("https://{addr}/containerLogs/shop/web-1/app?sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert!(v["message"].as_str().unwrap().contains("sinceTime"), "{v}");
}

#[tokio::test]
async fn a_followed_log_streams_as_it_comes_and_stops_at_limit_bytes() {
    let pki = Pki::new();
    let (berth, tx) = berth_with_log();
    let (addr, _stop) = start(&pki, AuthConfig::Anonymous, berth.clone()).await;
    let url = format!("https://{addr}/containerLogs/shop/web-1/app?follow=true&limitBytes=10");
    let mut r = pki.http(false).get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tx.send(Bytes::from_static(b"first\n")).await.unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The first line arrives while the container still runs.
    assert_eq!(&chunk[..], b"first\n");
    tx.send(Bytes::from_static(b"second\n")).await.unwrap();
    let mut rest = Vec::new();
    while let Some(c) = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.extend_from_slice(&c);
    }
    // Cut at 10 bytes, and the response ends although berth's stream goes on.
    assert_eq!(rest, b"seco");
    assert!(berth.log_queries.lock().unwrap()[0].follow);
}
