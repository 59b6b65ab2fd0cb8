//! Reading an image archive into scratch space: regular files only, under the same path rules
//! as layers (no `..`, leading `/` dropped), links kept as a map resolved inside the archive.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::import_error;
use crate::error::ImageError;
use crate::pull::sha256_hex;
use crate::unpack::{self, clean_path};

/// The archive's files, extracted under a scratch directory, with its links resolved.
pub(crate) struct Extracted {
    pub dir: PathBuf,
    links: HashMap<PathBuf, PathBuf>,
    pub archive: PathBuf,
}

impl Extracted {
    pub fn open(&self, rel: &str) -> Result<fs::File, ImageError> {
        let mut path = clean_path(rel.as_bytes())
            .ok_or_else(|| import_error(&self.archive, format!("{rel:?} escapes")))?;
        for _ in 0..16 {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        let full = self.dir.join(&path);
        fs::File::open(&full).map_err(|e| import_error(&self.archive, format!("{rel}: {e}")))
    }

    pub fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let mut data = Vec::new();
        self.open(rel)?
            .take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| import_error(&self.archive, format!("{rel}: {e}")))?;
        if data.len() as u64 > limit {
            return Err(import_error(
                &self.archive,
                format!("{rel} is larger than {limit} bytes"),
            ));
        }
        Ok(data)
    }

    pub fn blob_path(digest: &str) -> Option<String> {
        sha256_hex(digest).map(|hex| format!("blobs/sha256/{hex}"))
    }
}

pub(crate) fn extract(archive: &Path, scratch: &Path) -> Result<Extracted, ImageError> {
    let file = fs::File::open(archive).map_err(|e| ImageError::io("opening", archive, e))?;
    let bad = |e: io::Error| import_error(archive, e.to_string());
    let input = unpack::decompress(io::BufReader::new(file))
        .map_err(|e| import_error(archive, e.to_string()))?;
    let mut tar = tar::Archive::new(input);
    let mut links = HashMap::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let rel = clean_path(&raw).ok_or_else(|| {
            import_error(
                archive,
                format!("entry {:?} escapes", String::from_utf8_lossy(&raw)),
            )
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let target = scratch.join(&rel);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| ImageError::io("creating", parent, e))?;
                }
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| ImageError::io("creating", &target, e))?;
                io::copy(&mut entry, &mut out)
                    .map_err(|e| ImageError::io("writing", &target, e))?;
            }
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                // Symlinks are relative to their directory, hard links to the archive root.
                let joined = match (kind, rel.parent()) {
                    (tar::EntryType::Symlink, Some(parent)) if !link.starts_with(b"/") => {
                        let mut p = parent.as_os_str().as_encoded_bytes().to_vec();
                        p.push(b'/');
                        p.extend_from_slice(&link);
                        p
                    }
                    _ => link,
                };
                let target = normalize_lexically(&joined).ok_or_else(|| {
                    import_error(archive, format!("link {} escapes", rel.display()))
                })?;
                links.insert(rel, target);
            }
            _ => {}
        }
    }
    Ok(Extracted {
        dir: scratch.to_path_buf(),
        links,
        archive: archive.to_path_buf(),
    })
}

/// `a/b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize_lexically(raw: &[u8]) -> Option<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join(&b'/');
    clean_path(&joined)
}
