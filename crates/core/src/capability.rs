//! Which capabilities a group may add to its containers: the operator's allow-list and the
//! check a create must pass before anything is recorded.

use std::collections::BTreeSet;

use crate::spec::GroupSpec;

/// What `Capability.Add` may ask for unless the operator says otherwise: Docker's default
/// set, and NET_ADMIN and SYS_PTRACE, which act only inside the group's own network and PID
/// namespaces. SYS_ADMIN, SYS_MODULE, BPF and the like are never in it: a container's root is
/// the host's root.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
    "SYS_PTRACE",
];

/// Every capability of Linux 6.x (`capability.h`), without `CAP_`.
pub const KNOWN: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// What `Capability.Drop` may name besides [`KNOWN`]: every capability at once.
pub const ALL: &str = "ALL";

/// Whether `name` (any case, with or without `CAP_`) may be dropped.
pub fn droppable(name: &str) -> bool {
    let c = canonical(name);
    c == ALL || KNOWN.contains(&c.as_str())
}

/// `sys_admin` and `CAP_SYS_ADMIN` → `SYS_ADMIN`.
pub fn canonical(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

/// The capabilities a container may add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityPolicy {
    allowed: BTreeSet<String>,
}

impl Default for CapabilityPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_ALLOWED.iter().copied())
    }
}

/// A capability that a group asked for and may not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?} asks for capability {capability}, which this service does not grant (allowed: {allowed})")]
pub struct CapabilityRefused {
    pub container: String,
    pub capability: String,
    pub allowed: String,
}

impl CapabilityPolicy {
    pub fn new<'a>(allowed: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            allowed: allowed.into_iter().map(canonical).collect(),
        }
    }

    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    /// The first capability of any container of `spec` that is not allowed.
    pub fn check(&self, spec: &GroupSpec) -> Result<(), CapabilityRefused> {
        for c in spec.all_containers() {
            for cap in &c.capability_add {
                let name = canonical(cap);
                if !self.allowed.contains(&name) {
                    return Err(CapabilityRefused {
                        container: c.name.clone(),
                        capability: name,
                        allowed: self.allowed.iter().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ContainerSpec;

    fn spec(caps: &[&str]) -> GroupSpec {
        GroupSpec {
            containers: vec![ContainerSpec {
                name: "app".into(),
                capability_add: caps.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_default_list_refuses_host_wide_powers() {
        let policy = CapabilityPolicy::default();
        assert!(policy
            .check(&spec(&["NET_ADMIN", "cap_sys_ptrace"]))
            .is_ok());
        for bad in [
            "SYS_ADMIN",
            "CAP_SYS_MODULE",
            "bpf",
            "SYS_RAWIO",
            "DAC_READ_SEARCH",
        ] {
            let err = policy.check(&spec(&["NET_ADMIN", bad])).unwrap_err();
            assert_eq!(err.capability, canonical(bad));
            assert_eq!(err.container, "app");
            assert!(err.to_string().contains("allowed: AUDIT_WRITE"), "{err}");
        }
    }

    #[test]
    fn drops_name_known_capabilities_or_all() {
        for ok in ["CHOWN", "cap_net_raw", "all", "ALL", "checkpoint_restore"] {
            assert!(droppable(ok), "{ok}");
        }
        for bad in ["", "FLY", "CAP_", "ALLX"] {
            assert!(!droppable(bad), "{bad}");
        }
    }

    #[test]
    fn an_operator_list_replaces_the_default() {
        let policy = CapabilityPolicy::new(["sys_admin"]);
        assert!(policy.check(&spec(&["CAP_SYS_ADMIN"])).is_ok());
        assert!(policy.check(&spec(&["NET_ADMIN"])).is_err());
        assert!(CapabilityPolicy::new([]).check(&spec(&[])).is_ok());
    }
}
