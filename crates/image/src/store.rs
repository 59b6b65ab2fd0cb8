//! The image store on disk: unpacked layers shared between images, and the records that map a
//! normalised reference to its manifest digest, layers and config.
//!
//! ```text
//! <root>/layers/sha256-<hex>/     one unpacked layer per compressed digest
//! <root>/refs/<sha256 of ref>.json reference → manifest digest, layer digests, config
//! <root>/tmp/                     layers being unpacked; emptied on open
//! ```

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::{ImagePullPolicy, RegistryCredential};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ImageConfig;
use crate::error::ImageError;
use crate::reference;

/// How to reach registries for one `ensure` call.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Logins, matched to the image's registry by host.
    pub credentials: Vec<RegistryCredential>,
    /// Registry hosts reached over plain HTTP.
    pub plain_http: Vec<String>,
    /// Registry hosts whose TLS certificate is not checked.
    pub insecure: Vec<String>,
    pub policy: ImagePullPolicy,
}

/// Progress of one `ensure` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// The registry is being asked (reference as the caller wrote it).
    Pulling { reference: String },
    /// The image is ready. `cached` when the registry was not asked at all; `bytes` counts the
    /// compressed layer bytes downloaded (0 when every layer was already stored).
    Pulled {
        reference: String,
        digest: String,
        bytes: u64,
        elapsed: Duration,
        cached: bool,
    },
}

/// An image ready to be mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Normalised reference (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Digest of the image manifest (the platform manifest when the reference names an index).
    pub digest: String,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// What the store remembers of a resolved reference.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub reference: String,
    pub digest: String,
    pub config_digest: String,
    /// Compressed layer digests, lowest first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
}

/// Content store of the node agent. Cheap to clone; clones share locks and registry clients.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub clients: Mutex<HashMap<crate::pull::ClientKey, oci_client::Client>>,
    temp_counter: AtomicU64,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root` and removes unfinished unpacks.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["layers", "refs"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|e| ImageError::io("creating", path, e))?;
        }
        let tmp = root.join("tmp");
        match fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("cleaning", tmp, e)),
        }
        fs::create_dir(&tmp).map_err(|e| ImageError::io("creating", &tmp, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                layer_locks: Mutex::default(),
                clients: Mutex::default(),
                temp_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Makes the image available locally according to `opts.policy`.
    ///
    /// `IfNotPresent` uses a reference resolved before (even by an earlier process); `Always`
    /// resolves it again (layers already stored are not downloaded again); `Never` only looks
    /// locally.
    pub async fn ensure(
        &self,
        reference: &str,
        opts: &PullOptions,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let started = Instant::now();
        let parsed = reference::parse(reference)?;
        let name = parsed.whole();
        if opts.policy != ImagePullPolicy::Always {
            if let Some(image) = self.lookup_normalized(&name) {
                on_event(PullEvent::Pulled {
                    reference: reference.to_owned(),
                    digest: image.digest.clone(),
                    bytes: 0,
                    elapsed: started.elapsed(),
                    cached: true,
                });
                return Ok(image);
            }
            if opts.policy == ImagePullPolicy::Never {
                return Err(ImageError::NotPresent { reference: name });
            }
        }
        on_event(PullEvent::Pulling {
            reference: reference.to_owned(),
        });
        let (record, bytes) = crate::pull::pull(&self.inner, &parsed, opts).await?;
        self.inner.write_record(&record)?;
        let image = self.inner.image_of(record);
        on_event(PullEvent::Pulled {
            reference: reference.to_owned(),
            digest: image.digest.clone(),
            bytes,
            elapsed: started.elapsed(),
            cached: false,
        });
        Ok(image)
    }

    /// The stored image of `reference`, if it was resolved before and all its layers are
    /// still present.
    pub fn lookup(&self, reference: &str) -> Option<Image> {
        let name = reference::normalize(reference).ok()?;
        self.lookup_normalized(&name)
    }

    fn lookup_normalized(&self, name: &str) -> Option<Image> {
        let record = match self.inner.read_record(name) {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(reference = name, error = %e, "ignoring unreadable image record");
                return None;
            }
        };
        let image = self.inner.image_of(record);
        image.layers.iter().all(|l| l.is_dir()).then_some(image)
    }
}

impl Inner {
    pub fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers").join(format!("sha256-{hex}"))
    }

    /// The lock held while layer `hex` is downloaded, so it is downloaded once.
    pub fn layer_lock(&self, hex: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .layer_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(hex.to_owned()).or_default().clone()
    }

    /// A fresh empty directory on the store's filesystem for an unpack in progress.
    pub fn temp_dir(&self, hex: &str) -> Result<PathBuf, ImageError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join("tmp").join(format!("{hex}-{n}"));
        fs::create_dir(&path).map_err(|e| ImageError::io("creating", &path, e))?;
        Ok(path)
    }

    fn record_path(&self, name: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(name.as_bytes()));
        self.root.join("refs").join(format!("{key}.json"))
    }

    fn read_record(&self, name: &str) -> Result<Option<Record>, ImageError> {
        let path = self.record_path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io("reading", path, e)),
        };
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::Record {
                path: path.clone(),
                source,
            })?;
        Ok((record.reference == name).then_some(record))
    }

    /// Writes the record next to its final name, then renames it into place.
    fn write_record(&self, record: &Record) -> Result<(), ImageError> {
        let path = self.record_path(&record.reference);
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("json.{n}.tmp"));
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| ImageError::Record {
            path: path.clone(),
            source,
        })?;
        fs::write(&tmp, bytes).map_err(|e| ImageError::io("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| ImageError::io("renaming", &tmp, e))
    }

    fn image_of(&self, record: Record) -> Image {
        let layers = record
            .layers
            .iter()
            .map(|digest| self.layer_dir(digest.strip_prefix("sha256:").unwrap_or(digest)))
            .collect();
        Image {
            reference: record.reference,
            digest: record.digest,
            layers,
            config: record.config,
        }
    }
}
