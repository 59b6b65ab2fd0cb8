//! The OCI process spec of an exec: the container's own process (capabilities, rlimits,
//! environment, user, working directory) with the command and the caller's overrides on top.

use std::path::Path;

use serde_json::{json, Value};

use super::ExecRequest;
use crate::error::RuntimeError;
use crate::files;

/// Builds the `--process` JSON for `req` from the bundle in `container_dir`.
pub(crate) fn process_spec(container_dir: &Path, req: &ExecRequest) -> Result<Value, RuntimeError> {
    check(req)?;
    let config_path = container_dir.join("config.json");
    let config: Value = files::read_json(&config_path).ok_or_else(|| {
        RuntimeError::io(
            "read the bundle of",
            &config_path,
            std::io::Error::other("missing or not JSON"),
        )
    })?;
    let mut process = config
        .get("process")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({ "cwd": "/", "user": { "uid": 0, "gid": 0 } }));
    let obj = process
        .as_object_mut()
        .ok_or_else(|| RuntimeError::invalid("the bundle's process is not an object"))?;
    obj.insert("args".into(), json!(req.args));
    obj.insert("terminal".into(), json!(req.tty));
    obj.remove("consoleSize");
    if req.tty {
        if let Some((cols, rows)) = req.size {
            obj.insert(
                "consoleSize".into(),
                json!({ "width": cols, "height": rows }),
            );
        }
    }
    let base: Vec<String> = obj
        .get("env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    obj.insert("env".into(), json!(merge_env(&base, &req.env)));
    if let Some(cwd) = &req.cwd {
        obj.insert("cwd".into(), json!(cwd));
    }
    if let Some(user) = req.user {
        obj.insert("user".into(), json!({ "uid": user.uid, "gid": user.gid }));
    }
    Ok(process)
}

fn check(req: &ExecRequest) -> Result<(), RuntimeError> {
    if req.args.first().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::invalid("the exec command is empty"));
    }
    if let Some(cwd) = &req.cwd {
        if !cwd.starts_with('/') {
            return Err(RuntimeError::invalid(format!(
                "the exec working directory {cwd:?} is not absolute"
            )));
        }
    }
    if let Some(bad) = req
        .env
        .iter()
        .find(|e| !e.contains('=') || e.starts_with('='))
    {
        return Err(RuntimeError::invalid(format!(
            "the exec environment entry {bad:?} is not KEY=value"
        )));
    }
    if req.args.iter().chain(&req.env).any(|s| s.contains('\0')) {
        return Err(RuntimeError::invalid("the exec command holds a NUL byte"));
    }
    Ok(())
}

/// `base` with `extra` on top: an extra entry replaces the base entry of the same key.
fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = Vec::with_capacity(base.len() + extra.len());
    for e in base.iter().chain(extra) {
        let k = key(e);
        match out.iter_mut().find(|o| key(o) == k) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ExecUser;

    fn req(args: &[&str]) -> ExecRequest {
        ExecRequest {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn env_merge_overrides_by_key() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let extra = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&base, &extra), ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn builds_on_the_bundle_process() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "process": {
                "args": ["init"], "terminal": false, "cwd": "/app",
                "env": ["PATH=/bin", "X=1"], "user": { "uid": 5, "gid": 6 },
                "capabilities": { "bounding": ["CAP_KILL"] }, "noNewPrivileges": true
            }
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let mut r = req(&["sh", "-c", "echo $0", "a b"]);
        r.env = vec!["X=2".into()];
        r.tty = true;
        r.size = Some((100, 40));
        let p = process_spec(dir.path(), &r).unwrap();
        assert_eq!(p["args"], json!(["sh", "-c", "echo $0", "a b"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "X=2"]));
        assert_eq!(p["cwd"], "/app");
        assert_eq!(p["terminal"], true);
        assert_eq!(p["consoleSize"], json!({ "width": 100, "height": 40 }));
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_KILL"]));
        assert_eq!(p["user"]["uid"], 5);
        r.user = Some(ExecUser { uid: 0, gid: 0 });
        r.cwd = Some("/tmp".into());
        r.tty = false;
        let p = process_spec(dir.path(), &r).unwrap();
        assert_eq!(
            (p["user"]["uid"].clone(), p["cwd"].clone()),
            (json!(0), json!("/tmp"))
        );
        assert!(p.get("consoleSize").is_none());
    }

    #[test]
    fn rejects_bad_requests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(process_spec(dir.path(), &req(&[])).is_err());
        assert!(process_spec(dir.path(), &req(&[""])).is_err());
        let mut r = req(&["ls"]);
        r.cwd = Some("rel".into());
        assert!(process_spec(dir.path(), &r).is_err());
        let mut r = req(&["ls"]);
        r.env = vec!["NOEQUALS".into()];
        assert!(process_spec(dir.path(), &r).is_err());
        assert!(process_spec(dir.path(), &req(&["a\0b"])).is_err());
        assert!(process_spec(&dir.path().join("missing"), &req(&["ls"])).is_err());
        // A bundle without a process still works.
        assert_eq!(process_spec(dir.path(), &req(&["ls"])).unwrap()["cwd"], "/");
    }
}
