//! The group's published ports, as the control plane chose them, in the network's terms.

use berth_core::GroupSpec;
use berth_net::PortMapping;

/// The mappings of `spec`'s publication; none when it has none or its address is unusable.
pub fn mappings(spec: &GroupSpec) -> Vec<PortMapping> {
    let Some(p) = &spec.published else {
        return Vec::new();
    };
    let Ok(host_ip) = p.address.parse() else {
        return Vec::new();
    };
    p.ports
        .iter()
        .map(|m| PortMapping {
            host_ip,
            host_port: m.host_port,
            container_port: m.container_port,
            udp: m.protocol == "UDP",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{Publication, PublishedPort};

    #[test]
    fn a_publication_maps_each_port() {
        let spec = GroupSpec {
            published: Some(Publication {
                address: "127.0.0.1".into(),
                ports: vec![PublishedPort {
                    host_port: 30053,
                    container_port: 53,
                    protocol: "UDP".into(),
                }],
            }),
            ..Default::default()
        };
        let m = mappings(&spec);
        assert_eq!(m.len(), 1);
        assert!(m[0].udp && m[0].host_port == 30053 && m[0].container_port == 53);
        assert!(mappings(&GroupSpec::default()).is_empty());
    }
}
