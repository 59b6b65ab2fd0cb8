//! Cached ADD results, one JSON file per group under `state_dir/results`.
//!
//! A record keeps the configuration list the group was wired with next to the
//! final result, so DEL undoes exactly what ADD did even after berth restarts
//! with a different configuration.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfList;
use crate::error::NetError;
use crate::result::Attachment;

/// One group's cached wiring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The CNI container id: the group id, or the pool name the namespace was wired under
    /// before a group took it over. DEL must use the id ADD used.
    pub container_id: String,
    /// The interface name inside the namespace.
    pub if_name: String,
    /// The configuration list used for ADD.
    pub config: ConfList,
    /// The final result of the ADD chain, passed as `prevResult` on DEL.
    pub result: Value,
    /// The attachment read from `result`.
    pub attachment: Attachment,
    /// The number of the account the group was admitted for (isolation), once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<u32>,
    /// The portmap plugin's configuration of the group's published ports, recorded before
    /// its ADD ran under the group's id; DEL repeats it (`portmap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portmap: Option<Value>,
}

impl Record {
    /// The MAC of the interface inside the namespace, from the result.
    pub fn mac(&self) -> Option<String> {
        self.result
            .get("interfaces")?
            .as_array()?
            .iter()
            .find(|i| {
                i.get("sandbox")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            })?
            .get("mac")?
            .as_str()
            .map(str::to_owned)
    }
}

/// The results directory under the state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("results")
}

fn path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.json"))
}

/// Reads a record; a missing or unreadable file is `None`.
pub fn read(state_dir: &Path, id: &str) -> Option<Record> {
    let bytes = std::fs::read(path(state_dir, id)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(record) => Some(record),
        Err(err) => {
            tracing::warn!(id, error = %err, "ignoring unreadable cached network result");
            None
        }
    }
}

/// Writes the record of `id` atomically (temporary file, then rename).
pub fn write(state_dir: &Path, id: &str, record: &Record) -> Result<(), NetError> {
    let target = path(state_dir, id);
    let tmp = target.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(record).map_err(|source| NetError::Encode {
        what: "cached network result",
        source,
    })?;
    std::fs::write(&tmp, bytes).map_err(|source| NetError::Io {
        step: "writing cached network result",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &target).map_err(|source| NetError::Io {
        step: "renaming cached network result into place",
        path: target,
        source,
    })
}

/// Hands the record of `from` to `to` in one atomic step.
pub fn rename(state_dir: &Path, from: &str, to: &str) -> Result<(), NetError> {
    let target = path(state_dir, to);
    std::fs::rename(path(state_dir, from), &target).map_err(|source| NetError::Io {
        step: "handing over cached network result",
        path: target,
        source,
    })
}

/// Deletes a record; a missing one is fine.
pub fn remove(state_dir: &Path, id: &str) -> Result<(), NetError> {
    remove_if_there(path(state_dir, id), "removing cached network result")
}

fn remove_if_there(target: PathBuf, step: &'static str) -> Result<(), NetError> {
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetError::Io {
            step,
            path: target,
            source,
        }),
    }
}

/// Where the intent of a setup in progress is kept: beside the records, under a suffix
/// that [`ids`] does not list.
fn intent_path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.adding"))
}

/// Records, before anything is made on the host, that `id` is being wired with `config`.
///
/// CNI asks a runtime that did not record the result of an ADD (a crash in the middle) to
/// DEL before it ADDs the same attachment again: host-local keeps the address it reserved
/// for the container id and refuses a second one. The intent tells a restarted berth that
/// such a DEL is owed, and with which configuration.
pub fn write_intent(state_dir: &Path, id: &str, config: &ConfList) -> Result<(), NetError> {
    let target = intent_path(state_dir, id);
    let bytes = serde_json::to_vec(config).map_err(|source| NetError::Encode {
        what: "network setup intent",
        source,
    })?;
    std::fs::write(&target, bytes).map_err(|source| NetError::Io {
        step: "writing network setup intent",
        path: target,
        source,
    })
}

/// The configuration of an interrupted setup of `id`: `Some` while its intent is on disk.
/// A torn intent (a crash while it was written) still owes a DEL, with the current list.
pub fn read_intent(state_dir: &Path, id: &str) -> Option<Option<ConfList>> {
    let bytes = std::fs::read(intent_path(state_dir, id)).ok()?;
    Some(serde_json::from_slice(&bytes).ok())
}

/// Deletes the intent of `id`; a missing one is fine.
pub fn remove_intent(state_dir: &Path, id: &str) -> Result<(), NetError> {
    remove_if_there(intent_path(state_dir, id), "removing network setup intent")
}

/// Ids with a setup intent on disk.
pub fn intent_ids(state_dir: &Path) -> Vec<String> {
    ids_with_suffix(state_dir, ".adding")
}

/// Ids that have a record.
pub fn ids(state_dir: &Path) -> Vec<String> {
    ids_with_suffix(state_dir, ".json")
}

fn ids_with_suffix(state_dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(suffix).map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(super::dir(dir.path())).expect("mkdir");
        let record = Record {
            portmap: None,
            container_id: "g1".into(),
            if_name: "eth0".into(),
            config: ConfList {
                cni_version: "1.0.0".into(),
                name: "n".into(),
                plugins: vec![],
            },
            result: serde_json::json!({"ips": []}),
            attachment: Attachment {
                netns: "/run/berth/netns/g1".into(),
                ip: "10.0.0.2".parse().expect("ip"),
                prefix_len: 24,
                gateway: None,
                interface: "veth0".into(),
            },
            account: None,
        };
        write(dir.path(), "g1", &record).expect("write");
        assert_eq!(read(dir.path(), "g1"), Some(record.clone()));
        assert_eq!(ids(dir.path()), vec!["g1".to_owned()]);
        rename(dir.path(), "g1", "g2").expect("rename");
        assert!(read(dir.path(), "g1").is_none());
        assert_eq!(read(dir.path(), "g2"), Some(record));
        assert_eq!(ids(dir.path()), vec!["g2".to_owned()]);
        rename(dir.path(), "g2", "g1").expect("rename back");
        let config = read(dir.path(), "g1").expect("record").config;
        write_intent(dir.path(), "g3", &config).expect("intent");
        assert_eq!(read_intent(dir.path(), "g3"), Some(Some(config)));
        assert_eq!(intent_ids(dir.path()), vec!["g3".to_owned()]);
        assert!(
            !ids(dir.path()).contains(&"g3".to_owned()),
            "an intent is no record"
        );
        std::fs::write(intent_path(dir.path(), "g3"), b"{torn").expect("tear");
        assert_eq!(read_intent(dir.path(), "g3"), Some(None));
        remove_intent(dir.path(), "g3").expect("remove intent");
        remove_intent(dir.path(), "g3").expect("remove intent twice");
        assert_eq!(read_intent(dir.path(), "g3"), None);
        remove(dir.path(), "g1").expect("remove");
        remove(dir.path(), "g1").expect("remove twice");
        assert!(read(dir.path(), "g1").is_none());
        assert!(ids(dir.path()).is_empty());
    }
}
