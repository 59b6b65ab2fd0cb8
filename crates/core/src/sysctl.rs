//! The group's sysctls (`SecurityContext.Sysctl.N`): which names a group may set and what
//! values it may give. Only sysctls that belong to a namespace of the group's own are
//! allowed (Kubernetes' namespaced list): `net.*` (the group's network namespace, which
//! the kernel shows only the sysctls of its own), and the IPC ones (`kernel.sem`,
//! `kernel.shm*`, `kernel.msg*`, `fs.mqueue.*`, each container's IPC namespace). Anything
//! else would change the host.

use serde::{Deserialize, Serialize};

/// Most sysctls of one group.
pub const MAX_SYSCTLS: usize = 32;
/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 256;

/// One sysctl of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Dotted (`net.ipv4.ip_local_port_range`).
    pub name: String,
    pub value: String,
}

/// IPC sysctls named in full (Kubernetes' `namespaces` table).
const IPC: &[&str] = &[
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.shm_rmid_forced",
];

/// Prefixes of namespaced sysctls: the network namespace's and POSIX message queues'.
const PREFIXES: &[&str] = &["net.", "fs.mqueue."];

/// Why a sysctl is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("is not a sysctl name (dotted lower-case words, at most {MAX_NAME_LEN} bytes): {0:?}")]
    BadName(String),
    #[error("{0} is not namespaced: it would change the host (allowed: net.*, kernel.sem, kernel.shm*, kernel.msg*, fs.mqueue.*)")]
    NotNamespaced(String),
    #[error("of {0} must be at most {MAX_VALUE_LEN} printable bytes on one line")]
    BadValue(String),
}

/// Checks a name: well formed and namespaced.
pub fn check_name(name: &str) -> Result<(), SysctlError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
    if !well_formed {
        return Err(SysctlError::BadName(name.to_string()));
    }
    if IPC.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)) {
        Ok(())
    } else {
        Err(SysctlError::NotNamespaced(name.to_string()))
    }
}

/// Checks a value: bounded, printable, one line (tabs and spaces between fields allowed).
pub fn check_value(name: &str, value: &str) -> Result<(), SysctlError> {
    let ok = value.len() <= MAX_VALUE_LEN
        && !value.trim().is_empty()
        && value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SysctlError::BadValue(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_names_pass() {
        for ok in [
            "net.ipv4.ip_local_port_range",
            "net.core.somaxconn",
            "kernel.shm_rmid_forced",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            check_name(ok).unwrap();
        }
        for host in [
            "kernel.hostname",
            "kernel.panic",
            "vm.overcommit_memory",
            "fs.file-max",
            "kernel.shm_next",
            "kernel.semx",
        ] {
            assert_eq!(
                check_name(host),
                Err(SysctlError::NotNamespaced(host.into()))
            );
        }
        for bad in [
            "",
            "net..ipv4",
            "net/ipv4/x",
            "Net.ipv4",
            "net.ipv4.x\n",
            ".net",
        ] {
            assert!(
                matches!(check_name(bad), Err(SysctlError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(check_name(&format!("net.{}", "a".repeat(MAX_NAME_LEN))).is_err());
    }

    #[test]
    fn values_are_one_bounded_line() {
        check_value("n", "1024\t65000").unwrap();
        check_value("n", "0 2147483647").unwrap();
        for bad in [
            "",
            " ",
            "1\n2",
            "1\r",
            "\u{7f}",
            &"1".repeat(MAX_VALUE_LEN + 1),
        ] {
            assert!(check_value("n", bad).is_err(), "{bad:?}");
        }
    }
}
