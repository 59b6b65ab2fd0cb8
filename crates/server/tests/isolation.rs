//! Every action of one account on another account's ids: the answer is NotFound or shows
//! nothing of them, and the other account's group and image cache are unchanged. The
//! parameters come from an exhaustive match over the actions, so a new action cannot be left
//! out of this test.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_client::{Client, ClientError};
use berth_control::{LogRequest, NodeClient, NodeError, NodeObserve};
use berth_core::{GroupId, GroupRecord};
use berth_eci::Action;
use berth_store::{AccessKey, SqliteStore, Store};
use serde_json::Value;

mod common;
use common::{p, serve_on};

struct Node;

impl NodeObserve for Node {}
impl berth_control::CacheNode for Node {}

#[async_trait]
impl NodeClient for Node {
    async fn apply(&self, _rec: GroupRecord) {}
    async fn remove(&self, _id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        Ok(())
    }
    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        Ok("a secret line\n".into())
    }
}

/// The ids of account A that B's request names.
struct Theirs {
    group: String,
    cache: String,
    cache_name: String,
}

fn create_params(name: &str) -> Vec<(String, String)> {
    p(&[
        ("ContainerGroupName", name),
        ("RestartPolicy", "Never"),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", "127.0.0.1:5000/busybox:latest"),
    ])
}

/// B's request of `action` aimed at A's ids.
fn aimed_at(action: Action, a: &Theirs) -> Vec<(String, String)> {
    let ids = serde_json::to_string(&[&a.group]).unwrap();
    match action {
        Action::CreateContainerGroup => {
            let mut q = create_params("uses-their-cache");
            q.extend(p(&[("ImageSnapshotId", &a.cache)]));
            q
        }
        Action::DescribeContainerGroups
        | Action::DescribeContainerGroupStatus
        | Action::DescribeContainerGroupEvents
        | Action::DescribeMultiContainerGroupMetric => p(&[("ContainerGroupIds", &ids)]),
        Action::DeleteContainerGroup
        | Action::RestartContainerGroup
        | Action::DescribeContainerGroupMetric => p(&[("ContainerGroupId", &a.group)]),
        Action::PortForward => p(&[("ContainerGroupId", &a.group), ("Port", "80")]),
        Action::DescribeContainerLog => {
            p(&[("ContainerGroupId", &a.group), ("ContainerName", "c1")])
        }
        Action::UpdateContainerGroup => p(&[
            ("ContainerGroupId", &a.group),
            ("Container.1.Name", "c1"),
            ("Container.1.Image", "127.0.0.1:5000/busybox:2"),
        ]),
        Action::ExecContainerCommand => p(&[
            ("ContainerGroupId", &a.group),
            ("ContainerName", "c1"),
            ("Command", "[\"ls\"]"),
            ("Sync", "true"),
        ]),
        // B's own bill: A's groups must not be in it.
        Action::DescribeRegions | Action::ListUsage | Action::DescribeUsage => vec![],
        Action::DescribeContainerGroupPrice => p(&[("RegionId", "local")]),
        // The same name is B's own: a cache of B's, not A's.
        Action::CreateImageCache => p(&[("ImageCacheName", &a.cache_name), ("Image.1", "x:1")]),
        Action::DescribeImageCaches => p(&[("ImageCacheId", &a.cache)]),
        Action::UpdateImageCache => p(&[("ImageCacheId", &a.cache), ("Image.1", "y:1")]),
        Action::DeleteImageCache => p(&[("ImageCacheId", &a.cache)]),
        Action::TagResources => p(&[
            ("ResourceType", "ContainerGroup"),
            ("ResourceId.1", &a.group),
            ("Tag.1.Key", "stolen"),
        ]),
        Action::UntagResources => p(&[
            ("ResourceType", "ImageCache"),
            ("ResourceId.1", &a.cache),
            ("All", "true"),
        ]),
        Action::ListTagResources => p(&[
            ("ResourceType", "ContainerGroup"),
            ("ResourceId.1", &a.group),
        ]),
    }
}

/// What A sees of its group and cache.
async fn snapshot(a: &Client, t: &Theirs) -> Value {
    let ids = serde_json::to_string(&[&t.group]).unwrap();
    let g = a
        .call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupIds", &ids), ("WithEvent", "true")]),
        )
        .await
        .unwrap();
    let c = a
        .call("DescribeImageCaches", &p(&[("ImageCacheId", &t.cache)]))
        .await
        .unwrap();
    serde_json::json!([g["ContainerGroups"], c["ImageCaches"]])
}

#[tokio::test]
async fn no_action_reaches_another_accounts_ids() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let served = serve_on(store.clone(), Arc::new(Node)).await;
    let a = &served.client;
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

    let v = a
        .call("CreateContainerGroup", &create_params("theirs"))
        .await
        .unwrap();
    let group = v["ContainerGroupId"].as_str().unwrap().to_string();
    let v = a
        .call(
            "CreateImageCache",
            &p(&[("ImageCacheName", "their-cache"), ("Image.1", "a:1")]),
        )
        .await
        .unwrap();
    let theirs = Theirs {
        group,
        cache: v["ImageCacheId"].as_str().unwrap().to_string(),
        cache_name: "their-cache".into(),
    };
    // Let the cache's build end (this node keeps none: it fails), so that the snapshots
    // compare states at rest.
    let mut before = snapshot(a, &theirs).await;
    for _ in 0..250 {
        if before[1][0]["Status"] == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        before = snapshot(a, &theirs).await;
    }
    assert_eq!(before[1][0]["Status"], "Failed", "{before}");

    for action in Action::ALL {
        let q = aimed_at(action, &theirs);
        match b.call(action.as_str(), &q).await {
            Ok(v) => {
                let text = v.to_string();
                assert!(
                    !text.contains(&theirs.group) && !text.contains(&theirs.cache),
                    "{action:?} showed another account's id: {text}"
                );
                assert!(!text.contains("secret line"), "{action:?}: {text}");
            }
            Err(ClientError::Api { status, code, .. }) => {
                assert_eq!(status, 404, "{action:?}: {code}");
                assert!(code.ends_with(".NotFound"), "{action:?}: {code}");
            }
            Err(e) => panic!("{action:?}: {e}"),
        }
    }
    assert_eq!(snapshot(a, &theirs).await, before);
}
