//! What a group got from the network: its address, gateway and host-side interface.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::parse_cidr;

/// A group's place in the network, as wired by CNI ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The group's network namespace file.
    pub netns: PathBuf,
    /// The group's address on `eth0`.
    pub ip: IpAddr,
    /// Prefix length of that address.
    pub prefix_len: u8,
    /// The default gateway, when the plugin set one.
    pub gateway: Option<IpAddr>,
    /// Host side of the veth pair, empty when the result does not say.
    pub interface: String,
}

/// The parts of a CNI 1.0.0 result berth reads.
#[derive(Debug, Deserialize)]
struct CniResult {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
}

#[derive(Debug, Deserialize)]
struct Interface {
    name: String,
    #[serde(default)]
    sandbox: String,
}

#[derive(Debug, Deserialize)]
struct IpConfig {
    address: String,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    interface: Option<usize>,
}

/// Reads the attachment out of a final CNI result; `None` when it holds no address.
///
/// The address is the first one on the interface inside the namespace named
/// `ifname`; the host interface is the first one outside the namespace that is
/// not the bridge.
pub fn attachment_from_result(
    result: &Value,
    netns: PathBuf,
    ifname: &str,
    bridge: &str,
) -> Option<Attachment> {
    let parsed: CniResult = serde_json::from_value(result.clone()).ok()?;
    let in_sandbox = |ip: &IpConfig| {
        ip.interface
            .and_then(|i| parsed.interfaces.get(i))
            .is_some_and(|iface| !iface.sandbox.is_empty() && iface.name == ifname)
    };
    let ip = parsed
        .ips
        .iter()
        .find(|ip| in_sandbox(ip))
        .or_else(|| parsed.ips.first())?;
    let (addr, prefix_len) = parse_cidr(&ip.address)?;
    let interface = parsed
        .interfaces
        .iter()
        .find(|iface| iface.sandbox.is_empty() && iface.name != bridge)
        .map(|iface| iface.name.clone())
        .unwrap_or_default();
    Some(Attachment {
        netns,
        ip: addr,
        prefix_len,
        gateway: ip.gateway,
        interface,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bridge_result_is_read() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "berth0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/berth/netns/g1"}
            ],
            "ips": [{"interface": 2, "address": "10.213.0.2/16", "gateway": "10.213.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let att = attachment_from_result(&result, "/run/berth/netns/g1".into(), "eth0", "berth0")
            .expect("attachment");
        assert_eq!(att.ip, "10.213.0.2".parse::<IpAddr>().expect("ip"));
        assert_eq!(att.prefix_len, 16);
        assert_eq!(att.gateway, Some("10.213.0.1".parse().expect("ip")));
        assert_eq!(att.interface, "veth1234");
    }

    #[test]
    fn result_without_address_gives_nothing() {
        let result = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": []});
        assert!(attachment_from_result(&result, "/x".into(), "eth0", "b").is_none());
    }
}
