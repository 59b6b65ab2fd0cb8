//! gVisor's `runsc` as an OCI runtime: which platform its sentry intercepts system calls with
//! (kvm where `/dev/kvm` boots a sandbox, systrap where this runsc has it, else ptrace) and the
//! global flags every run of it gets.
//!
//! runsc's own network stack does not start on every kernel, so the sandbox uses the host
//! stack (`--network=host`) of the network namespace the bundle names: the group's own, made
//! and wired by berth, so a group still has its own address and the isolation rules that hold
//! for it.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::error::RuntimeError;

/// How long a trial sandbox on the kvm platform may take before kvm counts as not working.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How gVisor's sentry intercepts the system calls of the sandboxed processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GvisorPlatform {
    Ptrace,
    Systrap,
    Kvm,
}

impl GvisorPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ptrace => "ptrace",
            Self::Systrap => "systrap",
            Self::Kvm => "kvm",
        }
    }

    /// The best platform this runsc has on this host: kvm when a trial sandbox boots on it
    /// within [`KVM_PROBE_TIMEOUT`], else systrap when this runsc knows it, else ptrace.
    pub fn detect(binary: &Path) -> Self {
        if Path::new("/dev/kvm").exists() && kvm_boots(binary) {
            return Self::Kvm;
        }
        if knows_systrap(binary) {
            return Self::Systrap;
        }
        Self::Ptrace
    }
}

impl fmt::Display for GvisorPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GvisorPlatform {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ptrace" => Ok(Self::Ptrace),
            "systrap" => Ok(Self::Systrap),
            "kvm" => Ok(Self::Kvm),
            other => Err(RuntimeError::invalid(format!(
                "{other:?} is not a gVisor platform (ptrace, systrap, kvm)"
            ))),
        }
    }
}

/// The global flags of every runsc command berth runs: a root (not rootless) sandbox on
/// `platform`, on the host network stack of the bundle's network namespace.
pub fn runsc_global_args(platform: GvisorPlatform) -> Vec<String> {
    vec![
        "--rootless=false".to_string(),
        format!("--platform={platform}"),
        "--network=host".to_string(),
    ]
}

/// Whether `runsc flags` lists systrap among the platforms.
fn knows_systrap(binary: &Path) -> bool {
    std::process::Command::new(binary)
        .arg("flags")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("systrap"))
}

/// Runs `/bin/true` in a throw-away sandbox on the kvm platform; a `/dev/kvm` that boots no
/// sandbox hangs it, so it is killed after [`KVM_PROBE_TIMEOUT`].
fn kvm_boots(binary: &Path) -> bool {
    let root = std::env::temp_dir().join(format!("berth-kvm-probe-{}", std::process::id()));
    let child = std::process::Command::new(binary)
        .arg("--root")
        .arg(&root)
        .args(["--platform=kvm", "--network=none", "do", "/bin/true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    let began = Instant::now();
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if began.elapsed() < KVM_PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let _ = std::fs::remove_dir_all(&root);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_make_the_flags() {
        for p in [
            GvisorPlatform::Ptrace,
            GvisorPlatform::Systrap,
            GvisorPlatform::Kvm,
        ] {
            assert_eq!(p.as_str().parse::<GvisorPlatform>().unwrap(), p);
        }
        assert!("hvf".parse::<GvisorPlatform>().is_err());
        assert_eq!(
            runsc_global_args(GvisorPlatform::Ptrace),
            ["--rootless=false", "--platform=ptrace", "--network=host"]
        );
    }
}
