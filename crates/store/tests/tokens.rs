//! ClientTokens in the store: unique per account and kind even under concurrent inserts from
//! several connections, kept after a delete, swept after the retention.

use std::sync::Arc;
use tokio::sync::Barrier;

use berth_core::{normalize_size, GroupId, GroupRecord, GroupSpec};
use berth_store::{GroupLimits, SqliteStore, Store, TokenKind};

mod common;
use common::TestStore;

on_both!(
    a_token_is_claimed_once_per_account,
    concurrent_inserts_from_several_connections_make_one_group,
    tokens_outlive_their_group_for_the_retention,
);
use chrono::Utc;

fn record(n: u8, account: &str, token: &str) -> GroupRecord {
    let size = normalize_size(None, None).unwrap();
    GroupRecord {
        client_token: Some(token.into()),
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            account,
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: size.cpu,
                memory: size.memory,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

async fn a_token_is_claimed_once_per_account(s: TestStore) {
    assert!(s
        .insert_group_claiming(&record(1, "a", "t"), "p1", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .is_none());
    let prev = s
        .insert_group_claiming(&record(2, "a", "t"), "p2", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prev.resource_id, GroupId::from_random([1; 20]).to_string());
    assert_eq!(prev.params, "p1");
    // The loser wrote nothing.
    assert!(s
        .get_group(None, &GroupId::from_random([2; 20]))
        .await
        .unwrap()
        .is_none());
    // Another account has its own tokens.
    assert!(s
        .insert_group_claiming(&record(3, "b", "t"), "p1", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .is_none());
    let found = s
        .find_client_token("a", TokenKind::Group, "t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.resource_id, GroupId::from_random([1; 20]).to_string());
    assert!(s
        .find_client_token("a", TokenKind::ImageCache, "t")
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_inserts_from_several_connections_make_one_group(s: TestStore) {
    // Four handles with connections of their own, as four processes or replicas.
    let mut stores: Vec<Arc<dyn Store>> = vec![s.arc()];
    for _ in 1..4 {
        stores.push(s.another().await);
    }
    let barrier = Arc::new(Barrier::new(40));
    let handles: Vec<_> = (0..40u8)
        .map(|n| {
            let s = Arc::clone(&stores[n as usize % stores.len()]);
            let b = Arc::clone(&barrier);
            tokio::spawn(async move {
                b.wait().await;
                s.insert_group_claiming(&record(n + 1, "a", "same"), "p", &GroupLimits::UNLIMITED)
                    .await
                    .unwrap()
                    .map(|u| u.resource_id)
            })
        })
        .collect();
    let mut results: Vec<Option<String>> = vec![];
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_none()).count(), 1);
    let winners: std::collections::HashSet<_> = results.iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    let page = stores[0]
        .list_groups("a", &Default::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(
        &page.groups[0].id.to_string(),
        *winners.iter().next().unwrap()
    );
}

async fn tokens_outlive_their_group_for_the_retention(s: TestStore) {
    let rec = record(1, "a", "t");
    assert!(s
        .insert_group_claiming(&rec, "p", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .is_none());
    s.delete_group(&rec.id).await.unwrap();
    let kept = s
        .find_client_token("a", TokenKind::Group, "t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.resource_id, rec.id.to_string());
    assert!(kept.deleted.is_some());
    // A retry after the delete finds the token: no second group.
    assert!(s
        .insert_group_claiming(&record(2, "a", "t"), "p", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .is_some());
    // Deletes a day later sweep it.
    s.sweep_client_tokens(Utc::now() + berth_store::TOKEN_RETENTION + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert!(s
        .find_client_token("a", TokenKind::Group, "t")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn tokens_of_a_database_made_before_are_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let rec = record(7, "a", "old-token");
    {
        // The schema of the first version, with a group that used a token.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE access_keys (access_key_id TEXT PRIMARY KEY, account TEXT NOT NULL, \
             secret TEXT NOT NULL);
             CREATE TABLE groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
             account TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, client_token TEXT, \
             record TEXT NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO groups (id, account, name, status, client_token, record) \
             VALUES (?1, 'a', 'g7', 'Running', 'old-token', ?2)",
            rusqlite::params![rec.id.as_str(), serde_json::to_string(&rec).unwrap()],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let found = s
        .find_client_token("a", TokenKind::Group, "old-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.resource_id, rec.id.to_string());
    let spec: GroupSpec = serde_json::from_str(&found.params).unwrap();
    assert_eq!(spec.name, "g7");
    assert!(spec.region_id.is_empty());
    assert!(s
        .insert_group_claiming(&record(8, "a", "old-token"), "x", &GroupLimits::UNLIMITED)
        .await
        .unwrap()
        .is_some());
}
