//! Images belong to accounts: a stored image serves an account only once it proved it may
//! pull it (its own pull, its image cache, or a registry check with its credentials within
//! the TTL), against a real Debian `docker-registry` with basic auth on loopback. Needs
//! `/usr/bin/docker-registry` and `/usr/bin/busybox`; fails when either is missing.

use std::time::Duration;

use berth_core::{ImagePullPolicy, RegistryCredential};
use berth_image::testutil::{build_busybox, Pusher, TestRegistry};
use berth_image::{Image, ImageError, ImageStore, PullEvent, PullOptions, RetryPolicy};

mod support;
use support::ensure;

const USER: &str = "berth";
const PASSWORD: &str = "s3cret";

struct Setup {
    registry: TestRegistry,
    reference: String,
    digest: String,
}

async fn private_registry() -> Setup {
    let registry = TestRegistry::start_with(Some((USER, PASSWORD))).unwrap();
    let pusher = Pusher::new(&registry.addr, "private/busybox", Some((USER, PASSWORD)))
        .await
        .unwrap();
    let digest = pusher
        .image("v1", &build_busybox(&[]).unwrap())
        .await
        .unwrap();
    let reference = format!("{}/private/busybox:v1", registry.addr);
    Setup {
        registry,
        reference,
        digest,
    }
}

fn store(dir: &std::path::Path) -> ImageStore {
    // One try: a stopped registry answers at once.
    ImageStore::open(dir).unwrap().with_retry(RetryPolicy {
        attempts: 1,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    })
}

/// The options of a group of `account`, with the registry's password when given.
fn opts(setup: &Setup, account: &str, password: Option<&str>) -> PullOptions {
    PullOptions {
        plain_http: vec![setup.registry.addr.clone()],
        credentials: password
            .map(|p| RegistryCredential {
                server: setup.registry.addr.clone(),
                user_name: USER.into(),
                password: p.into(),
            })
            .into_iter()
            .collect(),
        policy: ImagePullPolicy::IfNotPresent,
        account: Some(account.into()),
        ..PullOptions::default()
    }
}

fn assert_denied(result: Result<Image, ImageError>, digest: &str) -> ImageError {
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::AccessDenied { .. }), "{err:?}");
    assert!(err.is_unauthorized());
    let text = err.report();
    assert!(text.contains("no access"), "{text}");
    assert!(!text.contains(digest) && !text.contains(PASSWORD), "{text}");
    err
}

#[tokio::test]
async fn a_stored_image_serves_only_accounts_that_proved_access() {
    let setup = private_registry().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let reference = &setup.reference;

    // A pulls with its credentials.
    let (image, events) = ensure(&store, reference, &opts(&setup, "a", Some(PASSWORD))).await;
    assert_eq!(image.unwrap().digest, setup.digest);
    assert!(matches!(
        events.last(),
        Some(PullEvent::Pulled { cached: false, .. })
    ));

    // B without credentials, with a wrong password, with Never: refused, told nothing of the
    // stored image (no `Pulled`), and worded as a refusal of a pull.
    let (result, events) = ensure(&store, reference, &opts(&setup, "b", None)).await;
    let stored = assert_denied(result, &setup.digest).to_string();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0], PullEvent::Pulling { .. }));
    let (result, _) = ensure(&store, reference, &opts(&setup, "b", Some("wrong"))).await;
    assert_denied(result, &setup.digest);
    let never = PullOptions {
        policy: ImagePullPolicy::Never,
        ..opts(&setup, "b", None)
    };
    let (result, events) = ensure(&store, reference, &never).await;
    let absent = result.unwrap_err();
    assert!(
        matches!(absent, ImageError::NotPresent { .. }),
        "{absent:?}"
    );
    assert!(events.is_empty(), "{events:?}");

    // The same refusals as for an image the node never stored.
    let other = tempfile::tempdir().unwrap();
    let empty = crate::store(other.path());
    let (result, _) = ensure(&empty, reference, &opts(&setup, "b", None)).await;
    assert_eq!(assert_denied(result, &setup.digest).to_string(), stored);
    let (result, _) = ensure(&empty, reference, &never).await;
    assert_eq!(result.unwrap_err().to_string(), absent.to_string());

    // A refusal is not remembered: B with its own valid credentials passes at once, without
    // downloading anything; the check then counts for B's other groups (TTL).
    let (image, events) = ensure(&store, reference, &opts(&setup, "b", Some(PASSWORD))).await;
    assert_eq!(image.unwrap().digest, setup.digest);
    assert!(matches!(
        events.last(),
        Some(PullEvent::Pulled {
            cached: true,
            bytes: 0,
            ..
        })
    ));
    let (image, _) = ensure(&store, reference, &opts(&setup, "b", None)).await;
    assert_eq!(image.unwrap().digest, setup.digest);

    // Still only for B.
    assert_denied(
        ensure(&store, reference, &opts(&setup, "c", None)).await.0,
        &setup.digest,
    );
}

#[tokio::test]
async fn the_node_logins_serve_the_operator_only() {
    let setup = private_registry().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).with_node_credentials(vec![RegistryCredential {
        server: setup.registry.addr.clone(),
        user_name: USER.into(),
        password: PASSWORD.into(),
    }]);
    let reference = &setup.reference;
    // An account's pull of an image the node does not hold.
    assert_denied(
        ensure(&store, reference, &opts(&setup, "a", None)).await.0,
        &setup.digest,
    );
    // The operator's (`berth image pull`).
    let operator = PullOptions {
        account: None,
        ..opts(&setup, "a", None)
    };
    assert_eq!(
        ensure(&store, reference, &operator).await.0.unwrap().digest,
        setup.digest
    );
    // Pulled by the operator, it is no proof for an account.
    assert_denied(
        ensure(&store, reference, &opts(&setup, "a", None)).await.0,
        &setup.digest,
    );
}

#[tokio::test]
async fn proofs_need_no_registry_and_outlive_a_restart_as_they_should() {
    let setup = private_registry().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let reference = setup.reference.clone();
    // A pulls; B checks (the image is stored); G is a group of C that resolved it.
    ensure(&store, &reference, &opts(&setup, "a", Some(PASSWORD)))
        .await
        .0
        .unwrap();
    ensure(&store, &reference, &opts(&setup, "b", Some(PASSWORD)))
        .await
        .0
        .unwrap();
    // (C's check counts for no time: only the group's pin proves the image for it.)
    store.set_access_ttl(Duration::ZERO);
    let group = PullOptions {
        pinned_by: Some("group:g".into()),
        ..opts(&setup, "c", Some(PASSWORD))
    };
    let image = ensure(&store, &reference, &group).await.0.unwrap();
    store.pin("group:g", &image.digest).unwrap();
    store.set_access_ttl(berth_image::DEFAULT_ACCESS_TTL);

    // The registry goes away; berth restarts.
    let Setup {
        registry, digest, ..
    } = setup;
    let addr = registry.addr.clone();
    drop(registry);
    drop(store);
    let offline = |account: &str, pinned_by: Option<&str>| PullOptions {
        plain_http: vec![addr.clone()],
        policy: ImagePullPolicy::IfNotPresent,
        account: Some(account.into()),
        pinned_by: pinned_by.map(str::to_owned),
        ..PullOptions::default()
    };
    let store = crate::store(tmp.path());
    for (account, pinned_by) in [("a", None), ("b", None), ("c", Some("group:g"))] {
        let (image, events) = ensure(&store, &reference, &offline(account, pinned_by)).await;
        assert_eq!(image.unwrap().digest, digest, "{account}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, PullEvent::Pulling { .. })),
            "{account} asked the registry: {events:?}"
        );
    }
    // C's other groups have no proof; nor has D.
    for (account, pinned_by) in [("c", Some("group:h")), ("d", None)] {
        let err = ensure(&store, &reference, &offline(account, pinned_by))
            .await
            .0
            .unwrap_err();
        assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    }

    // Past the TTL the check of B counts no more; A's own pull still does.
    let store = crate::store(tmp.path()).with_access_ttl(Duration::ZERO);
    let err = ensure(&store, &reference, &offline("b", None))
        .await
        .0
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    ensure(&store, &reference, &offline("a", None))
        .await
        .0
        .unwrap();
}

#[tokio::test]
async fn an_image_cache_proves_its_images_for_its_account_while_it_exists() {
    let setup = private_registry().await;
    let tmp = tempfile::tempdir().unwrap();
    // Checks count for no time: only the cache can prove the image.
    let store = store(tmp.path()).with_access_ttl(Duration::ZERO);
    let reference = setup.reference.clone();
    let operator = PullOptions {
        account: None,
        ..opts(&setup, "x", Some(PASSWORD))
    };
    ensure(&store, &reference, &operator).await.0.unwrap();

    // B cannot make a cache of it without credentials.
    let err = store
        .create_cache(
            "b1",
            std::slice::from_ref(&reference),
            &opts(&setup, "b", None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::AccessDenied { .. }), "{err:?}");

    store
        .create_cache(
            "a1",
            std::slice::from_ref(&reference),
            &opts(&setup, "a", Some(PASSWORD)),
        )
        .await
        .unwrap();
    assert!(store
        .resolve_from_cache("a1", &reference, Some("a"))
        .is_ok());
    assert!(matches!(
        store.resolve_from_cache("a1", &reference, Some("b")),
        Err(ImageError::NoSuchCache { .. })
    ));
    // A uses the image by reference without credentials; B does not.
    ensure(&store, &reference, &opts(&setup, "a", None))
        .await
        .0
        .unwrap();
    assert_denied(
        ensure(&store, &reference, &opts(&setup, "b", None)).await.0,
        &setup.digest,
    );
    // Once the cache is gone, so is the proof.
    store.delete_cache("a1").unwrap();
    assert_denied(
        ensure(&store, &reference, &opts(&setup, "a", None)).await.0,
        &setup.digest,
    );
}
