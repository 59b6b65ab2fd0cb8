//! The node agent: for every container group placed on this host it sets up the network
//! namespace, pulls the images, runs the init containers in order and then the app
//! containers, each under its restart policy with back-off, and reports what it observes.
//! It re-adopts the containers that kept running while berth was down.
//!
//! Layers, each importing only those above it: `config`, `cache_source` and `files` (what
//! the node is given and where it keeps things); `spare`, `userns`, `metrics` (node-wide pools and samples);
//! `host` (the node-wide services); `group` (one supervisor per group, with its sandbox,
//! images and containers as modules below it); `agent` (the entry points over the groups).

mod agent;
mod cache_source;
mod config;
mod files;
mod group;
mod gvisor_pool;
mod host;
mod metrics;
mod quiet;
mod spare;
mod userns;

pub use agent::{Agent, DEFAULT_INTERVAL as DEFAULT_METRICS_INTERVAL};
pub use cache_source::{CacheOrder, CachePull, CacheSource, NoCacheSource};
pub use config::{GvisorConfig, NodeConfig, NodeError, Reporter, SeccompProfiles};
pub use files::LogSelector;
pub use host::ClassSupport;
pub use userns::{UsernsConfig, DEFAULT_BASE as DEFAULT_USERNS_BASE};
