//! Isolation of the groups on the bridge, as nftables tables of berth's own.
//!
//! * **Anti-spoofing** (bridge family, prerouting): a frame from a group's port must carry
//!   the group's own IPv4 source address and MAC (ARP likewise); anything else from a group's
//!   port (another source, IPv6, other protocols) is dropped. Ports are bound when their
//!   namespace is wired (pool or not), so this never waits for a group's start.
//! * **Accounts** (bridge family, forward and output): an IPv4 packet between two groups,
//!   switched on the bridge or routed back onto it by the host, passes only when both belong
//!   to one account; every group address is mapped to a number of its account (`acct`), and
//!   `members` holds `account . address` pairs. A group is admitted (mapped) right after its
//!   network is attached; until then it reaches no other group.
//! * **The host and beyond** (inet family, input and forward): groups open no connection to
//!   the host (replies to the host's own connections pass), except to the operator's allowed
//!   ports; link-local addresses (169.254.0.0/16, where clouds keep metadata services) and
//!   the operator's CIDRs are unreachable. The host's loopback addresses are never reached from
//!   a group, not even on an allowed port: published ports need `route_localnet` on the
//!   bridge (`portmap`), which would otherwise let a group's packet to 127.0.0.1 in.
//!
//! The element sets hold one entry per group, so the cost of a packet does not grow with the
//! number of groups. The tables are replaced in one transaction when the network opens (from
//! the records on disk), so a restart of berth leaves no gap; they are removed with the
//! network's other host state when no group is left.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::NetError;

/// What isolation lets through, set by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationConfig {
    /// Destinations no group may reach, in CIDR notation (IPv4).
    pub blocked: Vec<String>,
    /// Ports on the host that groups may connect to, as `tcp:53` or `udp:53`.
    pub host_ports: Vec<String>,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        Self {
            blocked: vec!["169.254.0.0/16".to_owned()],
            host_ports: Vec::new(),
        }
    }
}

/// One wired namespace as isolation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    /// The host side of the veth pair.
    pub iface: String,
    pub ip: IpAddr,
    /// The MAC of the namespace's side.
    pub mac: Option<String>,
    /// The number of the group's account, once admitted.
    pub account: Option<u32>,
}

/// berth's nftables tables for one bridge.
#[derive(Debug)]
pub(crate) struct Isolation {
    bridge: String,
    table: String,
    cfg: IsolationConfig,
    /// Account names and their numbers, kept on disk: a number must mean the same account
    /// for as long as the tables live, across restarts of berth.
    accounts: Mutex<BTreeMap<String, u32>>,
    accounts_path: PathBuf,
    /// Admissions not applied yet: applied together, off the start path ([`Isolation::enqueue`]).
    pending: Mutex<Vec<(IpAddr, u32)>>,
    /// Wakes the task that applies `pending`.
    pub(crate) wake: tokio::sync::Notify,
    /// Held while a transaction that adds or removes a group's elements runs, so that an
    /// admission never lands after the removal of its group.
    changing: Mutex<()>,
}

impl Isolation {
    pub fn new(bridge: &str, state_dir: &Path, cfg: IsolationConfig) -> Result<Self, NetError> {
        for cidr in &cfg.blocked {
            match crate::config::parse_cidr(cidr) {
                Some((IpAddr::V4(_), _)) => {}
                _ => {
                    return Err(NetError::InvalidConfig {
                        reason: format!("blocked destination `{cidr}` is not an IPv4 CIDR"),
                    })
                }
            }
        }
        for port in &cfg.host_ports {
            parse_host_port(port)?;
        }
        let accounts_path = state_dir.join("accounts.json");
        let accounts = std::fs::read(&accounts_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Self {
            bridge: bridge.to_owned(),
            table: format!("berth_{}", bridge.replace('-', "_")),
            cfg,
            accounts: Mutex::new(accounts),
            accounts_path,
            pending: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            changing: Mutex::new(()),
        })
    }

    /// The number of `account`, made (and written down) the first time it is asked for.
    pub fn account_number(&self, account: &str) -> Result<u32, NetError> {
        let mut map = lock(&self.accounts);
        if let Some(n) = map.get(account) {
            return Ok(*n);
        }
        let n = map.values().max().map_or(1, |m| m + 1);
        map.insert(account.to_owned(), n);
        let bytes = serde_json::to_vec(&*map).map_err(|source| NetError::Encode {
            what: "account numbers",
            source,
        })?;
        let tmp = self.accounts_path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.accounts_path)
        };
        write().map_err(|source| NetError::Io {
            step: "writing account numbers",
            path: self.accounts_path.clone(),
            source,
        })?;
        Ok(n)
    }

    /// Replaces both tables in one transaction, with `ports` as their elements.
    pub fn install(&self, ports: &[Port]) -> Result<(), NetError> {
        let _changing = lock(&self.changing);
        let t = &self.table;
        let mut s = String::new();
        // `add` then `delete` makes the delete succeed whether or not the table exists.
        for family in ["bridge", "inet"] {
            s.push_str(&format!(
                "add table {family} {t}\ndelete table {family} {t}\n"
            ));
        }
        s.push_str(&self.bridge_table());
        s.push_str(&self.inet_table());
        for p in ports {
            s.push_str(&self.add_port(p));
            if let Some(n) = p.account {
                s.push_str(&self.add_member(p.ip, n));
            }
        }
        run(&s)
    }

    /// Removes both tables (nothing is wired any more).
    pub fn remove(&self) -> Result<(), NetError> {
        let t = &self.table;
        let mut s = String::new();
        for family in ["bridge", "inet"] {
            s.push_str(&format!(
                "add table {family} {t}\ndelete table {family} {t}\n"
            ));
        }
        run(&s)
    }

    /// Binds a newly wired port to its address and MAC.
    pub fn bind(&self, port: &Port) -> Result<(), NetError> {
        run(&self.add_port(port))
    }

    /// Queues the admission of the group at `ip` to account `n`, for [`Isolation::admit_pending`].
    /// An nft run costs a few milliseconds of CPU, which a starting group's containers need.
    pub fn enqueue(&self, ip: IpAddr, n: u32) {
        lock(&self.pending).push((ip, n));
        self.wake.notify_one();
    }

    /// Applies every queued admission in one transaction. `Err` carries what failed.
    pub fn admit_pending(&self) -> Result<usize, NetError> {
        let _changing = lock(&self.changing);
        let batch = std::mem::take(&mut *lock(&self.pending));
        let script: String = batch
            .iter()
            .map(|(ip, n)| self.add_member(*ip, *n))
            .collect();
        run(&script).map(|()| batch.len())
    }

    /// Forgets everything of a port (its elements are added first in the same transaction,
    /// so that forgetting what was never added is no error), and a queued admission of it.
    pub fn forget(&self, port: &Port) -> Result<(), NetError> {
        let _changing = lock(&self.changing);
        lock(&self.pending).retain(|(ip, _)| *ip != port.ip);
        let mut s = self.add_port(port);
        if let Some(n) = port.account {
            s.push_str(&self.add_member(port.ip, n));
        }
        let delete = s.replace("add element", "delete element");
        s.push_str(&delete);
        run(&s)
    }

    fn add_port(&self, p: &Port) -> String {
        let (t, iface) = (&self.table, quote(&p.iface));
        let IpAddr::V4(ip) = p.ip else {
            return String::new();
        };
        let mut s = format!("add element bridge {t} ports {{ {iface} }}\n");
        if let Some(mac) = p.mac.as_deref().filter(|m| is_mac(m)) {
            s.push_str(&format!(
                "add element bridge {t} bound {{ {iface} . {ip} . {mac} }}\n"
            ));
        }
        s
    }

    fn add_member(&self, ip: IpAddr, n: u32) -> String {
        let t = &self.table;
        let IpAddr::V4(ip) = ip else {
            return String::new();
        };
        format!(
            "add element bridge {t} acct {{ {ip} : {n} }}\n\
             add element bridge {t} addrs {{ {ip} }}\n\
             add element bridge {t} members {{ {n} . {ip} }}\n"
        )
    }

    fn bridge_table(&self) -> String {
        let t = &self.table;
        // One check for packets switched between two ports and for packets the host routes
        // back onto the bridge: both groups must be of one account.
        // Between two ports, a source that is no admitted group (a pool namespace, a group
        // not admitted yet) reaches no group; routed onto the bridge, it is the host or the
        // world answering, which the inet table governs.
        let same_account = |unknown_source: &str| {
            format!(
                "ether type != ip return\n\
                 ip daddr != @addrs return\n\
                 ip saddr != @addrs {unknown_source}\n\
                 meta mark set ip saddr map @acct\n\
                 meta mark . ip daddr @members accept\n\
                 drop\n"
            )
        };
        let (between, routed) = (same_account("drop"), same_account("return"));
        format!(
            "table bridge {t} {{\n\
             set ports {{ type ifname; }}\n\
             set bound {{ type ifname . ipv4_addr . ether_addr; }}\n\
             set addrs {{ type ipv4_addr; }}\n\
             map acct {{ type ipv4_addr : mark; }}\n\
             set members {{ type mark . ipv4_addr; }}\n\
             chain from_groups {{\n\
             type filter hook prerouting priority -200; policy accept;\n\
             iifname != @ports return\n\
             ether type arp iifname . arp saddr ip . arp saddr ether @bound accept\n\
             ether type ip iifname . ip saddr . ether saddr @bound accept\n\
             drop\n\
             }}\n\
             chain between_groups {{\n\
             type filter hook forward priority -200; policy accept;\n\
             oifname != @ports return\n\
             {between}\
             }}\n\
             chain routed_to_groups {{\n\
             type filter hook output priority -200; policy accept;\n\
             oifname != @ports return\n\
             {routed}\
             }}\n\
             }}\n"
        )
    }

    fn inet_table(&self) -> String {
        let (t, bridge) = (&self.table, quote(&self.bridge));
        let mut allowed = String::new();
        for port in &self.cfg.host_ports {
            if let Ok((proto, number)) = parse_host_port(port) {
                allowed.push_str(&format!("iifname {bridge} {proto} dport {number} accept\n"));
            }
        }
        let blocked = if self.cfg.blocked.is_empty() {
            String::new()
        } else {
            format!(
                "iifname {bridge} ip daddr {{ {} }} drop\n",
                self.cfg.blocked.join(", ")
            )
        };
        format!(
            "table inet {t} {{\n\
             chain to_host {{\n\
             type filter hook input priority -10; policy accept;\n\
             iifname != {bridge} return\n\
             ct state established,related accept\n\
             ip daddr 127.0.0.0/8 drop\n\
             {allowed}\
             drop\n\
             }}\n\
             chain through_host {{\n\
             type filter hook forward priority -10; policy accept;\n\
             {blocked}\
             }}\n\
             }}\n"
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one nftables transaction (`nft.rs`).
fn run(script: &str) -> Result<(), NetError> {
    crate::nft::transaction(script).map_err(|detail| NetError::Firewall {
        detail,
        script: script.to_owned(),
    })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace(['"', '\\'], ""))
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_host_port(text: &str) -> Result<(&str, u16), NetError> {
    let bad = || NetError::InvalidConfig {
        reason: format!("host port `{text}` is not tcp:N or udp:N"),
    };
    let (proto, port) = text.split_once(':').ok_or_else(bad)?;
    if !matches!(proto, "tcp" | "udp") {
        return Err(bad());
    }
    Ok((proto, port.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_adds_then_deletes_the_same_elements() {
        let dir = tempfile::tempdir().unwrap();
        let iso = Isolation::new("b0", dir.path(), IsolationConfig::default()).unwrap();
        let port = Port {
            iface: "veth1".into(),
            ip: "10.0.0.2".parse().unwrap(),
            mac: Some("02:00:00:00:00:01".into()),
            account: Some(3),
        };
        let add = iso.add_port(&port) + &iso.add_member(port.ip, 3);
        assert!(add.contains("bound { \"veth1\" . 10.0.0.2 . 02:00:00:00:00:01 }"));
        assert!(add.contains("members { 3 . 10.0.0.2 }"));
        assert_eq!(add.matches("add element").count(), 5);
    }

    #[test]
    fn account_numbers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let iso = Isolation::new("b0", dir.path(), IsolationConfig::default()).unwrap();
        let a = iso.account_number("a").unwrap();
        let b = iso.account_number("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(iso.account_number("a").unwrap(), a);
        let again = Isolation::new("b0", dir.path(), IsolationConfig::default()).unwrap();
        assert_eq!(again.account_number("b").unwrap(), b);
    }

    #[test]
    fn configuration_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |blocked: &str, port: &str| IsolationConfig {
            blocked: vec![blocked.into()],
            host_ports: vec![port.into()],
        };
        assert!(Isolation::new("b", dir.path(), cfg("10.0.0.0/8", "udp:53")).is_ok());
        assert!(Isolation::new("b", dir.path(), cfg("10.0.0.0/8; drop", "udp:53")).is_err());
        assert!(Isolation::new("b", dir.path(), cfg("10.0.0.0/8", "icmp:1")).is_err());
        assert!(is_mac("0a:1b:2c:3d:4e:5f") && !is_mac("0a:1b:2c:3d:4e"));
    }
}
