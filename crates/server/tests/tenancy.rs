//! Accounts over the API: one account's key never reaches another account's groups, a key
//! added or disabled in the store counts from the next request on, a refused key changes
//! nothing, and a ClientToken makes one group however many requests carry it.

use std::sync::Arc;
use std::time::Duration;

use berth_client::{Client, ClientError};
use berth_store::{AccessKey, SqliteStore, Store};

mod common;
use common::{p, serve_on, Served};

use common::NullNode as Node;

fn create_params(name: &str) -> Vec<(String, String)> {
    p(&[
        ("ContainerGroupName", name),
        ("RestartPolicy", "Never"),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
        ("Container.1.Cpu", "0.5"),
        ("Container.1.Memory", "1.0"),
    ])
}

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api {
            status,
            code,
            request_id,
            ..
        } => {
            assert!(!request_id.is_empty());
            (status, code)
        }
        other => panic!("not an API error: {other}"),
    }
}

struct Two {
    served: Served,
    store: Arc<dyn Store>,
    b: Client,
}

/// A server with account `acct` (the shared key) and account `b` with key `AKB`.
async fn two_accounts() -> Two {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let served = serve_on(store.clone(), Arc::new(Node)).await;
    store.create_account("b").await.unwrap();
    store
        .add_access_key(&AccessKey {
            account: "b".into(),
            access_key_id: "AKB".into(),
            secret: "b-secret".into(),
        })
        .await
        .unwrap();
    let b = Client::new(&served.endpoint, "AKB", "b-secret")
        .unwrap()
        .with_region("local");
    Two { served, store, b }
}

async fn total(c: &Client) -> u64 {
    let v = c.call("DescribeContainerGroups", &[]).await.unwrap();
    v["TotalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn another_accounts_group_is_not_found() {
    let t = two_accounts().await;
    let a = &t.served.client;
    let v = a
        .call("CreateContainerGroup", &create_params("of-a"))
        .await
        .unwrap();
    let id = v["ContainerGroupId"].as_str().unwrap().to_string();
    assert_eq!(total(&t.b).await, 0);
    let ids = serde_json::to_string(&[&id]).unwrap();
    let v =
        t.b.call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupIds", &ids)]),
        )
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 0);
    for action in ["DeleteContainerGroup", "RestartContainerGroup"] {
        let e =
            t.b.call(action, &p(&[("ContainerGroupId", &id)]))
                .await
                .unwrap_err();
        assert_eq!(
            code(e),
            (404, "InvalidParameter.NotFound".into()),
            "{action}"
        );
    }
    let v = a
        .call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupIds", &ids)]),
        )
        .await
        .unwrap();
    assert_eq!(v["ContainerGroups"][0]["Status"], "Scheduling");
}

#[tokio::test]
async fn disabled_keys_and_accounts_are_refused_at_once() {
    let t = two_accounts().await;
    // A key added while serving works at once.
    t.store
        .add_access_key(&AccessKey {
            account: "b".into(),
            access_key_id: "AKB2".into(),
            secret: "b2-secret".into(),
        })
        .await
        .unwrap();
    let b2 = Client::new(&t.served.endpoint, "AKB2", "b2-secret")
        .unwrap()
        .with_region("local");
    b2.call("CreateContainerGroup", &create_params("by-b2"))
        .await
        .unwrap();
    assert_eq!(total(&t.b).await, 1);

    t.store
        .set_access_key_disabled("b", "AKB2", true)
        .await
        .unwrap();
    let e = b2
        .call("CreateContainerGroup", &create_params("refused"))
        .await
        .unwrap_err();
    assert_eq!(code(e), (400, "InvalidAccessKeyId.Inactive".into()));
    // The other key of the account still works, and nothing was created.
    assert_eq!(total(&t.b).await, 1);

    t.store.set_account_disabled("b", true).await.unwrap();
    let e =
        t.b.call("CreateContainerGroup", &create_params("refused"))
            .await
            .unwrap_err();
    assert_eq!(code(e), (400, "InvalidAccessKeyId.Inactive".into()));
    let e = t.b.call("DescribeContainerGroups", &[]).await.unwrap_err();
    assert_eq!(code(e), (400, "InvalidAccessKeyId.Inactive".into()));
    // Other accounts are untouched.
    assert_eq!(total(&t.served.client).await, 0);

    t.store.set_account_disabled("b", false).await.unwrap();
    assert_eq!(total(&t.b).await, 1);
    t.store.delete_access_key("b", "AKB").await.unwrap();
    let e = t.b.call("DescribeContainerGroups", &[]).await.unwrap_err();
    assert_eq!(code(e).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_token_makes_one_group_under_concurrency() {
    let t = two_accounts().await;
    let mut params = create_params("once");
    params.push(("ClientToken".into(), "token-50".into()));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = t.served.client.clone();
            let params = params.clone();
            tokio::spawn(async move { c.call("CreateContainerGroup", &params).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        let v = call.await.unwrap().unwrap();
        ids.insert(v["ContainerGroupId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(total(&t.served.client).await, 1);

    // The same token with other parameters is refused and creates nothing.
    let mut other = create_params("different");
    other.push(("ClientToken".into(), "token-50".into()));
    let e = t
        .served
        .client
        .call("CreateContainerGroup", &other)
        .await
        .unwrap_err();
    assert_eq!(code(e), (400, "IdempotentParameterMismatch".into()));
    assert_eq!(total(&t.served.client).await, 1);

    // Another account's token of the same text is its own.
    let v = t.b.call("CreateContainerGroup", &params).await.unwrap();
    assert!(!ids.contains(v["ContainerGroupId"].as_str().unwrap()));

    // A retry after the delete answers the deleted group's id and creates nothing.
    let id = ids.into_iter().next().unwrap();
    t.served
        .client
        .call("DeleteContainerGroup", &p(&[("ContainerGroupId", &id)]))
        .await
        .unwrap();
    for _ in 0..100 {
        if total(&t.served.client).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(total(&t.served.client).await, 0);
    let v = t
        .served
        .client
        .call("CreateContainerGroup", &params)
        .await
        .unwrap();
    assert_eq!(v["ContainerGroupId"], id.as_str());
    assert_eq!(total(&t.served.client).await, 0);
}

#[tokio::test]
async fn client_tokens_are_checked() {
    let t = two_accounts().await;
    for bad in [
        "x".repeat(65),
        "with space".to_string(),
        "tab\there".to_string(),
    ] {
        let mut params = create_params("bad-token");
        params.push(("ClientToken".into(), bad.clone()));
        let e = t
            .served
            .client
            .call("CreateContainerGroup", &params)
            .await
            .unwrap_err();
        let (status, code) = code(e);
        assert_eq!(status, 400, "{bad:?}");
        assert!(code.starts_with("InvalidParameter"), "{bad:?}: {code}");
    }
    assert_eq!(total(&t.served.client).await, 0);
}

async fn caches(c: &Client) -> Vec<String> {
    let v = c.call("DescribeImageCaches", &[]).await.unwrap();
    v["ImageCaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ImageCacheId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_token_makes_one_image_cache() {
    let t = two_accounts().await;
    let c = &t.served.client;
    let params = p(&[
        ("ImageCacheName", "cached"),
        ("Image.1", "a:1"),
        ("Image.2", "b:1"),
        ("ClientToken", "cache-token"),
    ]);
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            let params = params.clone();
            tokio::spawn(async move { c.call("CreateImageCache", &params).await })
        })
        .collect();
    let mut answers = std::collections::HashSet::new();
    for call in calls {
        let v = call.await.unwrap().unwrap();
        answers.insert((
            v["ImageCacheId"].as_str().unwrap().to_string(),
            v["ContainerGroupId"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (id, group) = answers.into_iter().next().unwrap();
    assert_eq!(caches(c).await, std::slice::from_ref(&id));

    // The images in another order are the same request; other images are not.
    let reordered = p(&[
        ("ImageCacheName", "cached"),
        ("Image.1", "b:1"),
        ("Image.2", "a:1"),
        ("ClientToken", "cache-token"),
    ]);
    let v = c.call("CreateImageCache", &reordered).await.unwrap();
    assert_eq!(v["ImageCacheId"], id.as_str());
    let other = p(&[
        ("ImageCacheName", "cached"),
        ("Image.1", "a:1"),
        ("ClientToken", "cache-token"),
    ]);
    let e = c.call("CreateImageCache", &other).await.unwrap_err();
    assert_eq!(code(e), (400, "IdempotentParameterMismatch".into()));

    c.call("DeleteImageCache", &p(&[("ImageCacheId", &id)]))
        .await
        .unwrap();
    assert!(caches(c).await.is_empty());
    let v = c.call("CreateImageCache", &params).await.unwrap();
    assert_eq!(v["ImageCacheId"], id.as_str());
    assert_eq!(v["ContainerGroupId"], group.as_str());
    assert!(caches(c).await.is_empty());
}
