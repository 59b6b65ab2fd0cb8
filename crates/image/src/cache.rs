//! Image caches: a named set of images, pulled and unpacked once, pinned so no collection
//! takes them, and recorded with everything needed to mount them, so resolving an image from
//! a cache never contacts a registry. A cache built for an account (`PullOptions::account`)
//! belongs to it: each image is proved for the account as any stored image is, the cache
//! then counts as the account's proof of its images while it exists, and only that account
//! resolves images from it.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::disk;
use crate::error::ImageError;
use crate::reference;
use crate::store::{Image, ImageStore, Inner, PullOptions, Record};

/// A ready image cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    pub id: String,
    /// Its images, in the order they were asked for.
    pub images: Vec<Image>,
    /// Bytes its layers take on disk, each shared layer once.
    pub size_bytes: u64,
    pub created: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct CacheRecord {
    id: String,
    images: Vec<Record>,
    created: SystemTime,
    /// The account it was built for (absent: the operator's, or a store older than accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

fn owner(id: &str) -> String {
    format!("cache:{id}")
}

fn check_id(id: &str) -> Result<(), ImageError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ImageError::InvalidCacheId { id: id.to_owned() })
    }
}

impl ImageStore {
    /// Makes image cache `id` hold exactly `references`: pulls what is missing (per
    /// `opts.policy`), pins the images for the cache and records it. Creating an existing id
    /// replaces its images (an update); on failure an existing cache is left as it was.
    pub async fn create_cache(
        &self,
        id: &str,
        references: &[String],
        opts: &PullOptions,
    ) -> Result<CacheInfo, ImageError> {
        check_id(id)?;
        let previous = self.inner.read_cache(id)?;
        let mut attempt = 0;
        let records = loop {
            let mut records = Vec::new();
            for reference in references {
                let image = self.ensure(reference, opts, &|_| {}).await?;
                let record = self
                    .inner
                    .record_of(&image)
                    .ok_or_else(|| ImageError::Unknown {
                        reference: image.reference.clone(),
                    })?;
                if !records
                    .iter()
                    .any(|r: &Record| r.reference == record.reference)
                {
                    records.push(record);
                }
            }
            let digests: BTreeSet<String> = records.iter().map(|r| r.digest.clone()).collect();
            let mut pinned = digests;
            if let Some(previous) = &previous {
                // Keep the old images pinned until the new record is written.
                pinned.extend(previous.images.iter().map(|r| r.digest.clone()));
            }
            self.inner.update_pins(|pins| {
                pins.insert(owner(id), pinned);
            })?;
            // A collection may have run between a pull and the pin: check, pull again once.
            let complete = records.iter().all(|r| {
                self.inner
                    .image_of(r.clone())
                    .layers
                    .iter()
                    .all(|l| l.is_dir())
            });
            if complete || attempt > 0 {
                break records;
            }
            attempt += 1;
        };
        let record = CacheRecord {
            id: id.to_owned(),
            images: records,
            created: SystemTime::now(),
            account: opts.account.clone(),
        };
        if let Some(account) = &opts.account {
            // An update's images that left the cache stop counting for the account.
            self.inner
                .access
                .forget_source(&crate::access::cache_source(id));
            for r in &record.images {
                let Ok(parsed) = reference::parse(&r.reference) else {
                    continue;
                };
                self.inner.access.record_digest(
                    account,
                    &crate::access::repository_of(&parsed),
                    &r.digest,
                    &crate::access::cache_source(id),
                );
            }
        }
        disk::write_json(&self.inner.cache_path(id), &record)?;
        let digests: BTreeSet<String> = record.images.iter().map(|r| r.digest.clone()).collect();
        self.inner.update_pins(|pins| {
            pins.insert(owner(id), digests);
        })?;
        Ok(self.inner.cache_info(record))
    }

    /// Cache `id`, if it exists.
    pub fn cache(&self, id: &str) -> Result<Option<CacheInfo>, ImageError> {
        check_id(id)?;
        Ok(self.inner.read_cache(id)?.map(|r| self.inner.cache_info(r)))
    }

    /// Every image cache, oldest first.
    pub fn caches(&self) -> Result<Vec<CacheInfo>, ImageError> {
        let mut out: Vec<CacheInfo> = self
            .inner
            .all_caches()?
            .into_iter()
            .map(|r| self.inner.cache_info(r))
            .collect();
        out.sort_by_key(|c| c.created);
        Ok(out)
    }

    /// Deletes cache `id` and releases its pins; its layers go at the next collection unless
    /// something else uses them. Deleting a missing cache is an error.
    pub fn delete_cache(&self, id: &str) -> Result<(), ImageError> {
        check_id(id)?;
        let path = self.inner.cache_path(id);
        if !path.is_file() {
            return Err(ImageError::NoSuchCache { id: id.to_owned() });
        }
        disk::remove_file(&path)?;
        self.inner
            .access
            .forget_source(&crate::access::cache_source(id));
        self.unpin(&owner(id))
    }

    /// The image `reference` of cache `id`, from local records only: never contacts a
    /// registry. A cache built for an account serves only that `account` (to any other it
    /// does not exist).
    pub fn resolve_from_cache(
        &self,
        id: &str,
        reference: &str,
        account: Option<&str>,
    ) -> Result<Image, ImageError> {
        check_id(id)?;
        let name = reference::normalize(reference)?;
        let cache = self
            .inner
            .read_cache(id)?
            .filter(|c| c.account.is_none() || c.account.as_deref() == account)
            .ok_or_else(|| ImageError::NoSuchCache { id: id.to_owned() })?;
        let record = cache
            .images
            .into_iter()
            .find(|r| r.reference == name || r.digest == reference)
            .ok_or_else(|| ImageError::NotInCache {
                id: id.to_owned(),
                reference: name.clone(),
            })?;
        let image = self.inner.image_of(record);
        if let Some(missing) = image.layers.iter().find(|l| !l.is_dir()) {
            return Err(ImageError::CacheDamaged {
                id: id.to_owned(),
                reference: name,
                layer: missing.clone(),
            });
        }
        Ok(image)
    }

    /// The cache holding most of `references` (ties: the newest), or `None` when no cache
    /// holds any of them.
    pub fn match_cache(&self, references: &[String]) -> Result<Option<String>, ImageError> {
        let wanted: BTreeSet<String> = references
            .iter()
            .filter_map(|r| reference::normalize(r).ok())
            .collect();
        let mut best: Option<(usize, SystemTime, String)> = None;
        for cache in self.inner.all_caches()? {
            let covered = cache
                .images
                .iter()
                .filter(|r| wanted.contains(&r.reference))
                .count();
            let better = match &best {
                _ if covered == 0 => false,
                None => true,
                Some((n, created, _)) => (covered, cache.created) > (*n, *created),
            };
            if better {
                best = Some((covered, cache.created, cache.id));
            }
        }
        Ok(best.map(|(_, _, id)| id))
    }
}

impl Inner {
    fn cache_path(&self, id: &str) -> std::path::PathBuf {
        self.root.join("caches").join(format!("{id}.json"))
    }

    fn read_cache(&self, id: &str) -> Result<Option<CacheRecord>, ImageError> {
        disk::read_json(&self.cache_path(id))
    }

    fn all_caches(&self) -> Result<Vec<CacheRecord>, ImageError> {
        let dir = self.root.join("caches");
        let entries = std::fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match disk::read_json::<CacheRecord>(&path) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable image cache record"),
            }
        }
        Ok(out)
    }

    /// Every layer digest some cache uses.
    pub fn cache_layers(&self) -> Result<Vec<String>, ImageError> {
        Ok(self
            .all_caches()?
            .into_iter()
            .flat_map(|c| c.images.into_iter().flat_map(|r| r.layers))
            .collect())
    }

    fn record_of(&self, image: &Image) -> Option<Record> {
        if let Ok(Some(record)) = self.read_record(&image.reference) {
            if record.digest == image.digest {
                return Some(record);
            }
        }
        let path = self.image_path(&image.digest)?;
        let mut record: Record = disk::read_json(&path).ok().flatten()?;
        record.reference = image.reference.clone();
        Some(record)
    }

    fn cache_info(&self, record: CacheRecord) -> CacheInfo {
        let layers: BTreeSet<&String> = record.images.iter().flat_map(|r| &r.layers).collect();
        let size_bytes = layers.iter().map(|l| self.layer_size(l)).sum();
        CacheInfo {
            id: record.id,
            images: record
                .images
                .into_iter()
                .map(|r| self.image_of(r))
                .collect(),
            size_bytes,
            created: record.created,
        }
    }
}
