//! berth's container-group networking.
//!
//! Every container group gets its own network namespace, pinned as a bind
//! mount under the namespace directory and wired into a host bridge by the
//! CNI plugins (`bridge`, with the address berth picked handed in through the `static`
//! IPAM plugin) from a configuration list berth writes — for berth's own list, by berth
//! itself over rtnetlink with the same requests and result (`veth`, `link`). [`Network::attach`] gives a group its
//! wiring — from a pool of namespaces wired ahead of time when one is ready,
//! else through [`Network::setup`] — [`Network::teardown`] removes every trace
//! of it, and the cached results let a restarted berth find what is already
//! wired.

mod cache;
mod cni;
mod config;
mod error;
mod handover;
mod ipam;
mod isolation;
mod link;
mod masq;
mod netns;
mod network;
mod nft;
mod pool;
mod portmap;
mod result;
mod rtnl;
mod veth;

pub use config::{ConfList, NetConfig, CNI_VERSION};
pub use error::NetError;
pub use isolation::IsolationConfig;
pub use network::Network;
pub use portmap::{PortMapping, MAX_MAPPINGS};
pub use result::Attachment;
