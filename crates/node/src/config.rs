//! How the node agent is set up and what it reports to: its configuration, its errors, the
//! sink of its observations and the source of accounts' seccomp profiles.

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::{GroupId, ObservedGroup};
use berth_net::NetConfig;
use berth_runtime::seccomp::Seccomp;
use berth_runtime::RuntimeConfig;

/// Where the node's observations go (the control plane).
pub trait Reporter: Send + Sync {
    fn report(&self, id: &GroupId, obs: ObservedGroup);
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("image store")]
    Image(#[from] berth_image::ImageError),
    #[error("container runtime")]
    Runtime(#[from] berth_runtime::RuntimeError),
    #[error("network")]
    Net(#[from] berth_net::NetError),
    #[error("temporary storage")]
    Storage(#[from] berth_storage::StorageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("user namespaces")]
    Userns(#[from] crate::userns::UsernsError),
    #[error("user namespaces (--userns) need crun: berth runs the containers' user namespaces and id-mapped root filesystems only with crun, and has not been validated with this runtime")]
    UsernsRuntime,
    #[error("no log of container {0}")]
    NoLog(String),
    #[error("this node does not run the {0} runtime class: {1}")]
    RuntimeClassUnsupported(berth_core::RuntimeClass, &'static str),
    #[error("{0} is not runsc: its --version says {1:?}")]
    NotRunsc(PathBuf, String),
}

/// Where the node finds the seccomp confinement of an account's containers.
#[async_trait::async_trait]
pub trait SeccompProfiles: Send + Sync {
    /// The confinement of `account`, which owns `group`; asked before the group's containers
    /// start. An error holds the start back until an answer comes (it never falls back to
    /// another profile: an account's own may be stricter than the built-in one).
    async fn for_group(&self, group: &GroupId, account: &str) -> Result<Seccomp, String>;
}

/// How the node runs the `gvisor` runtime class.
#[derive(Clone, Debug)]
pub struct GvisorConfig {
    /// The runsc executable.
    pub binary: PathBuf,
    /// The sentry's platform; `None`: detected (see `GvisorPlatform::detect`).
    pub platform: Option<berth_runtime::GvisorPlatform>,
    /// Sandboxes booted ahead of time for the next gvisor groups (0: none).
    pub pool: usize,
}

/// How the node agent is set up.
pub struct NodeConfig {
    /// The node's own directory (groups, images).
    pub root: PathBuf,
    /// The runtime of the `runc` class (crun or runc).
    pub runtime: RuntimeConfig,
    /// gVisor's runsc for the `gvisor` class; `None`: the node runs no such class.
    pub gvisor: Option<GvisorConfig>,
    pub net: NetConfig,
    /// Sized temporary storage per group; `None` leaves writable layers unsized on the
    /// node's own filesystem.
    pub storage: Option<berth_storage::StorageConfig>,
    /// Hand crun compiled seccomp programs (see `Runtime::with_seccomp_precompile`).
    pub seccomp_precompile: bool,
    pub seccomp: Arc<dyn SeccompProfiles>,
    /// Where image caches the node lacks come from.
    pub caches: Arc<dyn crate::cache_source::CacheSource>,
    /// A user namespace per group (`berth serve --userns`).
    pub userns: Option<crate::userns::UsernsConfig>,
    /// The host paths groups may mount (`berth serve --host-path-prefix`), checked again
    /// when a group's volumes are made.
    pub host_paths: berth_core::VolumePolicy,
}
