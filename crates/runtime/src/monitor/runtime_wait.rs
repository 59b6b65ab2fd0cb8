//! The exit of a container that has no process of its own on the host (a container in a
//! shared gVisor sandbox): `<runtime> wait <id>`, a child of the monitor, prints it as
//! `{"id": ..., "exitStatus": N}` once the container has exited (N is 128 + the signal when
//! a signal ended it).

use std::fs::File;
use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;

use crate::files::MonitorConfig;

/// Where `<runtime> wait` writes its answer, in the container directory.
const WAIT_OUTPUT: &str = "wait.json";

/// The exit code `<runtime> wait` could not tell (the sandbox is gone, the runtime failed).
pub(crate) const UNKNOWN_EXIT: i32 = 255;

#[derive(Deserialize)]
struct WaitResult {
    #[serde(rename = "exitStatus")]
    exit_status: i32,
}

/// Spawns `<runtime> wait <id>` with its output in the container directory; returns its pid.
pub(crate) fn spawn(dir: &Path, conf: &MonitorConfig) -> Result<i32, String> {
    let oci = super::oci_command(conf);
    let path = dir.join(WAIT_OUTPUT);
    let out = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut cmd = oci
        .command(["wait", conf.id.as_str()])
        .map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::from(out)).stderr(Stdio::null());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {} wait: {e}", conf.runtime.display()))?;
    Ok(child.id() as i32)
}

/// The exit code the finished `<runtime> wait` reported (`succeeded`: it exited 0), or
/// [`UNKNOWN_EXIT`].
pub(crate) fn exit_code(dir: &Path, succeeded: bool) -> i32 {
    if !succeeded {
        return UNKNOWN_EXIT;
    }
    std::fs::read(dir.join(WAIT_OUTPUT))
        .ok()
        .and_then(|b| parse(&b))
        .unwrap_or(UNKNOWN_EXIT)
}

fn parse(output: &[u8]) -> Option<i32> {
    serde_json::from_slice::<WaitResult>(output)
        .ok()
        .map(|r| r.exit_status)
        .filter(|c| (0..=255).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_output_gives_the_exit_code() {
        assert_eq!(parse(br#"{"id":"c1","exitStatus":7}"#), Some(7));
        assert_eq!(parse(br#"{"id":"c1","exitStatus":143}"#), Some(143));
        assert_eq!(parse(br#"{"id":"c1","exitStatus":-1}"#), None);
        assert_eq!(parse(b"cannot wait"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(exit_code(dir.path(), true), UNKNOWN_EXIT);
        std::fs::write(
            dir.path().join(WAIT_OUTPUT),
            br#"{"id":"x","exitStatus":3}"#,
        )
        .unwrap();
        assert_eq!(exit_code(dir.path(), true), 3);
        assert_eq!(exit_code(dir.path(), false), UNKNOWN_EXIT);
    }
}
