//! Throttling over the API: past its burst an account's requests of one class answer 400
//! `Throttling.User` with `x-acs-retry-after` and an ECI body, and change nothing; other
//! classes of the account and other accounts keep their own buckets.

use std::sync::Arc;
use std::time::Duration;

use berth_client::Client;
use berth_server::{Rate, ThrottleConfig};
use berth_store::{AccessKey, SqliteStore, Store};
use serde_json::Value;

mod common;
use common::{p, serve_throttled, Served};

use common::NullNode as Node;

/// Served with bursts of 3 writes and 5 reads, refilled slowly (one a second); with the
/// client of a second account.
async fn start() -> (Served, Client) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    store
        .create_access_key(&AccessKey {
            account: "other".into(),
            access_key_id: "AKOTHER".into(),
            secret: "other-secret".into(),
        })
        .await
        .unwrap();
    let config = ThrottleConfig {
        write: Rate {
            burst: 3,
            per_second: 1.0,
        },
        read: Rate {
            burst: 5,
            per_second: 1.0,
        },
    };
    let served = serve_throttled(store, Arc::new(Node), config).await;
    let other = Client::new(&served.endpoint, "AKOTHER", "other-secret")
        .unwrap()
        .with_region("local");
    (served, other)
}

fn create_params(name: &str) -> Vec<(String, String)> {
    p(&[
        ("ContainerGroupName", name),
        ("RestartPolicy", "Never"),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
        ("Container.1.Cpu", "0.25"),
        ("Container.1.Memory", "0.5"),
    ])
}

/// Sends a signed call and answers the status, the `x-acs-retry-after` header and the body.
async fn raw(c: &Client, action: &str, params: &[(String, String)]) -> (u16, Option<u64>, Value) {
    let nonce = format!("{:032x}", rand_nonce());
    let req = c.prepare(action, params, chrono::Utc::now(), &nonce);
    let mut b = reqwest::Client::new().post(&req.url);
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let resp = b.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("x-acs-retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body = resp.bytes().await.unwrap();
    (status, retry, serde_json::from_slice(&body).unwrap())
}

fn rand_nonce() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    t ^ u128::from(N.fetch_add(1, Ordering::Relaxed)) << 64
}

async fn groups(c: &Client) -> u64 {
    let v = c.call("DescribeContainerGroups", &[]).await.unwrap();
    v["TotalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn over_the_burst_is_throttled_with_a_retry_hint() {
    let (s, other) = start().await;
    for n in 0..3 {
        let (st, retry, _) = raw(
            &s.client,
            "CreateContainerGroup",
            &create_params(&format!("g{n}")),
        )
        .await;
        assert_eq!((st, retry), (200, None));
    }
    let (st, retry, body) = raw(&s.client, "CreateContainerGroup", &create_params("g3")).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["Code"], "Throttling.User");
    assert!(body["Message"]
        .as_str()
        .unwrap()
        .contains("CreateContainerGroup"));
    assert!(!body["RequestId"].as_str().unwrap().is_empty());
    let retry = retry.expect("x-acs-retry-after");
    assert!((1..=1000).contains(&retry), "{retry}");
    // Nothing was created; reads and deletes of the same account have buckets of their own.
    assert_eq!(groups(&s.client).await, 3);
    let v = s.client.call("DescribeContainerGroups", &[]).await.unwrap();
    let id = v["ContainerGroups"][0]["ContainerGroupId"]
        .as_str()
        .unwrap()
        .to_string();
    s.client
        .call("DeleteContainerGroup", &p(&[("ContainerGroupId", &id)]))
        .await
        .unwrap();
    // Another account is not throttled by this one's flood.
    for n in 0..3 {
        other
            .call("CreateContainerGroup", &create_params(&format!("o{n}")))
            .await
            .unwrap();
    }
    // After the hinted wait, a token is back.
    tokio::time::sleep(Duration::from_millis(retry + 20)).await;
    let (st, _, body) = raw(&s.client, "CreateContainerGroup", &create_params("g4")).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn reads_are_throttled_past_their_own_burst() {
    let (s, other) = start().await;
    for _ in 0..5 {
        let (st, _, _) = raw(&s.client, "DescribeContainerGroups", &[]).await;
        assert_eq!(st, 200);
    }
    let (st, retry, body) = raw(&s.client, "ListUsage", &[]).await;
    assert_eq!((st, body["Code"].as_str()), (400, Some("Throttling.User")));
    assert!(retry.is_some());
    assert_eq!(groups(&other).await, 0);
    let (st, _, body) = raw(&s.client, "CreateContainerGroup", &create_params("write")).await;
    assert_eq!(st, 200, "{body}");
}
