//! The virtual node as Kubernetes sees it: the `Node` object (labels, taint, capacity from the
//! account's quotas, conditions, addresses, the kubelet port) and its `Lease`, built without
//! I/O for the registration controller (`registration.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// The taint that keeps pods off the virtual node unless they tolerate it.
pub const TAINT_KEY: &str = "virtual-kubelet.io/provider";
pub const TAINT_VALUE: &str = "berth";
/// Namespace of the nodes' leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a lease holds, in seconds, as the kubelet's default; it is renewed every quarter
/// of that.
pub const LEASE_DURATION_SECS: i32 = 40;

/// What the virtual node says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    /// The address the API server reaches the kubelet API on (`InternalIP`).
    pub internal_ip: String,
    /// `daemonEndpoints.kubeletEndpoint.port`.
    pub kubelet_port: i32,
    /// `nodeInfo.kubeletVersion`, e.g. `v1.33.0-berth`.
    pub kubelet_version: String,
}

/// The node's capacity: the account's limits from berth's ListUsage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Capacity {
    pub cpu: f64,
    pub memory_gib: f64,
    pub pods: u64,
    pub storage_gib: f64,
}

impl Capacity {
    /// From ListUsage's `Attributes` (`MaxCpu`, `MaxMemory`, `MaxContainerGroupCount`,
    /// `MaxEphemeralStorage`); a missing or non-numeric limit is 0.
    pub fn from_usage(attributes: &BTreeMap<String, serde_json::Value>) -> Self {
        let n = |k: &str| {
            attributes
                .get(k)
                .and_then(serde_json::Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(0.0)
        };
        Self {
            cpu: n("MaxCpu"),
            memory_gib: n("MaxMemory"),
            pods: n("MaxContainerGroupCount") as u64,
            storage_gib: n("MaxEphemeralStorage"),
        }
    }

    fn quantities(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            (
                "cpu".into(),
                Quantity(format!("{}m", (self.cpu * 1000.0).floor() as u64)),
            ),
            (
                "memory".into(),
                Quantity(format!("{}Mi", (self.memory_gib * 1024.0).floor() as u64)),
            ),
            ("pods".into(), Quantity(self.pods.to_string())),
            (
                "ephemeral-storage".into(),
                Quantity(format!("{}Gi", self.storage_gib.floor() as u64)),
            ),
        ])
    }
}

/// The Node to register: labels, the taint, and its status.
pub fn node(cfg: &NodeConfig, cap: &Capacity, ready: bool, now: Timestamp) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(BTreeMap::from([
                ("type".into(), "virtual-kubelet".into()),
                ("kubernetes.io/role".into(), "agent".into()),
                ("kubernetes.io/os".into(), "linux".into()),
                ("kubernetes.io/arch".into(), "amd64".into()),
                ("kubernetes.io/hostname".into(), cfg.name.clone()),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint {
                key: TAINT_KEY.into(),
                value: Some(TAINT_VALUE.into()),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: Some(node_status(cfg, cap, ready, now)),
    }
}

/// The node's status: capacity and allocatable (the same: the scheduler subtracts the pods'
/// requests), conditions (Ready, and no pressure of any kind), addresses, the kubelet port.
pub fn node_status(cfg: &NodeConfig, cap: &Capacity, ready: bool, now: Timestamp) -> NodeStatus {
    let cond = |kind: &str, status: bool, reason: &str, message: &str| NodeCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    NodeStatus {
        capacity: Some(cap.quantities()),
        allocatable: Some(cap.quantities()),
        conditions: Some(vec![
            if ready {
                cond(
                    "Ready",
                    true,
                    "KubeletReady",
                    "berth's virtual kubelet is ready",
                )
            } else {
                cond(
                    "Ready",
                    false,
                    "KubeletNotReady",
                    "berth's virtual kubelet stopped",
                )
            },
            cond(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "berth sizes every group",
            ),
            cond(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "berth sizes every group",
            ),
            cond(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "berth sizes every group",
            ),
            cond(
                "NetworkUnavailable",
                false,
                "RouteCreated",
                "groups have their own network",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: cfg.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            os_image: "berth".into(),
            kernel_version: String::new(),
            container_runtime_version: concat!("berth://", env!("CARGO_PKG_VERSION")).into(),
            kubelet_version: cfg.kubelet_version.clone(),
            kube_proxy_version: String::new(),
            machine_id: String::new(),
            system_uuid: String::new(),
            boot_id: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The node's Lease, held by the node and renewed at `now`.
pub fn lease(name: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}
