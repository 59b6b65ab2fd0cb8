//! Secrets over the API: registry passwords given to CreateContainerGroup and
//! CreateImageCache reach the node but never an answer, and neither they nor the access key's
//! secret reach the database files in plain text.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_control::{LogRequest, NodeClient, NodeError, NodeObserve};
use berth_core::{GroupId, GroupRecord};
use berth_store::{SqliteStore, Store};

mod common;
use common::{p, serve_on};

const PASSWORD: &str = "registry-pw-Qm83Lx";
const CACHE_PASSWORD: &str = "cache-pw-Wd27Hc";

#[derive(Default)]
struct FakeNode {
    applied: Mutex<Vec<GroupRecord>>,
}

impl NodeObserve for FakeNode {}
impl berth_control::CacheNode for FakeNode {}

#[async_trait]
impl NodeClient for FakeNode {
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

fn files_hold(db: &Path, needle: &str) -> bool {
    ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        std::fs::read(&name)
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn registry_passwords_reach_the_node_but_no_answer_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let node = Arc::new(FakeNode::default());
    let served = serve_on(store, node.clone()).await;
    let c = &served.client;

    let created = c
        .call(
            "CreateContainerGroup",
            &p(&[
                ("ContainerGroupName", "sec"),
                ("ClientToken", "tok-sec"),
                ("Container.1.Name", "c1"),
                ("Container.1.Image", "registry.example:5000/app:1"),
                ("ImageRegistryCredential.1.Server", "registry.example:5000"),
                ("ImageRegistryCredential.1.UserName", "robot"),
                ("ImageRegistryCredential.1.Password", PASSWORD),
            ]),
        )
        .await
        .unwrap();
    let id = created["ContainerGroupId"].as_str().unwrap().to_string();
    let applied = node.applied.lock().unwrap().clone();
    assert_eq!(
        applied[0].spec.registry_credentials[0].password, PASSWORD,
        "the node gets the password to pull with"
    );
    c.call(
        "CreateImageCache",
        &p(&[
            ("ImageCacheName", "seccache"),
            ("ClientToken", "tok-cache"),
            ("Image.1", "registry.example:5000/app:1"),
            ("ImageRegistryCredential.1.Server", "registry.example:5000"),
            ("ImageRegistryCredential.1.UserName", "robot"),
            ("ImageRegistryCredential.1.Password", CACHE_PASSWORD),
        ]),
    )
    .await
    .unwrap();

    let answers = [
        c.call("DescribeContainerGroups", &[]).await.unwrap(),
        c.call(
            "DescribeContainerGroups",
            &p(&[("ContainerGroupIds", &format!("[\"{id}\"]"))]),
        )
        .await
        .unwrap(),
        c.call("DescribeImageCaches", &[]).await.unwrap(),
    ];
    assert_eq!(answers[0]["TotalCount"], 1);
    assert_eq!(
        answers[1]["ContainerGroups"][0]["ContainerGroupId"],
        id.as_str()
    );
    for a in &answers {
        let text = a.to_string();
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains(CACHE_PASSWORD), "{text}");
    }
    for needle in [PASSWORD, CACHE_PASSWORD, "s3cret"] {
        assert!(
            !files_hold(&db, needle),
            "{needle} is in the database files"
        );
    }
}
