//! The metering ledger (ADR 0010): billed periods follow the status writes, in the same
//! transaction, across a reopen of the database, with ends taken from the containers' exits.

use berth_core::metering::BilledTerms;
use berth_core::{
    ContainerState, ContainerStatus, GroupId, GroupRecord, GroupSpec, GroupStatus, StateKind,
};
use berth_store::{SqliteStore, Store};

mod common;
use common::TestStore;

on_both!(
    a_lifecycle_is_one_period_from_pending_to_the_last_exit,
    exits_while_berth_was_down_are_settled_from_their_times,
    a_resize_starts_a_new_period_and_a_delete_ends_it,
    a_group_deleted_before_its_start_is_never_billed,
    periods_by_account_and_time,
    a_spot_group_is_billed_at_its_price_in_force_and_not_after_it_expired,
);
use chrono::{Duration, Utc};

fn record(n: u8) -> GroupRecord {
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            "acct",
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: 2.0,
                memory: 4.0,
                ephemeral_storage: Some(40),
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

async fn set(s: &dyn Store, id: &GroupId, status: GroupStatus) {
    s.modify_group(id, &mut |r| r.status = status)
        .await
        .unwrap();
}

fn exited(at: chrono::DateTime<Utc>) -> ContainerStatus {
    ContainerStatus {
        name: "c".into(),
        current: ContainerState::terminated(1, None, false, Some(at - Duration::seconds(5)), at),
        ..Default::default()
    }
}

const TERMS: BilledTerms = BilledTerms {
    cpu_milli: 2000,
    memory_mib: 4096,
    storage_gib: 10,
};

async fn a_lifecycle_is_one_period_from_pending_to_the_last_exit(s: TestStore) {
    let rec = record(1);
    s.insert_group(&rec).await.unwrap();
    assert!(
        s.group_ledger(&rec.id).await.unwrap().is_empty(),
        "Scheduling is not billed"
    );
    let before = Utc::now();
    set(&*s, &rec.id, GroupStatus::Pending).await;
    set(&*s, &rec.id, GroupStatus::Running).await;
    set(&*s, &rec.id, GroupStatus::Restarting).await;
    set(&*s, &rec.id, GroupStatus::Running).await;
    let l = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].terms, TERMS);
    assert_eq!(l[0].account, "acct");
    assert!(l[0].ended.is_none() && l[0].started >= before - Duration::milliseconds(1));
    let exit = Utc::now();
    s.modify_group(&rec.id, &mut |r| {
        r.containers = vec![exited(exit)];
        r.status = GroupStatus::Failed;
    })
    .await
    .unwrap();
    let l = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(l.len(), 1);
    let ended = l[0].ended.unwrap();
    assert!(
        (ended - exit).num_milliseconds().abs() <= 1,
        "{ended} vs {exit}"
    );
    // Deleting the finished group bills nothing more.
    set(&*s, &rec.id, GroupStatus::Terminating).await;
    s.delete_group(&rec.id).await.unwrap();
    assert_eq!(s.group_ledger(&rec.id).await.unwrap(), l);
}

async fn exits_while_berth_was_down_are_settled_from_their_times(first: TestStore) {
    let rec = record(2);
    first.insert_group(&rec).await.unwrap();
    set(&*first, &rec.id, GroupStatus::Pending).await;
    set(&*first, &rec.id, GroupStatus::Running).await;
    // berth stops here; the open period is stored with the record, and a new handle goes on.
    let s = first.another().await;
    let open = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].ended.is_none());
    // The container ended while berth was down: its exit record's time ends the period,
    // not the moment the re-adopting node reports it.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let exit = open[0].started + Duration::milliseconds(250);
    s.modify_group(&rec.id, &mut |r| {
        r.containers = vec![exited(exit)];
        r.status = GroupStatus::Succeeded;
    })
    .await
    .unwrap();
    let l = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(l[0].ended, Some(exit));
    assert_eq!(l[0].millis_within(l[0].started, Utc::now()), 250);
}

async fn a_resize_starts_a_new_period_and_a_delete_ends_it(s: TestStore) {
    let rec = record(3);
    s.insert_group(&rec).await.unwrap();
    set(&*s, &rec.id, GroupStatus::Pending).await;
    s.modify_group(&rec.id, &mut |r| {
        r.status = GroupStatus::Updating;
        r.spec.memory = 8.0;
    })
    .await
    .unwrap();
    set(&*s, &rec.id, GroupStatus::Running).await;
    set(&*s, &rec.id, GroupStatus::Terminating).await;
    let l = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0].terms, TERMS);
    assert_eq!(l[0].ended, Some(l[1].started));
    assert_eq!(l[1].terms.memory_mib, 8192);
    assert!(l[1].ended.is_none(), "Terminating after Running is billed");
    s.delete_group(&rec.id).await.unwrap();
    let l = s.group_ledger(&rec.id).await.unwrap();
    assert!(l[1].ended.is_some());
    assert!(l[1].ended.unwrap() >= l[1].started);
}

async fn a_group_deleted_before_its_start_is_never_billed(s: TestStore) {
    let rec = record(4);
    s.insert_group(&rec).await.unwrap();
    set(&*s, &rec.id, GroupStatus::Terminating).await;
    s.delete_group(&rec.id).await.unwrap();
    assert!(s.group_ledger(&rec.id).await.unwrap().is_empty());
}

async fn periods_by_account_and_time(s: TestStore) {
    let (a, mut b) = (record(5), record(6));
    b.account = "other".into();
    for r in [&a, &b] {
        s.insert_group(r).await.unwrap();
        set(&*s, &r.id, GroupStatus::Running).await;
    }
    let now = Utc::now();
    let all = s
        .ledger(None, now - Duration::hours(1), now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let mine = s
        .ledger(
            Some("acct"),
            now - Duration::hours(1),
            now + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].group_id, a.id.as_str());
    assert!(s
        .ledger(None, now + Duration::hours(1), now + Duration::hours(2))
        .await
        .map(|l| l.iter().all(|p| p.ended.is_none()))
        .unwrap());
    assert!(s
        .ledger(None, now - Duration::hours(2), now - Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    // Running containers keep a period open whatever their siblings did.
    let running = ContainerStatus {
        name: "r".into(),
        current: ContainerState {
            state: StateKind::Running,
            ..Default::default()
        },
        ..Default::default()
    };
    s.modify_group(&a.id, &mut |r| r.containers = vec![running.clone()])
        .await
        .unwrap();
    assert_eq!(s.group_ledger(&a.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn groups_billed_at_the_upgrade_are_billed_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let (mut running, done) = (record(7), record(8));
    running.status = GroupStatus::Running;
    {
        let s = SqliteStore::open(&path).unwrap();
        // Written as a database before the ledger would hold them.
        s.insert_group(&running).await.unwrap();
        s.insert_group(&done).await.unwrap();
    }
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        // The ledger's migration and the nine after it (billed groups, operators, the
        // groups' change time, runtime classes, console sessions, leases, nodes, revisions,
        // the index of deletions).
        db.execute_batch(
            "DROP TABLE ledger; DROP TABLE billed_groups; \
             ALTER TABLE accounts DROP COLUMN operator; \
             DROP INDEX groups_changed; ALTER TABLE groups DROP COLUMN changed; \
             ALTER TABLE accounts DROP COLUMN runtime_classes; DROP TABLE console_sessions; \
             DROP TABLE leases; \
             DROP TABLE join_tokens; DROP TABLE nodes; DROP TABLE group_revision; \
             DROP INDEX groups_node_revision; DROP INDEX groups_unplaced; DROP INDEX groups_placed; \
             DROP INDEX groups_terminating; DROP INDEX groups_unfinished; \
             ALTER TABLE groups DROP COLUMN node; ALTER TABLE groups DROP COLUMN waiting; \
             ALTER TABLE groups DROP COLUMN created; ALTER TABLE groups DROP COLUMN revision;",
        )
        .unwrap();
        db.pragma_update(None, "user_version", v - 10).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let l = s.group_ledger(&running.id).await.unwrap();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].terms, TERMS);
    assert!(l[0].ended.is_none());
    assert!((Utc::now() - l[0].started).num_seconds().abs() < 5, "{l:?}");
    assert!(s.group_ledger(&done.id).await.unwrap().is_empty());
    // A report that changes nothing billed leaves it; the end closes it.
    s.modify_group(&running.id, &mut |r| r.restart_generation = 1)
        .await
        .unwrap();
    set(&s, &running.id, GroupStatus::Succeeded).await;
    assert!(s.group_ledger(&running.id).await.unwrap()[0]
        .ended
        .is_some());
}

async fn a_spot_group_is_billed_at_its_price_in_force_and_not_after_it_expired(s: TestStore) {
    let mut rec = record(7);
    rec.spec.spot = Some(berth_core::SpotTerms {
        strategy: berth_core::SpotStrategy::SpotAsPriceGo,
        price_limit: None,
        duration_hours: 0,
        hour_price: Some("0.1323216".into()),
        fallback: false,
    });
    s.insert_group(&rec).await.unwrap();
    set(&*s, &rec.id, GroupStatus::Running).await;
    s.modify_group(&rec.id, &mut |r| {
        r.status = GroupStatus::Expired;
        r.expired_time = Some(Utc::now());
    })
    .await
    .unwrap();
    let periods = s.group_ledger(&rec.id).await.unwrap();
    assert_eq!(periods.len(), 1);
    assert_eq!(periods[0].spot_price.as_deref(), Some("0.1323216"));
    assert!(periods[0].ended.is_some());
    // A pay-as-you-go group has no spot price; a ScheduleFailed one is never billed.
    let mut payg = record(8);
    s.insert_group(&payg).await.unwrap();
    set(&*s, &payg.id, GroupStatus::Running).await;
    assert_eq!(s.group_ledger(&payg.id).await.unwrap()[0].spot_price, None);
    payg = record(9);
    s.insert_group(&payg).await.unwrap();
    set(&*s, &payg.id, GroupStatus::ScheduleFailed).await;
    assert!(s.group_ledger(&payg.id).await.unwrap().is_empty());
}
