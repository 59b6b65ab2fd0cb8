//! Errors of the temporary storage.

use std::path::PathBuf;

/// What can go wrong while preparing or using the temporary storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a btrfs filesystem; temporary storage needs btrfs (subvolumes with quota groups)")]
    NotBtrfs { path: PathBuf },
    #[error("mkfs.btrfs failed on {path}: {detail} (apt-get install btrfs-progs)")]
    Mkfs { path: PathBuf, detail: String },
    #[error("invalid storage name {0:?}: lower-case letters, digits and '-' only, at most 64")]
    InvalidName(String),
    #[error("no temporary storage named {0}")]
    NotFound(String),
    #[error("temporary storage size {0} bytes is out of range (1 GiB to 64 TiB)")]
    InvalidSize(u64),
}

impl StorageError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
