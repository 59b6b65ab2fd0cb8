//! Root tests of handing a wired namespace from one owner to another (a gVisor sandbox booted
//! in the namespace of its pool id, taken by a group) against the real CNI plugins.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wired_namespace_is_handed_over_once_and_torn_down_by_its_new_owner() {
    let fx = Fixture::new();
    let before = fx.net.attach("gvp-1").await.expect("attach");
    assert!(is_mounted(&fx.netns("gvp-1")));

    let after = fx.net.hand_over("gvp-1", "g1").expect("hand over");
    // The same namespace (address, interface), now under the group's name only.
    assert_eq!((after.ip, &after.interface), (before.ip, &before.interface));
    assert_eq!(after.netns, fx.netns("g1"));
    assert!(is_mounted(&after.netns));
    assert!(!fx.netns("gvp-1").exists());
    assert!(ns_addrs(&after.netns).contains(&format!("eth0    inet {}/24", after.ip)));
    assert_eq!(fx.net.known(), vec!["g1".to_owned()]);
    assert_eq!(fx.net.attachment("g1"), Some(after.clone()));
    // The group's attach finds it; a second hand-over (a resumed take-over) changes nothing.
    assert_eq!(fx.net.attach("g1").await.expect("attach g1"), after);
    assert_eq!(fx.net.hand_over("gvp-1", "g1").expect("again"), after);
    // Nothing can be handed over to an owner that has a namespace, or from nothing.
    let other = fx.net.attach("gvp-2").await.expect("attach gvp-2");
    assert!(fx.net.hand_over("gvp-2", "g1").is_err());
    assert!(fx.net.hand_over("gvp-3", "g3").is_err());
    assert!(fx.net.hand_over("warm-1", "g3").is_err());

    fx.net.teardown("g1").await.expect("teardown g1");
    fx.net.teardown("gvp-2").await.expect("teardown gvp-2");
    assert!(!fx.netns("g1").exists() && !fx.netns("gvp-2").exists());
    assert!(fx.net.known().is_empty());
    assert!(!host_link_exists(&after.interface) && !host_link_exists(&other.interface));
    assert!(
        fx.reservations().is_empty(),
        "addresses still reserved: {:?}",
        fx.reservations()
    );
}
