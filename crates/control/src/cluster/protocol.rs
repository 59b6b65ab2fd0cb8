//! The node protocol, version 1 (docs/NODE_PROTOCOL.md): the messages node agents and the
//! control plane exchange, as serde types. Node → control plane calls go to the API's
//! address under [`PREFIX`]; control plane → node calls to the node's own server under
//! [`NODE_PREFIX`]. Every call but the join is signed with the node's key (`signing.rs`).
//! Fields are only ever added, with defaults, within a version.

use berth_core::{GroupId, GroupRecord, NodeOffer, NodeState, ObservedGroup};
use serde::{Deserialize, Serialize};

/// The path prefix of the control plane's node endpoints.
pub const PREFIX: &str = "/node/v1";
/// The path prefix of a node agent's own endpoints.
pub const NODE_PREFIX: &str = "/agent/v1";
/// The most bytes of a message body either side accepts.
pub const MAX_BODY: usize = 4 << 20;
/// The most reports one report call carries.
pub const MAX_REPORTS: usize = 256;
/// The most groups one watch answer carries.
pub const MAX_WATCH_GROUPS: usize = 500;
/// How long a watch waits for a change before it answers with none.
pub const WATCH_WAIT_SECS: u64 = 25;
/// How often a node sends its heartbeat.
pub const HEARTBEAT_SECS: u64 = 5;
/// A node silent this long is `NotReady`.
pub const NODE_LOST_SECS: u64 = 20;

/// `POST /node/v1/join`: a node presents a join token and says what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// `ID.SECRET`, made by `berth admin node token create`.
    pub token: String,
    pub name: String,
    /// Where the control plane reaches the node's server (`host:port`).
    pub address: String,
    pub offer: NodeOffer,
}

/// The answer to a join: who the node is and the key it signs with from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    pub node: String,
    /// The node's key, 32 bytes, lowercase hex. A join again under the same name gets a new
    /// one; the old one stops working.
    pub key: String,
    pub heartbeat_secs: u64,
}

/// `GET /node/v1/watch?after=REVISION`: the groups placed on the node written after
/// `after` (0: all of them), in revision order. Waits up to [`WATCH_WAIT_SECS`] for one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchReply {
    /// Where the next watch continues from.
    pub revision: u64,
    pub groups: Vec<GroupRecord>,
    /// More groups wait beyond this answer: watch again at once.
    pub more: bool,
}

/// One report of a group the node runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub group: GroupId,
    pub observed: ObservedGroup,
}

/// `POST /node/v1/report`: reports, each group's in the order they were made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportBatch {
    pub reports: Vec<Report>,
}

/// The answer to a report batch: the groups whose reports were refused because they are
/// not placed on the node (written nowhere). The node stops running them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportReply {
    pub refused: Vec<GroupId>,
}

/// `POST /node/v1/heartbeat`: the node is alive, and offers this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub offer: NodeOffer,
    /// How many groups it runs.
    pub groups: u64,
}

/// The answer to a heartbeat: how the control plane sees the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub state: NodeState,
    pub cordoned: bool,
    pub draining: bool,
}

/// `POST /node/v1/seccomp`: the seccomp confinement of the account that owns a group placed
/// on the node; asked before the group's containers start. Refused (403) for a group not
/// placed on the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompQuery {
    pub group: GroupId,
}

/// An account's seccomp confinement, as the operator set it (`berth admin account
/// set-seccomp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "profile", rename_all = "lowercase")]
pub enum SeccompSetting {
    /// The built-in profile.
    Default,
    /// No seccomp filter.
    Unconfined,
    /// A profile in Docker's JSON format, checked when it was set.
    Profile(String),
}

/// The answer to a [`SeccompQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompReply {
    pub setting: SeccompSetting,
}

/// `POST /node/v1/cache`: the image cache (`ImageSnapshotId`) of a group placed on the node,
/// which the node does not hold, for it to make it. With `made`, the node says it made it:
/// the control plane records it as one that holds the cache. Refused (403) for a group not
/// placed on the caller; 404 when the group names no usable cache of its account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheQuery {
    pub group: GroupId,
    #[serde(default)]
    pub made: bool,
}

/// What a node needs to make an image cache: the answer to a [`CacheQuery`], and the body of
/// `POST /agent/v1/cache-create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheOrder {
    pub id: String,
    /// The account the cache belongs to (its images are proved for it).
    pub account: String,
    pub images: Vec<String>,
    #[serde(default)]
    pub registry_credentials: Vec<berth_core::RegistryCredential>,
    #[serde(default)]
    pub plain_http_registries: Vec<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

impl CacheOrder {
    pub fn of(b: &crate::CacheBuild) -> Self {
        Self {
            id: b.id.clone(),
            account: b.account.clone(),
            images: b.images.clone(),
            registry_credentials: b.registry_credentials.clone(),
            plain_http_registries: b.plain_http_registries.clone(),
            insecure_registries: b.insecure_registries.clone(),
        }
    }
}

/// The answer to `POST /agent/v1/cache-create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCreated {
    pub size_bytes: u64,
}

/// `POST /agent/v1/cache-delete`: release an image cache (idempotent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDelete {
    pub id: String,
}

/// `POST /node/v1/caches` (empty body): the image caches the control plane knows the node
/// to hold. A node releases the others when it starts (those deleted while it was away).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachesHeld {
    pub ids: Vec<String>,
}

/// `POST /agent/v1/remove`: stop the group's containers and release it on the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRequest {
    pub group: GroupId,
    pub grace_secs: u64,
    /// The record's `restart_generation`: the node applies no record of this run (or an
    /// older one) again.
    #[serde(default)]
    pub generation: u64,
}

/// `POST /agent/v1/log`: a container's log text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    pub group: GroupId,
    pub container: String,
    pub tail: Option<usize>,
    pub since_seconds: Option<u64>,
    pub limit_bytes: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
    pub restart_count: Option<u32>,
}

impl LogQuery {
    pub fn of(group: &GroupId, req: &crate::LogRequest) -> Self {
        Self {
            group: group.clone(),
            container: req.container.clone(),
            tail: req.tail,
            since_seconds: req.since_seconds,
            limit_bytes: req.limit_bytes,
            timestamps: req.timestamps,
            previous: req.previous,
            restart_count: req.restart_count,
        }
    }

    pub fn request(&self) -> crate::LogRequest {
        crate::LogRequest {
            container: self.container.clone(),
            tail: self.tail,
            since_seconds: self.since_seconds,
            limit_bytes: self.limit_bytes,
            timestamps: self.timestamps,
            previous: self.previous,
            restart_count: self.restart_count,
        }
    }
}

/// `POST /agent/v1/exec`: runs a command in a container to its end (a synchronous
/// ExecContainerCommand).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCall {
    pub group: GroupId,
    pub container: String,
    pub command: Vec<String>,
    /// As ExecContainerCommand's `TTY` and `Stdin` (a synchronous exec sends no input).
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    pub timeout_secs: u64,
}

/// What a command run by [`ExecCall`] printed (standard base64) and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// `POST /agent/v1/metrics`: a group's samples within a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsCall {
    pub group: GroupId,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// The answer to a [`MetricsCall`], oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsResult {
    pub points: Vec<berth_core::metric::MetricPoint>,
}

/// `GET /agent/v1/dial?call=HEX`: a connection to `port` on the group's loopback, made from
/// inside its network namespace (a port forward), relayed as binary WebSocket messages
/// after a first text message `ok` (or the reason it failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialCall {
    pub group: GroupId,
    pub port: u16,
}

/// The body of a refused node call, either side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}
