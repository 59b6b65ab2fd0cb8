//! The one place that runs the OCI runtime binary (crun, runc or gVisor's runsc): global flags, the private
//! mount namespace that hides the cgroup2 mount from crun on hybrid hosts, and error capture.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::error::RuntimeError;

/// How long a `kill`, `state` or `delete` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which OCI runtime a binary is, from its `--version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Crun,
    Runc,
    /// gVisor's `runsc`.
    Runsc,
    Other,
}

impl RuntimeKind {
    pub fn detect(binary: &Path) -> Result<(Self, String), RuntimeError> {
        let out = std::process::Command::new(binary)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeError::Binary {
                binary: binary.to_path_buf(),
                source,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Binary {
                binary: binary.to_path_buf(),
                source: io::Error::other(format!("--version exited with {}", out.status)),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("").trim().to_string();
        let kind = if first.starts_with("crun ") {
            Self::Crun
        } else if first.starts_with("runc ") {
            Self::Runc
        } else if first.starts_with("runsc ") {
            Self::Runsc
        } else {
            Self::Other
        };
        Ok((kind, first))
    }
}

/// The state of a container as `<runtime> state` prints it (the fields berth uses).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct OciState {
    #[serde(default)]
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: Option<serde_json::Value>,
}

/// Tells crun that its executable cannot be written through `/proc/self/exe`, so it need not
/// copy itself before every run (see [`private_mount_ns`]).
const CLONED_BINARY_ENV: &str = "_LIBCONTAINER_CLONED_BINARY";

/// Runs the OCI runtime with `--root` and, where needed, in a private mount namespace.
#[derive(Clone, Debug)]
pub(crate) struct OciCommand {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub hide_unified: Option<PathBuf>,
    /// Bind the runtime's executable read-only over itself (crun).
    pub pin_binary: bool,
    /// Global flags after `--root` (runsc's `--platform`, `--network`, ...).
    pub global_args: Vec<String>,
}

impl OciCommand {
    /// A command for `args`, with stdin from /dev/null, in a private mount namespace where
    /// needed (see [`private_mount_ns`]).
    pub fn command<I, S>(&self, args: I) -> Result<std::process::Command, RuntimeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.command_outside(args);
        if self.hide_unified.is_some() || self.pin_binary {
            let pin = self.pin_binary.then_some(self.binary.as_path());
            private_mount_ns(&mut cmd, self.hide_unified.as_deref(), pin)?;
        }
        Ok(cmd)
    }

    /// A command for `args` that neither touches cgroups nor enters the container (`state`,
    /// `kill` of the init, `delete`): it runs in berth's own mount namespace, so it is spawned
    /// without a fork of berth (a fork copies the page tables of the whole server, whose size
    /// grows with the groups it holds) and without a copy of the host's mount table (which
    /// grows with them too). Outside the read-only bind crun still copies its executable
    /// before it runs (a constant cost per call, less than the fork it replaces).
    pub fn command_outside<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .args(&self.global_args)
            .args(args);
        cmd.stdin(Stdio::null());
        if self.pin_binary {
            cmd.env(CLONED_BINARY_ENV, "1");
        }
        cmd
    }

    /// Runs `args` to completion, whatever its exit status.
    pub async fn output(&self, args: &[&str]) -> Result<Output, RuntimeError> {
        self.run(self.command(args)?, args).await
    }

    /// [`OciCommand::output`] of a command that runs outside a private mount namespace
    /// ([`OciCommand::command_outside`]).
    pub async fn output_outside(&self, args: &[&str]) -> Result<Output, RuntimeError> {
        self.run(self.command_outside(args), args).await
    }

    async fn run(&self, cmd: std::process::Command, args: &[&str]) -> Result<Output, RuntimeError> {
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let fut = cmd.output();
        match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(r) => r.map_err(|source| RuntimeError::Spawn {
                what: "OCI runtime",
                binary: self.binary.clone(),
                source,
            }),
            Err(_) => Err(RuntimeError::Timeout {
                what: format!("{} {}", self.binary.display(), args.join(" ")),
                secs: COMMAND_TIMEOUT.as_secs(),
            }),
        }
    }

    pub fn failure(&self, args: &[&str], out: &Output) -> RuntimeError {
        RuntimeError::Command {
            binary: self.binary.clone(),
            args: args.join(" "),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }

    /// `state <id>`; `None` when the runtime does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<OciState>, RuntimeError> {
        let args = ["state", id];
        let out = self.output_outside(&args).await?;
        if !out.status.success() {
            return if is_not_found(&out.stderr) {
                Ok(None)
            } else {
                Err(self.failure(&args, &out))
            };
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| RuntimeError::BadOutput {
                binary: self.binary.clone(),
                args: args.join(" "),
                detail: e.to_string(),
            })
    }

    /// `kill <id> <signal>`; `false` when the container is unknown or no longer running.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<bool, RuntimeError> {
        let args = ["kill", id, signal];
        let out = self.output_outside(&args).await?;
        if out.status.success() {
            return Ok(true);
        }
        if is_not_found(&out.stderr) || is_not_running(&out.stderr) {
            return Ok(false);
        }
        Err(self.failure(&args, &out))
    }
}

/// Whether the runtime's stderr says that the container does not exist.
pub(crate) fn is_not_found(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains("does not exist")
        || s.contains("not found")
        || (s.contains("/status") && s.contains("No such file or directory"))
}

fn is_not_running(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains("not running")
        || s.contains("process already finished")
        || s.contains("No such process")
}

fn cstring(path: &Path, what: &str) -> Result<CString, RuntimeError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| RuntimeError::invalid(format!("{what} path holds a NUL byte")))
}

/// Makes `cmd` run in a new, private mount namespace in which `unified` (when given) is not
/// mounted and `binary` (when given) is bound read-only over itself.
///
/// crun copies its own executable into a sealed memfd and re-executes it before every
/// command (about 6 ms on the reference host), so that a container cannot overwrite the host's
/// binary through `/proc/self/exe` (CVE-2019-5736). It skips the copy when the executable sits
/// on a read-only mount and `_LIBCONTAINER_CLONED_BINARY` is set: the read-only bind gives the
/// same protection, in this namespace only. If the bind fails, crun sees a writable binary and
/// copies itself as before.
///
/// Everything the child does between fork and exec is an async-signal-safe syscall on
/// strings prepared here, so this is safe in a multi-threaded process.
pub(crate) fn private_mount_ns(
    cmd: &mut std::process::Command,
    unified: Option<&Path>,
    binary: Option<&Path>,
) -> Result<(), RuntimeError> {
    let unified = unified.map(|p| cstring(p, "cgroup2 mount")).transpose()?;
    let binary = binary.map(|p| cstring(p, "runtime binary")).transpose()?;
    let slash = c"/";
    // SAFETY: the closure only calls unshare(2), mount(2) and umount2(2) on C strings owned by
    // the closure or static; no allocation or lock is taken after fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::mount(
                std::ptr::null(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(target) = &unified {
                if libc::umount2(target.as_ptr(), libc::MNT_DETACH) != 0 {
                    let err = io::Error::last_os_error();
                    // Already gone (EINVAL: not a mount point; ENOENT): nothing to hide.
                    if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
                        return Err(err);
                    }
                }
            }
            if let Some(bin) = &binary {
                let bound = libc::mount(
                    bin.as_ptr(),
                    bin.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0;
                if bound {
                    libc::mount(
                        std::ptr::null(),
                        bin.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                        std::ptr::null(),
                    );
                }
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root test: the child sees its executable read-only and the cgroup2 mount gone; the
    /// host's mounts do not change.
    #[test]
    fn the_private_namespace_pins_the_binary_and_hides_unified() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let crun = Path::new("/usr/bin/crun");
        assert!(crun.is_file(), "crun is not installed");
        let layout = crate::CgroupLayout::detect().expect("layout");
        let unified = layout.unified_to_hide().map(Path::to_path_buf);
        let mut cmd = std::process::Command::new("cat");
        cmd.arg("/proc/self/mountinfo");
        private_mount_ns(&mut cmd, unified.as_deref(), Some(crun)).expect("prepare");
        let out = cmd.output().expect("run cat");
        assert!(out.status.success(), "{out:?}");
        let inside = String::from_utf8_lossy(&out.stdout).to_string();
        let pinned = inside
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/usr/bin/crun"))
            .unwrap_or_else(|| panic!("no bind of crun in the namespace:\n{inside}"));
        assert!(
            pinned
                .split(' ')
                .nth(5)
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "{pinned}"
        );
        if let Some(u) = &unified {
            let u = u.to_str().expect("utf-8");
            assert!(
                !inside.lines().any(|l| l.split(' ').nth(4) == Some(u)),
                "{u} still mounted"
            );
        }
        let host = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!host
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/usr/bin/crun")));
    }

    #[test]
    fn global_flags_come_between_root_and_the_command() {
        let oci = OciCommand {
            binary: PathBuf::from("/usr/bin/runsc"),
            root: PathBuf::from("/run/x"),
            hide_unified: None,
            pin_binary: false,
            global_args: vec!["--platform=ptrace".into(), "--network=host".into()],
        };
        let cmd = oci.command(["state", "c1"]).expect("command");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--root",
                "/run/x",
                "--platform=ptrace",
                "--network=host",
                "state",
                "c1"
            ]
        );
    }

    #[test]
    fn recognises_not_found() {
        assert!(is_not_found(
            b"error opening file `/run/crun/x/status`: No such file or directory"
        ));
        assert!(is_not_found(b"container does not exist"));
        assert!(!is_not_found(b"permission denied"));
    }
}
