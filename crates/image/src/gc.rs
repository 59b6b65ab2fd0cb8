//! What is in use and what may go: pins (an owner — a container group, an image cache — holds
//! an image by manifest digest), the listing of stored images, removal of one reference, and
//! garbage collection between disk-use watermarks, least recently used first. A pinned image
//! is never removed; a layer goes only when no remaining image uses it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use crate::disk;
use crate::error::ImageError;
use crate::reference;
use crate::store::{ImageStore, Inner, LayerInfo, Record};

/// One stored reference, as `berth image ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub reference: String,
    pub digest: String,
    /// Bytes its layers take on disk (shared layers counted in full for every image).
    pub size_bytes: u64,
    pub last_used: SystemTime,
    /// Owners pinning its digest (`group-…`, `cache:…`), sorted.
    pub pinned_by: Vec<String>,
    pub imported: bool,
}

/// When and how far [`ImageStore::gc`] collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPolicy {
    /// Collection starts when disk use reaches this percentage...
    pub high_watermark_pct: u8,
    /// ...and stops once it is at or below this one.
    pub low_watermark_pct: u8,
    /// Disk use is measured against this many bytes of store content instead of the file
    /// system holding the store (a quota for the store on a shared disk).
    pub capacity_bytes: Option<u64>,
}

impl Default for GcPolicy {
    /// The kubelet's defaults: collect from 85 % down to 80 %.
    fn default() -> Self {
        Self {
            high_watermark_pct: 85,
            low_watermark_pct: 80,
            capacity_bytes: None,
        }
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Disk use in percent before and after.
    pub usage_before_pct: u8,
    pub usage_after_pct: u8,
    /// References removed, least recently used first.
    pub removed_images: Vec<String>,
    pub removed_layers: usize,
    pub freed_bytes: u64,
}

impl ImageStore {
    /// Pins image `digest` (a manifest digest of a stored image) for `owner`. Pinned images
    /// are never removed or collected.
    pub fn pin(&self, owner: &str, digest: &str) -> Result<(), ImageError> {
        self.check_pinnable(digest)?;
        self.inner.update_pins(|pins| {
            pins.entry(owner.to_owned())
                .or_default()
                .insert(digest.to_owned());
        })
    }

    /// Pins like [`ImageStore::pin`], at once for collection and removal, but writes
    /// `pins.json` a moment later, folded with other changes (see the `pins` module): for
    /// owners that are pinned again after a restart, such as container groups.
    pub fn pin_deferred(&self, owner: &str, digest: &str) -> Result<(), ImageError> {
        self.check_pinnable(digest)?;
        self.inner.pins.update_deferred(|pins| {
            pins.entry(owner.to_owned())
                .or_default()
                .insert(digest.to_owned());
        });
        Ok(())
    }

    /// Checks that `digest` is a stored image, converting a record written before images
    /// were kept by digest.
    fn check_pinnable(&self, digest: &str) -> Result<(), ImageError> {
        let known = self.inner.image_path(digest).is_some_and(|p| p.is_file());
        if !known {
            // Records written before images were kept by digest.
            let record = self
                .inner
                .all_records()?
                .into_iter()
                .find(|(r, _)| r.digest == digest)
                .ok_or_else(|| ImageError::Unknown {
                    reference: digest.to_owned(),
                })?;
            self.inner.write_record(&record.0)?;
        }
        Ok(())
    }

    /// Releases every pin of `owner` (a deleted group or cache).
    pub fn unpin(&self, owner: &str) -> Result<(), ImageError> {
        self.inner.update_pins(|pins| {
            pins.remove(owner);
        })
    }

    /// Releases every pin of `owner` at once, writing `pins.json` a moment later.
    pub fn unpin_deferred(&self, owner: &str) {
        self.inner.pins.update_deferred(|pins| {
            pins.remove(owner);
        });
    }

    /// Writes changes made by [`ImageStore::pin_deferred`] and
    /// [`ImageStore::unpin_deferred`] that are not on disk yet (at shutdown).
    pub fn flush_pins(&self) -> Result<(), ImageError> {
        self.inner.pins.flush()
    }

    /// Owner → pinned digests.
    pub fn pins(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.inner.pins_snapshot()
    }

    /// Every stored reference, most recently used first.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let pins = self.inner.pins_snapshot();
        let mut out: Vec<ImageInfo> = self
            .inner
            .all_records()?
            .into_iter()
            .map(|(record, last_used)| ImageInfo {
                size_bytes: record.layers.iter().map(|l| self.inner.layer_size(l)).sum(),
                pinned_by: owners_of(&pins, &record.digest),
                reference: record.reference,
                digest: record.digest,
                last_used,
                imported: record.imported,
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.last_used));
        Ok(out)
    }

    /// Removes `reference` and the layers no other image uses. Refused while its image is
    /// pinned. Returns the bytes freed.
    pub async fn remove(&self, reference: &str) -> Result<u64, ImageError> {
        let name = reference::normalize(reference)?;
        let _exclusive = self.inner.removal.write().await;
        let record = self
            .inner
            .read_record(&name)?
            .ok_or_else(|| ImageError::Unknown {
                reference: name.clone(),
            })?;
        let owners = owners_of(&self.inner.pins_snapshot(), &record.digest);
        if !owners.is_empty() {
            return Err(ImageError::Pinned {
                reference: name,
                owners,
            });
        }
        disk::remove_file(&self.inner.record_path(&name))?;
        let (_, layers, freed) = self.inner.sweep()?;
        tracing::info!(reference = %name, layers, freed, "image removed");
        Ok(freed)
    }

    /// Collects unused content: layers and images nothing refers to, then, while disk use is
    /// at or above the high watermark, unpinned references least recently used first until it
    /// is at or below the low watermark.
    pub async fn gc(&self, policy: &GcPolicy) -> Result<GcReport, ImageError> {
        let _exclusive = self.inner.removal.write().await;
        let mut report = GcReport {
            usage_before_pct: self.inner.usage_pct(policy)?,
            ..GcReport::default()
        };
        let (_, layers, freed) = self.inner.sweep()?;
        report.removed_layers += layers;
        report.freed_bytes += freed;
        if report.usage_before_pct >= policy.high_watermark_pct {
            let pins = self.inner.pins_snapshot();
            let mut candidates: Vec<_> = self
                .inner
                .all_records()?
                .into_iter()
                .filter(|(r, _)| owners_of(&pins, &r.digest).is_empty())
                .collect();
            candidates.sort_by_key(|(_, used)| *used);
            for (record, _) in candidates {
                if self.inner.usage_pct(policy)? <= policy.low_watermark_pct {
                    break;
                }
                disk::remove_file(&self.inner.record_path(&record.reference))?;
                let (_, layers, freed) = self.inner.sweep()?;
                report.removed_layers += layers;
                report.freed_bytes += freed;
                report.removed_images.push(record.reference);
            }
        }
        report.usage_after_pct = self.inner.usage_pct(policy)?;
        tracing::info!(?report, "image garbage collection");
        Ok(report)
    }
}

fn owners_of(pins: &BTreeMap<String, BTreeSet<String>>, digest: &str) -> Vec<String> {
    pins.iter()
        .filter(|(_, digests)| digests.contains(digest))
        .map(|(owner, _)| owner.clone())
        .collect()
}

impl Inner {
    pub fn pins_snapshot(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.pins.snapshot()
    }

    /// Changes the pins and persists them before anyone sees the change.
    pub fn update_pins(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, BTreeSet<String>>),
    ) -> Result<(), ImageError> {
        self.pins.update_durable(change)
    }

    /// Every readable reference record with its last use.
    pub fn all_records(&self) -> Result<Vec<(Record, SystemTime)>, ImageError> {
        let dir = self.root.join("refs");
        let mut out = Vec::new();
        for entry in read_dir(&dir)? {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match disk::read_json::<Record>(&path) {
                Ok(Some(record)) => {
                    let used = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    out.push((record, used));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable image record"),
            }
        }
        Ok(out)
    }

    /// Bytes a layer takes on disk, measured once and remembered.
    pub fn layer_size(&self, digest: &str) -> u64 {
        let Some(hex) = crate::pull::sha256_hex(digest) else {
            return 0;
        };
        let info_path = self.layer_info_path(hex);
        if let Ok(Some(info)) = disk::read_json::<LayerInfo>(&info_path) {
            return info.size_on_disk;
        }
        let dir = self.layer_dir(hex);
        if !dir.is_dir() {
            return 0;
        }
        let info = LayerInfo {
            digest: digest.to_owned(),
            compressed_size: 0,
            size_on_disk: disk::tree_usage(&dir),
            ..LayerInfo::default()
        };
        let _ = disk::write_json(&info_path, &info);
        info.size_on_disk
    }

    /// Removes images that are neither referenced nor pinned and layers that no reference,
    /// pinned image or cache uses. Returns (images, layers, bytes) removed. Callers hold
    /// `removal` exclusively.
    pub fn sweep(&self) -> Result<(usize, usize, u64), ImageError> {
        let pins = self.pins_snapshot();
        let pinned: HashSet<&String> = pins.values().flatten().collect();
        let mut live_images: HashSet<String> = HashSet::new();
        let mut live_layers: HashSet<String> = HashSet::new();
        for (record, _) in self.all_records()? {
            live_images.insert(record.digest.clone());
            live_layers.extend(record.layers);
        }
        let mut images = 0;
        for entry in read_dir(&self.root.join("images"))? {
            let path = entry.path();
            let Ok(Some(record)) = disk::read_json::<Record>(&path) else {
                continue;
            };
            if live_images.contains(&record.digest) || pinned.contains(&record.digest) {
                live_layers.extend(record.layers);
            } else {
                disk::remove_file(&path)?;
                images += 1;
            }
        }
        live_layers.extend(self.cache_layers()?);
        let (mut layers, mut freed) = (0, 0);
        for entry in read_dir(&self.root.join("layers"))? {
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("sha256-")) else {
                continue;
            };
            if live_layers.contains(&format!("sha256:{hex}")) {
                continue;
            }
            freed += self.layer_size(&format!("sha256:{hex}"));
            disk::remove_tree(&entry.path())?;
            disk::remove_file(&self.layer_info_path(hex))?;
            layers += 1;
        }
        Ok((images, layers, freed))
    }

    /// Disk use in percent: of the file system holding the store, or of the store's
    /// capacity when the policy sets one.
    fn usage_pct(&self, policy: &GcPolicy) -> Result<u8, ImageError> {
        let (used, total) = match policy.capacity_bytes {
            Some(capacity) => {
                let used = read_dir(&self.root.join("layers"))?
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter_map(|n| n.strip_prefix("sha256-").map(|h| format!("sha256:{h}")))
                    .map(|d| self.layer_size(&d))
                    .sum();
                (used, capacity)
            }
            None => disk::filesystem_usage(&self.root)?,
        };
        if total == 0 {
            return Ok(100);
        }
        Ok(u8::try_from((u128::from(used) * 100 / u128::from(total)).min(100)).unwrap_or(100))
    }
}

fn read_dir(dir: &Path) -> Result<impl Iterator<Item = fs::DirEntry>, ImageError> {
    let entries = fs::read_dir(dir).map_err(|e| ImageError::io("listing", dir, e))?;
    Ok(entries.flatten())
}
