//! Small file-system helpers of the store: atomic JSON writes, reading JSON records, disk use
//! of a directory tree and of the file system holding it.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ImageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `value` as JSON beside `path`, flushes it, then renames it into place, so readers
/// see the old or the new content, never a part.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ImageError> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}.{n}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ImageError::Record {
        path: path.to_path_buf(),
        source,
    })?;
    let write = || -> io::Result<()> {
        use std::io::Write;
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(ImageError::io("writing", &tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ImageError::io("renaming", &tmp, e)
    })
}

/// Reads a JSON record; `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ImageError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io("reading", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ImageError::Record {
            path: path.to_path_buf(),
            source,
        })
}

/// Bytes allocated on disk under `path` (not following symlinks, hard links counted once).
pub(crate) fn tree_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&dir) else {
            continue;
        };
        if meta.nlink() <= 1 || meta.is_dir() || seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if !meta.is_dir() {
            continue;
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

/// Used and total bytes of the file system holding `path`.
pub(crate) fn filesystem_usage(path: &Path) -> Result<(u64, u64), ImageError> {
    let stat = nix::sys::statvfs::statvfs(path)
        .map_err(|e| ImageError::io("measuring", path, e.into()))?;
    let fragment = stat.fragment_size() as u64;
    let total = stat.blocks() as u64 * fragment;
    let free = stat.blocks_free() as u64 * fragment;
    Ok((total.saturating_sub(free), total))
}

/// Removes a directory tree, treating "already gone" as done.
pub(crate) fn remove_tree(path: &Path) -> Result<(), ImageError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("removing", path, e)),
    }
}

/// Removes a file, treating "already gone" as done.
pub(crate) fn remove_file(path: &Path) -> Result<(), ImageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("removing", path, e)),
    }
}
