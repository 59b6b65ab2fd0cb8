//! The per-account settings read afresh at each use (seccomp profile, runtime classes) and
//! the web console's sessions, on both stores.

use berth_core::{RuntimeClass, RuntimeClassPolicy};
use berth_store::{AccountSeccomp, ConsoleSession, SessionBounds, StoreError};

mod common;
use common::TestStore;

on_both!(
    a_seccomp_setting_is_kept_per_account,
    a_runtime_class_policy_is_kept_per_account,
    a_new_session_deletes_expired_rows_then_the_least_recently_used,
);

fn session(n: u32, account: &str, created: i64, used: i64) -> ConsoleSession {
    ConsoleSession {
        id_hash: format!("{n:064x}"),
        account: account.into(),
        access_key_id: format!("AK{account}"),
        csrf: "c".repeat(64),
        created,
        used,
    }
}

fn bounds(now: i64, per_account: usize, max: usize) -> SessionBounds {
    SessionBounds {
        idle_before: now - 1800,
        created_before: now - 43_200,
        per_account,
        max,
    }
}

async fn a_seccomp_setting_is_kept_per_account(store: TestStore) {
    store.create_account("a").await.unwrap();
    store.create_account("b").await.unwrap();
    assert_eq!(
        store.account_seccomp("a").await.unwrap(),
        AccountSeccomp::Default
    );
    let profile = AccountSeccomp::Profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into());
    store.set_account_seccomp("a", &profile).await.unwrap();
    store
        .set_account_seccomp("b", &AccountSeccomp::Unconfined)
        .await
        .unwrap();
    assert_eq!(store.account_seccomp("a").await.unwrap(), profile);
    assert_eq!(
        store.account_seccomp("b").await.unwrap(),
        AccountSeccomp::Unconfined
    );
    store
        .set_account_seccomp("a", &AccountSeccomp::Default)
        .await
        .unwrap();
    assert_eq!(
        store.account_seccomp("a").await.unwrap(),
        AccountSeccomp::Default
    );
    assert!(matches!(
        store
            .set_account_seccomp("nobody", &AccountSeccomp::Unconfined)
            .await,
        Err(StoreError::NoAccount(_))
    ));
    assert_eq!(
        store.account_seccomp("nobody").await.unwrap(),
        AccountSeccomp::Default
    );
}

async fn a_runtime_class_policy_is_kept_per_account(store: TestStore) {
    store.create_account("a").await.unwrap();
    store.create_account("b").await.unwrap();
    assert_eq!(
        store.account_runtime_classes("a").await.unwrap(),
        RuntimeClassPolicy::default()
    );
    let p =
        RuntimeClassPolicy::new(vec![RuntimeClass::Gvisor], Some(RuntimeClass::Gvisor)).unwrap();
    store.set_account_runtime_classes("a", &p).await.unwrap();
    assert_eq!(store.account_runtime_classes("a").await.unwrap(), p);
    assert_eq!(
        store.account_runtime_classes("b").await.unwrap(),
        RuntimeClassPolicy::default()
    );
    store
        .set_account_runtime_classes("a", &RuntimeClassPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        store.account_runtime_classes("a").await.unwrap(),
        RuntimeClassPolicy::default()
    );
    assert!(matches!(
        store.set_account_runtime_classes("nobody", &p).await,
        Err(StoreError::NoAccount(_))
    ));
}

async fn a_new_session_deletes_expired_rows_then_the_least_recently_used(s: TestStore) {
    let now = 1_700_000_000;
    // Idle too long, and too old: both go at the next creation.
    s.create_console_session(
        &session(1, "a", now - 3600, now - 1800),
        bounds(now - 3600, 9, 9),
    )
    .await
    .unwrap();
    s.create_console_session(
        &session(2, "b", now - 43_200, now),
        bounds(now - 43_200, 9, 9),
    )
    .await
    .unwrap();
    s.create_console_session(&session(3, "a", now - 10, now - 10), bounds(now, 9, 9))
        .await
        .unwrap();
    assert_eq!(s.console_sessions().await.unwrap(), 1);
    // Per account: a's least recently used goes, b's stays.
    s.create_console_session(&session(4, "b", now, now), bounds(now, 2, 9))
        .await
        .unwrap();
    s.create_console_session(&session(5, "a", now - 5, now - 5), bounds(now, 2, 9))
        .await
        .unwrap();
    s.create_console_session(&session(6, "a", now, now), bounds(now, 2, 9))
        .await
        .unwrap();
    let live = |n: u32| {
        let s = &s;
        async move {
            s.console_session(&format!("{n:064x}"))
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(!live(3).await && live(4).await && live(5).await && live(6).await);
    // In all: the least recently used of any account goes.
    s.touch_console_session(&format!("{:064x}", 5), now + 1)
        .await
        .unwrap();
    s.create_console_session(&session(7, "c", now + 2, now + 2), bounds(now + 2, 2, 3))
        .await
        .unwrap();
    assert!(!live(4).await && live(5).await && live(6).await && live(7).await);
    assert_eq!(s.console_sessions().await.unwrap(), 3);
    // A touch never moves the last use back.
    s.touch_console_session(&format!("{:064x}", 7), now)
        .await
        .unwrap();
    assert_eq!(
        s.console_session(&format!("{:064x}", 7))
            .await
            .unwrap()
            .unwrap()
            .used,
        now + 2
    );
    s.delete_console_session(&format!("{:064x}", 7))
        .await
        .unwrap();
    assert!(!live(7).await);
}
