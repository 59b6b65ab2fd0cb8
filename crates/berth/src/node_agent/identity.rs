//! Who this node is to its control plane: the id and key the join gave it, kept in
//! `STATE_DIR/cluster-node.json` (0600), so a restart of the agent needs no token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

const FILE: &str = "cluster-node.json";

/// The node's identity.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The control plane's URLs the node joined through (for the operator's eyes; a node
    /// started again with others keeps its identity).
    pub(crate) control: String,
    pub(crate) node: String,
    pub(crate) name: String,
    /// Lowercase hex of the 32-byte key.
    pub(crate) key: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("control", &self.control)
            .field("node", &self.node)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl Identity {
    /// The key's bytes.
    pub(crate) fn key_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let key = hex::decode(&self.key).context("the node key is not hex")?;
        if key.len() != berth_control::cluster::signing::KEY_LEN {
            bail!(
                "the node key is not {} bytes",
                berth_control::cluster::signing::KEY_LEN
            );
        }
        Ok(key)
    }

    /// The identity kept in `state_dir`, if the node joined before.
    pub(crate) fn load(state_dir: &Path) -> anyhow::Result<Option<Self>> {
        let p = path(state_dir);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        };
        let id: Self =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid", p.display()))?;
        id.key_bytes()?;
        Ok(Some(id))
    }

    /// Writes the identity (0600, whole or not at all).
    pub(crate) fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let p = path(state_dir);
        let tmp = p.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(())
    }
}
