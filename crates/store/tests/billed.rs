//! Names and tags of billed groups (kept after a delete, for bills of past months) and the
//! operator flag of accounts.

use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus, Tag};
use berth_store::{SqliteStore, Store, StoreError};

mod common;
use common::TestStore;

on_both!(
    a_deleted_group_keeps_its_last_name_and_tags,
    a_group_never_billed_leaves_nothing_behind,
    the_operator_flag,
);
use chrono::{Duration, Utc};

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

fn record(n: u8, tags: Vec<Tag>) -> GroupRecord {
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            "acct",
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: 1.0,
                memory: 2.0,
                tags,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

async fn ledger(s: &dyn Store) -> Vec<berth_store::LedgerPeriod> {
    let now = Utc::now();
    s.ledger(
        Some("acct"),
        now - Duration::hours(1),
        now + Duration::hours(1),
    )
    .await
    .unwrap()
}

async fn a_deleted_group_keeps_its_last_name_and_tags(s: TestStore) {
    let rec = record(1, vec![tag("team", "red")]);
    s.insert_group(&rec).await.unwrap();
    s.modify_group(&rec.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    s.modify_group(&rec.id, &mut |r| {
        r.spec.tags = vec![tag("team", "blue"), tag("env", "prod")]
    })
    .await
    .unwrap();
    s.delete_group(&rec.id).await.unwrap();
    let l = ledger(&*s).await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].group_name, "g1");
    assert_eq!(l[0].tags, vec![tag("team", "blue"), tag("env", "prod")]);
    assert!(l[0].ended.is_some());
    // Through another handle too.
    assert_eq!(
        ledger(&*s.another().await).await[0].tags[0],
        tag("team", "blue")
    );
    assert_eq!(s.count_rows("billed_groups").await, 1);
}

async fn a_group_never_billed_leaves_nothing_behind(s: TestStore) {
    let rec = record(2, vec![tag("team", "red")]);
    s.insert_group(&rec).await.unwrap();
    assert_eq!(s.count_rows("billed_groups").await, 1);
    s.delete_group(&rec.id).await.unwrap();
    assert_eq!(s.count_rows("billed_groups").await, 0);
    assert!(ledger(&*s).await.is_empty());
}

#[tokio::test]
async fn the_upgrade_names_the_groups_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let running = record(3, vec![tag("team", "green")]);
    {
        let s = SqliteStore::open(&path).unwrap();
        s.insert_group(&running).await.unwrap();
        s.modify_group(&running.id, &mut |r| r.status = GroupStatus::Running)
            .await
            .unwrap();
        s.create_account("acct").await.unwrap();
    }
    {
        // As a database made before the table and the operator column (and the groups'
        // change time, the runtime classes, the console's sessions, the leases, the nodes,
        // the revisions and the index of deletions, which came after them).
        let db = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        db.execute_batch(
            "DROP TABLE billed_groups; ALTER TABLE accounts DROP COLUMN operator; \
             DROP INDEX groups_changed; ALTER TABLE groups DROP COLUMN changed; \
             ALTER TABLE accounts DROP COLUMN runtime_classes; DROP TABLE console_sessions; \
             DROP TABLE leases; \
             DROP TABLE join_tokens; DROP TABLE nodes; DROP TABLE group_revision; \
             DROP INDEX groups_node_revision; DROP INDEX groups_unplaced; DROP INDEX groups_placed; \
             DROP INDEX groups_terminating; DROP INDEX groups_unfinished; \
             ALTER TABLE groups DROP COLUMN node; ALTER TABLE groups DROP COLUMN waiting; \
             ALTER TABLE groups DROP COLUMN created; ALTER TABLE groups DROP COLUMN revision; \
             INSERT INTO ledger (group_id, account, cpu_milli, memory_mib, storage_gib, started) \
             VALUES ('eci-gone', 'acct', 1000, 1024, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));",
        )
        .unwrap();
        db.pragma_update(None, "user_version", v - 9).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let l = ledger(&s).await;
    let named = l
        .iter()
        .find(|p| p.group_id == running.id.as_str())
        .unwrap();
    assert_eq!(named.group_name, "g3");
    assert_eq!(named.tags, vec![tag("team", "green")]);
    // A group deleted before names were kept: named by id alone.
    let gone = l.iter().find(|p| p.group_id == "eci-gone").unwrap();
    assert_eq!((gone.group_name.as_str(), gone.tags.len()), ("", 0));
    assert!(!s.account_operator("acct").await.unwrap());
}

async fn the_operator_flag(s: TestStore) {
    s.create_account("ops").await.unwrap();
    assert!(!s.account_operator("ops").await.unwrap());
    s.set_account_operator("ops", true).await.unwrap();
    assert!(s.account_operator("ops").await.unwrap());
    assert!(s.list_accounts().await.unwrap()[0].operator);
    s.set_account_operator("ops", false).await.unwrap();
    assert!(!s.account_operator("ops").await.unwrap());
    assert!(!s.account_operator("nobody").await.unwrap());
    assert!(matches!(
        s.set_account_operator("nobody", true).await,
        Err(StoreError::NoAccount(_))
    ));
}
