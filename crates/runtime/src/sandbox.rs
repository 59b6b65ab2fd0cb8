//! One gVisor sandbox per group, as containerd's runsc shim makes one per pod: the group's
//! sandbox is started from a *sandbox* (pause) container, and every container of the group is
//! created inside it, marked with the CRI annotations runsc reads
//! (`io.kubernetes.cri.container-type`, `io.kubernetes.cri.sandbox-id`).
//!
//! runsc serves each container's root filesystem and volumes through a gofer of its own, and
//! its `state` and pid file name the sandbox's process for every container of it, so the
//! exit of one container is learnt with `runsc wait <id>` (the monitor does it, see
//! `monitor::event_loop`), not from a process of the host.
//!
//! The pause process is a static executable built with this crate (`pause/pause.c`), written
//! at start into a root-owned, read-only root filesystem that every sandbox shares.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// The annotation that tells runsc whether a container starts a sandbox or joins one.
pub const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";
/// The annotation that names the sandbox (its root container's id) a container joins.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// The pause executable, built static by `build.rs`.
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The path of the pause executable inside the sandbox's root filesystem.
pub const PAUSE_PATH: &str = "/pause";

/// The FIFO in a renamable sandbox's directory that its pause process reads host names from.
pub const NAME_FIFO: &str = "hostname.fifo";

/// The capability a renamable sandbox's pause process needs to set the host name.
pub const RENAME_CAPABILITY: &str = "SYS_ADMIN";

/// The command of a sandbox's pause container: `/pause`, or `/pause -n` for one that takes
/// its host name later from the FIFO [`NAME_FIFO`] (it needs [`RENAME_CAPABILITY`] then).
pub fn pause_args(named_later: bool) -> Vec<String> {
    let mut args = vec![PAUSE_PATH.to_string()];
    if named_later {
        args.push("-n".to_string());
    }
    args
}

/// Creates the FIFO [`NAME_FIFO`] in `dir` (root's, mode 0600), replacing whatever is there.
pub(crate) fn make_name_fifo(dir: &Path) -> Result<PathBuf, RuntimeError> {
    let path = dir.join(NAME_FIFO);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("remove", &path, e)),
    }
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| RuntimeError::io("create the FIFO", &path, e.into()))?;
    Ok(path)
}

/// Mount points runsc mounts over in the sandbox's (read-only) root filesystem.
const MOUNT_POINTS: &[&str] = &["proc", "dev", "sys", "tmp", "etc"];

/// Where a container stands in a sandbox of several containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxRole {
    /// The sandbox's root (pause) container: its start boots the sandbox.
    Sandbox,
    /// A container created in the sandbox whose root container has this id.
    Container { sandbox_id: String },
}

impl SandboxRole {
    /// The annotations runsc reads (and containerd's shim writes) for this role.
    pub fn annotations(&self, own_id: &str) -> [(String, String); 2] {
        let (kind, sandbox) = match self {
            Self::Sandbox => ("sandbox", own_id),
            Self::Container { sandbox_id } => ("container", sandbox_id.as_str()),
        };
        [
            (CONTAINER_TYPE_ANNOTATION.to_string(), kind.to_string()),
            (SANDBOX_ID_ANNOTATION.to_string(), sandbox.to_string()),
        ]
    }
}

/// Whether `annotations` (a JSON object) mark a container created in another's sandbox.
pub(crate) fn is_subcontainer(annotations: Option<&serde_json::Value>) -> bool {
    annotations
        .and_then(|a| a.get(CONTAINER_TYPE_ANNOTATION))
        .and_then(|v| v.as_str())
        == Some("container")
}

/// Writes the sandbox's root filesystem under `dir` (`dir/rootfs`: the pause executable and
/// the mount points runsc needs) unless it is there already, and returns its path. Every file
/// is root's and read-only; what is found there that is not berth's own (a symlink, another
/// owner, other content) is replaced.
pub fn install_pause_rootfs(dir: &Path) -> Result<PathBuf, RuntimeError> {
    let rootfs = dir.join("rootfs");
    let pause = rootfs.join(PAUSE_PATH.trim_start_matches('/'));
    if is_current(&pause) {
        return Ok(rootfs);
    }
    let _ = std::fs::remove_dir_all(&rootfs);
    let staging = dir.join(format!(".rootfs.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for d in MOUNT_POINTS {
        let p = staging.join(d);
        std::fs::create_dir_all(&p).map_err(|e| RuntimeError::io("create", &p, e))?;
    }
    let staged = staging.join(PAUSE_PATH.trim_start_matches('/'));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o555)
        .open(&staged)
        .map_err(|e| RuntimeError::io("create", &staged, e))?;
    f.write_all(PAUSE)
        .and_then(|()| f.sync_all())
        .map_err(|e| RuntimeError::io("write", &staged, e))?;
    drop(f);
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| RuntimeError::io("set the mode of", &staging, e))?;
    std::fs::rename(&staging, &rootfs).map_err(|e| RuntimeError::io("rename", &staging, e))?;
    Ok(rootfs)
}

/// Whether `pause` is the pause executable of this build, root's and not writable.
fn is_current(pause: &Path) -> bool {
    let Ok(m) = std::fs::symlink_metadata(pause) else {
        return false;
    };
    m.is_file()
        && m.uid() == 0
        && m.mode() & 0o222 == 0
        && m.len() == PAUSE.len() as u64
        && std::fs::read(pause).is_ok_and(|b| b == PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_make_the_cri_annotations() {
        let [t, s] = SandboxRole::Sandbox.annotations("g.sandbox");
        assert_eq!(t.1, "sandbox");
        assert_eq!(s, (SANDBOX_ID_ANNOTATION.to_string(), "g.sandbox".into()));
        let role = SandboxRole::Container {
            sandbox_id: "g.sandbox".into(),
        };
        let [t, s] = role.annotations("g-c");
        assert_eq!(
            t,
            (CONTAINER_TYPE_ANNOTATION.to_string(), "container".into())
        );
        assert_eq!(s.1, "g.sandbox");
        let json: serde_json::Value = serde_json::json!({ CONTAINER_TYPE_ANNOTATION: "container" });
        assert!(is_subcontainer(Some(&json)));
        let json: serde_json::Value = serde_json::json!({ CONTAINER_TYPE_ANNOTATION: "sandbox" });
        assert!(!is_subcontainer(Some(&json)));
        assert!(!is_subcontainer(None));
    }

    #[test]
    fn a_renamable_pause_process_sets_each_name_it_reads_and_answers() {
        use std::io::{BufRead, BufReader, Write};
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = install_pause_rootfs(dir.path()).unwrap();
        let args = pause_args(true);
        assert_eq!(args, ["/pause", "-n"]);
        let mut cmd = std::process::Command::new(rootfs.join("pause"));
        cmd.args(&args[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        // SAFETY: unshare(2) only, between fork and exec: a host name of its own (needs root).
        unsafe {
            cmd.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).map_err(Into::into)
            });
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // A line longer than a host name is skipped; the lines around it are not.
        write!(stdin, "web\n{}\nweb-2\n", "x".repeat(65)).unwrap();
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            lines.push(line);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(lines, ["hostname web\n", "hostname web-2\n"]);
        assert_eq!(pause_args(false), ["/pause"]);
    }

    #[test]
    fn the_pause_rootfs_is_written_once_and_replaced_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = install_pause_rootfs(dir.path()).unwrap();
        let pause = rootfs.join("pause");
        assert_eq!(std::fs::read(&pause).unwrap(), PAUSE);
        assert_eq!(std::fs::metadata(&pause).unwrap().mode() & 0o777, 0o555);
        assert!(rootfs.join("proc").is_dir());
        // The pause executable is a static ELF file.
        assert_eq!(&PAUSE[..4], b"\x7fELF");
        let ino = std::fs::metadata(&pause).unwrap().ino();
        install_pause_rootfs(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&pause).unwrap().ino(), ino);
        // A file that is not this build's is replaced.
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_file(&pause).unwrap();
        std::fs::write(&pause, b"other").unwrap();
        install_pause_rootfs(dir.path()).unwrap();
        assert_eq!(std::fs::read(&pause).unwrap(), PAUSE);
    }
}
