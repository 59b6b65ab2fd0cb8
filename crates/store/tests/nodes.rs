//! Nodes, join tokens and groups by node on both stores: tokens and nodes kept, looked up and
//! removed, names unique, keys sealed at rest; every write of a group takes a new revision,
//! a node's groups are read by revision without missing a write that races the read; what
//! placed groups hold; the groups waiting for a node.

use std::collections::HashMap;
use std::sync::Arc;

use berth_core::placement::Room;
use berth_core::{
    GroupId, GroupRecord, GroupSpec, GroupStatus, JoinToken, NodeInfo, NodeOffer, NodeRecord,
    NodeState, Tag, TagChange, TagResourceType,
};
use berth_store::{NodeUsage, Store, StoreError};
use chrono::{DateTime, Duration, SubsecRound, Utc};

mod common;
use common::{Backend, TestStore};

/// A group written through one handle wakes another's `group_writes` (PostgreSQL, where
/// replicas share the database); SQLite tells of none.
async fn a_group_write_is_told_to_other_handles(s: TestStore) {
    let other = s.another().await;
    let Some(writes) = other.group_writes() else {
        assert!(s.url().is_none(), "PostgreSQL tells of group writes");
        return;
    };
    // The listening connection is made in the background.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let told = writes.notified();
    tokio::pin!(told);
    told.as_mut().enable();
    let g = group(9, Some(&node_id(1)), 1.0, 2.0);
    s.insert_group(&g).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), told)
        .await
        .expect("the write is told within 10 s");
}

on_both!(
    a_group_write_is_told_to_other_handles,
    join_tokens_are_kept_listed_and_removed,
    nodes_are_kept_by_id_with_unique_names,
    node_keys_are_sealed_at_rest,
    every_write_of_a_group_takes_a_new_revision,
    a_nodes_groups_are_read_by_revision,
    a_write_racing_a_read_of_a_nodes_groups_is_not_missed,
    placed_usage_sums_unfinished_groups_per_node,
    unplaced_groups_come_oldest_first,
    terminating_and_unfinished_groups_come_oldest_first,
);

fn token(id: &str, created: DateTime<Utc>) -> JoinToken {
    JoinToken {
        id: id.into(),
        digest: "ab".repeat(32),
        description: format!("for {id}"),
        created,
        expires: created + Duration::hours(24),
    }
}

fn node_id(n: u8) -> String {
    format!("node-{:0>16}", n)
}

fn node(n: u8, name: &str) -> NodeRecord {
    let now = Utc::now();
    NodeRecord {
        info: NodeInfo {
            id: node_id(n),
            name: name.into(),
            address: format!("10.0.0.{n}:7070"),
            state: NodeState::Ready,
            cordoned: false,
            draining: false,
            offer: NodeOffer {
                capacity: Room {
                    cpu_milli: 8000,
                    memory_mib: 16384,
                    containers: 100,
                },
                storage_bytes: 1 << 40,
                runtime_classes: vec!["runc".into()],
                ..Default::default()
            },
            joined: now,
            last_heartbeat: now,
        },
        key: vec![n; 32],
    }
}

/// Group `n` (ids differ for n < 36^2) of `cpu` vCPU and `memory` GiB, placed on `node`.
fn group(n: u32, node: Option<&str>, cpu: f64, memory: f64) -> GroupRecord {
    let mut id = [0u8; 20];
    id[0] = (n % 36) as u8;
    id[1] = (n / 36 % 36) as u8;
    GroupRecord {
        node: node.map(str::to_owned),
        ..GroupRecord::new(
            GroupId::from_random(id),
            "acct",
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu,
                memory,
                ephemeral_storage: Some(20),
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

async fn join_tokens_are_kept_listed_and_removed(s: TestStore) {
    let t0 = Utc::now().trunc_subsecs(3);
    let a = token("aaaaa1", t0);
    let b = token("bbbbb2", t0 - Duration::minutes(5));
    s.create_join_token(&a).await.unwrap();
    s.create_join_token(&b).await.unwrap();
    assert_eq!(s.join_token("aaaaa1").await.unwrap(), Some(a.clone()));
    assert_eq!(s.join_token("zzzzz9").await.unwrap(), None);
    assert_eq!(s.join_token("a\0").await.unwrap(), None);
    // By creation.
    assert_eq!(
        s.list_join_tokens().await.unwrap(),
        vec![b.clone(), a.clone()]
    );
    // The same id again: refused, the first kept.
    let again = JoinToken {
        description: "another".into(),
        ..a.clone()
    };
    assert!(matches!(
        s.create_join_token(&again).await,
        Err(StoreError::JoinTokenExists(id)) if id == "aaaaa1"
    ));
    assert_eq!(s.join_token("aaaaa1").await.unwrap(), Some(a.clone()));
    // Malformed ones are refused.
    for bad in [
        JoinToken {
            id: "ABCDEF".into(),
            ..a.clone()
        },
        JoinToken {
            id: "abc".into(),
            ..a.clone()
        },
        JoinToken {
            digest: "xyz".into(),
            ..a.clone()
        },
        JoinToken {
            id: "cccccc".into(),
            description: "x".repeat(201),
            ..a.clone()
        },
        JoinToken {
            id: "cccccc".into(),
            description: "line\nbreak".into(),
            ..a.clone()
        },
    ] {
        assert!(
            matches!(s.create_join_token(&bad).await, Err(StoreError::BadNode(_))),
            "{bad:?}"
        );
    }
    assert!(s.delete_join_token("aaaaa1").await.unwrap());
    assert!(!s.delete_join_token("aaaaa1").await.unwrap());
    assert!(!s.delete_join_token("\0").await.unwrap());
    assert_eq!(s.list_join_tokens().await.unwrap(), vec![b]);
}

async fn nodes_are_kept_by_id_with_unique_names(s: TestStore) {
    let one = node(1, "zeta");
    let two = node(2, "alpha");
    s.upsert_node(&one).await.unwrap();
    s.upsert_node(&two).await.unwrap();
    assert_eq!(s.get_node(&node_id(1)).await.unwrap(), Some(one.clone()));
    assert_eq!(s.node_by_name("alpha").await.unwrap(), Some(two.clone()));
    assert_eq!(s.get_node(&node_id(3)).await.unwrap(), None);
    assert_eq!(s.node_by_name("nobody").await.unwrap(), None);
    assert_eq!(s.node_by_name("a\0").await.unwrap(), None);
    // By name, without keys.
    assert_eq!(
        s.list_nodes().await.unwrap(),
        vec![two.info.clone(), one.info.clone()]
    );
    // Another id under a taken name: refused, nothing written.
    let thief = node(3, "zeta");
    assert!(matches!(
        s.upsert_node(&thief).await,
        Err(StoreError::NodeNameTaken(n)) if n == "zeta"
    ));
    assert_eq!(s.get_node(&node_id(3)).await.unwrap(), None);
    // The same id again: written over (a node joining again).
    let mut back = node(1, "zeta");
    back.info.address = "10.0.0.9:7070".into();
    back.key = vec![9; 32];
    s.upsert_node(&back).await.unwrap();
    assert_eq!(s.get_node(&node_id(1)).await.unwrap(), Some(back.clone()));
    // A change, by id; the id stays whatever the closure does.
    let changed = s
        .modify_node(&node_id(1), &mut |n| {
            n.cordoned = true;
            n.state = NodeState::NotReady;
            n.id = node_id(7);
        })
        .await
        .unwrap()
        .unwrap();
    assert!(changed.cordoned);
    assert_eq!(changed.id, node_id(1));
    let stored = s.get_node(&node_id(1)).await.unwrap().unwrap();
    assert_eq!(stored.info, changed);
    assert_eq!(stored.key, vec![9; 32], "a change keeps the key");
    assert_eq!(s.get_node(&node_id(7)).await.unwrap(), None);
    // A change to a taken name: refused.
    assert!(matches!(
        s.modify_node(&node_id(1), &mut |n| n.name = "alpha".into())
            .await,
        Err(StoreError::NodeNameTaken(_))
    ));
    assert_eq!(
        s.node_by_name("zeta").await.unwrap().unwrap().info.id,
        node_id(1)
    );
    assert_eq!(
        s.modify_node(&node_id(5), &mut |n| n.cordoned = true)
            .await
            .unwrap(),
        None
    );
    // Malformed: refused.
    let mut bad = node(4, "");
    assert!(matches!(
        s.upsert_node(&bad).await,
        Err(StoreError::BadNode(_))
    ));
    bad.info.name = "ok".into();
    bad.info.id = "node-1".into();
    assert!(matches!(
        s.upsert_node(&bad).await,
        Err(StoreError::BadNode(_))
    ));
    // A name shaped like an id would make `NAME|ID` ambiguous.
    assert!(matches!(
        s.upsert_node(&node(4, &node_id(9))).await,
        Err(StoreError::BadNode(_))
    ));
    let mut short_key = node(4, "ok");
    short_key.key = vec![1; 8];
    assert!(matches!(
        s.upsert_node(&short_key).await,
        Err(StoreError::BadNode(_))
    ));
    let mut many = node(4, "ok");
    many.info.offer.runtime_classes = (0..9).map(|i| format!("c{i}")).collect();
    assert!(matches!(
        s.upsert_node(&many).await,
        Err(StoreError::BadNode(_))
    ));
    // Deleted: gone; the name is free again.
    assert!(s.delete_node(&node_id(1)).await.unwrap());
    assert!(!s.delete_node(&node_id(1)).await.unwrap());
    assert_eq!(s.get_node(&node_id(1)).await.unwrap(), None);
    s.upsert_node(&thief).await.unwrap();
    assert_eq!(s.node_by_name("zeta").await.unwrap(), Some(thief));
}

/// The `key` column of node `id`, read past the store.
async fn raw_key(s: &TestStore, id: &str) -> String {
    let sql = format!("SELECT key FROM nodes WHERE id = '{id}'");
    match s.backend {
        Backend::Sqlite => rusqlite::Connection::open(s.dir.path().join("berth.db"))
            .unwrap()
            .query_row(&sql, [], |r| r.get(0))
            .unwrap(),
        Backend::Postgres => common::query_one(s.url().unwrap(), &sql).await.get(0),
    }
}

async fn node_keys_are_sealed_at_rest(s: TestStore) {
    let n = node(1, "sealed");
    s.upsert_node(&n).await.unwrap();
    let raw = raw_key(&s, &node_id(1)).await;
    assert!(!raw.contains(&hex::encode(&n.key)), "{raw}");
    assert!(!raw.as_bytes().windows(32).any(|w| w == n.key.as_slice()));
    // Opened again, by another handle on the same database.
    let other = s.another().await;
    assert_eq!(
        other.get_node(&node_id(1)).await.unwrap().unwrap().key,
        n.key
    );
}

async fn every_write_of_a_group_takes_a_new_revision(s: TestStore) {
    let r0 = s.group_revision().await.unwrap();
    let g = group(1, Some(&node_id(1)), 1.0, 2.0);
    s.insert_group(&g).await.unwrap();
    let r1 = s.group_revision().await.unwrap();
    assert!(r1 > r0);
    let rev_of = |page: berth_store::NodeGroups| page.groups.last().unwrap().0;
    assert_eq!(rev_of(s.node_groups(&node_id(1), 0, 10).await.unwrap()), r1);
    s.modify_group(&g.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    let r2 = s.group_revision().await.unwrap();
    assert!(r2 > r1);
    assert_eq!(rev_of(s.node_groups(&node_id(1), 0, 10).await.unwrap()), r2);
    // A write that changes nothing has nothing new to read.
    s.modify_group(&g.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    assert_eq!(s.group_revision().await.unwrap(), r2);
    s.change_tags(
        "acct",
        TagResourceType::ContainerGroup,
        &[g.id.to_string()],
        &TagChange::Set(vec![Tag {
            key: "k".into(),
            value: "v".into(),
        }]),
    )
    .await
    .unwrap();
    let r3 = s.group_revision().await.unwrap();
    assert!(r3 > r2);
    let page = s.node_groups(&node_id(1), 0, 10).await.unwrap();
    assert_eq!(page.groups[0].0, r3);
    assert_eq!(page.groups[0].1.spec.tags.len(), 1);
    // A claiming insert too.
    let g2 = group(2, None, 1.0, 1.0);
    s.insert_group_claiming(&g2, "{}", &berth_store::GroupLimits::UNLIMITED)
        .await
        .unwrap();
    assert!(s.group_revision().await.unwrap() > r3);
}

async fn a_nodes_groups_are_read_by_revision(s: TestStore) {
    let (a, b) = (node_id(1), node_id(2));
    for n in 0..5 {
        s.insert_group(&group(n, Some(&a), 1.0, 1.0)).await.unwrap();
        s.insert_group(&group(100 + n, Some(&b), 1.0, 1.0))
            .await
            .unwrap();
    }
    s.insert_group(&group(200, None, 1.0, 1.0)).await.unwrap();
    // Pages of two, by revision, only node a's.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = s.node_groups(&a, after, 2).await.unwrap();
        assert!(page.groups.len() <= 2);
        for (rev, g) in &page.groups {
            assert!(*rev > after);
            assert_eq!(g.node.as_deref(), Some(a.as_str()));
            seen.push(g.spec.name.clone());
        }
        assert!(page.revision >= after);
        if page.groups.is_empty() {
            break;
        }
        after = page.revision;
    }
    assert_eq!(seen, ["g0", "g1", "g2", "g3", "g4"]);
    assert_eq!(after, s.group_revision().await.unwrap());
    // Nothing new: an empty page, and the revision stays.
    let page = s.node_groups(&a, after, 2).await.unwrap();
    assert!(page.groups.is_empty());
    assert_eq!(page.revision, after);
    // A change of g1 brings it (alone) again; a group moved from b to a comes to a.
    let g1 = group(1, Some(&a), 1.0, 1.0);
    s.modify_group(&g1.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    let moved = group(100, Some(&b), 1.0, 1.0);
    s.modify_group(&moved.id, &mut |r| r.node = Some(a.clone()))
        .await
        .unwrap();
    let page = s.node_groups(&a, after, 10).await.unwrap();
    let names: Vec<_> = page
        .groups
        .iter()
        .map(|(_, g)| g.spec.name.as_str())
        .collect();
    assert_eq!(names, ["g1", "g100"]);
    assert_eq!(page.groups[0].1.status, GroupStatus::Running);
    assert_eq!(page.revision, s.group_revision().await.unwrap());
    // b no longer holds it.
    let page = s.node_groups(&b, 0, 100).await.unwrap();
    assert_eq!(page.groups.len(), 4);
    assert!(page.groups.iter().all(|(_, g)| g.spec.name != "g100"));
    assert!(s
        .node_groups(&node_id(9), 0, 10)
        .await
        .unwrap()
        .groups
        .is_empty());
    assert!(s.node_groups("n\0", 0, 10).await.unwrap().groups.is_empty());
    // A page of none goes on from where it was asked.
    let none = s.node_groups(&a, 0, 0).await.unwrap();
    assert!(none.groups.is_empty());
    assert_eq!(none.revision, 0);
}

/// Writers change groups of one node through two handles while a reader follows the node's
/// groups by revision, going on from each answer's revision: once the writers are done and
/// the reader has caught up, it has seen the last write of every group.
async fn a_write_racing_a_read_of_a_nodes_groups_is_not_missed(s: TestStore) {
    const GROUPS: u32 = 8;
    const WRITES: u64 = 40;
    let a = node_id(1);
    for n in 0..GROUPS {
        s.insert_group(&group(n, Some(&a), 1.0, 1.0)).await.unwrap();
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for n in 0..GROUPS {
        let store = if n % 2 == 0 {
            s.arc()
        } else {
            s.another().await
        };
        let done = Arc::clone(&done);
        writers.push(tokio::spawn(async move {
            let id = group(n, None, 1.0, 1.0).id;
            for _ in 0..WRITES {
                store
                    .modify_group(&id, &mut |r| r.restart_generation += 1)
                    .await
                    .unwrap();
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst) == GROUPS as usize;
        let page = s.node_groups(&a, after, 3).await.unwrap();
        pages += 1;
        for (_, g) in &page.groups {
            seen.insert(g.spec.name.clone(), g.restart_generation);
        }
        after = page.revision;
        // Caught up after every writer ended: nothing more can come.
        if finished && page.groups.is_empty() {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(pages > 1);
    for n in 0..GROUPS {
        assert_eq!(seen.get(&format!("g{n}")), Some(&WRITES), "g{n}: {seen:?}");
    }
}

async fn placed_usage_sums_unfinished_groups_per_node(s: TestStore) {
    let (a, b) = (node_id(1), node_id(2));
    s.insert_group(&group(1, Some(&a), 0.5, 1.0)).await.unwrap();
    s.insert_group(&group(2, Some(&a), 0.25, 0.5))
        .await
        .unwrap();
    s.insert_group(&group(3, Some(&b), 2.0, 4.0)).await.unwrap();
    // Finished, waiting and unplaced groups hold nothing on a node.
    let done = group(4, Some(&a), 8.0, 8.0);
    s.insert_group(&done).await.unwrap();
    s.modify_group(&done.id, &mut |r| r.status = GroupStatus::Succeeded)
        .await
        .unwrap();
    s.insert_group(&GroupRecord {
        waiting: true,
        ..group(5, Some(&b), 8.0, 8.0)
    })
    .await
    .unwrap();
    s.insert_group(&group(6, None, 8.0, 8.0)).await.unwrap();
    // A Terminating group still holds what it holds.
    let ending = group(7, Some(&b), 1.0, 1.0);
    s.insert_group(&ending).await.unwrap();
    s.modify_group(&ending.id, &mut |r| r.status = GroupStatus::Terminating)
        .await
        .unwrap();
    assert_eq!(
        s.placed_usage().await.unwrap(),
        vec![
            NodeUsage {
                node: a.clone(),
                cpu_milli: 750,
                memory_mib: 1536,
                storage_gib: 40,
                groups: 2,
            },
            NodeUsage {
                node: b.clone(),
                cpu_milli: 3000,
                memory_mib: 5120,
                storage_gib: 40,
                groups: 2,
            },
        ]
    );
    // Failing the last of b's... it holds nothing more.
    s.modify_group(&ending.id, &mut |r| r.status = GroupStatus::Failed)
        .await
        .unwrap();
    let usage = s.placed_usage().await.unwrap();
    assert_eq!(usage[1].groups, 1);
    assert_eq!(usage[1].cpu_milli, 2000);
}

async fn unplaced_groups_come_oldest_first(s: TestStore) {
    let t0 = Utc::now() - Duration::minutes(10);
    let at = |n: u32, minutes: i64, node: Option<&str>| GroupRecord {
        creation_time: t0 + Duration::minutes(minutes),
        ..group(n, node, 1.0, 1.0)
    };
    s.insert_group(&at(1, 3, None)).await.unwrap();
    s.insert_group(&at(2, 1, None)).await.unwrap();
    s.insert_group(&at(3, 2, None)).await.unwrap();
    s.insert_group(&at(4, 0, Some(&node_id(1)))).await.unwrap();
    let finished = at(5, 0, None);
    s.insert_group(&finished).await.unwrap();
    s.modify_group(&finished.id, &mut |r| r.status = GroupStatus::Failed)
        .await
        .unwrap();
    let deleting = at(6, 0, None);
    s.insert_group(&deleting).await.unwrap();
    s.modify_group(&deleting.id, &mut |r| r.status = GroupStatus::Terminating)
        .await
        .unwrap();
    let names = |v: Vec<GroupRecord>| v.into_iter().map(|g| g.spec.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.unplaced_groups(10).await.unwrap()),
        ["g2", "g3", "g1"]
    );
    assert_eq!(names(s.unplaced_groups(2).await.unwrap()), ["g2", "g3"]);
    // Placed: no longer waiting for a node.
    s.modify_group(&at(2, 1, None).id, &mut |r| r.node = Some(node_id(1)))
        .await
        .unwrap();
    assert_eq!(names(s.unplaced_groups(10).await.unwrap()), ["g3", "g1"]);
}

/// PostgreSQL hands out revisions outside transactions, so they may commit out of order: a
/// write that took a revision and commits after a later one must still be read by a reader
/// that goes on from an answer's revision.
#[tokio::test]
async fn a_revision_committed_after_a_later_one_is_read_on_postgres() {
    let s = Backend::Postgres.store().await;
    let url = s.url().unwrap().to_string();
    let a = node_id(1);
    let slow = group(1, Some(&a), 1.0, 1.0);
    // Of another account: the slow insert holds its account's count of groups.
    let fast = GroupRecord {
        account: "other".into(),
        ..group(2, Some(&a), 1.0, 1.0)
    };
    // Another session holds the slow group's billed row: its insert takes its revision, then
    // waits for that session.
    let (raw, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    raw.batch_execute(&format!(
        "BEGIN; INSERT INTO billed_groups (group_id, account, name) VALUES ('{}', 'acct', 'x')",
        slow.id
    ))
    .await
    .unwrap();
    let slow_insert = tokio::spawn({
        let (store, slow) = (s.arc(), slow.clone());
        async move { store.insert_group(&slow).await }
    });
    let taken = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM group_revision";
    while common::query_one(&url, taken).await.get::<_, i64>(0) < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A later revision, committed first.
    s.insert_group(&fast).await.unwrap();
    let reader = tokio::spawn({
        let (store, a) = (s.arc(), a.clone());
        async move { store.node_groups(&a, 0, 10).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    raw.batch_execute("ROLLBACK").await.unwrap();
    slow_insert.await.unwrap().unwrap();
    let first = reader.await.unwrap().unwrap();
    let second = s.node_groups(&a, first.revision, 10).await.unwrap();
    let mut names: Vec<_> = first
        .groups
        .iter()
        .chain(&second.groups)
        .map(|(_, g)| g.spec.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["g1", "g2"], "{first:?} then {second:?}");
}

/// A SQLite database from before revisions: its groups get revisions, their node, whether
/// they wait and when they were made from their records.
#[tokio::test]
async fn groups_of_a_database_made_before_revisions_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let a = node_id(1);
    let t0 = Utc::now() - Duration::minutes(10);
    let old = GroupRecord {
        creation_time: t0 + Duration::minutes(1),
        ..group(1, Some(&a), 1.0, 1.0)
    };
    let waiting = GroupRecord {
        waiting: true,
        ..group(2, Some(&a), 1.0, 1.0)
    };
    let (later, earlier) = (
        GroupRecord {
            creation_time: t0 + Duration::minutes(2),
            ..group(3, None, 1.0, 1.0)
        },
        GroupRecord {
            creation_time: t0,
            ..group(4, None, 1.0, 1.0)
        },
    );
    // A NUL character in a record does not stop the reading of its fields.
    let mut later = later;
    later.spec.tags.push(Tag {
        key: "k\0".into(),
        value: "v\0".into(),
    });
    {
        let s = berth_store::SqliteStore::open(&path).unwrap();
        for g in [&old, &waiting, &later, &earlier] {
            s.insert_group(g).await.unwrap();
        }
    }
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        db.execute_batch(
            "DROP TABLE group_revision; \
             DROP INDEX groups_node_revision; DROP INDEX groups_unplaced; \
             DROP INDEX groups_placed; DROP INDEX groups_terminating; DROP INDEX groups_unfinished; \
             ALTER TABLE groups DROP COLUMN node; ALTER TABLE groups DROP COLUMN waiting; \
             ALTER TABLE groups DROP COLUMN created; ALTER TABLE groups DROP COLUMN revision;",
        )
        .unwrap();
        db.pragma_update(None, "user_version", v - 2).unwrap();
    }
    let s = berth_store::SqliteStore::open(&path).unwrap();
    let page = s.node_groups(&a, 0, 10).await.unwrap();
    let revs: Vec<u64> = page.groups.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs.len(), 2);
    assert!(revs[0] > 0 && revs[1] > revs[0]);
    assert_eq!(page.revision, s.group_revision().await.unwrap());
    let usage = s.placed_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].groups, 1, "the waiting group holds nothing");
    let names: Vec<_> = s
        .unplaced_groups(10)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.spec.name)
        .collect();
    assert_eq!(names, ["g4", "g3"]);
    // A new write takes the revision after the last one.
    s.modify_group(&old.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    assert!(s.group_revision().await.unwrap() > page.revision);
}

/// A PostgreSQL database from before revisions: its groups get revisions, their node and
/// whether they wait from their records (a tag holding a NUL character too).
#[tokio::test]
async fn groups_of_a_postgres_database_made_before_revisions_get_them() {
    let s = Backend::Postgres.store().await;
    let url = s.url().unwrap().to_string();
    let a = node_id(1);
    let placed = group(1, Some(&a), 1.0, 1.0);
    let waiting = GroupRecord {
        waiting: true,
        ..group(2, Some(&a), 1.0, 1.0)
    };
    let mut nul_tag = group(3, None, 1.0, 1.0);
    nul_tag.spec.tags.push(Tag {
        key: "k\0".into(),
        value: "v\0".into(),
    });
    for g in [&placed, &waiting, &nul_tag] {
        s.insert_group(g).await.unwrap();
    }
    let (raw, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    raw.batch_execute(
        "DROP TABLE join_tokens; DROP TABLE nodes; DROP SEQUENCE group_revision; \
         DROP INDEX groups_node_revision; DROP INDEX groups_unplaced; DROP INDEX groups_placed; \
         ALTER TABLE groups DROP COLUMN waiting; ALTER TABLE groups DROP COLUMN revision; \
         DROP INDEX groups_terminating; DROP INDEX groups_unfinished; \
         UPDATE groups SET node = NULL; \
         DELETE FROM schema_migrations WHERE version >= (SELECT MAX(version) - 1 FROM schema_migrations);",
    )
    .await
    .unwrap();
    drop(raw);
    let s = s.another().await;
    let page = s.node_groups(&a, 0, 10).await.unwrap();
    let names: Vec<_> = page
        .groups
        .iter()
        .map(|(_, g)| g.spec.name.as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(page.groups.iter().all(|(r, _)| *r > 0));
    assert_eq!(page.revision, s.group_revision().await.unwrap());
    let usage = s.placed_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].groups, 1, "the waiting group holds nothing");
    let unplaced = s.unplaced_groups(10).await.unwrap();
    assert_eq!(unplaced.len(), 1);
    assert_eq!(unplaced[0].spec.tags, nul_tag.spec.tags);
    s.modify_group(&placed.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    assert!(s.group_revision().await.unwrap() > page.revision);
}

async fn terminating_and_unfinished_groups_come_oldest_first(s: TestStore) {
    let t0 = Utc::now() - Duration::minutes(10);
    let at = |n: u32, minutes: i64, node: Option<&str>| GroupRecord {
        creation_time: t0 + Duration::minutes(minutes),
        ..group(n, node, 1.0, 1.0)
    };
    let a = node_id(1);
    for (n, minutes, node, deleting) in [
        (1, 3, Some(a.as_str()), true),
        (2, 1, None, true),
        (3, 2, Some(a.as_str()), true),
        (4, 0, Some(a.as_str()), false),
    ] {
        let g = at(n, minutes, node);
        s.insert_group(&g).await.unwrap();
        if deleting {
            s.modify_group(&g.id, &mut |r| r.status = GroupStatus::Terminating)
                .await
                .unwrap();
        }
    }
    let names = |v: Vec<GroupRecord>| v.into_iter().map(|g| g.spec.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.terminating_groups(10).await.unwrap()),
        ["g2", "g3", "g1"]
    );
    assert_eq!(names(s.terminating_groups(1).await.unwrap()), ["g2"]);
    // Not finished: being deleted, or running.
    assert_eq!(
        names(s.unfinished_groups(10).await.unwrap()),
        ["g4", "g2", "g3", "g1"]
    );
    s.modify_group(&at(4, 0, None).id, &mut |r| {
        r.status = GroupStatus::Succeeded
    })
    .await
    .unwrap();
    assert_eq!(names(s.unfinished_groups(2).await.unwrap()), ["g2", "g3"]);
    s.delete_group(&at(2, 1, None).id).await.unwrap();
    assert_eq!(names(s.terminating_groups(10).await.unwrap()), ["g3", "g1"]);
}
