//! The image cache records of both stores.

use berth_core::{CacheStatus, ImageCacheRecord};
use berth_store::{SqliteStore, Store, StoreError};

mod common;
use common::TestStore;

on_both!(insert_get_modify_list_delete,);
use chrono::Utc;

fn rec(id: &str, account: &str, name: &str) -> ImageCacheRecord {
    ImageCacheRecord {
        id: id.into(),
        account: account.into(),
        name: name.into(),
        images: vec!["busybox".into()],
        creation_time: Utc::now(),
        ..Default::default()
    }
}

async fn insert_get_modify_list_delete(s: TestStore) {
    s.insert_cache(&rec("imc-1", "a", "one"), "").await.unwrap();
    s.insert_cache(&rec("imc-2", "a", "two"), "").await.unwrap();
    s.insert_cache(&rec("imc-3", "b", "one"), "").await.unwrap();
    assert!(matches!(
        s.insert_cache(&rec("imc-4", "a", "one"), "").await,
        Err(StoreError::Exists(_))
    ));
    assert!(s.get_cache(Some("b"), "imc-1").await.unwrap().is_none());
    assert_eq!(
        s.get_cache(None, "imc-1").await.unwrap().unwrap().name,
        "one"
    );
    let r = s
        .modify_cache("imc-1", &mut |r| {
            r.status = CacheStatus::Ready;
            r.size_bytes = 42;
        })
        .await
        .unwrap();
    assert_eq!(r.status, CacheStatus::Ready);
    let back = s.get_cache(Some("a"), "imc-1").await.unwrap().unwrap();
    assert_eq!((back.status, back.size_bytes), (CacheStatus::Ready, 42));
    let ids: Vec<String> = s
        .list_caches(Some("a"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["imc-1", "imc-2"]);
    assert_eq!(s.list_caches(None).await.unwrap().len(), 3);
    assert!(matches!(
        s.modify_cache("imc-9", &mut |_| {}).await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_cache("imc-1").await.unwrap();
    assert!(s.get_cache(None, "imc-1").await.unwrap().is_none());
}

#[tokio::test]
async fn caches_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.insert_cache(&rec("imc-1", "a", "one"), "").await.unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.list_caches(Some("a")).await.unwrap().len(), 1);
}
