//! Which volumes that reach outside the group the operator allows: the NFS servers a group
//! may make the host mount (`berth serve --nfs-server`) — by default none, so a tenant
//! cannot make the host talk NFS to a server of its choosing — and the host directories
//! below which a host path may lie (`berth serve --host-path-prefix`, by default none). The
//! control plane checks a create against it before anything is recorded; the node resolves
//! a host path below its prefix again without following links (`berth_node::host_path`).

use std::collections::BTreeSet;

use crate::spec::GroupSpec;
use crate::volume::VolumeSource;

/// The operator's allow-lists. On the wire (a cluster node's offer) as two lists, read
/// back through the same checks as the flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "PolicyLists", into = "PolicyLists")]
pub struct VolumePolicy {
    nfs_servers: BTreeSet<String>,
    host_path_prefixes: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PolicyLists {
    #[serde(default)]
    nfs_servers: Vec<String>,
    #[serde(default)]
    host_path_prefixes: Vec<String>,
}

impl From<PolicyLists> for VolumePolicy {
    fn from(l: PolicyLists) -> Self {
        VolumePolicy::default()
            .with_nfs_servers(l.nfs_servers.iter().map(String::as_str))
            .with_host_path_prefixes(l.host_path_prefixes.iter().map(String::as_str))
    }
}

impl From<VolumePolicy> for PolicyLists {
    fn from(p: VolumePolicy) -> Self {
        PolicyLists {
            nfs_servers: p.nfs_servers.into_iter().collect(),
            host_path_prefixes: p.host_path_prefixes,
        }
    }
}

/// A volume the operator does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("The specified parameter {param} is not valid: {reason}")]
pub struct VolumeRefused {
    /// The parameter to name (`Volume.2.NFSVolume.Server`).
    pub param: String,
    pub reason: String,
}

impl VolumePolicy {
    /// Allows NFS mounts from `servers` (host names or addresses, compared ignoring case).
    pub fn with_nfs_servers<'a>(mut self, servers: impl IntoIterator<Item = &'a str>) -> Self {
        self.nfs_servers = servers
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        self
    }

    /// Allows host paths at or below `prefixes`: absolute, normalised paths without `..`,
    /// not `/` (the caller canonicalises them; others are left out).
    pub fn with_host_path_prefixes<'a>(
        mut self,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.host_path_prefixes = prefixes
            .into_iter()
            .filter(|p| {
                p.starts_with('/')
                    && *p != "/"
                    && p[1..]
                        .split('/')
                        .all(|c| !c.is_empty() && c != "." && c != "..")
            })
            .map(str::to_string)
            .collect();
        self
    }

    pub fn host_path_prefixes(&self) -> impl Iterator<Item = &str> {
        self.host_path_prefixes.iter().map(String::as_str)
    }

    /// The longest allowed prefix `path` lies at or below (whole components), and the rest
    /// of `path` relative to it (empty for the prefix itself). `None` for a path with `..`.
    pub fn host_path_prefix<'a>(&self, path: &'a str) -> Option<(&str, &'a str)> {
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return None;
        }
        self.host_path_prefixes
            .iter()
            .filter_map(|p| {
                let rest = path.strip_prefix(p.as_str())?;
                match rest.strip_prefix('/') {
                    Some(r) => Some((p.as_str(), r)),
                    None if rest.is_empty() => Some((p.as_str(), rest)),
                    None => None,
                }
            })
            .max_by_key(|(p, _)| p.len())
    }

    /// Allows what either `self` or `other` allows.
    pub fn union(&self, other: &VolumePolicy) -> VolumePolicy {
        let mut u = self.clone();
        u.nfs_servers.extend(other.nfs_servers.iter().cloned());
        for p in &other.host_path_prefixes {
            if !u.host_path_prefixes.contains(p) {
                u.host_path_prefixes.push(p.clone());
            }
        }
        u
    }

    /// Whether it allows nothing reaching outside a group.
    pub fn is_empty(&self) -> bool {
        self.nfs_servers.is_empty() && self.host_path_prefixes.is_empty()
    }

    pub fn nfs_servers(&self) -> impl Iterator<Item = &str> {
        self.nfs_servers.iter().map(String::as_str)
    }

    /// Whether a group may mount an export of `server`.
    pub fn nfs_allowed(&self, server: &str) -> bool {
        self.nfs_servers.contains(&server.to_ascii_lowercase())
    }

    /// The first volume of `spec` that is not allowed (volumes are numbered in their order).
    pub fn check(&self, spec: &GroupSpec) -> Result<(), VolumeRefused> {
        for (i, v) in spec.volumes.iter().enumerate() {
            let n = i + 1;
            if let VolumeSource::Nfs { server, .. } = &v.source {
                if !self.nfs_allowed(server) {
                    let allowed = if self.nfs_servers.is_empty() {
                        "this service allows no NFS server".to_string()
                    } else {
                        format!(
                            "this service allows NFS volumes only from {}",
                            self.nfs_servers
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    return Err(VolumeRefused {
                        param: format!("Volume.{n}.NFSVolume.Server"),
                        reason: format!("volume {:?} names server {server:?}; {allowed}", v.name),
                    });
                }
            }
            if let VolumeSource::HostPath { path, .. } = &v.source {
                if self.host_path_prefix(path).is_none() {
                    let allowed = if self.host_path_prefixes.is_empty() {
                        "this service allows no host path".to_string()
                    } else {
                        format!(
                            "this service allows host paths only below {}",
                            self.host_path_prefixes.join(", ")
                        )
                    };
                    return Err(VolumeRefused {
                        param: format!("Volume.{n}.HostPathVolume.Path"),
                        reason: format!("volume {:?} names {path:?}; {allowed}", v.name),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{HostPathType, Volume};

    fn host(path: &str) -> GroupSpec {
        GroupSpec {
            volumes: vec![Volume {
                name: "h".into(),
                source: VolumeSource::HostPath {
                    path: path.into(),
                    kind: HostPathType::Any,
                },
            }],
            ..Default::default()
        }
    }

    #[test]
    fn on_the_wire_it_is_read_through_the_same_checks() {
        let p = VolumePolicy::default()
            .with_nfs_servers(["NFS.example"])
            .with_host_path_prefixes(["/srv/data"]);
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"nfs_servers":["nfs.example"],"host_path_prefixes":["/srv/data"]}"#
        );
        assert_eq!(serde_json::from_str::<VolumePolicy>(&text).unwrap(), p);
        let sent = r#"{"nfs_servers":[" "],"host_path_prefixes":["/","/a/../b","rel","/ok"]}"#;
        let read: VolumePolicy = serde_json::from_str(sent).unwrap();
        assert!(read.nfs_servers().next().is_none());
        assert_eq!(read.host_path_prefixes().collect::<Vec<_>>(), ["/ok"]);
        assert!(serde_json::from_str::<VolumePolicy>("{}")
            .unwrap()
            .is_empty());
        let u = p.union(&read);
        assert_eq!(
            u.host_path_prefixes().collect::<Vec<_>>(),
            ["/srv/data", "/ok"]
        );
        assert!(u.nfs_allowed("nfs.example"));
    }

    #[test]
    fn host_paths_must_lie_below_a_prefix() {
        let e = VolumePolicy::default()
            .check(&host("/srv/data"))
            .unwrap_err();
        assert_eq!(e.param, "Volume.1.HostPathVolume.Path");
        let p =
            VolumePolicy::default().with_host_path_prefixes(["/srv/data", "/", "rel", "/a/../b"]);
        assert_eq!(p.host_path_prefixes().collect::<Vec<_>>(), ["/srv/data"]);
        p.check(&host("/srv/data")).unwrap();
        p.check(&host("/srv/data/a/b")).unwrap();
        assert_eq!(
            p.host_path_prefix("/srv/data/a/b"),
            Some(("/srv/data", "a/b"))
        );
        assert_eq!(p.host_path_prefix("/srv/data"), Some(("/srv/data", "")));
        for bad in [
            "/srv",
            "/",
            "/srv/database",
            "/srv/data/../x",
            "/etc",
            "srv/data",
        ] {
            assert!(p.check(&host(bad)).is_err(), "{bad}");
        }
    }

    fn nfs(server: &str) -> GroupSpec {
        GroupSpec {
            volumes: vec![Volume {
                name: "v".into(),
                source: VolumeSource::Nfs {
                    server: server.into(),
                    path: "/export".into(),
                    read_only: false,
                },
            }],
            ..Default::default()
        }
    }

    #[test]
    fn nfs_is_refused_unless_the_server_is_listed() {
        let e = VolumePolicy::default()
            .check(&nfs("127.0.0.1"))
            .unwrap_err();
        assert_eq!(e.param, "Volume.1.NFSVolume.Server");
        assert!(e.to_string().contains("allows no NFS server"), "{e}");
        let p = VolumePolicy::default().with_nfs_servers(["127.0.0.1", "NFS.example"]);
        p.check(&nfs("127.0.0.1")).unwrap();
        p.check(&nfs("nfs.EXAMPLE")).unwrap();
        assert!(p.check(&nfs("10.0.0.1")).is_err());
        p.check(&GroupSpec::default()).unwrap();
    }
}
