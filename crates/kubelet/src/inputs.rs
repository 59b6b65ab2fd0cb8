//! What the pod references, read by the caller and handed to [`crate::pod_to_group`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

/// The pod's resolved references. Maps are keyed by object name, in the pod's namespace.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// ConfigMaps named by env (`configMapKeyRef`, `envFrom`) and volumes.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets named by env, volumes and `imagePullSecrets`.
    pub secrets: BTreeMap<String, Secret>,
    /// Tokens of projected `serviceAccountToken` sources, keyed `VOLUME/PATH`.
    pub service_account_tokens: BTreeMap<String, String>,
    /// The node's address (`status.hostIP` for env and downward API).
    pub host_ip: Option<String>,
    /// The handler of the pod's RuntimeClass (`spec.runtimeClassName`), when it exists.
    pub runtime_handler: Option<String>,
    /// The cluster's DNS, as the kubelet's `--cluster-dns` and `--cluster-domain`; without it
    /// `dnsPolicy: ClusterFirst` falls back to `Default`, as the kubelet's does.
    pub cluster_dns: Option<ClusterDns>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterDns {
    pub servers: Vec<String>,
    /// `cluster.local`.
    pub domain: String,
}
