//! Quotas in the store: what an account's groups hold, per-account limits over the defaults,
//! and concurrent inserts at the edge of a quota from several connections (as from two
//! processes) never passing more than fit.

use std::sync::Arc;
use tokio::sync::Barrier;

use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus};
use berth_store::{GroupLimits, QuotaOverrides, QuotaResource, Store, StoreError};

mod common;
use common::TestStore;

on_both!(
    finished_groups_hold_nothing,
    each_limit_refuses_and_writes_nothing,
    a_refused_group_does_not_claim_its_token,
    concurrent_inserts_at_the_edge_pass_as_many_as_fit,
    temporary_storage_counts_against_its_own_limit,
    a_group_grows_only_within_its_accounts_quota,
    concurrent_growth_passes_only_as_far_as_fits,
);
use chrono::Utc;

fn record(n: u32, account: &str, cpu: f64, memory: f64) -> GroupRecord {
    // One id character per base-36 digit of n: from_random takes each byte modulo 36, so
    // raw bytes of n would give n and n + 36 the same id.
    let mut id = [0u8; 20];
    let mut rest = n;
    for b in id.iter_mut().take(7) {
        *b = (rest % 36) as u8;
        rest /= 36;
    }
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random(id),
            account,
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu,
                memory,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

const LIMITS: GroupLimits = GroupLimits {
    max_cpu: 4.0,
    max_memory: 8.0,
    max_groups: 10,
    max_storage: 1000.0,
};

fn over(e: StoreError) -> (QuotaResource, f64, f64) {
    match e {
        StoreError::QuotaExceeded(q) => (q.resource, q.limit, q.used),
        other => panic!("not a quota refusal: {other}"),
    }
}

async fn finished_groups_hold_nothing(s: TestStore) {
    for n in 0..3 {
        s.insert_group_claiming(&record(n, "a", 1.0, 2.0), "", &LIMITS)
            .await
            .unwrap();
    }
    s.insert_group_claiming(&record(9, "b", 1.0, 2.0), "", &LIMITS)
        .await
        .unwrap();
    let u = s.group_usage("a").await.unwrap();
    assert_eq!((u.groups, u.cpu, u.memory), (3, 3.0, 6.0));
    s.modify_group(&record(0, "a", 0.0, 0.0).id, &mut |r| {
        r.status = GroupStatus::Succeeded
    })
    .await
    .unwrap();
    s.modify_group(&record(1, "a", 0.0, 0.0).id, &mut |r| {
        r.status = GroupStatus::Terminating
    })
    .await
    .unwrap();
    let u = s.group_usage("a").await.unwrap();
    assert_eq!((u.groups, u.cpu, u.memory), (2, 2.0, 4.0));
    s.delete_group(&record(1, "a", 0.0, 0.0).id).await.unwrap();
    assert_eq!(s.group_usage("a").await.unwrap().groups, 1);
}

async fn each_limit_refuses_and_writes_nothing(s: TestStore) {
    s.create_account("a").await.unwrap();
    s.insert_group_claiming(&record(1, "a", 3.0, 2.0), "", &LIMITS)
        .await
        .unwrap();
    let e = s
        .insert_group_claiming(&record(2, "a", 2.0, 1.0), "", &LIMITS)
        .await
        .unwrap_err();
    assert_eq!(over(e), (QuotaResource::Cpu, 4.0, 3.0));
    let e = s
        .insert_group_claiming(&record(3, "a", 1.0, 7.0), "", &LIMITS)
        .await
        .unwrap_err();
    assert_eq!(over(e), (QuotaResource::Memory, 8.0, 2.0));
    s.set_account_quota(
        "a",
        &QuotaOverrides {
            groups: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = s
        .insert_group_claiming(&record(4, "a", 0.25, 0.5), "", &LIMITS)
        .await
        .unwrap_err();
    assert_eq!(over(e), (QuotaResource::Groups, 1.0, 1.0));
    assert_eq!(s.group_usage("a").await.unwrap().groups, 1);
    // A raised limit counts for the next insert; the other limits keep theirs.
    s.set_account_quota(
        "a",
        &QuotaOverrides {
            cpu: Some(5.0),
            groups: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.insert_group_claiming(&record(5, "a", 2.0, 1.0), "", &LIMITS)
        .await
        .unwrap();
    let q = s.account_quota("a").await.unwrap();
    assert_eq!((q.cpu, q.memory, q.groups), (Some(5.0), None, Some(2)));
    assert!(matches!(
        s.set_account_quota("nobody", &QuotaOverrides::default())
            .await,
        Err(StoreError::NoAccount(_))
    ));
}

async fn a_refused_group_does_not_claim_its_token(s: TestStore) {
    let mut big = record(1, "a", 8.0, 1.0);
    big.client_token = Some("t".into());
    assert!(s.insert_group_claiming(&big, "p", &LIMITS).await.is_err());
    assert!(s
        .find_client_token("a", berth_store::TokenKind::Group, "t")
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_inserts_at_the_edge_pass_as_many_as_fit(s: TestStore) {
    // Four handles with connections of their own, as four processes or replicas.
    let mut stores: Vec<Arc<dyn Store>> = vec![s.arc()];
    for _ in 1..4 {
        stores.push(s.another().await);
    }
    // 1.5 vCPU already held: 0.5 vCPU each, five more fit under 4.
    stores[0]
        .insert_group_claiming(&record(1000, "a", 1.5, 1.0), "", &LIMITS)
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(40));
    let handles: Vec<_> = (0..40u32)
        .map(|n| {
            let s = Arc::clone(&stores[n as usize % stores.len()]);
            let b = Arc::clone(&barrier);
            tokio::spawn(async move {
                b.wait().await;
                match s
                    .insert_group_claiming(&record(n, "a", 0.5, 0.5), "", &LIMITS)
                    .await
                {
                    Ok(_) => true,
                    Err(StoreError::QuotaExceeded(q)) => {
                        assert_eq!(q.resource, QuotaResource::Cpu);
                        false
                    }
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut passed = 0;
    for h in handles {
        passed += usize::from(h.await.unwrap());
    }
    assert_eq!(passed, 5);
    let u = stores[3].group_usage("a").await.unwrap();
    assert_eq!((u.groups, u.cpu), (6, 4.0));
}

async fn temporary_storage_counts_against_its_own_limit(s: TestStore) {
    let limits = GroupLimits {
        max_storage: 100.0,
        ..LIMITS
    };
    let sized = |n: u32, gib: Option<u32>| {
        let mut r = record(n, "a", 0.25, 0.5);
        r.spec.ephemeral_storage = gib;
        r
    };
    // Default size (30 GiB) three times fits 100 GiB, a fourth does not.
    for n in 0..3 {
        s.insert_group_claiming(&sized(n, None), "", &limits)
            .await
            .unwrap();
    }
    assert_eq!(s.group_usage("a").await.unwrap().storage, 90.0);
    let e = s
        .insert_group_claiming(&sized(3, None), "", &limits)
        .await
        .unwrap_err();
    assert_eq!(over(e), (QuotaResource::Storage, 100.0, 90.0));
    // A smaller group still fits, and nothing was written by the refusal.
    s.insert_group_claiming(&sized(4, Some(10)), "", &limits)
        .await
        .unwrap();
    assert_eq!(s.group_usage("a").await.unwrap().storage, 100.0);
    assert_eq!(s.group_usage("a").await.unwrap().groups, 4);
    // An account's own limit overrides the default; finished groups hold none.
    s.create_account("a").await.unwrap();
    s.set_account_quota(
        "a",
        &QuotaOverrides {
            storage: Some(200.0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.account_quota("a").await.unwrap().storage, Some(200.0));
    s.insert_group_claiming(&sized(5, Some(100)), "", &limits)
        .await
        .unwrap();
    s.modify_group(&sized(5, None).id, &mut |r| r.status = GroupStatus::Failed)
        .await
        .unwrap();
    assert_eq!(s.group_usage("a").await.unwrap().storage, 100.0);
}

async fn a_group_grows_only_within_its_accounts_quota(s: TestStore) {
    for n in 0..2 {
        s.insert_group_claiming(&record(n, "a", 1.0, 2.0), "", &LIMITS)
            .await
            .unwrap();
    }
    let id = record(0, "a", 0.0, 0.0).id;
    // 1 + 3 vCPU fit the 4 of the limit; 1 + 4 do not, and nothing is written.
    s.modify_group_within(&id, &LIMITS, &mut |r| r.spec.cpu = 3.0)
        .await
        .unwrap();
    let e = s
        .modify_group_within(&id, &LIMITS, &mut |r| {
            r.spec.cpu = 4.0;
            r.status = GroupStatus::Updating;
        })
        .await
        .unwrap_err();
    assert_eq!(over(e), (QuotaResource::Cpu, 4.0, 1.0));
    let rec = s.get_group(None, &id).await.unwrap().unwrap();
    assert_eq!((rec.spec.cpu, rec.status), (3.0, GroupStatus::Scheduling));
    // Over a lowered limit, a group keeps what it holds and may shrink.
    let tight = GroupLimits {
        max_cpu: 1.0,
        ..LIMITS
    };
    s.modify_group_within(&id, &tight, &mut |r| r.spec.memory = 1.0)
        .await
        .unwrap();
    s.modify_group_within(&id, &tight, &mut |r| r.spec.cpu = 2.0)
        .await
        .unwrap();
    assert_eq!(s.group_usage("a").await.unwrap().cpu, 3.0);
}

async fn concurrent_growth_passes_only_as_far_as_fits(s: TestStore) {
    // Eight groups of 0.25 vCPU hold 2 of 4: of eight growing to 0.75 at once, four fit.
    for n in 0..8 {
        s.insert_group_claiming(&record(n, "a", 0.25, 0.5), "", &LIMITS)
            .await
            .unwrap();
    }
    let stores = [s.arc(), s.another().await];
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0..8u32)
        .map(|n| {
            let st = Arc::clone(&stores[n as usize % 2]);
            let b = Arc::clone(&barrier);
            tokio::spawn(async move {
                b.wait().await;
                let id = record(n, "a", 0.0, 0.0).id;
                match st
                    .modify_group_within(&id, &LIMITS, &mut |r| r.spec.cpu = 0.75)
                    .await
                {
                    Ok(_) => true,
                    Err(StoreError::QuotaExceeded(_)) => false,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut grown = 0;
    for t in tasks {
        grown += usize::from(t.await.unwrap());
    }
    assert_eq!(grown, 4);
    assert_eq!(s.group_usage("a").await.unwrap().cpu, 4.0);
}
