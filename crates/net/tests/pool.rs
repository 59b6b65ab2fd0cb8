//! Root tests of the namespace pool against the real CNI plugins: takeover, refill,
//! teardown, draining, and what a restarted network makes of the pool a former one left.

mod common;

use std::time::{Duration, Instant};

use berth_net::Network;
use common::*;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn netns_entries(fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&fx.cfg.netns_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn warm_records(fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fx.cfg.state_dir.join("results"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("warm-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_take_over_pooled_namespaces_and_the_pool_refills() {
    let fx = Fixture::with_pool(2);
    let net = fx.net.clone();
    let task = tokio::spawn(async move { net.maintain_pool().await });
    let net = fx.net.clone();
    wait_for("a full pool", move || net.pool_ready() == 2);
    // Pool namespaces are held by descriptors: no pin, no mount on the host.
    assert!(netns_entries(&fx).is_empty(), "{:?}", netns_entries(&fx));
    assert_eq!(warm_records(&fx).len(), 2);
    assert!(fx.net.known().is_empty(), "pool namespaces are not groups");
    assert_eq!(links_on_bridge(&fx.name).len(), 2);

    let att = fx.net.attach("g1").await.expect("attach");
    assert_eq!(att.netns, fx.netns("g1"));
    assert!(is_mounted(&att.netns));
    assert_eq!(fx.net.attachment("g1"), Some(att.clone()));
    assert_eq!(fx.net.known(), vec!["g1".to_owned()]);
    assert!(subnet_masqueraded(&fx));
    // The group works: reachable from the host at its address, lo up.
    assert!(ns_addrs(&att.netns).contains(&format!("eth0    inet {}/24", att.ip)));
    let server = serve_once(&att.netns, 8080);
    assert_eq!(ask(att.ip, 8080), "pong");
    server.join().expect("server thread");
    // Attaching again returns the same wiring.
    assert_eq!(fx.net.attach("g1").await.expect("attach again"), att);

    let net = fx.net.clone();
    wait_for("the pool to refill", move || net.pool_ready() == 2);
    assert_eq!(
        netns_entries(&fx),
        vec!["g1".to_owned()],
        "only the group is pinned"
    );
    assert_eq!(warm_records(&fx).len(), 2);
    assert_eq!(links_on_bridge(&fx.name).len(), 3);
    assert_eq!(fx.reservations().len(), 3);

    fx.net.teardown("g1").await.expect("teardown");
    assert!(!fx.netns("g1").exists());
    wait_until(|| !host_link_exists(&att.interface));
    assert!(fx.net.attachment("g1").is_none());
    assert_eq!(
        fx.reservations().len(),
        2,
        "the group's address is released"
    );

    task.abort();
    let _ = task.await;
    fx.net.drain_pool().await;
    assert!(netns_entries(&fx).is_empty(), "{:?}", netns_entries(&fx));
    assert!(warm_records(&fx).is_empty());
    wait_until(|| links_on_bridge(&fx.name).is_empty());
    assert!(fx.reservations().is_empty());
    fx.net.release().expect("release");
    assert!(!subnet_masqueraded(&fx), "masquerade rule left");
    assert!(!is_mounted(&fx.cfg.netns_dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_network_releases_the_former_pool_and_cleans_what_was_half_done() {
    let fx = Fixture::with_pool(2);
    // A first berth fills its pool and ends without draining it (a crash): its namespaces
    // end with its descriptors, and the kernel takes their veth pairs along.
    let first = std::sync::Arc::new(Network::new(fx.cfg.clone()).expect("first network"));
    let net = first.clone();
    let task = tokio::spawn(async move { net.maintain_pool().await });
    let net = first.clone();
    wait_for("a full pool", move || net.pool_ready() == 2);
    task.abort();
    let _ = task.await;
    drop(first);
    let former = warm_records(&fx);
    assert_eq!(former.len(), 2, "{former:?}");
    wait_until(|| links_on_bridge(&fx.name).is_empty());
    assert_eq!(
        fx.reservations().len(),
        2,
        "records still reserve their addresses"
    );
    // What a crash can also leave: an address reserved for a pool name no record holds,
    // and a group's pin whose takeover never got the record.
    let orphan = fx.reservation(format!("{}250", fx.subnet_prefix).parse().expect("ip"));
    std::fs::write(&orphan, "warm-dead\n").expect("orphan reservation");
    let legacy = fx.host_local_dir().join(format!("{}251", fx.subnet_prefix));
    std::fs::create_dir_all(fx.host_local_dir()).expect("mkdir");
    std::fs::write(&legacy, "g-gone\r\neth0").expect("orphan host-local reservation");
    std::fs::write(fx.netns("g2"), b"").expect("stale pin file");

    let net = fx.net.clone();
    let task = tokio::spawn(async move { net.maintain_pool().await });
    let net = fx.net.clone();
    wait_for("a new pool", move || net.pool_ready() == 2);
    assert!(!orphan.exists(), "orphaned reservation kept");
    assert!(!legacy.exists(), "orphaned host-local reservation kept");
    let now = warm_records(&fx);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|n| !former.contains(n)),
        "the former pool's records are released: {former:?} {now:?}"
    );
    assert_eq!(fx.reservations().len(), 2, "{:?}", fx.reservations());
    assert_eq!(links_on_bridge(&fx.name).len(), 2);
    let att = fx.net.attach("g2").await.expect("attach over a stale pin");
    assert!(is_mounted(&att.netns));
    assert!(ns_addrs(&att.netns).contains(&format!("eth0    inet {}/24", att.ip)));
    assert_eq!(netns_entries(&fx), vec!["g2".to_owned()]);

    // A record whose namespace vanished (a host reboot) is replaced on attach.
    nix::mount::umount2(&att.netns, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    let again = fx
        .net
        .attach("g2")
        .await
        .expect("attach after losing the namespace");
    assert!(is_mounted(&again.netns));

    fx.net.teardown("g2").await.expect("teardown");
    task.abort();
    let _ = task.await;
    fx.net.drain_pool().await;
    assert!(netns_entries(&fx).is_empty(), "{:?}", netns_entries(&fx));
    assert!(fx.reservations().is_empty(), "{:?}", fx.reservations());
    wait_until(|| links_on_bridge(&fx.name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_names_are_not_group_names() {
    let fx = Fixture::new();
    assert!(fx.net.attach("warm-1").await.is_err());
    assert!(fx.net.attach("../x").await.is_err());
    assert!(netns_entries(&fx).is_empty());
}
