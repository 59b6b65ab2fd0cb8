//! Accounts and access keys: several keys per account, the disabled flags as the API reads
//! them, changes made through a second handle on the same file, and the upgrade of a database
//! made before accounts existed.

use berth_store::{AccessKey, SqliteStore, Store, StoreError};

mod common;
use common::TestStore;

on_both!(
    keys_belong_to_accounts_and_follow_their_flags,
    create_access_key_makes_the_account,
    a_second_handle_sees_changes_at_once,
);

fn key(account: &str, id: &str) -> AccessKey {
    AccessKey {
        account: account.into(),
        access_key_id: id.into(),
        secret: format!("secret-of-{id}"),
    }
}

async fn keys_belong_to_accounts_and_follow_their_flags(s: TestStore) {
    s.create_account("team-a").await.unwrap();
    assert!(matches!(
        s.create_account("team-a").await,
        Err(StoreError::AccountExists(_))
    ));
    assert!(matches!(
        s.add_access_key(&key("nobody", "AK0")).await,
        Err(StoreError::NoAccount(_))
    ));
    s.add_access_key(&key("team-a", "AK1")).await.unwrap();
    s.add_access_key(&key("team-a", "AK2")).await.unwrap();
    assert!(matches!(
        s.add_access_key(&key("team-a", "AK2")).await,
        Err(StoreError::KeyExists(_))
    ));
    let keys = s.list_access_keys("team-a").await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| k.access_key_id.as_str())
            .collect::<Vec<_>>(),
        ["AK1", "AK2"]
    );
    assert!(keys.iter().all(|k| !k.disabled));

    let c = s.check_access_key("AK1").await.unwrap().unwrap();
    assert!(c.active);
    assert_eq!(c.key.secret, "secret-of-AK1");

    s.set_access_key_disabled("team-a", "AK1", true)
        .await
        .unwrap();
    assert!(!s.check_access_key("AK1").await.unwrap().unwrap().active);
    assert!(s.check_access_key("AK2").await.unwrap().unwrap().active);
    // A key is changed only through its own account.
    assert!(matches!(
        s.set_access_key_disabled("other", "AK2", true).await,
        Err(StoreError::NoKey(..))
    ));
    s.set_access_key_disabled("team-a", "AK1", false)
        .await
        .unwrap();
    assert!(s.check_access_key("AK1").await.unwrap().unwrap().active);

    s.set_account_disabled("team-a", true).await.unwrap();
    assert!(!s.check_access_key("AK1").await.unwrap().unwrap().active);
    assert!(!s.check_access_key("AK2").await.unwrap().unwrap().active);
    let accounts = s.list_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert!(accounts[0].disabled);
    assert_eq!(accounts[0].keys, 2);
    s.set_account_disabled("team-a", false).await.unwrap();
    assert!(s.check_access_key("AK2").await.unwrap().unwrap().active);
    assert!(matches!(
        s.set_account_disabled("nobody", true).await,
        Err(StoreError::NoAccount(_))
    ));

    s.delete_access_key("team-a", "AK1").await.unwrap();
    assert!(s.check_access_key("AK1").await.unwrap().is_none());
    assert!(matches!(
        s.delete_access_key("team-a", "AK1").await,
        Err(StoreError::NoKey(..))
    ));
    assert!(matches!(
        s.list_access_keys("nobody").await,
        Err(StoreError::NoAccount(_))
    ));
}

async fn create_access_key_makes_the_account(s: TestStore) {
    s.create_access_key(&key("default", "AK")).await.unwrap();
    let accounts = s.list_accounts().await.unwrap();
    assert_eq!(accounts[0].name, "default");
    assert!(!accounts[0].disabled);
    assert!(s.check_access_key("AK").await.unwrap().unwrap().active);
}

async fn a_second_handle_sees_changes_at_once(s: TestStore) {
    let server = s.arc();
    let admin = s.another().await;
    admin.create_account("b").await.unwrap();
    assert!(server.check_access_key("AKB").await.unwrap().is_none());
    admin.add_access_key(&key("b", "AKB")).await.unwrap();
    // Checked twice: the second answer comes from what the server remembers.
    assert!(
        server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert!(
        server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    admin
        .set_access_key_disabled("b", "AKB", true)
        .await
        .unwrap();
    assert!(
        !server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    admin
        .set_access_key_disabled("b", "AKB", false)
        .await
        .unwrap();
    assert!(
        server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    admin.set_account_disabled("b", true).await.unwrap();
    assert!(
        !server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    admin.set_account_disabled("b", false).await.unwrap();
    assert!(
        server
            .check_access_key("AKB")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    admin.delete_access_key("b", "AKB").await.unwrap();
    assert!(server.check_access_key("AKB").await.unwrap().is_none());
    // The server's own changes count for itself too.
    server.add_access_key(&key("b", "AKC")).await.unwrap();
    assert!(
        server
            .check_access_key("AKC")
            .await
            .unwrap()
            .unwrap()
            .active
    );
    server
        .set_access_key_disabled("b", "AKC", true)
        .await
        .unwrap();
    assert!(
        !server
            .check_access_key("AKC")
            .await
            .unwrap()
            .unwrap()
            .active
    );
}

#[tokio::test]
async fn a_database_without_accounts_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    {
        // The schema of the first version: keys without accounts.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE access_keys (access_key_id TEXT PRIMARY KEY, account TEXT NOT NULL, \
             secret TEXT NOT NULL);
             CREATE TABLE groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
             account TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, client_token TEXT, \
             record TEXT NOT NULL);
             INSERT INTO access_keys VALUES ('AKOLD', 'default', 'old-secret');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let c = s.check_access_key("AKOLD").await.unwrap().unwrap();
    assert!(c.active);
    assert_eq!(c.key.secret, "old-secret");
    assert_eq!(s.list_accounts().await.unwrap()[0].name, "default");
    let old = &s.list_access_keys("default").await.unwrap()[0];
    assert!(old.created > chrono::Utc::now() - chrono::Duration::hours(1));
    s.add_access_key(&key("default", "AKNEW")).await.unwrap();
    drop(s);
    // Opening again runs nothing twice.
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.list_access_keys("default").await.unwrap().len(), 2);
}
