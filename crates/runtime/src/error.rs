//! Errors of the runtime driver: each variant names the step that failed and carries its
//! context; causes sit in `source`, never in the message.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no cgroup hierarchy is mounted (looked in {mountinfo})")]
    NoCgroups { mountinfo: PathBuf },

    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("OCI runtime {binary} is not usable")]
    Binary {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid bundle spec: {reason}")]
    InvalidSpec { reason: String },

    #[error("cannot build the OCI spec")]
    Spec(#[source] oci_spec::OciSpecError),

    #[error("invalid container id {id:?}: use 1 to 128 letters, digits, '_', '-' or '.'")]
    InvalidId { id: String },

    #[error("cannot spawn {what} {binary}")]
    Spawn {
        what: &'static str,
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("container {id} failed to start: {message}")]
    StartFailed { id: String, message: String },

    #[error("`{binary} {args}` failed ({status}): {stderr}")]
    Command {
        binary: PathBuf,
        args: String,
        status: String,
        stderr: String,
    },

    #[error("monitor {pid} still runs a container in {dir}")]
    Busy { dir: PathBuf, pid: i32 },

    #[error("{what} did not finish within {secs} s")]
    Timeout { what: String, secs: u64 },

    #[error("the monitor of {dir} exited without recording an exit status")]
    MonitorLost { dir: PathBuf },

    #[error("no cgroup at {path}")]
    NoCgroup { path: PathBuf },

    #[error("exec in container {id} failed: {message}")]
    ExecFailed { id: String, message: String },

    #[error("the exec session has no terminal")]
    NoTerminal,

    #[error("unexpected output of `{binary} {args}`: {detail}")]
    BadOutput {
        binary: PathBuf,
        args: String,
        detail: String,
    },
}

impl RuntimeError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidSpec {
            reason: reason.into(),
        }
    }
}

/// Checks that `id` is safe as a runtime container id and as a file name.
pub(crate) fn check_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn ids() {
        assert!(check_id("eci-abc_1.main").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("../x").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id(".hidden").is_err());
        assert!(check_id(&"a".repeat(129)).is_err());
    }
}
