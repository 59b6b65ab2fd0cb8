//! The group's published ports, as the control plane chose them, mapped on the host beside
//! the start of its containers: the portmap plugin's ADD (several `iptables` runs, 50–100 ms)
//! stays off the start path, as an application needs a moment to listen anyway.

use std::sync::Arc;

use berth_core::{EventType, GroupSpec};
use berth_net::PortMapping;
use tokio_util::sync::CancellationToken;

use super::state::GroupState;
use crate::files::error_chain;

/// Publishes the group's ports, retried with back-off and a Warning event each time until it
/// is done or the group goes. Nothing to do for a group that publishes none.
pub async fn publish(
    net: &berth_net::Network,
    gid: &str,
    spec: &GroupSpec,
    state: &Arc<GroupState>,
    cancel: &CancellationToken,
) {
    let ports = mappings(spec);
    if ports.is_empty() {
        return;
    }
    let mut attempt = 0u32;
    loop {
        let err = match net.publish(gid, &ports).await {
            Ok(()) => return,
            Err(e) => error_chain(&e),
        };
        let delay = berth_core::setup_backoff(attempt);
        tracing::error!(group = %gid, error = %err, retry_in_s = delay.as_secs(), "cannot publish the group's ports");
        state.event(
            EventType::Warning,
            "FailedPublishPorts",
            format!(
                "cannot publish the group's ports: {err}; retrying in {}s",
                delay.as_secs()
            ),
            None,
        );
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

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
