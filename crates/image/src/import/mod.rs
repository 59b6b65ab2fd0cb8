//! Importing images from archives, for hosts without a registry: an OCI archive (a tar of an
//! OCI image layout, as `podman save --format oci-archive` or `skopeo copy … oci-archive:`
//! write) or a `docker save` tar, either possibly gzip-compressed. Imported images resolve
//! before any pull. The archive is read into the store's scratch space with the same path
//! rules as layers (nothing lands outside it); every blob is checked against its digest.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::manifest;
use crate::pull::sha256_hex;
use crate::store::{Image, ImageStore, Inner, LayerInfo, Record};
use crate::unpack::{self, HashingReader};

mod archive;
use archive::{extract, Extracted};

impl ImageStore {
    /// Imports every image of the archive at `path` under the names the archive gives them
    /// (`RepoTags` of a docker-save tar; the `io.containerd.image.name` or a full
    /// `org.opencontainers.image.ref.name` of an OCI archive).
    pub async fn import(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        self.import_impl(path, None).await
    }

    /// Imports the single image of the archive at `path` as `reference`.
    pub async fn import_as(&self, path: &Path, reference: &str) -> Result<Image, ImageError> {
        let name = crate::reference::normalize(reference)?;
        let mut images = self.import_impl(path, Some(name)).await?;
        images
            .pop()
            .ok_or_else(|| import_error(path, "the archive holds no image"))
    }

    async fn import_impl(
        &self,
        path: &Path,
        name: Option<String>,
    ) -> Result<Vec<Image>, ImageError> {
        let _removal = self.inner.removal.read().await;
        let store = self.clone();
        let archive = path.to_path_buf();
        let records = tokio::task::spawn_blocking(move || {
            let scratch = store.inner.temp_dir("import")?;
            let result = import_blocking(&store.inner, &archive, &scratch, name);
            let _ = fs::remove_dir_all(&scratch);
            result
        })
        .await
        .map_err(|source| ImageError::Task {
            digest: path.display().to_string(),
            source,
        })??;
        let mut images = Vec::new();
        for record in records {
            self.inner.write_record(&record)?;
            images.push(self.inner.image_of(record));
        }
        Ok(images)
    }
}

pub(crate) fn import_error(path: &Path, message: impl Into<String>) -> ImageError {
    ImageError::Import {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciEntry>,
}

#[derive(Deserialize)]
struct OciEntry {
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// One image to store: its name, config blob and layers (path in the archive, digest when
/// the archive states it).
struct Found {
    name: Option<String>,
    config: Vec<u8>,
    config_digest: String,
    layers: Vec<(String, Option<String>)>,
    digest: String,
}

fn import_blocking(
    inner: &Inner,
    archive: &Path,
    scratch: &Path,
    forced: Option<String>,
) -> Result<Vec<Record>, ImageError> {
    let files = extract(archive, scratch)?;
    let found = if scratch.join("index.json").is_file() {
        oci_images(&files)?
    } else if scratch.join("manifest.json").is_file() {
        docker_images(&files)?
    } else {
        return Err(import_error(
            archive,
            "neither index.json nor manifest.json: not an image archive",
        ));
    };
    if forced.is_some() && found.len() != 1 {
        return Err(import_error(
            archive,
            format!("{} images in the archive, one expected", found.len()),
        ));
    }
    let mut records = Vec::new();
    for image in found {
        let name = match (&forced, image.name) {
            (Some(name), _) => name.clone(),
            (None, Some(name)) => crate::reference::normalize(&name)?,
            (None, None) => {
                return Err(import_error(
                    archive,
                    "an image has no name; import it under one",
                ))
            }
        };
        let parsed = crate::config::parse(&image.config).map_err(|source| ImageError::Config {
            reference: name.clone(),
            digest: image.config_digest.clone(),
            source,
        })?;
        let diff_ids = (parsed.diff_ids.len() == image.layers.len()).then_some(&parsed.diff_ids);
        let mut layers = Vec::new();
        for (i, (path, digest)) in image.layers.iter().enumerate() {
            let diff_id = diff_ids.map(|ids| ids[i].clone());
            layers.push(store_layer(
                inner,
                &files,
                &name,
                path,
                digest.as_deref(),
                diff_id,
            )?);
        }
        records.push(Record {
            reference: name,
            digest: image.digest,
            config_digest: image.config_digest,
            layers,
            config: parsed.config,
            imported: true,
        });
    }
    Ok(records)
}

fn oci_images(files: &Extracted) -> Result<Vec<Found>, ImageError> {
    let index: OciIndex =
        serde_json::from_slice(&files.read("index.json", manifest::MAX_MANIFEST_BYTES)?)
            .map_err(|e| import_error(&files.archive, format!("index.json: {e}")))?;
    let mut found = Vec::new();
    for entry in index.manifests {
        let name = entry
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| {
                entry
                    .annotations
                    .get("org.opencontainers.image.ref.name")
                    .filter(|n| n.contains('/'))
            })
            .cloned();
        let label = name.clone().unwrap_or_else(|| entry.digest.clone());
        let mut read = |digest: &str| {
            let path =
                Extracted::blob_path(digest).ok_or_else(|| ImageError::UnsupportedDigest {
                    reference: label.clone(),
                    digest: digest.to_owned(),
                })?;
            files.read(&path, manifest::MAX_MANIFEST_BYTES)
        };
        let m = manifest::resolve_local(&label, &entry.digest, &mut read)?;
        let config_path = Extracted::blob_path(&m.config.digest).unwrap_or_default();
        let config = files.read(&config_path, crate::pull::MAX_CONFIG_BYTES)?;
        crate::pull::verify(&label, &m.config.digest, &Sha256::digest(&config))?;
        found.push(Found {
            name,
            config,
            config_digest: m.config.digest.clone(),
            layers: m
                .layers
                .iter()
                .map(|l| {
                    (
                        Extracted::blob_path(&l.digest).unwrap_or_default(),
                        Some(l.digest.clone()),
                    )
                })
                .collect(),
            digest: m.digest,
        });
    }
    Ok(found)
}

fn docker_images(files: &Extracted) -> Result<Vec<Found>, ImageError> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&files.read("manifest.json", manifest::MAX_MANIFEST_BYTES)?)
            .map_err(|e| import_error(&files.archive, format!("manifest.json: {e}")))?;
    let mut found = Vec::new();
    for entry in entries {
        let config = files.read(&entry.config, crate::pull::MAX_CONFIG_BYTES)?;
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
        let layers: Vec<(String, Option<String>)> =
            entry.layers.into_iter().map(|l| (l, None)).collect();
        // docker save keeps no manifest: the image is named by its config digest.
        let digest = config_digest.clone();
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            found.push(Found {
                name: None,
                config,
                config_digest,
                layers,
                digest,
            });
            continue;
        }
        for tag in tags {
            found.push(Found {
                name: Some(tag),
                config: config.clone(),
                config_digest: config_digest.clone(),
                layers: layers.clone(),
                digest: digest.clone(),
            });
        }
    }
    Ok(found)
}

/// Unpacks one layer file of the archive into the store unless it is there already; returns
/// its digest. A stated digest is checked; otherwise the file's own digest names it.
fn store_layer(
    inner: &Inner,
    files: &Extracted,
    name: &str,
    path: &str,
    digest: Option<&str>,
    diff_id: Option<String>,
) -> Result<String, ImageError> {
    let digest = match digest {
        Some(d) => d.to_owned(),
        None => {
            let mut hasher = Sha256::new();
            io::copy(&mut files.open(path)?, &mut hasher)
                .map_err(|e| import_error(&files.archive, e.to_string()))?;
            format!("sha256:{}", hex::encode(hasher.finalize()))
        }
    };
    let hex = sha256_hex(&digest)
        .ok_or_else(|| ImageError::UnsupportedDigest {
            reference: name.to_owned(),
            digest: digest.clone(),
        })?
        .to_owned();
    let dir = inner.layer_dir(&hex);
    let lock = inner.layer_lock(&hex);
    let _guard = lock.blocking_lock();
    if dir.is_dir() {
        return Ok(digest);
    }
    let tmp = inner.temp_dir(&hex)?;
    let unpack_error = |source| ImageError::Unpack {
        reference: name.to_owned(),
        digest: digest.clone(),
        source,
    };
    let mut reader = HashingReader {
        inner: files.open(path)?,
        hasher: Sha256::new(),
    };
    let result = unpack::unpack_layer(&mut reader, &tmp)
        .map_err(unpack_error)
        .and_then(|actual| match diff_id {
            Some(expected) if expected != actual => {
                Err(unpack_error(crate::error::UnpackError::DiffIdMismatch {
                    expected,
                    actual,
                }))
            }
            _ => Ok(()),
        })
        .and_then(|()| crate::pull::verify(name, &digest, &reader.hasher.finalize()));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let info = LayerInfo {
        digest: digest.clone(),
        compressed_size: fs::metadata(files.dir.join(path))
            .map(|m| m.len())
            .unwrap_or(0),
        size_on_disk: crate::disk::tree_usage(&tmp),
        ..LayerInfo::default()
    };
    let _ = crate::disk::write_json(&inner.layer_info_path(&hex), &info);
    if let Err(e) = fs::rename(&tmp, &dir) {
        let _ = fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(ImageError::io("renaming", &tmp, e));
        }
    }
    Ok(digest)
}
