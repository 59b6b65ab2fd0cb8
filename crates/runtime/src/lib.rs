//! berth's container runtime layer: OCI bundles from container specs, the OCI runtime driver
//! (crun by default, runc), the monitors that hold containers' logs (rotated by size) and
//! exit statuses (OOM kills read from the memory cgroup), log reading and following, exec in a
//! running container (sync or interactive, with or without a terminal), resource statistics
//! from cgroups v1 and v2 and from network namespaces, and cgroup layout detection (crun runs
//! without the cgroup2 mount on hybrid hosts; `favordynmods` makes cgroup migrations fast).

pub mod bundle;
pub mod cgroup;
mod dynmods;
mod error;
mod exec;
mod files;
mod gvisor;
mod handover;
pub mod logs;
mod monitor;
mod oci;
mod pidfd;
mod runtime;
mod sandbox;
mod spawn;
pub mod stats;
mod zygote;

pub use bundle::mounts::{Propagation, VolumeBind};
pub use bundle::seccomp;
pub use bundle::{
    build_spec, capability_name, BundleSpec, UserMap, DEFAULT_CAPABILITIES, MASKED_PATHS,
    PING_GROUP_RANGE, READONLY_PATHS,
};
pub use cgroup::CgroupLayout;
pub use dynmods::{favor_dynmods, DynmodsOutcome};
pub use error::RuntimeError;
pub use exec::{
    ExecOutput, ExecReader, ExecRequest, ExecSession, ExecUser, ExecWriter, SYNC_OUTPUT_CAP,
};
pub use files::{ExitStatus, Started};
pub use gvisor::{runsc_global_args, GvisorPlatform};
pub use monitor::{monitor_command_main, monitor_main};
pub use oci::RuntimeKind;
pub use runtime::{Runtime, RuntimeConfig, SECCOMP_BPF_ANNOTATION};
pub use sandbox::{install_pause_rootfs, pause_args, SandboxRole, PAUSE_PATH, RENAME_CAPABILITY};
pub use stats::{net_stats, ContainerStats, InterfaceStats};
