//! Running CNI plugins: environment, per-plugin configuration, results and errors.
//!
//! Plugins are separate processes. Each gets the CNI environment and, on stdin,
//! its entry of the network configuration list completed with the list's
//! `name` and `cniVersion` and, after the first plugin, the previous result.

use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::config::ConfList;
use crate::error::NetError;

/// Interface name inside every group's namespace.
pub const IFNAME: &str = "eth0";

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Wire the container in.
    Add,
    /// Undo an ADD; safe to repeat.
    Del,
}

impl Op {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
        }
    }
}

/// What stays the same for every plugin of one operation.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// ADD or DEL.
    pub op: Op,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a Path,
    /// `CNI_PATH`, already joined with `:`.
    pub cni_path: &'a str,
}

/// The stdin document for one plugin of the list.
pub fn plugin_config(
    list: &ConfList,
    plugin: &Value,
    prev_result: Option<&Value>,
) -> Result<Vec<u8>, NetError> {
    let mut conf = plugin.clone();
    if let Some(obj) = conf.as_object_mut() {
        obj.insert("name".to_owned(), Value::from(list.name.as_str()));
        obj.insert(
            "cniVersion".to_owned(),
            Value::from(list.cni_version.as_str()),
        );
        match prev_result {
            Some(prev) => obj.insert("prevResult".to_owned(), prev.clone()),
            None => obj.remove("prevResult"),
        };
    }
    serde_json::to_vec(&conf).map_err(|source| NetError::Encode {
        what: "cni plugin configuration",
        source,
    })
}

/// Runs one plugin. ADD returns the plugin's result; DEL returns `None`.
pub async fn run(
    binary: &Path,
    plugin: &str,
    inv: Invocation<'_>,
    stdin: &[u8],
) -> Result<Option<Value>, NetError> {
    let command = inv.op.as_str();
    let spawn_err = |source| NetError::PluginSpawn {
        plugin: plugin.to_owned(),
        command,
        source,
    };
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", IFNAME)
        .env("CNI_PATH", inv.cni_path)
        .env_remove("CNI_ARGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that fails early may exit without reading its configuration;
        // its exit status and output then tell what happened.
        match input.write_all(stdin).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(spawn_err(e)),
        }
    }
    let output = child.wait_with_output().await.map_err(spawn_err)?;
    if !output.status.success() {
        return Err(plugin_failure(plugin, command, &output));
    }
    if inv.op == Op::Del || output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&output.stdout)
        .map(Some)
        .map_err(|source| NetError::PluginOutput {
            plugin: plugin.to_owned(),
            command,
            source,
        })
}

/// A CNI error document, as plugins print it on failure.
#[derive(Debug, Deserialize)]
struct CniError {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

fn plugin_failure(plugin: &str, command: &'static str, output: &std::process::Output) -> NetError {
    match serde_json::from_slice::<CniError>(&output.stdout) {
        Ok(err) => NetError::Plugin {
            plugin: plugin.to_owned(),
            command,
            code: err.code,
            msg: err.msg,
            details: err.details,
        },
        Err(_) => {
            let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !stdout.trim().is_empty() {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(stdout.trim());
            }
            NetError::PluginExit {
                plugin: plugin.to_owned(),
                command,
                status: output.status.to_string(),
                stderr: text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> ConfList {
        ConfList {
            cni_version: "1.0.0".into(),
            name: "n".into(),
            plugins: vec![json!({"type": "bridge"})],
        }
    }

    #[test]
    fn config_gets_name_version_and_prev_result() {
        let l = list();
        let prev = json!({"ips": []});
        let bytes = plugin_config(&l, &l.plugins[0], Some(&prev)).expect("encodes");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["name"], "n");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["type"], "bridge");
        assert_eq!(v["prevResult"], prev);
        let bytes = plugin_config(&l, &l.plugins[0], None).expect("encodes");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert!(v.get("prevResult").is_none());
    }

    #[tokio::test]
    async fn plugin_error_message_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("fail");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"bad thing\",\"details\":\"more\"}'\nexit 1\n",
        )
        .expect("write script");
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let inv = Invocation {
            op: Op::Add,
            container_id: "c",
            netns: Path::new("/nonexistent"),
            cni_path: "",
        };
        let err = run(&bin, "fail", inv, b"{}")
            .await
            .expect_err("plugin fails");
        match &err {
            NetError::Plugin {
                code, msg, details, ..
            } => {
                assert_eq!(
                    (*code, msg.as_str(), details.as_str()),
                    (7, "bad thing", "more")
                );
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("bad thing"), "{err}");
    }
}
