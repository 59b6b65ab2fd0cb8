//! Flags of `berth serve` for the groups' temporary storage (`berth_storage`): where the
//! btrfs filesystem that holds one size-limited subvolume per group comes from.

use std::path::{Path, PathBuf};

use berth_storage::StorageConfig;

#[derive(clap::Args, Clone, Debug)]
pub struct StorageArgs {
    /// A btrfs filesystem the operator mounted for the groups' temporary storage (each
    /// group gets a subvolume with a quota limit). By default berth makes a sparse file,
    /// STATE_DIR/node/storage.img, with a btrfs filesystem in it and mounts it at
    /// STATE_DIR/node/storage while groups use it.
    #[arg(long, value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
    /// GiB of the sparse file berth makes when it first starts (default: the size of the
    /// filesystem holding the state directory). Groups' sizes may add up to more; the
    /// space is taken from the host only as groups write.
    #[arg(long, value_name = "GIB")]
    pub storage_size: Option<u64>,
}

impl StorageArgs {
    pub fn config(&self, node_root: &Path) -> anyhow::Result<StorageConfig> {
        if let Some(dir) = &self.storage_dir {
            return Ok(StorageConfig {
                root: dir.clone(),
                image: None,
                image_size: 0,
            });
        }
        let image_size = match self.storage_size {
            Some(0) => anyhow::bail!("--storage-size must be at least 1 GiB"),
            Some(gib) => gib
                .checked_mul(1 << 30)
                .ok_or_else(|| anyhow::anyhow!("--storage-size {gib} is too large"))?,
            None => {
                let parent = node_root.parent().unwrap_or(node_root);
                let fs = nix::sys::statvfs::statvfs(parent)?;
                (fs.blocks() as u64 * fs.fragment_size() as u64).max(berth_storage::MIN_SIZE)
            }
        };
        Ok(StorageConfig {
            root: node_root.join("storage"),
            image: Some(node_root.join("storage.img")),
            image_size,
        })
    }
}
