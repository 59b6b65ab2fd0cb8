//! The control plane: what each API action does to the desired state, independent of HTTP.
//! It records groups in the [`Store`], hands them to a node agent through [`NodeClient`] (an
//! in-process call in `berth serve`, a remote one in cluster mode) and folds what the node
//! reports back into the records.

mod node;
mod service;

pub use node::{LogRequest, NodeClient, NodeError};
pub use service::{Control, ControlError};
