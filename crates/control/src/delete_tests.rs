//! DeleteContainerGroup while a removal is under way: a shorter grace period reaches the
//! node's removal in progress (as a second `NodeClient::remove`), a longer one does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus};
use berth_store::{SqliteStore, Store};
use chrono::Utc;
use tokio::sync::Notify;

use crate::{CacheNode, Control, LogRequest, NodeClient, NodeError, NodeObserve};

/// A node whose first removal stops containers until the test lets it end.
#[derive(Default)]
struct StoppingNode {
    removes: Mutex<Vec<Duration>>,
    done: Notify,
}

impl NodeObserve for StoppingNode {}
impl CacheNode for StoppingNode {}

#[async_trait]
impl NodeClient for StoppingNode {
    async fn apply(&self, _rec: GroupRecord) {}

    async fn remove(&self, _id: &GroupId, grace: Duration) -> Result<(), NodeError> {
        let first = {
            let mut r = self.removes.lock().unwrap();
            r.push(grace);
            r.len() == 1
        };
        if first {
            self.done.notified().await;
        }
        Ok(())
    }

    async fn read_log(&self, _id: &GroupId, _req: &LogRequest) -> Result<String, NodeError> {
        Ok(String::new())
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_shorter_grace_reaches_the_removal_under_way() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let control = Control::new(store.clone(), "local");
    let node = Arc::new(StoppingNode::default());
    control.attach_node(node.clone());
    let id = GroupId::from_random([3; 20]);
    let spec = GroupSpec {
        termination_grace_period_secs: 60,
        ..Default::default()
    };
    let mut rec = GroupRecord::new(id.clone(), "a", spec, Utc::now());
    rec.status = GroupStatus::Running;
    store.insert_group(&rec).await.unwrap();

    control.delete("a", &id, None).await.unwrap();
    settle().await;
    assert_eq!(*node.removes.lock().unwrap(), [Duration::from_secs(60)]);

    control.delete("a", &id, Some(5)).await.unwrap();
    settle().await;
    assert_eq!(
        *node.removes.lock().unwrap(),
        [Duration::from_secs(60), Duration::from_secs(5)],
        "the removal under way is told"
    );
    control.delete("a", &id, Some(30)).await.unwrap();
    control.delete("a", &id, None).await.unwrap();
    settle().await;
    assert_eq!(node.removes.lock().unwrap().len(), 2, "only a shorter one");
    let rec = control.get("a", &id).await.unwrap();
    assert_eq!(rec.spec.termination_grace_period_secs, 5);

    node.done.notify_one();
    for _ in 0..100 {
        if control.get("a", &id).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the group's record outlived its removal");
}
