//! Published container ports: the group's public address (`AutoCreateEip=true`) as berth
//! gives it — the containers' declared ports mapped on the node's public address — and the
//! choice of host ports under the operator's policy.
//!
//! The choice is made once, when the group is created, against every port the groups on
//! record hold; it is kept in the group's spec ([`Publication`]), so a restart of berth finds
//! it again and a port is free again only once the group's record is gone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::spec::GroupSpec;

/// The default range of host ports groups may publish on.
pub const DEFAULT_RANGE: (u16, u16) = (30000, 32767);
/// The most ports one group may publish.
pub const MAX_PER_GROUP: usize = 16;
/// The most ports the groups of one account may publish together: with the default range,
/// one account cannot take more than a fortieth of it.
pub const MAX_PER_ACCOUNT: usize = 64;

/// Where a group's ports were published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The node's public address (the group's `InternetIp`).
    pub address: String,
    pub ports: Vec<PublishedPort>,
}

/// One host port mapped to a port of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublishedPort {
    pub host_port: u16,
    pub container_port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
}

/// The operator's rules for published ports (`berth serve --public-ip`, `--host-port-range`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPolicy {
    /// The address ports are published on; `None`: the node publishes nothing.
    pub address: Option<IpAddr>,
    /// The inclusive range of host ports groups may get.
    pub range: (u16, u16),
    /// Ports in the range that no group may get (berth's own API port).
    pub reserved: Vec<u16>,
    /// The most ports one group may publish.
    pub max_per_group: usize,
    /// The most ports the groups of one account may publish together.
    pub max_per_account: usize,
}

impl Default for PortPolicy {
    fn default() -> Self {
        Self {
            address: None,
            range: DEFAULT_RANGE,
            reserved: Vec::new(),
            max_per_group: MAX_PER_GROUP,
            max_per_account: MAX_PER_ACCOUNT,
        }
    }
}

/// Why a group's ports cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PublishRefused {
    /// The parameter at fault.
    pub parameter: &'static str,
    /// Whether another group or the host holds the port (a conflict, not a bad value).
    pub conflict: bool,
    /// Whether the account's groups publish as many ports as they may.
    pub quota: bool,
    pub reason: String,
}

/// Parses `LO-HI` (both included, `LO` at least 1).
pub fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = text.split_once('-')?;
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo >= 1 && lo <= hi).then_some((lo, hi))
}

/// The ports every group of `specs` holds, as `(protocol, host port)`.
pub fn held<'a>(specs: impl IntoIterator<Item = &'a GroupSpec>) -> BTreeSet<(String, u16)> {
    specs
        .into_iter()
        .filter_map(|s| s.published.as_ref())
        .flat_map(|p| p.ports.iter())
        .map(|p| (p.protocol.clone(), p.host_port))
        .collect()
}

impl PortPolicy {
    /// Chooses the host ports of `spec`'s app containers' declared ports: the one asked for
    /// (`HostPort`), which must be free; else the container's own port number when it is free
    /// and in the range; else the lowest free port of the range. `held` is what other groups
    /// hold; `host_free(protocol, port)` tells whether the host itself leaves a port free.
    pub fn allocate(
        &self,
        spec: &GroupSpec,
        held: &BTreeSet<(String, u16)>,
        host_free: impl Fn(&str, u16) -> bool,
    ) -> Result<Publication, PublishRefused> {
        let Some(address) = self.address else {
            return Err(PublishRefused {
                parameter: "AutoCreateEip",
                conflict: false,
                quota: false,
                reason: "this berth publishes no ports: its operator gave no public address \
                         (berth serve --public-ip)"
                    .into(),
            });
        };
        // One network namespace per group: a port declared by two containers is one port.
        let mut wanted: Vec<(u16, String, Option<u16>)> = Vec::new();
        for c in &spec.containers {
            for p in &c.ports {
                match wanted
                    .iter_mut()
                    .find(|(port, proto, _)| *port == p.port && *proto == p.protocol)
                {
                    Some(w) if w.2.is_none() => w.2 = p.host_port,
                    Some(w) if p.host_port.is_some() && w.2 != p.host_port => {
                        return Err(self.bad(format!(
                            "port {}/{} of the group is asked on two host ports",
                            p.port, p.protocol
                        )))
                    }
                    Some(_) => {}
                    None => wanted.push((p.port, p.protocol.clone(), p.host_port)),
                }
            }
        }
        if wanted.len() > self.max_per_group {
            return Err(PublishRefused {
                parameter: "Container.N.Port.N.Port",
                conflict: false,
                quota: false,
                reason: format!(
                    "a group may publish at most {} ports, this one declares {}",
                    self.max_per_group,
                    wanted.len()
                ),
            });
        }
        let (lo, hi) = self.range;
        let mut taken = held.clone();
        let usable = |taken: &BTreeSet<(String, u16)>, proto: &str, port: u16| {
            (lo..=hi).contains(&port)
                && !self.reserved.contains(&port)
                && !taken.contains(&(proto.to_string(), port))
                && host_free(proto, port)
        };
        let mut ports = Vec::new();
        // Asked-for host ports first: a port chosen for another mapping must not take them.
        wanted.sort_by_key(|w| w.2.is_none());
        for (container_port, protocol, asked) in wanted {
            let host_port = match asked {
                Some(h) => {
                    if !(lo..=hi).contains(&h) || self.reserved.contains(&h) {
                        return Err(self.bad(format!(
                            "host port {h} is not one groups may publish on (range {lo}-{hi})"
                        )));
                    }
                    if !usable(&taken, &protocol, h) {
                        return Err(PublishRefused {
                            parameter: "Container.N.Port.N.HostPort",
                            conflict: true,
                            quota: false,
                            reason: format!(
                                "host port {h}/{protocol} is in use (by another group or the host)"
                            ),
                        });
                    }
                    h
                }
                None if usable(&taken, &protocol, container_port) => container_port,
                None => (lo..=hi)
                    .find(|p| usable(&taken, &protocol, *p))
                    .ok_or_else(|| PublishRefused {
                        parameter: "AutoCreateEip",
                        conflict: true,
                        quota: false,
                        reason: format!("no host port of {lo}-{hi} is free for {protocol}"),
                    })?,
            };
            taken.insert((protocol.clone(), host_port));
            ports.push(PublishedPort {
                host_port,
                container_port,
                protocol,
            });
        }
        ports.sort();
        Ok(Publication {
            address: address.to_string(),
            ports,
        })
    }

    /// Refuses `publication` when the account's groups, which publish `account_held` ports
    /// already, would publish more than the policy lets one account.
    pub fn within_account(
        &self,
        publication: &Publication,
        account_held: usize,
    ) -> Result<(), PublishRefused> {
        let total = account_held.saturating_add(publication.ports.len());
        if total <= self.max_per_account {
            return Ok(());
        }
        Err(PublishRefused {
            parameter: "AutoCreateEip",
            conflict: false,
            quota: true,
            reason: format!(
                "the account's groups may publish at most {} ports together; they publish {account_held} and this group asks for {}",
                self.max_per_account,
                publication.ports.len()
            ),
        })
    }

    fn bad(&self, reason: String) -> PublishRefused {
        PublishRefused {
            parameter: "Container.N.Port.N.HostPort",
            conflict: false,
            quota: false,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ContainerSpec, PortSpec};

    fn spec(ports: &[(u16, &str, Option<u16>)]) -> GroupSpec {
        GroupSpec {
            public_address: true,
            containers: vec![ContainerSpec {
                name: "c".into(),
                ports: ports
                    .iter()
                    .map(|(port, protocol, host_port)| PortSpec {
                        port: *port,
                        protocol: protocol.to_string(),
                        host_port: *host_port,
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn policy() -> PortPolicy {
        PortPolicy {
            address: Some("127.0.0.1".parse().unwrap()),
            range: (30000, 30009),
            reserved: vec![30005],
            max_per_group: 4,
            max_per_account: 6,
        }
    }

    #[test]
    fn an_account_publishes_at_most_its_share() {
        let p = policy();
        let none = BTreeSet::new();
        let two = p
            .allocate(
                &spec(&[(80, "TCP", None), (81, "TCP", None)]),
                &none,
                |_, _| true,
            )
            .unwrap();
        assert!(p.within_account(&two, 4).is_ok());
        let e = p.within_account(&two, 5).unwrap_err();
        assert!(
            e.quota && !e.conflict && e.reason.contains("at most 6"),
            "{e:?}"
        );
    }

    fn pp(host_port: u16, container_port: u16, protocol: &str) -> PublishedPort {
        PublishedPort {
            host_port,
            container_port,
            protocol: protocol.into(),
        }
    }

    #[test]
    fn the_same_number_when_free_else_the_lowest_free() {
        let held: BTreeSet<_> = [("TCP".to_string(), 30000)].into();
        let p = policy()
            .allocate(
                &spec(&[
                    (30001, "TCP", None),
                    (80, "TCP", None),
                    (30000, "UDP", None),
                ]),
                &held,
                |_, port| port != 30002,
            )
            .unwrap();
        assert_eq!(p.address, "127.0.0.1");
        assert_eq!(
            p.ports,
            vec![
                pp(30000, 30000, "UDP"),
                pp(30001, 30001, "TCP"),
                pp(30003, 80, "TCP")
            ]
        );
    }

    #[test]
    fn an_asked_port_is_given_or_refused() {
        let held: BTreeSet<_> = [("TCP".to_string(), 30001)].into();
        let ok = policy()
            .allocate(&spec(&[(80, "TCP", Some(30002))]), &held, |_, _| true)
            .unwrap();
        assert_eq!(ok.ports, vec![pp(30002, 80, "TCP")]);
        let e = policy()
            .allocate(&spec(&[(80, "TCP", Some(30001))]), &held, |_, _| true)
            .unwrap_err();
        assert!(e.conflict && e.reason.contains("30001"), "{e}");
        let e = policy()
            .allocate(&spec(&[(80, "TCP", Some(30003))]), &held, |_, p| p != 30003)
            .unwrap_err();
        assert!(e.conflict, "{e}");
        for bad in [22, 30005, 40000] {
            let e = policy()
                .allocate(&spec(&[(80, "TCP", Some(bad))]), &held, |_, _| true)
                .unwrap_err();
            assert!(!e.conflict && e.reason.contains("range"), "{e}");
        }
    }

    #[test]
    fn counts_and_the_range_are_bounded() {
        let none = BTreeSet::new();
        let five: Vec<_> = (1..=5).map(|p| (p, "TCP", None)).collect();
        assert!(policy().allocate(&spec(&five), &none, |_, _| true).is_err());
        let e = policy()
            .allocate(&spec(&[(80, "TCP", None)]), &none, |_, _| false)
            .unwrap_err();
        assert!(e.reason.contains("no host port"), "{e}");
        let off = PortPolicy::default();
        let e = off.allocate(&spec(&[(80, "TCP", None)]), &none, |_, _| true);
        assert_eq!(e.unwrap_err().parameter, "AutoCreateEip");
    }

    #[test]
    fn ports_of_two_containers_are_one() {
        let mut s = spec(&[(80, "TCP", None)]);
        s.containers.push(s.containers[0].clone());
        let p = policy()
            .allocate(&s, &BTreeSet::new(), |_, _| true)
            .unwrap();
        assert_eq!(p.ports.len(), 1);
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("30000-32767"), Some((30000, 32767)));
        assert_eq!(parse_range("0-10"), None);
        assert_eq!(parse_range("10-9"), None);
        assert_eq!(parse_range("10"), None);
    }
}
