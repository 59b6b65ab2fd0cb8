//! A group's name resolution as asked at create: `DnsConfig` (name servers, search domains,
//! resolver options) and `HostAliase.N` (extra `/etc/hosts` lines), written by the node into
//! every container's `/etc/resolv.conf` and `/etc/hosts`.

use serde::{Deserialize, Serialize};

/// Most name servers (the resolver reads three; Kubernetes allows three).
pub const MAX_NAME_SERVERS: usize = 3;
/// Most search domains (Kubernetes: 32).
pub const MAX_SEARCHES: usize = 32;
/// Most resolver options.
pub const MAX_OPTIONS: usize = 16;
/// Most host aliases of a group.
pub const MAX_HOST_ALIASES: usize = 64;
/// Most host names of one alias.
pub const MAX_ALIAS_HOSTNAMES: usize = 16;

/// `DnsConfig`: what a group's containers resolve names with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    #[serde(default)]
    pub name_servers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<DnsOption>,
}

/// `DnsPolicy`: where the containers' resolver configuration comes from. ECI's other values
/// (`ClusterFirst`, `ClusterFirstWithHostNet`) name a cluster DNS that berth does not have and
/// are refused when the request is decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// The host's resolvers, merged with the group's `DnsConfig`.
    #[default]
    Default,
    /// Only the group's `DnsConfig`.
    None,
}

impl DnsPolicy {
    /// The ECI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsPolicy::Default => "Default",
            DnsPolicy::None => "None",
        }
    }
}

/// `/etc/resolv.conf` of a group: with [`DnsPolicy::Default`] the host's (`host`, loopback
/// servers already left out) merged with `dns`; with [`DnsPolicy::None`] `dns` alone.
pub fn group_resolv_conf(policy: DnsPolicy, dns: Option<&DnsConfig>, host: &str) -> String {
    let host = match policy {
        DnsPolicy::Default => host,
        DnsPolicy::None => "",
    };
    match dns {
        Some(d) => d.resolv_conf(host),
        None => host.to_string(),
    }
}

/// One resolver option (`ndots:2`, `edns0`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsOption {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// `HostAliase.N`: host names of an address, added to `/etc/hosts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAlias {
    pub ip: String,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

impl DnsConfig {
    /// `/etc/resolv.conf` for a group: the host's resolver configuration (`host`, loopback
    /// servers already left out) merged with this one as Kubernetes merges a pod's dnsConfig,
    /// except that the group's own servers and search domains come first (they are what it
    /// asked for; the resolver reads three servers): duplicates dropped, its options over the
    /// host's of the same name.
    pub fn resolv_conf(&self, host: &str) -> String {
        let mut servers: Vec<String> = self.name_servers.clone();
        let mut searches: Vec<String> = self.searches.clone();
        let mut options: Vec<(String, Option<String>)> = Vec::new();
        let mut other = Vec::new();
        for line in host.lines() {
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("nameserver") => {
                    if let Some(a) = parts.next() {
                        if !servers.iter().any(|s| s == a) {
                            servers.push(a.to_string());
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    for d in parts {
                        if !searches.iter().any(|s| s == d) {
                            searches.push(d.to_string());
                        }
                    }
                }
                Some("options") => {
                    for o in parts {
                        let (n, v) = match o.split_once(':') {
                            Some((n, v)) => (n.to_string(), Some(v.to_string())),
                            None => (o.to_string(), None),
                        };
                        options.push((n, v));
                    }
                }
                _ if !line.trim().is_empty() && !line.trim_start().starts_with('#') => {
                    other.push(line.to_string());
                }
                _ => {}
            }
        }
        for o in &self.options {
            options.retain(|(n, _)| n != &o.name);
            options.push((o.name.clone(), o.value.clone()));
        }
        servers.truncate(MAX_NAME_SERVERS);
        searches.truncate(MAX_SEARCHES);
        let mut out = String::new();
        for s in &servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !searches.is_empty() {
            out.push_str(&format!("search {}\n", searches.join(" ")));
        }
        if !options.is_empty() {
            let opts: Vec<String> = options
                .iter()
                .map(|(n, v)| match v {
                    Some(v) => format!("{n}:{v}"),
                    None => n.clone(),
                })
                .collect();
            out.push_str(&format!("options {}\n", opts.join(" ")));
        }
        for l in other {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

/// The `/etc/hosts` lines of `aliases`.
pub fn hosts_lines(aliases: &[HostAlias]) -> String {
    aliases
        .iter()
        .filter(|a| !a.hostnames.is_empty())
        .map(|a| format!("{}\t{}\n", a.ip, a.hostnames.join(" ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_none_leaves_the_host_out() {
        let host = "nameserver 10.0.0.53\nsearch host.local\n";
        let dns = DnsConfig {
            name_servers: vec!["10.9.9.9".into()],
            ..Default::default()
        };
        assert_eq!(
            group_resolv_conf(DnsPolicy::None, Some(&dns), host),
            "nameserver 10.9.9.9\n"
        );
        let merged = group_resolv_conf(DnsPolicy::Default, Some(&dns), host);
        assert!(merged.contains("10.0.0.53") && merged.starts_with("nameserver 10.9.9.9"));
        assert_eq!(group_resolv_conf(DnsPolicy::Default, None, host), host);
    }

    #[test]
    fn the_groups_settings_go_over_the_hosts() {
        let host = "# made by hand\nnameserver 10.0.0.2\nsearch corp.example\noptions ndots:1 edns0\nsortlist 10.0.0.0\n";
        let none = DnsConfig::default();
        assert_eq!(
            none.resolv_conf(host),
            "nameserver 10.0.0.2\nsearch corp.example\noptions ndots:1 edns0\nsortlist 10.0.0.0\n"
        );
        let mine = DnsConfig {
            name_servers: vec!["10.1.1.1".into(), "10.0.0.2".into()],
            searches: vec!["ns.svc.local".into(), "svc.local".into()],
            options: vec![DnsOption {
                name: "ndots".into(),
                value: Some("5".into()),
            }],
        };
        assert_eq!(
            mine.resolv_conf(host),
            "nameserver 10.1.1.1\nnameserver 10.0.0.2\nsearch ns.svc.local svc.local corp.example\noptions edns0 ndots:5\nsortlist 10.0.0.0\n"
        );
    }

    #[test]
    fn aliases_become_hosts_lines() {
        let a = vec![
            HostAlias {
                ip: "10.0.0.9".into(),
                hostnames: vec!["db".into(), "db.local".into()],
            },
            HostAlias {
                ip: "10.0.0.8".into(),
                hostnames: vec![],
            },
        ];
        assert_eq!(hosts_lines(&a), "10.0.0.9\tdb db.local\n");
    }
}
