//! The nodes of a cluster as the control plane knows them (docs/CLUSTER.md, ADR 0016): what a
//! node offers, whether it takes new groups, and when it was last heard from. Pure data; the
//! store keeps it, the node protocol carries it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::placement::Room;

/// The most bytes of a node's name.
pub const MAX_NODE_NAME: usize = 63;
/// The most bytes of a node's address (`host:port`).
pub const MAX_NODE_ADDRESS: usize = 255;
/// The most runtime classes a node may offer.
pub const MAX_NODE_CLASSES: usize = 8;
/// The most images a node's offer lists.
pub const MAX_NODE_IMAGES: usize = 128;
/// The longest image reference a node's offer lists.
pub const MAX_NODE_IMAGE_REF: usize = 512;
/// The most NFS servers, and the most host-path prefixes, a node's offer may allow.
pub const MAX_NODE_VOLUME_RULES: usize = 64;

/// Whether a node is heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Its heartbeats arrive.
    Ready,
    /// It missed its heartbeats: its groups are handled per their restart policy.
    NotReady,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::NotReady => "NotReady",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Ready" => Some(Self::Ready),
            "NotReady" => Some(Self::NotReady),
            _ => None,
        }
    }
}

/// What a node offers to groups, sent when it joins and with every heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOffer {
    /// What groups may hold in all on the node (allocatable CPU, memory, containers).
    pub capacity: Room,
    /// The bytes of temporary storage groups may take in all (0: no bound known).
    #[serde(default)]
    pub storage_bytes: u64,
    /// Of those, the bytes free now (as of the offer): a group goes only to a node with its
    /// `EphemeralStorage` free.
    #[serde(default)]
    pub storage_free_bytes: u64,
    /// The images the node stores (normalised references), most recently used first, at
    /// most [`MAX_NODE_IMAGES`]: placement prefers a node holding a group's images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The runtime classes the node runs (`runc`, `gvisor`, …).
    #[serde(default)]
    pub runtime_classes: Vec<String>,
    /// The node's own server speaks TLS: the control plane calls it over `https`/`wss`.
    #[serde(default)]
    pub tls: bool,
    /// The volumes reaching outside a group the node allows (`berth node --nfs-server`,
    /// `--host-path-prefix`): a group with such volumes goes only to a node that allows them.
    #[serde(default)]
    pub volumes: crate::VolumePolicy,
}

/// A node that joined the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `node-` and 16 lowercase letters and digits, given at its first join.
    pub id: String,
    /// The name the operator gave the node (unique; a node joining again under its name
    /// keeps its id).
    pub name: String,
    /// Where the control plane reaches the node's own server (`host:port`).
    pub address: String,
    pub state: NodeState,
    /// Cordoned: no new group is placed on it.
    pub cordoned: bool,
    /// Drained: cordoned, and its groups are placed elsewhere.
    pub draining: bool,
    pub offer: NodeOffer,
    pub joined: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

impl NodeInfo {
    /// Whether a new group may be placed on it.
    pub fn schedulable(&self) -> bool {
        self.state == NodeState::Ready && !self.cordoned && !self.draining
    }
}

/// A node as the store keeps it: what is known of it and the key its requests are signed
/// with (sealed at rest).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub info: NodeInfo,
    /// 32 random bytes, shared by the node and the control plane.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for NodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRecord")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A join token as the store keeps it: its id and the SHA-256 of its secret. The token a
/// node is given is `ID.SECRET`; the secret is shown once, when it is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// 6 lowercase letters and digits.
    pub id: String,
    /// SHA-256 of the secret, lowercase hex.
    pub digest: String,
    /// What the operator said it is for (at most 200 bytes).
    pub description: String,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}
