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
    /// The answer is kept in [`DETECTED_FILE`] for this runsc binary and kernel until the host
    /// reboots (`/run` is a tmpfs), so that only the first start after a boot pays the trial.
    pub fn detect(binary: &Path) -> Self {
        let key = detection_key(binary);
        if let Some(p) = key.as_deref().and_then(remembered) {
            return p;
        }
        let p = Self::probe(binary);
        if let Some(k) = key {
            remember(&k, p);
        }
        p
    }

    fn probe(binary: &Path) -> Self {
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

/// Where the detected platform is kept until the host reboots.
pub const DETECTED_FILE: &str = "/run/berth/gvisor-platform";

/// What the detection depends on: the runsc binary (path, size, modification time), the
/// kernel, and whether `/dev/kvm` is there.
fn detection_key(binary: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(binary).ok()?;
    let kernel = nix::sys::utsname::uname().ok()?;
    Some(format!(
        "{} {} {}.{} {} kvm={}",
        binary.display(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        kernel.release().to_string_lossy(),
        Path::new("/dev/kvm").exists()
    ))
}

/// The platform detected before for `key`: the file's first line is the key, its second the
/// platform. A file that is not berth's own (not a regular file owned by root) is ignored.
fn remembered(key: &str) -> Option<GvisorPlatform> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(DETECTED_FILE).ok()?;
    if !m.is_file() || m.uid() != 0 || m.len() > 4096 {
        return None;
    }
    let text = std::fs::read_to_string(DETECTED_FILE).ok()?;
    let (k, p) = text.split_once('\n')?;
    (k == key).then(|| p.trim().parse().ok()).flatten()
}

/// Keeps `p` for `key`, written aside and renamed into place; failures only cost the next
/// start a new trial.
fn remember(key: &str, p: GvisorPlatform) {
    let path = Path::new(DETECTED_FILE);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".gvisor-platform.{}", std::process::id()));
    if std::fs::write(&tmp, format!("{key}\n{p}\n")).is_ok() && std::fs::rename(&tmp, path).is_ok()
    {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
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
