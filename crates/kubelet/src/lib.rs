//! berth's virtual kubelet, first layer: the pure translations between Kubernetes and berth.
//!
//! [`pod_to_group`] turns a `Pod` bound to the virtual node (plus the objects it references,
//! which the caller reads from the API server and passes in as [`Inputs`]) into the
//! CreateContainerGroup parameters berth's own CLI sends ([`berth_client::CreateParams`]);
//! [`group_to_pod_status`] turns berth's DescribeContainerGroups answer for the group back
//! into the pod's `PodStatus` and the events to post on it. Neither does any I/O: the
//! controllers that watch the API server and berth are built on top of them.
//!
//! [`Registration`] is the first controller: it registers the virtual node and keeps its
//! Lease, against any `kube::Client`.
//!
//! [`api`] is the kubelet API on the node's daemon port: logs, exec, stats and metrics of
//! the pods, over TLS, authenticated and authorized as the kubelet does.
//!
//! A pod berth cannot run as written is a [`PodError`], never a silently smaller group: every
//! field is either honoured, refused by name, or listed in `docs/KUBERNETES.md` as having no
//! meaning on a virtual node.

mod annotations;
pub mod api;
mod error;
mod inputs;
mod node;
mod pod;
mod pods;
mod quantity;
mod registration;
mod status;

pub use annotations::{
    ANNOTATION_AUTO_IMAGE_CACHE, ANNOTATION_EXTRA_EPHEMERAL_STORAGE, ANNOTATION_IMAGE_CACHE_ID,
    ANNOTATION_SPOT_STRATEGY,
};
pub use error::{failed_status, PodError, FAILED_REASON};
pub use inputs::{ClusterDns, Inputs};
pub use node::{
    lease, node, node_status, Capacity, NodeConfig, LEASE_DURATION_SECS, LEASE_NAMESPACE,
    TAINT_KEY, TAINT_VALUE,
};
pub use pod::{group_name, pod_to_group, TAG_POD_NAME, TAG_POD_NAMESPACE, TAG_POD_UID};
pub use pods::{
    pod_uid, Groups, GroupsError, KnownPods, Outcome, PodConfig, PodController, CHANGED_WINDOW,
    FOLLOW_INTERVAL, MAX_BACKOFF, POD_SYNC_WORKERS, SWEEP_INTERVAL, VOLUME_RESYNC,
};
pub use quantity::{group_size, parse_quantity, Ask};
pub use registration::{CapacitySource, Registration, RENEW_INTERVAL, STATUS_INTERVAL};
pub use status::{group_to_pod_status, PodStatusUpdate, EVENT_COMPONENT};
