//! One builder per image cache: a replica that starts, or the leader's sweep, leaves a build
//! alone while its replica renews the build's lease, and takes it up once that lease ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{CacheStatus, GroupId, GroupRecord};
use berth_store::{SqliteStore, Store};
use tokio::sync::Notify;

use crate::cache::NewImageCache;
use crate::{
    CacheBuild, CacheMade, CacheNode, Control, LogRequest, NodeClient, NodeError, NodeObserve,
};

/// A node whose builds wait until the test lets them end.
#[derive(Default)]
struct SlowNode {
    builds: AtomicUsize,
    done: Notify,
}

impl NodeObserve for SlowNode {}

#[async_trait]
impl CacheNode for SlowNode {
    async fn create_image_cache(&self, _build: &CacheBuild) -> Result<CacheMade, NodeError> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        self.done.notified().await;
        Ok(CacheMade {
            size_bytes: 1,
            node: Some("n1".into()),
        })
    }
}

#[async_trait]
impl NodeClient for SlowNode {
    async fn apply(&self, _rec: GroupRecord) {}

    async fn remove(&self, _id: &GroupId, _grace: Duration) -> Result<(), NodeError> {
        Ok(())
    }

    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        Ok(String::new())
    }
}

fn replica(store: &Arc<dyn Store>, name: &str, node: &Arc<SlowNode>) -> Arc<Control> {
    let c = Control::new(store.clone(), "local");
    c.enable_cluster(name.to_string());
    c.attach_node(node.clone());
    c
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_build_is_taken_up_only_when_its_replica_is_gone() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let node = Arc::new(SlowNode::default());
    let a = replica(&store, "replica-a", &node);
    let b = replica(&store, "replica-b", &node);
    let (id, _) = a
        .create_image_cache(
            "acct",
            NewImageCache {
                name: "c1".into(),
                images: vec!["127.0.0.1:5000/busybox:latest".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    settle().await;
    assert_eq!(node.builds.load(Ordering::SeqCst), 1);
    // A starting replica, and the same one again (as the leader's sweep): A builds it.
    b.resume_image_caches().await.unwrap();
    a.resume_image_caches().await.unwrap();
    settle().await;
    assert_eq!(
        node.builds.load(Ordering::SeqCst),
        1,
        "a second build while A builds"
    );
    // A goes away: its lease ends (taken over here as its expiry would), and B takes it up.
    store
        .release_lease(&format!("cache-build:{id}"), "replica-a")
        .await
        .unwrap();
    drop(a);
    b.resume_image_caches().await.unwrap();
    settle().await;
    assert_eq!(node.builds.load(Ordering::SeqCst), 2);
    node.done.notify_waiters();
    settle().await;
    let rec = store.get_cache(None, &id).await.unwrap().unwrap();
    assert_eq!(rec.status, CacheStatus::Ready, "{rec:?}");
    // Ready: nothing more to take up.
    b.resume_image_caches().await.unwrap();
    settle().await;
    assert_eq!(node.builds.load(Ordering::SeqCst), 2);
}
