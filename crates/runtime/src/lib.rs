//! berth's container runtime layer: OCI bundles from container specs, the OCI runtime driver
//! (crun by default, runc), the per-container monitor that holds logs and exit status, log
//! reading, and cgroup layout detection (crun runs without the cgroup2 mount on hybrid hosts).

pub mod bundle;
pub mod cgroup;
mod error;
mod files;
pub mod logs;
mod monitor;
mod oci;
mod pidfd;
mod runtime;
mod spawn;

pub use bundle::{build_spec, BundleSpec, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};
pub use cgroup::CgroupLayout;
pub use error::RuntimeError;
pub use files::{ExitStatus, Started};
pub use monitor::monitor_main;
pub use oci::RuntimeKind;
pub use runtime::{Runtime, RuntimeConfig};
