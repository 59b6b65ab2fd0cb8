//! Leases on both stores: one holder at a time, renewed by its holder, taken over once
//! expired or released, with a new epoch each time it changes hands; replicas racing for a
//! free lease get it once.

mod common;

use std::time::Duration;

use common::TestStore;

const LONG: Duration = Duration::from_secs(60);

async fn one_holder_renews_another_takes_over_when_it_ends(s: TestStore) {
    assert_eq!(s.take_lease("sweep", "a", LONG).await.unwrap(), Some(1));
    // Renewed by its holder: the same epoch.
    assert_eq!(s.take_lease("sweep", "a", LONG).await.unwrap(), Some(1));
    assert_eq!(s.take_lease("sweep", "b", LONG).await.unwrap(), None);
    // Another lease is another matter.
    assert_eq!(s.take_lease("place", "b", LONG).await.unwrap(), Some(1));
    // Released by another than its holder: nothing changes.
    s.release_lease("sweep", "b").await.unwrap();
    assert_eq!(s.take_lease("sweep", "b", LONG).await.unwrap(), None);
    // Released by its holder: taken at once, a new epoch.
    s.release_lease("sweep", "a").await.unwrap();
    assert_eq!(s.take_lease("sweep", "b", LONG).await.unwrap(), Some(2));
    assert_eq!(s.take_lease("sweep", "a", LONG).await.unwrap(), None);
    // Expired: taken over, a new epoch; the old holder has lost it.
    let short = Duration::from_millis(200);
    assert_eq!(s.take_lease("brief", "a", short).await.unwrap(), Some(1));
    assert_eq!(s.take_lease("brief", "b", short).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.take_lease("brief", "b", LONG).await.unwrap(), Some(2));
    assert_eq!(s.take_lease("brief", "a", LONG).await.unwrap(), None);
}

async fn replicas_racing_for_a_free_lease_get_it_once(s: TestStore) {
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = if n % 2 == 0 {
            s.arc()
        } else {
            s.another().await
        };
        tasks.push(tokio::spawn(async move {
            store
                .take_lease("leader", &format!("replica-{n}"), LONG)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if let Some(epoch) = t.await.unwrap() {
            assert_eq!(epoch, 1);
            won += 1;
        }
    }
    assert_eq!(won, 1, "one replica holds the lease");
}

async fn bad_names_are_refused(s: TestStore) {
    for (name, holder) in [("", "a"), ("n", ""), ("n\0", "a")] {
        assert!(matches!(
            s.take_lease(name, holder, LONG).await,
            Err(berth_store::StoreError::BadLease(_))
        ));
    }
    let long = "x".repeat(berth_store::MAX_LEASE_TEXT + 1);
    assert!(s.take_lease(&long, "a", LONG).await.is_err());
    assert!(s.release_lease("n", &long).await.is_err());
}

on_both!(
    one_holder_renews_another_takes_over_when_it_ends,
    replicas_racing_for_a_free_lease_get_it_once,
    bad_names_are_refused,
);
