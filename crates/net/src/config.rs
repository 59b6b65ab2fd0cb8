//! Network configuration and the CNI network configuration list berth writes from it.
//!
//! The list has one plugin, `bridge` (gateway, hairpin) with the `static` IPAM plugin:
//! berth picks each group's address itself (`ipam`) and writes it into the group's copy
//! of the list ([`ConfList::with_lease`]). The loopback interface is
//! brought up by berth itself when it creates the namespace, which saves a
//! plugin process per group. Outbound traffic is masqueraded by one rule for
//! the whole subnet that berth installs itself (see `masq`), not by the
//! plugin's per-group chains, which cost four `iptables` runs per ADD and DEL.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::NetError;

/// CNI specification version berth speaks to the plugins.
pub const CNI_VERSION: &str = "1.0.0";

/// Where and how berth wires container groups into the host network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// berth's network state: the conflist, the address reservations, cached results.
    pub state_dir: PathBuf,
    /// Directory holding one bind-mounted namespace file per group.
    pub netns_dir: PathBuf,
    /// Directories searched for plugin binaries, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Name of the host bridge.
    pub bridge: String,
    /// Subnet the groups' addresses come from, in CIDR notation.
    pub subnet: String,
    /// CNI network name.
    pub network_name: String,
    /// Namespaces kept wired ahead of time, so a group's start need not wait for CNI.
    pub pool_size: usize,
    /// nftables isolation of the groups (see `isolation`); `None` leaves the bridge open.
    pub isolation: Option<crate::isolation::IsolationConfig>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/berth/net"),
            netns_dir: PathBuf::from("/run/berth/netns"),
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "berth0".to_owned(),
            subnet: "10.213.0.0/16".to_owned(),
            network_name: "berth".to_owned(),
            pool_size: 0,
            isolation: None,
        }
    }
}

/// A CNI network configuration list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfList {
    /// CNI version of the list.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Network name.
    pub name: String,
    /// Plugin configurations, run in order on ADD and in reverse on DEL.
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Builds berth's list from the configuration.
    pub fn from_config(cfg: &NetConfig) -> Result<Self, NetError> {
        validate_name("bridge", &cfg.bridge, 15)?;
        validate_name("network_name", &cfg.network_name, 64)?;
        let (net, _) = parse_cidr(&cfg.subnet).ok_or_else(|| NetError::InvalidConfig {
            reason: format!("subnet `{}` is not an address/prefix", cfg.subnet),
        })?;
        let default_route = if net.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        let bridge = json!({
            "type": "bridge",
            "bridge": cfg.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "static",
                "routes": [{ "dst": default_route }],
            },
        });
        Ok(Self {
            cni_version: CNI_VERSION.to_owned(),
            name: cfg.network_name.clone(),
            plugins: vec![bridge],
        })
    }

    /// This list with `lease` as the address of every plugin's `static` IPAM.
    pub(crate) fn with_lease(&self, lease: &crate::ipam::Lease) -> Self {
        let mut list = self.clone();
        for plugin in &mut list.plugins {
            let Some(ipam) = plugin.get_mut("ipam").and_then(Value::as_object_mut) else {
                continue;
            };
            if ipam.get("type").and_then(Value::as_str) == Some("static") {
                ipam.insert(
                    "addresses".to_owned(),
                    json!([{
                        "address": format!("{}/{}", lease.ip, lease.prefix),
                        "gateway": lease.gateway.to_string(),
                    }]),
                );
            }
        }
        list
    }

    /// Every binary the list needs: each plugin's `type` and its `ipam.type`.
    pub fn binaries(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for plugin in &self.plugins {
            let names = [
                plugin.get("type"),
                plugin.get("ipam").and_then(|ipam| ipam.get("type")),
            ];
            for name in names.into_iter().flatten().filter_map(Value::as_str) {
                if !out.iter().any(|known| known == name) {
                    out.push(name.to_owned());
                }
            }
        }
        out
    }
}

/// host-local's data directory under the state directory, where groups wired by an earlier
/// berth keep their reservations.
pub fn ipam_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("ipam")
}

/// berth's address reservations under the state directory (`ipam`).
pub fn addresses_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("addresses")
}

/// Path of the conflist under the state directory.
pub fn conflist_path(state_dir: &Path, network_name: &str) -> PathBuf {
    state_dir.join(format!("{network_name}.conflist"))
}

/// Finds a plugin binary in the plugin directories.
pub fn find_plugin(dirs: &[PathBuf], name: &str) -> Result<PathBuf, NetError> {
    let valid = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| valid && path.is_file())
        .ok_or_else(|| NetError::MissingPlugin {
            plugin: name.to_owned(),
            searched: dirs.to_vec(),
        })
}

/// Parses `address/prefix`.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

/// The most namespaces the pool may hold on `subnet`: a quarter of its usable addresses, so
/// the pool never takes the room groups need (None: the subnet does not parse).
pub fn pool_cap(subnet: &str) -> Option<usize> {
    let (addr, prefix) = parse_cidr(subnet)?;
    let bits = if addr.is_ipv4() { 32 } else { 128 } - u32::from(prefix);
    let addresses = if bits >= 24 {
        1usize << 24
    } else {
        1usize << bits
    };
    // The network address, the gateway and the broadcast address are not for groups.
    Some(addresses.saturating_sub(3) / 4)
}

fn validate_name(field: &str, value: &str, max: usize) -> Result<(), NetError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidConfig {
            reason: format!(
                "{field} `{value}` must be 1 to {max} characters of letters, digits, '-', '_' or '.'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_has_bridge_with_static_addresses() {
        let cfg = NetConfig {
            state_dir: PathBuf::from("/s"),
            ..NetConfig::default()
        };
        let list = ConfList::from_config(&cfg).expect("valid default config");
        assert_eq!(list.name, "berth");
        assert_eq!(list.binaries(), vec!["bridge", "static"]);
        let bridge = &list.plugins[0];
        assert_eq!(bridge["bridge"], "berth0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["type"], "static");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert!(
            bridge["ipam"].get("addresses").is_none(),
            "the template has none"
        );
        let lease = crate::ipam::Lease {
            ip: "10.213.0.7".parse().expect("ip"),
            prefix: 16,
            gateway: "10.213.0.1".parse().expect("ip"),
        };
        let own = list.with_lease(&lease);
        assert_eq!(
            own.plugins[0]["ipam"]["addresses"],
            json!([{"address": "10.213.0.7/16", "gateway": "10.213.0.1"}])
        );
        assert_eq!(own.plugins[0]["ipam"]["routes"], bridge["ipam"]["routes"]);
    }

    #[test]
    fn bad_subnet_and_names_are_rejected() {
        let bad = |cfg: NetConfig| ConfList::from_config(&cfg).is_err();
        assert!(bad(NetConfig {
            subnet: "10.0.0.0".into(),
            ..NetConfig::default()
        }));
        assert!(bad(NetConfig {
            subnet: "10.0.0.0/33".into(),
            ..NetConfig::default()
        }));
        assert!(bad(NetConfig {
            bridge: "a-very-long-bridge-name".into(),
            ..NetConfig::default()
        }));
        assert!(bad(NetConfig {
            network_name: "a/b".into(),
            ..NetConfig::default()
        }));
    }

    #[test]
    fn the_pool_takes_at_most_a_quarter_of_the_subnet() {
        assert_eq!(pool_cap("10.0.0.0/24"), Some(63));
        assert_eq!(pool_cap("10.0.0.0/30"), Some(0));
        assert_eq!(pool_cap("10.213.0.0/16"), Some(16_383));
        assert_eq!(pool_cap("fd00::/64"), Some(((1 << 24) - 3) / 4));
        assert_eq!(pool_cap("nonsense"), None);
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.1.2.3/16"),
            Some(("10.1.2.3".parse().expect("ip"), 16))
        );
        assert_eq!(
            parse_cidr("fd00::1/64"),
            Some(("fd00::1".parse().expect("ip"), 64))
        );
        assert_eq!(parse_cidr("10.1.2.3"), None);
        assert_eq!(parse_cidr("x/1"), None);
    }

    #[test]
    fn missing_plugin_is_named() {
        let err = find_plugin(&[PathBuf::from("/nonexistent")], "bridge")
            .expect_err("no plugin in a missing directory");
        assert!(err.to_string().contains("`bridge`"), "{err}");
    }
}
