//! The image cache records of the SQLite store.

use berth_core::{CacheStatus, ImageCacheRecord};
use berth_store::{SqliteStore, Store, StoreError};
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

#[test]
fn insert_get_modify_list_delete() {
    let s = SqliteStore::in_memory().unwrap();
    s.insert_cache(&rec("imc-1", "a", "one"), "").unwrap();
    s.insert_cache(&rec("imc-2", "a", "two"), "").unwrap();
    s.insert_cache(&rec("imc-3", "b", "one"), "").unwrap();
    assert!(matches!(
        s.insert_cache(&rec("imc-4", "a", "one"), ""),
        Err(StoreError::Exists(_))
    ));
    assert!(s.get_cache(Some("b"), "imc-1").unwrap().is_none());
    assert_eq!(s.get_cache(None, "imc-1").unwrap().unwrap().name, "one");
    let r = s
        .modify_cache("imc-1", &mut |r| {
            r.status = CacheStatus::Ready;
            r.size_bytes = 42;
        })
        .unwrap();
    assert_eq!(r.status, CacheStatus::Ready);
    let back = s.get_cache(Some("a"), "imc-1").unwrap().unwrap();
    assert_eq!((back.status, back.size_bytes), (CacheStatus::Ready, 42));
    let ids: Vec<String> = s
        .list_caches(Some("a"))
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["imc-1", "imc-2"]);
    assert_eq!(s.list_caches(None).unwrap().len(), 3);
    assert!(matches!(
        s.modify_cache("imc-9", &mut |_| {}),
        Err(StoreError::NotFound(_))
    ));
    s.delete_cache("imc-1").unwrap();
    assert!(s.get_cache(None, "imc-1").unwrap().is_none());
}

#[test]
fn caches_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.insert_cache(&rec("imc-1", "a", "one"), "").unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.list_caches(Some("a")).unwrap().len(), 1);
}
