//! Handing a gVisor sandbox booted ahead of time (by a pool, in a cgroup of its own) to the
//! group that takes it: the sandbox's cgroup is renamed to the group's in every hierarchy
//! (a populated v1 cgroup can be renamed within its parent; its tasks follow), runsc's record
//! of the sandbox is pointed at the new path (runsc joins the sandbox's cgroup to start each
//! container's gofer, by the path it recorded at boot), the group's limits are written, and
//! the sandbox gets the group's host name from its pause process (`pause -n`, told through a
//! FIFO of the sandbox's directory: no process is started in the sandbox for it).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cgroup::CgroupLayout;
use crate::error::{check_id, RuntimeError};
use crate::runtime::Runtime;

/// The longest host name the kernel takes.
const HOST_NAME_MAX: usize = 64;

impl CgroupLayout {
    /// Renames the cgroup `from` to `to` in every hierarchy that has it (a hierarchy where it
    /// was renamed already is skipped, so a rename cut short can be finished). Refused when
    /// both exist in one hierarchy.
    pub fn rename_cgroup(&self, from: &str, to: &str) -> Result<(), RuntimeError> {
        let (Some(from), Some(to)) = (relative(from), relative(to)) else {
            return Err(RuntimeError::invalid(format!(
                "cannot rename the cgroup {from:?} to {to:?}: paths must be absolute without '..'"
            )));
        };
        for hierarchy in self.hierarchies() {
            let (src, dst) = (hierarchy.join(from), hierarchy.join(to));
            if !src.is_dir() {
                continue;
            }
            if dst.exists() {
                return Err(RuntimeError::invalid(format!(
                    "cannot rename {} to {}: the target exists",
                    src.display(),
                    dst.display()
                )));
            }
            fs::rename(&src, &dst).map_err(|e| RuntimeError::io("rename", &src, e))?;
        }
        Ok(())
    }

    /// Sets the memory limit of the cgroup at `path`, memory+swap to the same value where
    /// the kernel accounts swap (as the bundle's `linux.resources.memory` does).
    pub fn set_memory_limit(&self, path: &str, bytes: u64) -> Result<(), RuntimeError> {
        let rel = relative(path)
            .ok_or_else(|| RuntimeError::invalid(format!("invalid cgroup path {path:?}")))?;
        let files = match self {
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                let dir = root.join("memory").join(rel);
                let mut files = vec![(dir.join("memory.limit_in_bytes"), bytes.to_string())];
                if self.swap_accounting() {
                    files.push((dir.join("memory.memsw.limit_in_bytes"), bytes.to_string()));
                }
                files
            }
            Self::V2 { root } => {
                let dir = root.join(rel);
                vec![
                    (dir.join("memory.max"), bytes.to_string()),
                    (dir.join("memory.swap.max"), "0".to_string()),
                ]
            }
        };
        for (file, value) in files {
            fs::write(&file, value).map_err(|e| RuntimeError::io("write", &file, e))?;
        }
        Ok(())
    }

    /// The mounted hierarchies (one per v1 controller, or the unified one).
    fn hierarchies(&self) -> Vec<PathBuf> {
        match self {
            Self::V2 { root } => vec![root.clone()],
            Self::V1 { root } | Self::Hybrid { root, .. } => {
                let mut dirs: Vec<PathBuf> = fs::read_dir(root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect();
                dirs.sort();
                dirs
            }
        }
    }
}

/// A cgroup path without its leading `/`, if it is one and has no `..`.
fn relative(path: &str) -> Option<&str> {
    let rel = path.strip_prefix('/')?;
    (!rel.is_empty() && !rel.split('/').any(|c| c == ".." || c.is_empty())).then_some(rel)
}

impl Runtime {
    /// Moves the running sandbox whose root container is `id` from the cgroup `from` to `to`:
    /// renames the cgroup, then points runsc's record of the sandbox at it. Repeating it
    /// after it was cut short is fine.
    pub async fn move_sandbox_cgroup(
        &self,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<(), RuntimeError> {
        check_id(id)?;
        let layout = self.config().layout.clone();
        let state = self.oci().root.join(format!("{id}_sandbox:{id}.state"));
        let (from, to) = (from.to_string(), to.to_string());
        tokio::task::spawn_blocking(move || {
            layout.rename_cgroup(&from, &to)?;
            repoint_state(&state, &from, &to)
        })
        .await
        .map_err(|e| RuntimeError::io("move the cgroup of", id, std::io::Error::other(e)))?
    }

    /// Sets the host name of a sandbox started with [`Runtime::start_renamable_sandbox`]
    /// (files in `dir`): writes `name` to its pause process through the sandbox's FIFO and
    /// waits until the pause process has answered that it set it (in its log), at most
    /// [`RENAME_WAIT`]. Nothing is started in the sandbox.
    pub async fn set_sandbox_hostname(&self, dir: &Path, name: &str) -> Result<(), RuntimeError> {
        check_host_name(name)?;
        let conf: crate::files::MonitorConfig =
            crate::files::read_json(&dir.join(crate::files::MONITOR_CONFIG)).ok_or_else(|| {
                RuntimeError::invalid(format!("{} has no monitor configuration", dir.display()))
            })?;
        let fifo = dir.join(crate::sandbox::NAME_FIFO);
        if conf.stdin_fifo.as_deref() != Some(fifo.as_path()) {
            return Err(RuntimeError::invalid(format!(
                "the sandbox in {} takes no host name after its start",
                dir.display()
            )));
        }
        write_name(&fifo, name)?;
        let answer = format!("hostname {name}");
        let failed = format!("hostname-failed {name}");
        let began = std::time::Instant::now();
        loop {
            match answered(&conf.log_path, &answer, &failed) {
                Some(true) => return Ok(()),
                Some(false) => {
                    return Err(RuntimeError::invalid(format!(
                        "the sandbox in {} refused the host name {name:?}",
                        dir.display()
                    )))
                }
                None if began.elapsed() >= RENAME_WAIT => {
                    return Err(RuntimeError::Timeout {
                        what: format!("the host name of the sandbox in {}", dir.display()),
                        secs: RENAME_WAIT.as_secs(),
                    })
                }
                None => tokio::time::sleep(RENAME_POLL).await,
            }
        }
    }
}

/// A host name the kernel takes, on one line of its own.
fn check_host_name(name: &str) -> Result<(), RuntimeError> {
    if name.is_empty()
        || name.len() > HOST_NAME_MAX
        || name.starts_with('-')
        || name.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(RuntimeError::invalid(format!("invalid host name {name:?}")));
    }
    Ok(())
}

/// How long a pause process may take to set a host name.
pub const RENAME_WAIT: Duration = Duration::from_secs(5);
/// How often its log is read meanwhile.
const RENAME_POLL: Duration = Duration::from_millis(1);
/// How much of the end of the pause process's log is read for its answer.
const ANSWER_TAIL: u64 = 16 * 1024;

/// Writes `name` and a newline to the FIFO at `path` in one write (shorter than `PIPE_BUF`,
/// so never mixed with another); fails at once when nothing reads it (the sandbox is gone).
fn write_name(path: &Path, name: &str) -> Result<(), RuntimeError> {
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| RuntimeError::io("open", path, e))?;
    if !f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        return Err(RuntimeError::invalid(format!(
            "{} is not a FIFO",
            path.display()
        )));
    }
    f.write_all(format!("{name}\n").as_bytes())
        .map_err(|e| RuntimeError::io("write", path, e))
}

/// Whether the pause process's log (CRI lines) has the line `ok` (`Some(true)`) or `failed`
/// (`Some(false)`) among its last [`ANSWER_TAIL`] bytes.
fn answered(log: &Path, ok: &str, failed: &str) -> Option<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(ANSWER_TAIL)))
        .ok()?;
    let mut text = Vec::new();
    f.take(ANSWER_TAIL).read_to_end(&mut text).ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines().rev().find_map(|entry| {
        // `<timestamp> stdout F <text>`: a whole line of the pause process's output.
        let mut parts = entry.splitn(4, ' ');
        let (_, stream, tag, message) = (parts.next(), parts.next()?, parts.next()?, parts.next()?);
        if stream != "stdout" || tag != "F" {
            return None;
        }
        match message {
            m if m == ok => Some(true),
            m if m == failed => Some(false),
            _ => None,
        }
    })
}

/// Rewrites runsc's state file of a sandbox's root container so that the sandbox's cgroup
/// (and its spec's `linux.cgroupsPath`) is `to` where it was `from`, under runsc's own lock
/// of that file. A state that names neither is refused: this runsc records its sandbox in a
/// way berth does not know.
fn repoint_state(state: &Path, from: &str, to: &str) -> Result<(), RuntimeError> {
    let lock_path = state.with_extension("lock");
    let lock = fs::OpenOptions::new()
        .read(true)
        .open(&lock_path)
        .map_err(|e| RuntimeError::io("open", &lock_path, e))?;
    // SAFETY: flock(2) on a descriptor this function owns; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(RuntimeError::io(
            "lock",
            &lock_path,
            std::io::Error::last_os_error(),
        ));
    }
    let text = fs::read(state).map_err(|e| RuntimeError::io("read", state, e))?;
    let mut json: Value = serde_json::from_slice(&text)
        .map_err(|e| RuntimeError::io("decode", state, std::io::Error::other(e)))?;
    match repoint(&mut json, from, to) {
        Repointed::Done => {}
        Repointed::Already => return Ok(()),
        Repointed::Unknown => {
            return Err(RuntimeError::invalid(format!(
                "{} names the cgroup {from:?} nowhere berth knows",
                state.display()
            )))
        }
    }
    let data = serde_json::to_vec(&json)
        .map_err(|e| RuntimeError::io("encode", state, std::io::Error::other(e)))?;
    crate::files::write_atomic(state, &data)?;
    drop(lock);
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Repointed {
    Done,
    Already,
    Unknown,
}

/// Replaces `from` by `to` in the sandbox's cgroup record (`sandbox.cgroup.<version>.<field>`)
/// and in `spec.linux.cgroupsPath`.
fn repoint(json: &mut Value, from: &str, to: &str) -> Repointed {
    let (mut sandbox, mut already) = (false, false);
    if let Some(Value::Object(versions)) = json.pointer_mut("/sandbox/cgroup") {
        for cg in versions.values_mut() {
            if let Value::Object(fields) = cg {
                for key in ["name", "path", "Name", "Path"] {
                    match fields.get_mut(key).map(|v| swap(v, from, to)) {
                        Some(Some(true)) => sandbox = true,
                        Some(Some(false)) => already = true,
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(v) = json.pointer_mut("/spec/linux/cgroupsPath") {
        swap(v, from, to);
    }
    match (sandbox, already) {
        (true, _) => Repointed::Done,
        (false, true) => Repointed::Already,
        _ => Repointed::Unknown,
    }
}

/// Replaces the string `from` by `to` in `v`: `Some(true)` when it did, `Some(false)` when
/// `v` is `to` already.
fn swap(v: &mut Value, from: &str, to: &str) -> Option<bool> {
    match v.as_str() {
        Some(s) if s == from => {
            *v = Value::String(to.to_string());
            Some(true)
        }
        Some(s) if s == to => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_cgroup_record_is_repointed() {
        let mut state = serde_json::json!({
            "spec": {"linux": {"cgroupsPath": "/berth/gvp-1"}},
            "sandbox": {"id": "gvp-1.sandbox", "cgroup": {"cgroupv1": {"name": "/berth/gvp-1", "parents": null}}}
        });
        assert_eq!(
            repoint(&mut state, "/berth/gvp-1", "/berth/eci-a"),
            Repointed::Done
        );
        assert_eq!(
            state.pointer("/sandbox/cgroup/cgroupv1/name").unwrap(),
            "/berth/eci-a"
        );
        assert_eq!(
            state.pointer("/spec/linux/cgroupsPath").unwrap(),
            "/berth/eci-a"
        );
        assert_eq!(
            repoint(&mut state, "/berth/gvp-1", "/berth/eci-a"),
            Repointed::Already
        );
        let mut other =
            serde_json::json!({"sandbox": {"cgroup": {"cgroupv9": {"where": "/berth/gvp-1"}}}});
        assert_eq!(
            repoint(&mut other, "/berth/gvp-1", "/berth/eci-a"),
            Repointed::Unknown
        );
    }

    #[test]
    fn the_pause_process_answer_is_found_in_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pause.log");
        let (ok, failed) = ("hostname web", "hostname-failed web");
        assert_eq!(answered(&log, ok, failed), None);
        fs::write(
            &log,
            "2026-12-04T23:00:00.000000000Z stdout F hostname webby\n\
             2026-12-04T23:00:00.100000000Z stderr F hostname web\n\
             2026-12-04T23:00:00.200000000Z stdout P hostname web\n",
        )
        .unwrap();
        assert_eq!(answered(&log, ok, failed), None);
        let mut text = fs::read_to_string(&log).unwrap();
        text.push_str("2026-12-04T23:00:00.300000000Z stdout F hostname-failed web\n");
        fs::write(&log, &text).unwrap();
        assert_eq!(answered(&log, ok, failed), Some(false));
        text.push_str("2026-12-04T23:00:00.400000000Z stdout F hostname web\n");
        fs::write(&log, &text).unwrap();
        assert_eq!(answered(&log, ok, failed), Some(true));
    }

    #[test]
    fn a_name_goes_to_the_fifo_in_one_line_and_nothing_else_is_written() {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = crate::sandbox::make_name_fifo(dir.path()).unwrap();
        // Nothing reads it yet: refused at once, not blocked.
        assert!(write_name(&fifo, "web").is_err());
        let mut reader = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        write_name(&fifo, "web").unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "web\n");
        // A FIFO made again replaces the file; a regular file is no FIFO to write to.
        let plain = dir.path().join("plain");
        fs::write(&plain, "").unwrap();
        assert!(write_name(&plain, "web").is_err());
        assert_eq!(fs::read_to_string(&plain).unwrap(), "");
    }

    #[test]
    fn host_names_are_checked() {
        for bad in ["", "a b", "a\nb", "-h", &"x".repeat(65)] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_host_name("web-1.example").is_ok());
    }

    #[test]
    fn cgroups_are_renamed_in_every_hierarchy_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        for h in ["cpu", "memory", "pids"] {
            fs::create_dir_all(dir.path().join(h).join("berth/gvp-1")).unwrap();
        }
        // A rename cut short: one hierarchy has it already.
        fs::rename(
            dir.path().join("pids/berth/gvp-1"),
            dir.path().join("pids/berth/eci-a"),
        )
        .unwrap();
        let layout = CgroupLayout::V1 {
            root: dir.path().to_path_buf(),
        };
        layout
            .rename_cgroup("/berth/gvp-1", "/berth/eci-a")
            .unwrap();
        for h in ["cpu", "memory", "pids"] {
            assert!(dir.path().join(h).join("berth/eci-a").is_dir());
            assert!(!dir.path().join(h).join("berth/gvp-1").exists());
        }
        layout.set_memory_limit("/berth/eci-a", 64 << 20).unwrap();
        let limit = dir.path().join("memory/berth/eci-a/memory.limit_in_bytes");
        assert_eq!(
            fs::read_to_string(limit).unwrap(),
            (64u64 << 20).to_string()
        );
        fs::create_dir_all(dir.path().join("cpu/berth/gvp-2")).unwrap();
        fs::create_dir_all(dir.path().join("cpu/berth/eci-b")).unwrap();
        assert!(layout
            .rename_cgroup("/berth/gvp-2", "/berth/eci-b")
            .is_err());
        assert!(layout.rename_cgroup("/berth/../x", "/berth/eci-c").is_err());
    }
}
