//! Which volumes that reach outside the group the operator allows: the NFS servers a group
//! may make the host mount (`berth serve --nfs-server`) — by default none, so a tenant
//! cannot make the host talk NFS to a server of its choosing. The control plane checks a
//! create against it before anything is recorded.

use std::collections::BTreeSet;

use crate::spec::GroupSpec;
use crate::volume::VolumeSource;

/// The operator's allow-lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumePolicy {
    nfs_servers: BTreeSet<String>,
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Volume;

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
