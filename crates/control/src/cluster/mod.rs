//! Cluster mode (docs/CLUSTER.md, ADR 0016): the node protocol's messages and signatures.
//! The control plane's side of the protocol is in the server (its `/node/v1` routes) over
//! the methods here; a node agent's side is `berth node`.

pub mod protocol;
pub mod signing;
