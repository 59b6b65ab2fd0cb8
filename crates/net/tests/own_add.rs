//! Root tests of berth's own ADD (no plugin processes for berth's list): what it makes is
//! what the `bridge` plugin makes for the same configuration, group and gateway reach each
//! other over the bridge, and nothing is left after the DEL.

mod common;

use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_net::Attachment;
use common::*;
use serde_json::Value;

/// A namespace made the way berth makes its own (`lo` up, IPv6 off for new links), for the
/// plugin to wire; deleted on drop.
struct PluginNs {
    name: String,
    path: PathBuf,
}

impl PluginNs {
    fn new(name: String) -> Self {
        sh("ip", &["netns", "add", &name]);
        let path = PathBuf::from("/run/netns").join(&name);
        let arg = format!("--net={}", path.display());
        sh("nsenter", &[&arg, "ip", "link", "set", "lo", "up"]);
        sh(
            "nsenter",
            &[
                &arg,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        Self { name, path }
    }
}

impl Drop for PluginNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs the `bridge` plugin (with `static`) for `op` on `netns` with `conf`, as CNI does.
fn plugin(op: &str, id: &str, netns: &Path, conf: &Value) -> Value {
    let mut child = Command::new("/usr/lib/cni/bridge")
        .env("CNI_COMMAND", op)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the bridge plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(conf).expect("encode"))
        .expect("write the configuration");
    let out = child.wait_with_output().expect("plugin output");
    assert!(
        out.status.success(),
        "bridge {op} failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if op == "ADD" {
        serde_json::from_slice(&out.stdout).expect("plugin result")
    } else {
        Value::Null
    }
}

fn ns_sh(netns: &Path, args: &[&str]) -> String {
    let arg = format!("--net={}", netns.display());
    let mut all = vec![arg.as_str()];
    all.extend_from_slice(args);
    sh("nsenter", &all)
}

/// Replaces what differs between any two groups of one bridge — addresses, MACs, interface
/// indexes and names, the bridge port's number and running timers — and the queue counts
/// (berth makes one of each kind, the plugin one per possible CPU) by placeholders.
fn normalize(text: &str, ip: IpAddr, host_end: &str) -> String {
    let mut words = Vec::new();
    let mut after = "";
    let ip = ip.to_string();
    for word in text.replace(host_end, "HOSTEND").split_whitespace() {
        let word = match word.split_once('/') {
            Some((addr, rest)) if addr == ip => format!("IP/{rest}"),
            _ if word == ip => "IP".to_owned(),
            _ => word.to_owned(),
        };
        let word = word.as_str();
        let is_mac = word.len() == 17 && word.split(':').all(|p| p.len() == 2);
        let varying = matches!(
            after,
            "port_id"
                | "numtxqueues"
                | "numrxqueues"
                | "port_no"
                | "designated_port"
                | "hold_timer"
                | "message_age_timer"
                | "forward_delay_timer"
                | "link-netnsid"
                | "link-netns"
        );
        let word = if after == "link-netns" {
            // `ip` names a namespace made by `ip netns add`, and numbers the others.
            "N".to_owned()
        } else if word == "link-netns" {
            "link-netnsid".to_owned()
        } else if is_mac {
            "MAC".to_owned()
        } else if varying {
            "N".to_owned()
        } else if let Some(at) = word.find("@if") {
            format!("{}@ifN", &word[..at])
        } else if word.ends_with(':') && word[..word.len() - 1].parse::<u32>().is_ok() {
            "N:".to_owned()
        } else {
            word.to_owned()
        };
        after = if is_mac { "" } else { word_key(&word) };
        words.push(word);
    }
    words.join(" ")
}

fn word_key(word: &str) -> &'static str {
    for key in [
        "port_id",
        "numtxqueues",
        "numrxqueues",
        "port_no",
        "designated_port",
        "hold_timer",
        "message_age_timer",
        "forward_delay_timer",
        "link-netnsid",
        "link-netns",
    ] {
        if word == key {
            return key;
        }
    }
    ""
}

/// Everything of one group's wiring that `ip`, `bridge` and the sysctls show, normalized.
fn describe(netns: &Path, ip: IpAddr, host_end: &str) -> Vec<(&'static str, String)> {
    let sysctl = |path: String| {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("{path}: {e}"))
            .trim()
            .to_owned()
    };
    let in_ns = |rel: &'static str| {
        let path = netns.to_owned();
        in_netns(&path, move || {
            std::fs::read_to_string(format!("/proc/sys/net/{rel}"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|e| format!("{rel}: {e}"))
        })
        .join()
        .expect("sysctl thread")
    };
    let raw = [
        (
            "eth0 link",
            ns_sh(netns, &["ip", "-d", "link", "show", "eth0"]),
        ),
        (
            "eth0 addresses",
            ns_sh(netns, &["ip", "addr", "show", "eth0"]),
        ),
        ("routes", ns_sh(netns, &["ip", "route", "show"])),
        ("host end", sh("ip", &["-d", "link", "show", host_end])),
        (
            "bridge port",
            sh("bridge", &["-d", "link", "show", "dev", host_end]),
        ),
        (
            "host end accept_ra",
            sysctl(format!("/proc/sys/net/ipv6/conf/{host_end}/accept_ra")),
        ),
        (
            "host end hairpin",
            sysctl(format!("/sys/class/net/{host_end}/brport/hairpin_mode")),
        ),
        ("eth0 accept_dad", in_ns("ipv6/conf/eth0/accept_dad")),
        ("eth0 arp_notify", in_ns("ipv4/conf/eth0/arp_notify")),
        ("eth0 disable_ipv6", in_ns("ipv6/conf/eth0/disable_ipv6")),
    ];
    raw.into_iter()
        .map(|(what, text)| (what, normalize(&text, ip, host_end)))
        .collect()
}

/// The shape of a CNI result: the values that differ between groups replaced.
fn result_shape(result: &Value, ip: IpAddr, netns: &Path, host_end: &str) -> Value {
    let text = serde_json::to_string(result).expect("encode");
    let text = text
        .replace(&ip.to_string(), "IP")
        .replace(&netns.display().to_string(), "NETNS")
        .replace(host_end, "HOSTEND");
    let mut shape: Value = serde_json::from_str(&text).expect("json");
    for iface in shape["interfaces"].as_array_mut().expect("interfaces") {
        iface["mac"] = Value::from("MAC");
    }
    shape
}

fn host_end(att: &Attachment) -> &str {
    &att.interface
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berths_add_makes_what_the_bridge_plugin_makes() {
    let fx = Fixture::new();
    let att = fx.net.setup("own1").await.expect("setup");
    let record: Value = serde_json::from_slice(
        &std::fs::read(fx.cfg.state_dir.join("results/own1.json")).expect("record"),
    )
    .expect("json");

    // The plugin, given the same list with another address of the subnet.
    let other: IpAddr = format!("{}250", fx.subnet_prefix).parse().expect("ip");
    let mut conf = record["config"]["plugins"][0].clone();
    conf["ipam"]["addresses"][0]["address"] = Value::from(format!("{other}/24"));
    conf["name"] = record["config"]["name"].clone();
    conf["cniVersion"] = record["config"]["cniVersion"].clone();
    let ns = PluginNs::new(format!("{}-p", fx.name));
    let theirs = plugin("ADD", "plugin1", &ns.path, &conf);
    let their_end = theirs["interfaces"][1]["name"]
        .as_str()
        .expect("host end")
        .to_owned();

    // One transmit and one receive queue at both ends of berth's pair.
    for text in [
        ns_sh(&att.netns, &["ip", "-d", "link", "show", "eth0"]),
        sh("ip", &["-d", "link", "show", host_end(&att)]),
    ] {
        assert!(
            text.contains("numtxqueues 1 numrxqueues 1 "),
            "not one queue of each kind: {text}"
        );
    }
    let ours = describe(&att.netns, att.ip, host_end(&att));
    let plugins = describe(&ns.path, other, &their_end);
    for ((what, a), (_, b)) in ours.iter().zip(&plugins) {
        assert_eq!(a, b, "{what} differs:\nberth:  {a}\nplugin: {b}");
    }
    assert_eq!(
        result_shape(&record["result"], att.ip, &att.netns, host_end(&att)),
        result_shape(&theirs, other, &ns.path, &their_end),
    );
    // The recorded MACs are the interfaces' own.
    let eth0 = ns_sh(&att.netns, &["ip", "-o", "link", "show", "eth0"]);
    let mac = record["result"]["interfaces"][2]["mac"]
        .as_str()
        .expect("mac");
    assert!(eth0.contains(mac), "{mac} not in {eth0}");
    let host = sh("ip", &["-o", "link", "show", host_end(&att)]);
    let mac = record["result"]["interfaces"][1]["mac"]
        .as_str()
        .expect("mac");
    assert!(host.contains(mac), "{mac} not in {host}");

    plugin("DEL", "plugin1", &ns.path, &conf);
    assert!(!host_link_exists(&their_end));
    fx.net.teardown("own1").await.expect("teardown");
    assert!(!host_link_exists(host_end(&att)), "veth left");
    assert!(links_on_bridge(&fx.name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_gateway_reach_each_other_over_the_bridge() {
    let fx = Fixture::new();
    let a = fx.net.setup("ra").await.expect("setup a");
    let b = fx.net.setup("rb").await.expect("setup b");
    let gateway = a.gateway.expect("gateway");
    assert_eq!(
        sh("ip", &["-o", "-4", "addr", "show", "dev", &fx.name])
            .split_whitespace()
            .nth(3),
        Some(format!("{gateway}/24").as_str()),
        "the bridge holds the gateway address"
    );
    let routes = ns_sh(&a.netns, &["ip", "route", "show", "default"]);
    assert!(
        routes.contains(&format!("default via {gateway} dev eth0")),
        "{routes}"
    );

    // Group to gateway: a listener on the host's bridge address.
    let listener = TcpListener::bind((gateway, 0)).expect("listen on the gateway");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.write_all(b"pong").expect("write");
    });
    let answer = in_netns(&a.netns, move || ask(gateway, port));
    assert_eq!(answer.join().expect("client"), "pong");
    server.join().expect("server");

    // Gateway (host) to group, and group to group both ways.
    let server = serve_once(&a.netns, 9100);
    assert_eq!(ask(a.ip, 9100), "pong");
    server.join().expect("server");
    for (from, to) in [(&a, &b), (&b, &a)] {
        let server = serve_once(&to.netns, 9101);
        let ip = to.ip;
        let answer = in_netns(&from.netns, move || ask(ip, 9101));
        assert_eq!(answer.join().expect("client"), "pong");
        server.join().expect("server");
    }

    for (id, att) in [("ra", &a), ("rb", &b)] {
        fx.net.teardown(id).await.expect("teardown");
        assert!(!host_link_exists(&att.interface), "veth of {id} left");
        assert!(!fx.reservation(att.ip).exists(), "address of {id} kept");
    }
    assert!(links_on_bridge(&fx.name).is_empty());
}

/// A bridge holding another address of the subnet is refused, as the plugin refuses it,
/// and the refused ADD leaves no veth and no reservation behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_with_another_address_is_refused_and_nothing_is_left() {
    let fx = Fixture::new();
    sh("ip", &["link", "add", &fx.name, "type", "bridge"]);
    let stranger = format!("{}9/24", fx.subnet_prefix);
    sh("ip", &["addr", "add", &stranger, "dev", &fx.name]);
    let err = fx.net.setup("x1").await.expect_err("another address");
    assert!(
        matches!(&err, berth_net::NetError::BridgeAddress { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("different from"), "{err}");
    // The ADD failed after the host end joined the bridge: it is gone with its pair.
    assert!(
        links_on_bridge(&fx.name).is_empty(),
        "veth of the failed ADD left"
    );
    assert!(fx.reservations().is_empty(), "{:?}", fx.reservations());
    assert!(!fx.netns("x1").exists());
    sh("ip", &["addr", "del", &stranger, "dev", &fx.name]);
    let att = fx
        .net
        .setup("x1")
        .await
        .expect("setup once the bridge is free");
    fx.net.teardown("x1").await.expect("teardown");
    assert!(!host_link_exists(&att.interface));
}
