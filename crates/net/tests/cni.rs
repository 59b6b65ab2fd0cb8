//! Root tests against the real CNI plugins in /usr/lib/cni: namespaces,
//! addresses, reachability, concurrency and a clean host after teardown.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use berth_net::{Attachment, NetConfig, NetError, Network};
use common::*;

/// Everything a wired group leaves on the host, checked present or absent.
fn assert_wired(fx: &Fixture, id: &str, att: &Attachment) {
    let netns = fx.netns(id);
    assert!(
        is_mounted(&netns),
        "netns not mounted at {}",
        netns.display()
    );
    assert!(
        host_link_exists(&att.interface),
        "no host veth {}",
        att.interface
    );
    assert!(links_on_bridge(&fx.name)
        .iter()
        .any(|l| l.starts_with(&att.interface)));
    let reservation = std::fs::read_to_string(fx.reservation(att.ip)).expect("reservation file");
    assert!(reservation.contains(id), "reservation {reservation:?}");
    assert!(
        masq_chains(&fx.name, id).is_empty(),
        "per-group masquerade chain for {id}"
    );
    assert!(
        subnet_masqueraded(fx),
        "subnet not masqueraded:\n{}",
        nat_rules()
    );
}

fn assert_gone(fx: &Fixture, id: &str, att: &Attachment, chains: &[String]) {
    let netns = fx.netns(id);
    assert!(
        !is_mounted(&netns),
        "netns still mounted at {}",
        netns.display()
    );
    assert!(!netns.exists(), "netns file left at {}", netns.display());
    assert!(
        !host_link_exists(&att.interface),
        "veth {} left",
        att.interface
    );
    assert!(
        !fx.reservation(att.ip).exists(),
        "ip {} still reserved",
        att.ip
    );
    assert!(
        fx.net.attachment(id).is_none(),
        "cached result left for {id}"
    );
    assert!(!fx.net.known().contains(&id.to_owned()));
    let rules = nat_rules();
    assert!(
        !rules.contains(&format!("id: \\\"{id}\\\"")),
        "nat rules left for {id}:\n{rules}"
    );
    for chain in chains {
        assert!(
            !rules.contains(chain.as_str()),
            "chain {chain} left:\n{rules}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_wires_a_namespace_and_teardown_removes_everything() {
    let fx = Fixture::new();
    let conflist = fx.cfg.state_dir.join(format!("{}.conflist", fx.name));
    assert!(conflist.is_file(), "conflist not written");

    let att = fx.net.setup("g1").await.expect("setup");
    assert_eq!(att.netns, fx.netns("g1"));
    assert!(att.ip.to_string().starts_with(&fx.subnet_prefix), "{att:?}");
    assert_eq!(att.prefix_len, 24);
    let gateway: IpAddr = format!("{}1", fx.subnet_prefix).parse().expect("ip");
    assert_eq!(att.gateway, Some(gateway));
    assert!(att.interface.starts_with("veth"), "{att:?}");
    assert_eq!(fx.net.attachment("g1"), Some(att.clone()));
    assert_eq!(fx.net.known(), vec!["g1".to_owned()]);
    assert_wired(&fx, "g1", &att);

    let addrs = ns_addrs(&att.netns);
    assert!(
        addrs.contains(&format!("eth0    inet {}/24", att.ip)),
        "eth0 address missing:\n{addrs}"
    );
    assert!(
        addrs.contains("lo    inet 127.0.0.1/8"),
        "lo address missing:\n{addrs}"
    );
    assert!(ns_lo(&att.netns).contains(",UP"), "lo is down");

    let server = serve_once(&att.netns, 8080);
    assert_eq!(ask(att.ip, 8080), "pong");
    server.join().expect("server thread");
    let lo_server = serve_once(&att.netns, 8081);
    let lo_answer = in_netns(&att.netns, || ask("127.0.0.1".parse().expect("ip"), 8081));
    assert_eq!(lo_answer.join().expect("client thread"), "pong");
    lo_server.join().expect("server thread");

    let chains = masq_chains(&fx.name, "g1");
    fx.net.teardown("g1").await.expect("teardown");
    assert_gone(&fx, "g1", &att, &chains);
    fx.net.teardown("g1").await.expect("second teardown");
    fx.net
        .teardown("never-set-up")
        .await
        .expect("teardown of unknown id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_reach_each_other() {
    let fx = Fixture::new();
    let a = fx.net.setup("ga").await.expect("setup a");
    let b = fx.net.setup("gb").await.expect("setup b");
    assert_ne!(a.ip, b.ip);

    let server = serve_once(&b.netns, 9000);
    let b_ip = b.ip;
    let answer = in_netns(&a.netns, move || ask(b_ip, 9000));
    assert_eq!(answer.join().expect("client thread"), "pong");
    server.join().expect("server thread");

    let server = serve_once(&a.netns, 9001);
    let a_ip = a.ip;
    let answer = in_netns(&b.netns, move || ask(a_ip, 9001));
    assert_eq!(answer.join().expect("client thread"), "pong");
    server.join().expect("server thread");

    for (id, att) in [("ga", &a), ("gb", &b)] {
        let chains = masq_chains(&fx.name, id);
        fx.net.teardown(id).await.expect("teardown");
        assert_gone(&fx, id, att, &chains);
    }
    assert!(links_on_bridge(&fx.name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_setups_and_teardowns() {
    let fx = std::sync::Arc::new(Fixture::new());
    let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let fx = fx.clone();
        tasks.spawn(async move { (id.clone(), fx.net.setup(&id).await) });
    }
    let mut wired = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, res) = joined.expect("task");
        wired.push((
            id.clone(),
            res.unwrap_or_else(|e| panic!("setup {id}: {e}")),
        ));
    }
    let mut ips: Vec<IpAddr> = wired.iter().map(|(_, a)| a.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "addresses must be distinct");
    let mut known = fx.net.known();
    known.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(known, expected);
    for (id, att) in &wired {
        assert_wired(&fx, id, att);
    }
    assert_eq!(links_on_bridge(&fx.name).len(), 10);

    let chains: Vec<Vec<String>> = wired
        .iter()
        .map(|(id, _)| masq_chains(&fx.name, id))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, _) in wired.clone() {
        let fx = fx.clone();
        tasks.spawn(async move { (id.clone(), fx.net.teardown(&id).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (id, res) = joined.expect("task");
        res.unwrap_or_else(|e| panic!("teardown {id}: {e}"));
    }
    for ((id, att), chains) in wired.iter().zip(&chains) {
        assert_gone(&fx, id, att, chains);
    }
    assert!(links_on_bridge(&fx.name).is_empty());
    assert!(fx.net.known().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_subnet_refuses_the_next_group_and_changes_nothing() {
    // A /30 has one address left after the gateway.
    let fx = Fixture::with_prefix_len(30);
    let first = fx.net.setup("f1").await.expect("first setup");
    let err = fx.net.setup("f2").await.expect_err("subnet exhausted");
    assert!(
        matches!(&err, NetError::AddressesExhausted { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("{}0/30 is free", fx.subnet_prefix)),
        "{err}"
    );
    assert!(!fx.netns("f2").exists(), "netns of failed setup left");
    assert!(!is_mounted(&fx.netns("f2")));
    assert!(fx.net.attachment("f2").is_none());
    assert_eq!(fx.net.known(), vec!["f1".to_owned()]);
    assert_eq!(links_on_bridge(&fx.name).len(), 1);
    assert!(masq_chains(&fx.name, "f2").is_empty());

    let again = fx.net.setup("f1").await.expect_err("already set up");
    assert!(matches!(again, NetError::AlreadyExists { .. }), "{again:?}");
    assert!(
        is_mounted(&fx.netns("f1")),
        "refused setup must not touch the live group"
    );
    assert!(fx.net.setup("../x").await.is_err());

    let chains = masq_chains(&fx.name, "f1");
    fx.net.teardown("f1").await.expect("teardown");
    assert_gone(&fx, "f1", &first, &chains);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_setup_is_undone_and_names_the_cause() {
    let fx = Fixture::new();
    // Something that is not a bridge under the bridge's name: the ADD fails after berth
    // reserved the group's address.
    let peer = format!("{}p", fx.name);
    sh(
        "ip",
        &[
            "link", "add", &fx.name, "type", "veth", "peer", "name", &peer,
        ],
    );
    let err = fx.net.setup("f1").await.expect_err("no bridge");
    assert!(
        matches!(&err, NetError::NotABridge { name } if name == &fx.name),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a bridge"), "{err}");
    assert!(!fx.netns("f1").exists(), "netns of failed setup left");
    assert!(fx.net.attachment("f1").is_none());
    assert!(fx.net.known().is_empty(), "{:?}", fx.net.known());
    let reserved: Vec<_> = std::fs::read_dir(fx.addresses_dir())
        .expect("addresses dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        reserved.is_empty(),
        "address of a failed setup kept: {reserved:?}"
    );
    sh("ip", &["link", "del", &fx.name]);
    let att = fx
        .net
        .setup("f1")
        .await
        .expect("setup with the bridge free");
    assert_wired(&fx, "f1", &att);
    let chains = masq_chains(&fx.name, "f1");
    fx.net.teardown("f1").await.expect("teardown");
    assert_gone(&fx, "f1", &att, &chains);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_network_adopts_and_tears_down_existing_groups() {
    let fx = Fixture::new();
    let att = fx.net.setup("r1").await.expect("setup");
    let chains = masq_chains(&fx.name, "r1");

    let reopened = Network::new(fx.cfg.clone()).expect("reopen");
    assert_eq!(reopened.known(), vec!["r1".to_owned()]);
    assert_eq!(reopened.attachment("r1"), Some(att.clone()));
    reopened
        .teardown("r1")
        .await
        .expect("teardown after restart");
    assert_gone(&fx, "r1", &att, &chains);
}

#[test]
fn new_names_the_missing_plugin_binary() {
    require_host();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink("/usr/lib/cni/bridge", bin.join("bridge")).expect("symlink");
    let cfg = NetConfig {
        state_dir: dir.path().join("state"),
        netns_dir: dir.path().join("netns"),
        cni_bin_dirs: vec![bin],
        ..NetConfig::default()
    };
    let err = Network::new(cfg).expect_err("static is missing");
    assert!(err.to_string().contains("`static`"), "{err}");
}

/// Not a timed assertion: prints the median latency of setup and teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_and_teardown_latency() {
    let fx = Fixture::new();
    // The first setup also creates the bridge; leave it out of the numbers.
    fx.net.setup("warm").await.expect("setup");
    fx.net.teardown("warm").await.expect("teardown");
    let mut setups = Vec::new();
    let mut teardowns = Vec::new();
    for i in 0..20 {
        let id = format!("l{i}");
        let start = Instant::now();
        fx.net.setup(&id).await.expect("setup");
        setups.push(start.elapsed());
        let start = Instant::now();
        fx.net.teardown(&id).await.expect("teardown");
        teardowns.push(start.elapsed());
    }
    setups.sort();
    teardowns.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    println!(
        "setup median {:?} (min {:?}, max {:?}); teardown median {:?} (min {:?}, max {:?})",
        median(&setups),
        setups[0],
        setups[setups.len() - 1],
        median(&teardowns),
        teardowns[0],
        teardowns[teardowns.len() - 1],
    );
    assert!(links_on_bridge(&fx.name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_cleans_up_after_a_lost_namespace() {
    let fx = Fixture::new();
    // The namespace pin vanished entirely, and the pin's mount vanished but its file stayed.
    for (id, keep_file) in [("lost1", false), ("lost2", true)] {
        let att = fx.net.setup(id).await.expect("setup");
        let chains = masq_chains(&fx.name, id);
        nix::mount::umount2(&att.netns, nix::mount::MntFlags::MNT_DETACH).expect("umount");
        if !keep_file {
            std::fs::remove_file(&att.netns).expect("rm netns file");
        }
        fx.net
            .teardown(id)
            .await
            .expect("teardown without a namespace");
        // The kernel removes the veth of a dead namespace asynchronously.
        wait_until(|| !host_link_exists(&att.interface));
        assert_gone(&fx, id, &att, &chains);
    }
}

/// A crash between the ADD and the record of its result leaves an address reserved for the
/// group, a veth and the namespace pin, but no record: the next attach must DEL before it
/// ADDs again, and the address is the group's still or released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_cut_short_is_undone_before_the_next_attach() {
    let fx = Fixture::new();
    let results = fx.cfg.state_dir.join("results");
    for (id, intent) in [("cut1", None), ("cut2", Some("{torn"))] {
        let first = fx.net.setup(id).await.expect("setup");
        let chains = masq_chains(&fx.name, id);
        std::fs::remove_file(results.join(format!("{id}.json"))).expect("drop the record");
        if let Some(text) = intent {
            std::fs::write(results.join(format!("{id}.adding")), text).expect("intent");
        }
        assert!(
            fx.reservation(first.ip).exists(),
            "the address stays reserved"
        );
        assert_eq!(
            fx.net.known(),
            vec![id.to_owned()],
            "the pin names the group"
        );

        let again = fx.net.attach(id).await.expect("attach after the cut");
        assert_wired(&fx, id, &again);
        wait_until(|| !host_link_exists(&first.interface) || first.interface == again.interface);
        if first.ip != again.ip {
            assert!(
                !fx.reservation(first.ip).exists(),
                "the first address leaked"
            );
        }
        assert!(
            !results.join(format!("{id}.adding")).exists(),
            "the intent outlived the setup"
        );
        fx.net.teardown(id).await.expect("teardown");
        assert_gone(&fx, id, &again, &chains);
    }
}

/// A group an earlier berth wired with `host-local` (its address reserved there, its record
/// naming that list) is kept out of the new allocator's hands and torn down by its own list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_wired_through_host_local_are_kept_and_released() {
    let fx = Fixture::new();
    let old = fx.net.setup("old1").await.expect("setup");
    let chains = masq_chains(&fx.name, "old1");
    // What an earlier berth left: host-local's reservation instead of berth's, and the
    // host-local list in the record.
    std::fs::remove_file(fx.reservation(old.ip)).expect("drop berth's reservation");
    std::fs::create_dir_all(fx.host_local_dir()).expect("mkdir");
    let legacy = fx.host_local_dir().join(old.ip.to_string());
    std::fs::write(&legacy, "old1\r\neth0").expect("host-local reservation");
    let record_path = fx.cfg.state_dir.join("results/old1.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).expect("record")).expect("json");
    record["config"]["plugins"][0]["ipam"] = serde_json::json!({
        "type": "host-local",
        "ranges": [[{ "subnet": fx.cfg.subnet }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": fx.cfg.state_dir.join("ipam"),
    });
    std::fs::write(&record_path, serde_json::to_vec(&record).expect("encode")).expect("write");

    let reopened = Network::new(fx.cfg.clone()).expect("reopen");
    assert_eq!(reopened.attachment("old1"), Some(old.clone()));
    let mut fresh = Vec::new();
    for i in 0..3 {
        let id = format!("new{i}");
        let att = reopened
            .setup(&id)
            .await
            .expect("setup beside the old group");
        assert_ne!(att.ip, old.ip, "the old group's address handed out again");
        assert!(fx.reservation(att.ip).exists());
        fresh.push((id, att));
    }
    reopened.teardown("old1").await.expect("teardown");
    assert_gone(&fx, "old1", &old, &chains);
    assert!(
        !legacy.exists(),
        "host-local's DEL released its reservation"
    );
    assert!(!fx.reservation(old.ip).exists());
    for (id, att) in fresh {
        reopened.teardown(&id).await.expect("teardown");
        assert!(!fx.reservation(att.ip).exists());
    }
}
