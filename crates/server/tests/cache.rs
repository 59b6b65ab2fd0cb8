//! The image cache actions and ListUsage over loopback HTTP, with a SQLite store and a node
//! that builds caches in memory: states, matching, ImageSnapshotId and AutoMatchImageCache on
//! CreateContainerGroup, quotas with LRU elimination, and the errors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_client::{Client, ClientError};
use berth_control::{
    CacheBuild, CacheMade, CacheNode, Control, LogRequest, NodeClient, NodeError, NodeObserve,
    Quota,
};
use berth_core::{GroupId, GroupRecord};
use serde_json::Value;

mod common;
use common::{p, serve_with};

/// Caches as the node would hold them: id → images. Images named `*fail*` cannot be pulled.
#[derive(Default)]
struct CacheFakeNode {
    caches: Mutex<BTreeMap<String, Vec<String>>>,
    applied: Mutex<Vec<GroupRecord>>,
    deleted: Mutex<Vec<String>>,
}

#[async_trait]
impl NodeClient for CacheFakeNode {
    async fn apply(&self, rec: GroupRecord) {
        self.applied.lock().unwrap().push(rec);
    }
    async fn remove(&self, _id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        Ok(())
    }
    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        Ok(String::new())
    }
}

impl NodeObserve for CacheFakeNode {}

#[async_trait]
impl CacheNode for CacheFakeNode {
    async fn create_image_cache(&self, build: &CacheBuild) -> Result<CacheMade, NodeError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(bad) = build.images.iter().find(|i| i.contains("fail")) {
            return Err(NodeError::Failed(format!("manifest unknown: {bad}")));
        }
        self.caches
            .lock()
            .unwrap()
            .insert(build.id.clone(), build.images.clone());
        Ok(CacheMade {
            size_bytes: 3 << 20,
            node: None,
        })
    }
    async fn delete_image_cache(&self, id: &str, _holders: &[String]) -> Result<(), NodeError> {
        self.caches.lock().unwrap().remove(id);
        self.deleted.lock().unwrap().push(id.to_string());
        Ok(())
    }
    async fn image_cache_matches(&self, images: &[String]) -> Vec<(String, usize)> {
        self.caches
            .lock()
            .unwrap()
            .iter()
            .map(|(id, held)| {
                (
                    id.clone(),
                    images.iter().filter(|i| held.contains(i)).count(),
                )
            })
            .collect()
    }
}

struct Api {
    client: Client,
    control: Arc<Control>,
    node: Arc<CacheFakeNode>,
}

async fn start() -> Api {
    let node = Arc::new(CacheFakeNode::default());
    let served = serve_with(node.clone()).await;
    Api {
        client: served.client,
        control: served.control,
        node,
    }
}

fn api_err(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("not an API error: {other}"),
    }
}

async fn create_cache(api: &Api, name: &str, images: &[&str], extra: &[(&str, &str)]) -> String {
    let mut q = p(&[("ImageCacheName", name)]);
    for (i, image) in images.iter().enumerate() {
        q.push((format!("Image.{}", i + 1), image.to_string()));
    }
    q.extend(p(extra));
    let v = api.client.call("CreateImageCache", &q).await.unwrap();
    assert!(v["ContainerGroupId"].as_str().unwrap().starts_with("eci-"));
    assert!(v["RequestId"].is_string());
    v["ImageCacheId"].as_str().unwrap().to_string()
}

async fn cache(api: &Api, id: &str) -> Value {
    let v = api
        .client
        .call("DescribeImageCaches", &p(&[("ImageCacheId", id)]))
        .await
        .unwrap();
    v["ImageCaches"][0].clone()
}

async fn wait_status(api: &Api, id: &str, want: &[&str]) -> Value {
    for _ in 0..200 {
        let c = cache(api, id).await;
        if want.contains(&c["Status"].as_str().unwrap_or_default()) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "image cache {id} never reached {want:?}: {}",
        cache(api, id).await
    );
}

fn group_params(name: &str, image: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut q = p(&[
        ("ContainerGroupName", name),
        ("Container.1.Name", "c1"),
        ("Container.1.Image", image),
    ]);
    q.extend(p(extra));
    q
}

#[tokio::test]
async fn lifecycle_match_update_delete() {
    let api = start().await;
    let id = create_cache(
        &api,
        "web",
        &["busybox", "nginx"],
        &[("RetentionDays", "2")],
    )
    .await;
    assert!(id.starts_with("imc-"));
    let c = wait_status(&api, &id, &["Ready"]).await;
    assert_eq!(c["Images"], serde_json::json!(["busybox", "nginx"]));
    assert_eq!(c["ImageCacheSize"], 1);
    assert!(!c["ExpireDateTime"].as_str().unwrap().is_empty());
    let reasons: Vec<&str> = c["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["Preparing", "Creating", "Created"]);

    let other = create_cache(&api, "other", &["redis"], &[]).await;
    wait_status(&api, &other, &["Ready"]).await;

    // MatchImage: only caches holding the image, best first; full match needs all of them.
    let v = api
        .client
        .call(
            "DescribeImageCaches",
            &p(&[("MatchImage.1", "busybox"), ("MatchImage.2", "redis")]),
        )
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 2);
    let v = api
        .client
        .call(
            "DescribeImageCaches",
            &p(&[
                ("MatchImage.1", "busybox"),
                ("MatchImage.2", "nginx"),
                ("ImageFullMatch", "true"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(v["ImageCaches"][0]["ImageCacheId"], id.as_str());
    assert_eq!(v["TotalCount"], 1);

    // Paging.
    let v = api
        .client
        .call("DescribeImageCaches", &p(&[("Limit", "1")]))
        .await
        .unwrap();
    assert_eq!(v["TotalCount"], 2);
    let token = v["NextToken"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let v = api
        .client
        .call(
            "DescribeImageCaches",
            &p(&[("Limit", "1"), ("NextToken", &token)]),
        )
        .await
        .unwrap();
    assert_eq!(v["ImageCaches"][0]["ImageCacheId"], other.as_str());
    assert_eq!(v["NextToken"], "");

    // Update with new images: Updating, then Ready with them.
    api.client
        .call(
            "UpdateImageCache",
            &p(&[
                ("ImageCacheId", &id),
                ("Image.1", "busybox"),
                ("Image.2", "redis"),
            ]),
        )
        .await
        .unwrap();
    let c = wait_status(&api, &id, &["Ready"]).await;
    assert_eq!(c["Images"], serde_json::json!(["busybox", "redis"]));
    // A failed update keeps the old images, and the cache stays usable.
    api.client
        .call(
            "UpdateImageCache",
            &p(&[("ImageCacheId", &id), ("Image.1", "fail:1")]),
        )
        .await
        .unwrap();
    let c = wait_status(&api, &id, &["UpdateFailed"]).await;
    assert_eq!(c["Images"], serde_json::json!(["busybox", "redis"]));

    // Names are unique per account.
    let e = api
        .client
        .call(
            "CreateImageCache",
            &p(&[("ImageCacheName", "web"), ("Image.1", "x")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 409);

    api.client
        .call("DeleteImageCache", &p(&[("ImageCacheId", &id)]))
        .await
        .unwrap();
    assert!(api.node.deleted.lock().unwrap().contains(&id));
    // Its storage was metered from Ready until the delete, and the interval is closed.
    let now = chrono::Utc::now();
    let metered = api
        .control
        .store()
        .usage(
            "acct",
            berth_control::CACHE_STORAGE,
            now - chrono::Duration::hours(1),
            now,
        )
        .await
        .unwrap();
    let this = metered
        .iter()
        .filter(|u| u.resource == id)
        .collect::<Vec<_>>();
    assert!(!this.is_empty(), "{metered:?}");
    assert!(
        this.iter().all(|u| u.ended.is_some() && u.quantity > 0),
        "{this:?}"
    );
    let e = api
        .client
        .call("DeleteImageCache", &p(&[("ImageCacheId", &id)]))
        .await
        .unwrap_err();
    assert_eq!(api_err(e), (404, "InvalidImageCache.NotFound".into()));
}

#[tokio::test]
async fn failed_cache_cannot_be_used_or_updated() {
    let api = start().await;
    let id = create_cache(&api, "bad", &["fail/image"], &[]).await;
    let c = wait_status(&api, &id, &["Failed"]).await;
    assert!(!c["ExpireDateTime"].as_str().unwrap().is_empty());
    let last = c["Events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["Type"], "Warning");
    assert!(last["Message"]
        .as_str()
        .unwrap()
        .contains("manifest unknown"));

    let e = api
        .client
        .call(
            "UpdateImageCache",
            &p(&[("ImageCacheId", &id), ("Image.1", "busybox")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e), (400, "IncorrectStatus".into()));

    let before = api.node.applied.lock().unwrap().len();
    let e = api
        .client
        .call(
            "CreateContainerGroup",
            &group_params("g1", "busybox", &[("ImageSnapshotId", &id)]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e), (400, "IncorrectStatus".into()));
    let e = api
        .client
        .call(
            "CreateContainerGroup",
            &group_params("g1", "busybox", &[("ImageSnapshotId", "imc-nope")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).0, 404);
    assert_eq!(api.node.applied.lock().unwrap().len(), before);
}

#[tokio::test]
async fn snapshot_id_and_auto_match_reach_the_node() {
    let api = start().await;
    let id = create_cache(&api, "web", &["busybox"], &[]).await;
    wait_status(&api, &id, &["Ready"]).await;

    api.client
        .call(
            "CreateContainerGroup",
            &group_params("explicit", "busybox", &[("ImageSnapshotId", &id)]),
        )
        .await
        .unwrap();
    let applied = api.node.applied.lock().unwrap().last().unwrap().clone();
    assert_eq!(applied.spec.image_snapshot_id.as_deref(), Some(id.as_str()));
    assert!(!cache(&api, &id).await["LastMatchedTime"]
        .as_str()
        .unwrap()
        .is_empty());

    // Auto match: the cache holding the image is chosen.
    api.client
        .call(
            "CreateContainerGroup",
            &group_params("auto", "busybox", &[("AutoMatchImageCache", "True")]),
        )
        .await
        .unwrap();
    let applied = api.node.applied.lock().unwrap().last().unwrap().clone();
    assert_eq!(applied.spec.image_snapshot_id.as_deref(), Some(id.as_str()));
    assert!(applied
        .events
        .iter()
        .any(|e| e.reason == "SuccessfulHitImageCache"));

    // No match: the group goes without a cache and one is made of its images.
    api.client
        .call(
            "CreateContainerGroup",
            &group_params("miss", "nginx", &[("AutoMatchImageCache", "true")]),
        )
        .await
        .unwrap();
    let applied = api.node.applied.lock().unwrap().last().unwrap().clone();
    assert_eq!(applied.spec.image_snapshot_id, None);
    let mut auto = Value::Null;
    for _ in 0..200 {
        let v = api.client.call("DescribeImageCaches", &[]).await.unwrap();
        if let Some(c) = v["ImageCaches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Images"] == serde_json::json!(["nginx"]) && c["Status"] == "Ready")
        {
            auto = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(auto["ContainerGroupId"], applied.id.as_str());
    let usage = api.client.call("ListUsage", &[]).await.unwrap();
    let a = &usage["Attributes"];
    assert_eq!(a["UsedImageCacheCount"], 1);
    assert_eq!(a["UsedAutoImageCacheCount"], 1);
    assert_eq!(a["MaxImageCacheCount"], 50);
    assert_eq!(a["MaxAutoImageCacheCount"], 20);
    assert!(a["UsedCpu"].as_f64().unwrap() > 0.0);
    assert!(a["MaxCpu"].is_number());
}

#[tokio::test]
async fn quota_evicts_the_least_recently_matched_lru_cache() {
    let api = start().await;
    api.control.set_quota(Quota {
        max_image_caches: 2,
        ..Quota::default()
    });
    let lru = [("EliminationStrategy", "LRU")];
    let a = create_cache(&api, "a1", &["a"], &lru).await;
    let b = create_cache(&api, "b1", &["b"], &lru).await;
    wait_status(&api, &a, &["Ready"]).await;
    wait_status(&api, &b, &["Ready"]).await;
    // `a` is used by a group, so `b` is the least recently matched.
    api.client
        .call(
            "CreateContainerGroup",
            &group_params("uses-a", "a", &[("ImageSnapshotId", &a)]),
        )
        .await
        .unwrap();
    let c = create_cache(&api, "c1", &["c"], &[]).await;
    wait_status(&api, &c, &["Ready"]).await;
    let v = api.client.call("DescribeImageCaches", &[]).await.unwrap();
    let ids: Vec<&str> = v["ImageCaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ImageCacheId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), c.as_str()]);
    // `c` may not be evicted and `a` is the only LRU one left; after it goes, the quota holds.
    let d = create_cache(&api, "d1", &["d"], &[]).await;
    wait_status(&api, &d, &["Ready"]).await;
    let e = api
        .client
        .call(
            "CreateImageCache",
            &p(&[("ImageCacheName", "e1"), ("Image.1", "e")]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e), (400, "QuotaExceeded.ImageCache".into()));
}

#[tokio::test]
async fn a_create_refused_by_quota_matches_no_cache_and_keeps_no_token() {
    let api = start().await;
    let id = create_cache(&api, "web", &["busybox"], &[]).await;
    wait_status(&api, &id, &["Ready"]).await;
    let quota = api.control.quota();
    api.control.set_quota(Quota {
        max_groups: 0,
        ..quota
    });
    // Two refusals with one token and different parameters: neither took the token.
    for chosen in [
        ("ImageSnapshotId", id.as_str()),
        ("AutoMatchImageCache", "True"),
    ] {
        let q = group_params("refused", "busybox", &[chosen, ("ClientToken", "tok-1")]);
        let e = api
            .client
            .call("CreateContainerGroup", &q)
            .await
            .unwrap_err();
        assert_eq!(api_err(e), (400, "QuotaExceeded.ContainerGroup".into()));
    }
    assert_eq!(cache(&api, &id).await["LastMatchedTime"], "");
    assert!(api.node.applied.lock().unwrap().is_empty());

    // Once the quota allows it, the same request creates the group and matches the cache;
    // its token now answers that group.
    api.control.set_quota(quota);
    let q = group_params(
        "refused",
        "busybox",
        &[("ImageSnapshotId", &id), ("ClientToken", "tok-1")],
    );
    let first = api.client.call("CreateContainerGroup", &q).await.unwrap();
    let matched = cache(&api, &id).await["LastMatchedTime"].clone();
    assert!(!matched.as_str().unwrap().is_empty(), "{matched}");
    let again = api.client.call("CreateContainerGroup", &q).await.unwrap();
    assert_eq!(first["ContainerGroupId"], again["ContainerGroupId"]);
    assert_eq!(api.node.applied.lock().unwrap().len(), 1);
}
