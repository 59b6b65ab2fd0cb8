//! The ADD of berth's own list without plugin processes: the bridge, the veth pair, the
//! group's address and routes, made over rtnetlink (`rtnl`).
//!
//! For berth's own list (`config`: `bridge` with gateway and hairpin, the `static` IPAM
//! plugin with the address berth picked, one default route) the `bridge` and `static`
//! plugins are two Go processes per group start that do a handful of netlink requests;
//! here berth makes the same requests itself, in the order and with the values of the
//! `bridge` plugin's `cmdAdd` (containernetworking/plugins v1.1.1, Debian's), and writes
//! the same result document, so the record, the DEL (`link`), the pool, hand-over and
//! isolation see no difference. Any other list — an attribute this module does not
//! reproduce exactly, another IPAM plugin, another plugin in the list — runs the plugins
//! ([`Plan::of`] says which).
//!
//! What the plugin does and is done here:
//! - the bridge: created when missing (any other kind of link under its name is an error),
//!   `accept_ra` 0, up;
//! - the veth pair, made from inside the group's namespace with the peer sent to the host's:
//!   `eth0` there (it takes the namespace's default sysctls, IPv6 off), a random `vethXXXXXXXX`
//!   on the host, both with a transmit queue length of 0 as the plugin sets it; the host end
//!   up, `accept_ra` 0, on the bridge, hairpin mode as configured;
//! - in the namespace: `accept_dad` 0 and `arp_notify` 1 on `eth0`, the address (with its
//!   broadcast address), `eth0` up, the routes via the gateway;
//! - the host end's operational state checked up (0, 50, 500, 1,000, 1,000 ms apart);
//! - as gateway: the gateway address on the bridge (another address there is an error), the
//!   bridge's MAC fixed to its own, IPv4 forwarding on. One difference: a bridge whose last
//!   port left has no MAC (all zeros) when it is read, and the plugin fails to pin that;
//!   here the MAC it took from the new port is pinned.
//!
//! A failure after the pair exists deletes it; the caller releases the address.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cni::IFNAME;
use crate::config::{parse_cidr, ConfList, CNI_VERSION};
use crate::error::NetError;
use crate::link::{del_link_request, valid_ifname};
use crate::netns;
use crate::rtnl::{
    self, Link, Message, Socket, IFA_ADDRESS, IFA_BROADCAST, IFA_LOCAL, IFLA_ADDRESS,
    IFLA_BRPORT_MODE, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MASTER,
    IFLA_NET_NS_FD, IFLA_NUM_RX_QUEUES, IFLA_NUM_TX_QUEUES, IFLA_PROTINFO, IFLA_TXQLEN, IF_OPER_UP,
    NLA_F_NESTED, RTA_DST, RTA_GATEWAY, RTA_OIF, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE,
    RTM_SETLINK, VETH_INFO_PEER,
};

/// The pauses before each look at the host end's operational state, as the plugin's.
const OPER_CHECKS_MS: [u64; 5] = [0, 50, 500, 1000, 1000];
/// Attempts at a host-side name nobody holds, as the plugin's.
const NAME_ATTEMPTS: usize = 10;

/// What the ADD of one group does, read from its list (with its lease filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    bridge: String,
    is_gateway: bool,
    hairpin: bool,
    address: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    /// Destinations routed via the gateway.
    routes: Vec<(Ipv4Addr, u8)>,
}

impl Plan {
    /// The plan for `list` when it is berth's own shape, every attribute one this module
    /// reproduces; `None` sends the list through the plugins.
    pub(crate) fn of(list: &ConfList) -> Option<Self> {
        let [bridge] = list.plugins.as_slice() else {
            return None;
        };
        if list.cni_version != CNI_VERSION {
            return None;
        }
        let conf = bridge.as_object()?;
        let known = [
            "type",
            "bridge",
            "isGateway",
            "ipMasq",
            "hairpinMode",
            "ipam",
        ];
        if conf.keys().any(|k| !known.contains(&k.as_str())) {
            return None;
        }
        let flag = |key: &str| match conf.get(key) {
            None => Some(false),
            Some(v) => v.as_bool(),
        };
        if conf.get("type")?.as_str()? != "bridge" || flag("ipMasq")? {
            return None;
        }
        let name = conf.get("bridge")?.as_str()?;
        if !valid_ifname(name) {
            return None;
        }
        let ipam = conf.get("ipam")?.as_object()?;
        if ipam
            .keys()
            .any(|k| !["type", "routes", "addresses"].contains(&k.as_str()))
            || ipam.get("type")?.as_str()? != "static"
        {
            return None;
        }
        let [addr] = ipam.get("addresses")?.as_array()?.as_slice() else {
            return None;
        };
        let addr = addr.as_object()?;
        if addr.keys().any(|k| k != "address" && k != "gateway") {
            return None;
        }
        let (address, prefix) = v4_cidr(addr.get("address")?.as_str()?)?;
        let gateway: Ipv4Addr = addr.get("gateway")?.as_str()?.parse().ok()?;
        let mut routes = Vec::new();
        for route in ipam
            .get("routes")
            .map_or(Some(&Vec::new()), Value::as_array)?
        {
            let route = route.as_object()?;
            if route.keys().any(|k| k != "dst") {
                return None;
            }
            routes.push(v4_cidr(route.get("dst")?.as_str()?)?);
        }
        Some(Self {
            bridge: name.to_owned(),
            is_gateway: flag("isGateway")?,
            hairpin: flag("hairpinMode")?,
            address,
            prefix,
            gateway,
            routes,
        })
    }
}

fn v4_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    match parse_cidr(text)? {
        (IpAddr::V4(ip), prefix) => Some((ip, prefix)),
        (IpAddr::V6(_), _) => None,
    }
}

/// Wires the namespace at `netns` as the plan says and returns the CNI result the `bridge`
/// plugin would have printed. Runs blocking: call it off the async workers.
pub(crate) fn add(plan: &Plan, netns: &Path) -> Result<Value, NetError> {
    let mut host = Socket::open().map_err(failed("opening a netlink socket for", &plan.bridge))?;
    let host_ns = File::open("/proc/thread-self/ns/net").map_err(failed(
        "opening the host's network namespace for",
        &plan.bridge,
    ))?;
    let bridge = ensure_bridge(&mut host, &plan.bridge)?;
    let (peer, eth0) = netns::run_in(netns, || {
        in_namespace(plan, &mut host, host_ns.as_raw_fd(), &bridge)
    })
    .map_err(failed("joining the group's namespace for", IFNAME))??;
    finish(plan, &mut host, &bridge, &peer, &eth0, netns).inspect_err(|_| {
        if let Some(request) = del_link_request(&peer.0) {
            let _ = host.ack(request);
        }
    })
}

fn failed(step: &'static str, link: &str) -> impl FnOnce(io::Error) -> NetError {
    let link = link.to_owned();
    move |source| NetError::Link { step, link, source }
}

/// The bridge, made and brought up when missing.
fn ensure_bridge(host: &mut Socket, name: &str) -> Result<Link, NetError> {
    let create = Message::new(
        RTM_NEWLINK,
        libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
    )
    .ifinfo(libc::AF_UNSPEC as u8, 0, 0, 0)
    .attr_name(IFLA_IFNAME, name)
    .nest(IFLA_LINKINFO, |n| n.attr(IFLA_INFO_KIND, b"bridge"));
    match host.ack(create) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(failed("creating the bridge", name)(e)),
    }
    let bridge = host
        .link(name)
        .map_err(failed("reading the bridge", name))?
        .ok_or_else(|| failed("reading the bridge", name)(io::ErrorKind::NotFound.into()))?;
    if bridge.kind != "bridge" {
        return Err(NetError::NotABridge {
            name: name.to_owned(),
        });
    }
    sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/accept_ra"), "0");
    if bridge.flags & libc::IFF_UP as u32 == 0 {
        host.ack(set_up(bridge.index))
            .map_err(failed("bringing up the bridge", name))?;
    }
    Ok(bridge)
}

/// In the group's namespace: the veth pair, the host end attached to the bridge, then
/// `eth0`'s sysctls, address, state and routes. Returns the host end (name and link) and
/// `eth0`. Deletes the pair when a step after its creation fails.
fn in_namespace(
    plan: &Plan,
    host: &mut Socket,
    host_ns: i32,
    bridge: &Link,
) -> Result<((String, Link), Link), NetError> {
    let mut group = Socket::open().map_err(failed("opening a netlink socket for", IFNAME))?;
    let peer = create_pair(&mut group, host_ns)?;
    let wired = attach_host_end(plan, host, bridge, &peer).and_then(|host_end| {
        let eth0 = configure_eth0(plan, &mut group)?;
        Ok(((peer.clone(), host_end), eth0))
    });
    if wired.is_err() {
        if let Some(request) = del_link_request(IFNAME) {
            let _ = group.ack(request);
        }
    }
    wired
}

/// Makes `eth0` here with its peer, under a random free name, in the host's namespace.
fn create_pair(group: &mut Socket, host_ns: i32) -> Result<String, NetError> {
    for _ in 0..NAME_ATTEMPTS {
        let peer = random_veth_name().map_err(failed("naming the host end of", IFNAME))?;
        match group.ack(new_pair_request(IFNAME, &peer, host_ns as u32)) {
            Ok(()) => return Ok(peer),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Either `eth0` is here already or the host has a link of that name.
                let own = group
                    .link(IFNAME)
                    .map_err(failed("reading the group's interface", IFNAME))?;
                if own.is_some() {
                    return Err(failed("creating the veth pair", IFNAME)(e));
                }
            }
            Err(e) => return Err(failed("creating the veth pair", IFNAME)(e)),
        }
    }
    Err(failed("creating the veth pair", IFNAME)(io::Error::other(
        "no free name for the host end",
    )))
}

/// `RTM_NEWLINK` of a veth pair: `name` here, `peer` in the namespace of `peer_ns`, both
/// with a transmit queue length of 0 as the plugin makes them, and one transmit and one
/// receive queue each. The kernel's default is a queue of each kind per possible CPU; a
/// veth's queues only matter to XDP and GRO on the veth, which berth does not turn on, and
/// each queue is kernel memory and sysfs entries for as long as the group runs (300 pairs on
/// a 2-CPU host: 4.7 KiB of unreclaimable slab a pair less with one queue of each).
fn new_pair_request(name: &str, peer: &str, peer_ns: u32) -> Message {
    Message::new(
        RTM_NEWLINK,
        libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
    )
    .ifinfo(libc::AF_UNSPEC as u8, 0, 0, 0)
    .attr_name(IFLA_IFNAME, name)
    .attr_u32(IFLA_TXQLEN, 0)
    .attr_u32(IFLA_NUM_TX_QUEUES, 1)
    .attr_u32(IFLA_NUM_RX_QUEUES, 1)
    .nest(IFLA_LINKINFO, |info| {
        info.attr(IFLA_INFO_KIND, b"veth")
            .nest(IFLA_INFO_DATA, |data| {
                data.nest(VETH_INFO_PEER, |p| {
                    p.ifinfo(libc::AF_UNSPEC as u8, 0)
                        .attr_name(IFLA_IFNAME, peer)
                        .attr_u32(IFLA_TXQLEN, 0)
                        .attr_u32(IFLA_NUM_TX_QUEUES, 1)
                        .attr_u32(IFLA_NUM_RX_QUEUES, 1)
                        .attr_u32(IFLA_NET_NS_FD, peer_ns)
                })
            })
    })
}

/// The host end: up, on the bridge, hairpin mode as planned.
fn attach_host_end(
    plan: &Plan,
    host: &mut Socket,
    bridge: &Link,
    peer: &str,
) -> Result<Link, NetError> {
    let link = host
        .link(peer)
        .map_err(failed("reading the host end", peer))?
        .ok_or_else(|| failed("reading the host end", peer)(io::ErrorKind::NotFound.into()))?;
    host.ack(set_up(link.index))
        .map_err(failed("bringing up the host end", peer))?;
    host.ack(set_master(link.index, bridge.index))
        .map_err(failed("attaching to the bridge the host end", peer))?;
    host.ack(set_hairpin(link.index, plan.hairpin))
        .map_err(failed("setting hairpin mode on", peer))?;
    Ok(link)
}

/// `eth0`, from inside the namespace: sysctls, address, up, routes.
fn configure_eth0(plan: &Plan, group: &mut Socket) -> Result<Link, NetError> {
    let eth0 = group
        .link(IFNAME)
        .map_err(failed("reading the group's interface", IFNAME))?
        .ok_or_else(|| {
            failed("reading the group's interface", IFNAME)(io::ErrorKind::NotFound.into())
        })?;
    sysctl(&format!("/proc/sys/net/ipv6/conf/{IFNAME}/accept_dad"), "0");
    sysctl(&format!("/proc/sys/net/ipv4/conf/{IFNAME}/arp_notify"), "1");
    group
        .ack(new_address_request(eth0.index, plan.address, plan.prefix))
        .map_err(failed("adding the group's address to", IFNAME))?;
    group
        .ack(set_up(eth0.index))
        .map_err(failed("bringing up", IFNAME))?;
    for &(dst, len) in &plan.routes {
        group
            .ack(new_route_request(eth0.index, dst, len, plan.gateway))
            .map_err(failed("adding a route via the gateway on", IFNAME))?;
    }
    Ok(eth0)
}

/// After the namespace's part: the host end's sysctl and state, the gateway, the result.
fn finish(
    plan: &Plan,
    host: &mut Socket,
    bridge: &Link,
    peer: &(String, Link),
    eth0: &Link,
    netns: &Path,
) -> Result<Value, NetError> {
    let (peer_name, peer_link) = peer;
    sysctl(
        &format!("/proc/sys/net/ipv6/conf/{peer_name}/accept_ra"),
        "0",
    );
    wait_oper_up(host, peer_name)?;
    if plan.is_gateway {
        ensure_gateway(plan, host, bridge)?;
        enable_ip_forward().map_err(failed("turning on IPv4 forwarding for", &plan.bridge))?;
    }
    let bridge_now = host
        .link(&plan.bridge)
        .map_err(failed("reading the bridge", &plan.bridge))?
        .ok_or_else(|| {
            failed("reading the bridge", &plan.bridge)(io::ErrorKind::NotFound.into())
        })?;
    Ok(result(plan, &bridge_now, peer_name, peer_link, eth0, netns))
}

fn wait_oper_up(host: &mut Socket, peer: &str) -> Result<(), NetError> {
    let mut state = 0;
    for pause in OPER_CHECKS_MS {
        std::thread::sleep(Duration::from_millis(pause));
        let link = host
            .link(peer)
            .map_err(failed("reading the host end", peer))?
            .ok_or_else(|| failed("reading the host end", peer)(io::ErrorKind::NotFound.into()))?;
        state = link.operstate;
        if state == IF_OPER_UP {
            return Ok(());
        }
    }
    Err(NetError::PortDown {
        link: peer.to_owned(),
        state,
    })
}

/// The gateway address on the bridge, unless it is there; the bridge's MAC then pinned to
/// its own (else the bridge takes the lowest MAC of its ports, changing as groups come
/// and go).
fn ensure_gateway(plan: &Plan, host: &mut Socket, bridge: &Link) -> Result<(), NetError> {
    let name = &plan.bridge;
    let want = (IpAddr::V4(plan.gateway), plan.prefix);
    let have = host
        .addresses_v4(bridge.index)
        .map_err(failed("reading the addresses of the bridge", name))?;
    if have.contains(&want) {
        return Ok(());
    }
    if !have.is_empty() {
        return Err(NetError::BridgeAddress {
            bridge: name.clone(),
            address: format!("{}/{}", plan.gateway, plan.prefix),
        });
    }
    match host.ack(new_address_request(bridge.index, plan.gateway, plan.prefix)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(failed("adding the gateway address to", name)(e)),
    }
    // A bridge whose last port left has no MAC (all zeros) until a port joins; it then
    // has the new port's, which is pinned instead (the plugin fails there).
    let mac = if bridge.mac.iter().all(|b| *b == 0) {
        host.link(name)
            .map_err(failed("reading the bridge", name))?
            .map(|now| now.mac)
            .unwrap_or_default()
    } else {
        bridge.mac.clone()
    };
    host.ack(
        Message::new(RTM_SETLINK, libc::NLM_F_ACK)
            .ifinfo(libc::AF_UNSPEC as u8, bridge.index, 0, 0)
            .attr(IFLA_ADDRESS, &mac),
    )
    .map_err(failed("setting the MAC of the bridge", name))
}

fn enable_ip_forward() -> io::Result<()> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1")
}

/// The `bridge` plugin's result for CNI 1.0.0: the bridge, the host end, `eth0` in the
/// sandbox, the address on interface 2 and the routes as the IPAM configuration gave them.
fn result(
    plan: &Plan,
    bridge: &Link,
    peer: &str,
    peer_link: &Link,
    eth0: &Link,
    netns: &Path,
) -> Value {
    let routes: Vec<Value> = plan
        .routes
        .iter()
        .map(|(dst, len)| json!({ "dst": format!("{dst}/{len}") }))
        .collect();
    json!({
        "cniVersion": CNI_VERSION,
        "interfaces": [
            { "name": plan.bridge, "mac": bridge.mac_text() },
            { "name": peer, "mac": peer_link.mac_text() },
            { "name": IFNAME, "mac": eth0.mac_text(), "sandbox": netns.to_string_lossy() },
        ],
        "ips": [{
            "interface": 2,
            "address": format!("{}/{}", plan.address, plan.prefix),
            "gateway": plan.gateway.to_string(),
        }],
        "routes": routes,
        "dns": {},
    })
}

fn set_up(index: u32) -> Message {
    let up = libc::IFF_UP as u32;
    Message::new(RTM_SETLINK, libc::NLM_F_ACK).ifinfo(libc::AF_UNSPEC as u8, index, up, up)
}

fn set_master(index: u32, master: u32) -> Message {
    Message::new(RTM_SETLINK, libc::NLM_F_ACK)
        .ifinfo(libc::AF_UNSPEC as u8, index, 0, 0)
        .attr_u32(IFLA_MASTER, master)
}

/// The bridge port's hairpin mode, set through the `AF_BRIDGE` family as the plugin does.
fn set_hairpin(index: u32, on: bool) -> Message {
    Message::new(RTM_SETLINK, libc::NLM_F_ACK)
        .ifinfo(libc::AF_BRIDGE as u8, index, 0, 0)
        .nest(IFLA_PROTINFO | NLA_F_NESTED, |n| {
            n.attr(IFLA_BRPORT_MODE, &[u8::from(on)])
        })
}

/// `RTM_NEWADDR` of `ip/prefix` on `index`, with the broadcast address below a /31.
fn new_address_request(index: u32, ip: Ipv4Addr, prefix: u8) -> Message {
    let msg = Message::new(
        RTM_NEWADDR,
        libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
    )
    .ifaddr(libc::AF_INET as u8, prefix, index)
    .attr(IFA_LOCAL, &ip.octets())
    .attr(IFA_ADDRESS, &ip.octets());
    if prefix < 31 {
        let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(ip) | host_bits);
        msg.attr(IFA_BROADCAST, &broadcast.octets())
    } else {
        msg
    }
}

/// `RTM_NEWROUTE` of `dst/len` via `gateway` out of `index`.
fn new_route_request(index: u32, dst: Ipv4Addr, len: u8, gateway: Ipv4Addr) -> Message {
    Message::new(RTM_NEWROUTE, libc::NLM_F_CREATE | libc::NLM_F_ACK)
        .rtmsg(libc::AF_INET as u8, len)
        .attr(RTA_DST, &dst.octets())
        .attr(RTA_GATEWAY, &gateway.octets())
        .attr_u32(RTA_OIF, index)
}

/// `veth` and 8 random hex digits, as the plugin names the host end.
fn random_veth_name() -> io::Result<String> {
    let mut bytes = [0u8; 4];
    // SAFETY: the buffer is valid for its length.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(format!("veth{}", rtnl::mac_text(&bytes).replace(':', "")))
}

/// Writes a sysctl the plugin sets without checking the outcome (IPv6 may be absent).
fn sysctl(path: &str, value: &str) {
    let _ = std::fs::write(path, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConfig;

    fn own() -> ConfList {
        let lease = crate::ipam::Lease {
            ip: "10.213.0.7".parse().expect("ip"),
            prefix: 16,
            gateway: "10.213.0.1".parse().expect("ip"),
        };
        ConfList::from_config(&NetConfig::default())
            .expect("list")
            .with_lease(&lease)
    }

    #[test]
    fn berths_own_list_is_planned() {
        let plan = Plan::of(&own()).expect("plan");
        assert_eq!(
            plan,
            Plan {
                bridge: "berth0".into(),
                is_gateway: true,
                hairpin: true,
                address: "10.213.0.7".parse().expect("ip"),
                prefix: 16,
                gateway: "10.213.0.1".parse().expect("ip"),
                routes: vec![(Ipv4Addr::UNSPECIFIED, 0)],
            }
        );
    }

    #[test]
    fn anything_else_goes_to_the_plugins() {
        let with = |edit: &dyn Fn(&mut ConfList)| {
            let mut list = own();
            edit(&mut list);
            Plan::of(&list)
        };
        assert!(with(&|_| {}).is_some());
        assert!(with(&|l| l.plugins[0]["ipMasq"] = json!(true)).is_none());
        assert!(with(&|l| l.plugins[0]["mtu"] = json!(1400)).is_none());
        assert!(with(&|l| l.plugins[0]["macspoofchk"] = json!(true)).is_none());
        assert!(with(&|l| l.plugins[0]["promiscMode"] = json!(true)).is_none());
        assert!(with(&|l| l.plugins[0]["hairpinMode"] = json!("yes")).is_none());
        assert!(with(&|l| l.plugins[0]["type"] = json!("ptp")).is_none());
        assert!(with(&|l| l.plugins[0]["bridge"] = json!("a/b")).is_none());
        assert!(with(&|l| l.plugins[0]["ipam"]["type"] = json!("host-local")).is_none());
        assert!(with(&|l| l.plugins[0]["ipam"]["routes"][0]["gw"] = json!("10.0.0.9")).is_none());
        assert!(with(&|l| l.plugins[0]["ipam"]["dns"] = json!({})).is_none());
        assert!(with(&|l| l.plugins[0]["ipam"]["addresses"] = json!([])).is_none());
        assert!(
            with(&|l| l.plugins[0]["ipam"]["addresses"][0]["address"] = json!("fd00::7/64"))
                .is_none()
        );
        assert!(with(&|l| l.cni_version = "0.4.0".into()).is_none());
        assert!(with(&|l| l.plugins.push(json!({"type": "portmap"}))).is_none());
        let off = with(&|l| l.plugins[0]["hairpinMode"] = json!(false)).expect("plan");
        assert!(!off.hairpin);
        let no_routes = with(&|l| {
            l.plugins[0]["ipam"]
                .as_object_mut()
                .expect("ipam")
                .remove("routes");
        })
        .expect("plan");
        assert!(no_routes.routes.is_empty());
    }

    /// Attributes after the fixed header of a request, as (type, payload).
    fn attrs_of(msg: &[u8], header: usize) -> Vec<(u16, Vec<u8>)> {
        attrs_in(&msg[rtnl::NLMSG_HDRLEN + header..])
    }

    /// A run of attributes, as (type, payload).
    fn attrs_in(mut rest: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while rest.len() >= 4 {
            let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
            let kind = u16::from_ne_bytes([rest[2], rest[3]]);
            out.push((kind, rest[4..len].to_vec()));
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
        out
    }

    #[test]
    fn the_pair_request_sends_the_peer_to_the_host() {
        let msg = new_pair_request("eth0", "veth0a1b2c3d", 9).bytes(1);
        let top = attrs_of(&msg, rtnl::IFINFOMSG_LEN);
        assert_eq!(top[0], (IFLA_IFNAME, b"eth0\0".to_vec()));
        let one = 1u32.to_ne_bytes().to_vec();
        assert_eq!(top[1], (IFLA_TXQLEN, 0u32.to_ne_bytes().to_vec()));
        assert_eq!(top[2], (IFLA_NUM_TX_QUEUES, one.clone()));
        assert_eq!(top[3], (IFLA_NUM_RX_QUEUES, one.clone()));
        let (kind, info) = &top[4];
        assert_eq!(*kind, IFLA_LINKINFO);
        // kind "veth" (8), then the data (4) holding the peer (4) with its ifinfomsg (16),
        // name (4 + 13 -> 20), queue length (8), queue counts (8 + 8) and namespace (8).
        assert_eq!(&info[0..8], &[8, 0, 1, 0, b'v', b'e', b't', b'h']);
        assert_eq!(
            u16::from_ne_bytes([info[8], info[9]]) as usize,
            4 + 4 + 16 + 20 + 8 + 8 + 8 + 8
        );
        assert_eq!(u16::from_ne_bytes([info[10], info[11]]), IFLA_INFO_DATA);
        assert_eq!(u16::from_ne_bytes([info[14], info[15]]), VETH_INFO_PEER);
        let peer = &info[16..];
        assert_eq!(&peer[0..16], &[0u8; 16]);
        assert_eq!(&peer[20..33], b"veth0a1b2c3d\0");
        let peer_attrs = attrs_in(&peer[rtnl::IFINFOMSG_LEN..]);
        assert_eq!(peer_attrs[1], (IFLA_TXQLEN, 0u32.to_ne_bytes().to_vec()));
        assert_eq!(peer_attrs[2], (IFLA_NUM_TX_QUEUES, one.clone()));
        assert_eq!(peer_attrs[3], (IFLA_NUM_RX_QUEUES, one));
        assert_eq!(peer_attrs[4], (IFLA_NET_NS_FD, 9u32.to_ne_bytes().to_vec()));
    }

    #[test]
    fn address_route_and_port_requests() {
        let addr = new_address_request(5, "10.213.0.7".parse().expect("ip"), 16).bytes(1);
        assert_eq!(&addr[16..24], &[libc::AF_INET as u8, 16, 0, 0, 5, 0, 0, 0]);
        let attrs = attrs_of(&addr, 8);
        assert_eq!(
            attrs,
            vec![
                (IFA_LOCAL, vec![10, 213, 0, 7]),
                (IFA_ADDRESS, vec![10, 213, 0, 7]),
                (IFA_BROADCAST, vec![10, 213, 255, 255]),
            ]
        );
        let p2p = new_address_request(5, "10.0.0.1".parse().expect("ip"), 31).bytes(1);
        assert_eq!(attrs_of(&p2p, 8).len(), 2, "no broadcast on a /31");

        let route = new_route_request(
            5,
            Ipv4Addr::UNSPECIFIED,
            0,
            "10.213.0.1".parse().expect("ip"),
        )
        .bytes(1);
        assert_eq!(
            &route[16..24],
            &[libc::AF_INET as u8, 0, 0, 0, 254, 3, 0, 1]
        );
        assert_eq!(
            attrs_of(&route, 12),
            vec![
                (RTA_DST, vec![0, 0, 0, 0]),
                (RTA_GATEWAY, vec![10, 213, 0, 1]),
                (RTA_OIF, 5u32.to_ne_bytes().to_vec()),
            ]
        );

        let hairpin = set_hairpin(7, true).bytes(1);
        assert_eq!(hairpin[16], libc::AF_BRIDGE as u8);
        assert_eq!(
            u32::from_ne_bytes(hairpin[20..24].try_into().expect("u32")),
            7
        );
        let attrs = attrs_of(&hairpin, rtnl::IFINFOMSG_LEN);
        assert_eq!(attrs[0].0, IFLA_PROTINFO | NLA_F_NESTED);
        assert_eq!(
            attrs[0].1,
            vec![5, 0, IFLA_BRPORT_MODE as u8, 0, 1, 0, 0, 0]
        );
        let off = set_hairpin(7, false).bytes(1);
        assert_eq!(attrs_of(&off, rtnl::IFINFOMSG_LEN)[0].1[4], 0);

        let up = set_up(3).bytes(1);
        let flags = libc::IFF_UP as u32;
        assert_eq!(
            &up[24..32],
            &[flags.to_ne_bytes(), flags.to_ne_bytes()].concat()[..]
        );
        let master = set_master(3, 4).bytes(1);
        assert_eq!(
            attrs_of(&master, rtnl::IFINFOMSG_LEN),
            vec![(IFLA_MASTER, 4u32.to_ne_bytes().to_vec())]
        );
    }

    #[test]
    fn host_ends_are_named_like_the_plugins() {
        let a = random_veth_name().expect("name");
        let b = random_veth_name().expect("name");
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
