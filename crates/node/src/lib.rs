//! The node agent: for every container group placed on this host it sets up the network
//! namespace, pulls the images, runs the init containers in order and then the app
//! containers, each under its restart policy with back-off, and reports what it observes.
//! It re-adopts the containers that kept running while berth was down.

mod agent;
mod cache;
mod container;
mod dial;
mod dial_tls;
mod files;
mod group;
mod handler;
mod host_path;
mod nfs;
mod observe;
mod ports;
mod probe;
mod revision;
mod spare;
mod state;
mod user;
mod userns;
mod volumes;

pub use agent::{Agent, BuiltinSeccomp, NodeConfig, NodeError, Reporter, SeccompProfiles};
pub use cache::CachePull;
pub use observe::{DEFAULT_INTERVAL as DEFAULT_METRICS_INTERVAL, RING_POINTS};
pub use state::LogSelector;
pub use userns::{UsernsConfig, DEFAULT_BASE as DEFAULT_USERNS_BASE};
