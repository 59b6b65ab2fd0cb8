//! A bundle once its container runs. crun loads the compiled seccomp program from the
//! bundle's `run.oci.seccomp_bpf_data` annotation at the start and keeps it, with a copy of
//! the whole configuration, in its state directory for every later exec, kill and delete: the
//! bundle's copy of the program (~13 KiB of base64, four of its five pages) is read by no one
//! after the start, yet would stay on the groups' tmpfs for as long as the container runs.
//! [`release_program`] takes it out and leaves what berth still reads from the bundle (the
//! process for execs, the cgroup path, the sandbox annotations).
//!
//! A bundle without its program must never run again, or its container would run
//! unconfined: the program's place holds [`RELEASED`], and [`check_runnable`] refuses such a
//! bundle (every run writes its bundle anew).

use std::path::Path;

use serde_json::Value;

use crate::error::RuntimeError;
use crate::runtime::SECCOMP_BPF_ANNOTATION;

/// The annotation a bundle whose program was released carries instead of it.
pub(crate) const RELEASED: &str = "berth.seccomp-program-released";

/// The bundle's configuration in `dir`, if it can be read.
pub(crate) fn read(dir: &Path) -> Option<Value> {
    crate::files::read_json(&dir.join("config.json"))
}

fn annotations(config: &Value) -> Option<&serde_json::Map<String, Value>> {
    config.get("annotations")?.as_object()
}

/// Refuses a bundle whose container ran and whose seccomp program was released.
pub(crate) fn check_runnable(config: &Value, dir: &Path) -> Result<(), RuntimeError> {
    match annotations(config).is_some_and(|a| a.contains_key(RELEASED)) {
        true => Err(RuntimeError::invalid(format!(
            "the bundle in {} has run and its seccomp program is gone: write the bundle anew",
            dir.display()
        ))),
        false => Ok(()),
    }
}

/// Rewrites the bundle in `dir` (whose configuration `config` was read before the start)
/// without its compiled seccomp program, marked as released. `false` when it had none.
pub(crate) fn release_program(dir: &Path, mut config: Value) -> Result<bool, RuntimeError> {
    let Some(annotations) = config.get_mut("annotations").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    if annotations.remove(SECCOMP_BPF_ANNOTATION).is_none() {
        return Ok(false);
    }
    annotations.insert(RELEASED.to_string(), Value::String("true".into()));
    let path = dir.join("config.json");
    let json = serde_json::to_vec(&config)
        .map_err(|e| RuntimeError::io("serialise the OCI spec for", dir, e.into()))?;
    crate::files::write_atomic(&path, &json)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_program_leaves_and_the_bundle_cannot_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "process": { "args": ["sleep", "1"] },
            "linux": { "cgroupsPath": "/berth/g" },
            "annotations": { SECCOMP_BPF_ANNOTATION: "AAAA", "other": "kept" },
        });
        check_runnable(&config, dir.path()).unwrap();
        assert!(release_program(dir.path(), config).unwrap());
        let after = read(dir.path()).unwrap();
        let a = annotations(&after).unwrap();
        assert!(!a.contains_key(SECCOMP_BPF_ANNOTATION));
        assert_eq!(a["other"], "kept");
        assert_eq!(after["process"]["args"][0], "sleep");
        assert_eq!(after["linux"]["cgroupsPath"], "/berth/g");
        let refused = check_runnable(&after, dir.path()).unwrap_err();
        assert!(
            refused.to_string().contains("write the bundle anew"),
            "{refused}"
        );
        // Nothing to release a second time, nor in a bundle without a program.
        assert!(!release_program(dir.path(), after).unwrap());
        assert!(!release_program(dir.path(), json!({ "annotations": {} })).unwrap());
        assert!(!release_program(dir.path(), json!({})).unwrap());
    }
}
