//! The image store on disk: unpacked layers shared between images, and the records that map a
//! normalised reference to its manifest digest, layers and config.
//!
//! ```text
//! <root>/layers/sha256-<hex>/       one unpacked layer per compressed digest
//! <root>/layer-info/<hex>.json      its sizes (compressed, on disk)
//! <root>/refs/<sha256 of ref>.json  reference → manifest digest, layers, config; mtime = last use
//! <root>/images/<hex>.json          the same per manifest digest, kept while pinned
//! <root>/pins.json                  owner → pinned manifest digests
//! <root>/caches/<id>.json           image caches
//! <root>/access/<account>.json      what each account proved it may pull (see `access`)
//! <root>/tmp/                       layers and imports in progress; emptied on open
//! ```
//!
//! Every record is written to a temporary file and renamed into place.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::{ImagePullPolicy, RegistryCredential};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ImageConfig;
use crate::disk;
use crate::error::ImageError;
use crate::reference;
use crate::registry::RetryPolicy;
use crate::unpack::UnpackLimits;

/// How to reach registries for one `ensure` call.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Logins, matched to the image's registry by host; they win over the node's.
    pub credentials: Vec<RegistryCredential>,
    /// Registry hosts reached over plain HTTP.
    pub plain_http: Vec<String>,
    /// Registry hosts whose TLS certificate is not checked.
    pub insecure: Vec<String>,
    pub policy: ImagePullPolicy,
    /// The account the image is for. A stored image serves it only once it proved it may
    /// pull the image (its own pull, one of its image caches, or a registry check with
    /// `credentials` within the access TTL), and the node's logins never serve it. `None`:
    /// the operator's own request (`berth image pull`), which may use the node's logins.
    pub account: Option<String>,
    /// A pin owner (`group:<id>`) whose pinned images count as proved: what a group resolved
    /// once, it uses again when it restarts or berth resumes it, without asking a registry.
    pub pinned_by: Option<String>,
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

/// Download progress of one layer of a pull, for a progress bar. Sent at least every
/// 256 KiB per layer and once when a layer is complete (also for layers already stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// Normalised reference.
    pub reference: String,
    /// Index of the layer (lowest is 0) and how many the image has.
    pub layer: usize,
    pub layers: usize,
    pub digest: String,
    /// Compressed bytes of this layer received (or already stored) and its size.
    pub layer_bytes: u64,
    pub layer_size: u64,
    /// Compressed bytes of all layers received or already stored, and their sum.
    pub bytes: u64,
    pub total_bytes: u64,
    /// This layer is downloaded, verified and unpacked.
    pub layer_done: bool,
}

/// An image ready to be mounted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub reference: String,
    pub digest: String,
    pub config_digest: String,
    /// Compressed layer digests, lowest first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
    /// Imported from an archive: used before any pull, whatever the pull policy.
    #[serde(default)]
    pub imported: bool,
}

/// Sizes of one stored layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LayerInfo {
    pub digest: String,
    pub compressed_size: u64,
    pub size_on_disk: u64,
    /// Bytes written to files and archive entries when it was unpacked (absent in records
    /// of older stores), charged to every image that uses the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Content store of the node agent. Cheap to clone; clones share locks and registry clients.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

pub(crate) struct Inner {
    pub root: PathBuf,
    layer_locks: Locks,
    ref_locks: Locks,
    pub clients: Mutex<HashMap<crate::pull::ClientKey, Arc<crate::registry::RegistryClient>>>,
    temp_counter: AtomicU64,
    node_credentials: Mutex<Vec<RegistryCredential>>,
    retry: Mutex<RetryPolicy>,
    unpack_limits: Mutex<UnpackLimits>,
    /// Held shared by pulls and imports, exclusively by removals, so no layer disappears
    /// under a pull that is about to record it.
    pub removal: tokio::sync::RwLock<()>,
    /// Owner → pinned manifest digests, as in `pins.json`.
    pub pins: Arc<crate::pins::Pins>,
    /// What each account proved it may pull.
    pub access: crate::access::Access,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root` and removes unfinished unpacks.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["layers", "layer-info", "refs", "images", "caches"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|e| ImageError::io("creating", path, e))?;
        }
        let tmp = root.join("tmp");
        disk::remove_tree(&tmp)?;
        fs::create_dir(&tmp).map_err(|e| ImageError::io("creating", &tmp, e))?;
        let pins = Arc::new(crate::pins::Pins::open(root.join("pins.json"))?);
        let access = crate::access::Access::open(root.join("access"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                layer_locks: Mutex::default(),
                ref_locks: Mutex::default(),
                clients: Mutex::default(),
                temp_counter: AtomicU64::new(0),
                node_credentials: Mutex::default(),
                retry: Mutex::new(RetryPolicy::default()),
                unpack_limits: Mutex::new(UnpackLimits::default()),
                removal: tokio::sync::RwLock::new(()),
                pins,
                access,
            }),
        })
    }

    /// Sets the logins of the node's configuration, used for registries a pull's own
    /// credentials do not name.
    pub fn with_node_credentials(self, credentials: Vec<RegistryCredential>) -> Self {
        self.set_node_credentials(credentials);
        self
    }

    /// Replaces the node's logins (configuration reload).
    pub fn set_node_credentials(&self, credentials: Vec<RegistryCredential>) {
        *lock(&self.inner.node_credentials) = credentials;
    }

    /// Sets how registry requests are retried (clients made from now on use it).
    pub fn with_retry(self, policy: RetryPolicy) -> Self {
        *lock(&self.inner.retry) = RetryPolicy {
            attempts: policy.attempts.max(1),
            ..policy
        };
        lock(&self.inner.clients).clear();
        self
    }

    /// Sets the caps on what the layers of one image may unpack to (default
    /// [`UnpackLimits::default`]: 10 GiB written to files, 1,000,000 entries).
    pub fn with_unpack_limits(self, limits: UnpackLimits) -> Self {
        self.set_unpack_limits(limits);
        self
    }

    /// Replaces the unpack caps; pulls started from now on use them.
    pub fn set_unpack_limits(&self, limits: UnpackLimits) {
        *lock(&self.inner.unpack_limits) = limits;
    }

    /// Sets how long a passed registry check of an account counts (default 300 s; zero:
    /// every use of a stored image the account did not pull asks the registry).
    pub fn with_access_ttl(self, ttl: Duration) -> Self {
        self.set_access_ttl(ttl);
        self
    }

    /// Replaces the access TTL; checks from now on use it.
    pub fn set_access_ttl(&self, ttl: Duration) {
        self.inner.access.set_ttl(ttl);
    }

    /// The caps on what the layers of one image may unpack to.
    pub fn unpack_limits(&self) -> UnpackLimits {
        self.inner.unpack_limits()
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Makes the image available locally according to `opts.policy`.
    ///
    /// `IfNotPresent` uses a reference resolved before (even by an earlier process); `Always`
    /// resolves it again (layers already stored are not downloaded again); `Never` only looks
    /// locally. An imported image is used whatever the policy.
    ///
    /// For an account (`opts.account`), a stored image serves only when the account proved
    /// it may pull it (see the `access` module): else the registry is asked with the
    /// account's credentials (one manifest `HEAD`), and a refusal is
    /// [`ImageError::AccessDenied`], worded as for an image the node never stored.
    pub async fn ensure(
        &self,
        reference: &str,
        opts: &PullOptions,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        self.ensure_with_progress(reference, opts, on_event, &|_| {})
            .await
    }

    /// [`ensure`](Self::ensure), also reporting the download of each layer to `on_progress`.
    /// Concurrent calls for one reference make one pull.
    pub async fn ensure_with_progress(
        &self,
        reference: &str,
        opts: &PullOptions,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
        on_progress: &(dyn Fn(&PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let started = Instant::now();
        let parsed = reference::parse(reference)?;
        let name = parsed.whole();
        let cached = |image: Image| {
            self.inner.touch(&image.reference);
            on_event(PullEvent::Pulled {
                reference: reference.to_owned(),
                digest: image.digest.clone(),
                bytes: 0,
                elapsed: started.elapsed(),
                cached: true,
            });
            Ok(image)
        };
        let local = |store: &Self| {
            let record = store.inner.read_record(&name).ok().flatten()?;
            let usable = opts.policy != ImagePullPolicy::Always || record.imported;
            let imported = record.imported;
            usable
                .then(|| store.image_if_complete(record))
                .flatten()
                .map(|image| (image, imported))
        };
        let mut asked = false;
        let mut refusal = None;
        if let Some((image, imported)) = local(self) {
            match self
                .inner
                .prove(&parsed, &image.digest, imported, opts, reference, on_event)
                .await
            {
                Ok(()) => return cached(image),
                Err(e) if e.is_final_refusal() => return Err(e),
                Err(e) => {
                    asked = true;
                    refusal = Some(e);
                }
            }
        }
        if opts.policy == ImagePullPolicy::Never {
            return Err(refusal.unwrap_or(ImageError::NotPresent { reference: name }));
        }
        let lock = self.inner.ref_lock(&name);
        let waited = lock.try_lock().is_err();
        let _guard = lock.lock().await;
        if waited {
            // Another call just pulled it, maybe for another account.
            let found = local(self).or_else(|| {
                (opts.policy == ImagePullPolicy::Always)
                    .then(|| self.lookup_normalized(&name))
                    .flatten()
                    .map(|image| (image, false))
            });
            if let Some((image, imported)) = found {
                match self
                    .inner
                    .prove(&parsed, &image.digest, imported, opts, reference, on_event)
                    .await
                {
                    Ok(()) => return cached(image),
                    Err(e) if e.is_final_refusal() => return Err(e),
                    Err(_) => asked = true,
                }
            }
        }
        if !asked {
            on_event(PullEvent::Pulling {
                reference: reference.to_owned(),
            });
        }
        let _removal = self.inner.removal.read().await;
        let pulled = crate::pull::pull(&self.inner, &parsed, opts, on_progress).await;
        let (record, bytes) = match (pulled, &opts.account) {
            (Ok(pulled), _) => pulled,
            (Err(e), Some(_)) => return Err(e.into_refusal()),
            (Err(e), None) => return Err(e),
        };
        self.inner.write_record(&record)?;
        if let Some(account) = &opts.account {
            let repository = crate::access::repository_of(&parsed);
            self.inner
                .access
                .record_pull(account, &repository, &record.digest);
        }
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
        self.image_if_complete(record)
    }

    fn image_if_complete(&self, record: Record) -> Option<Image> {
        let image = self.inner.image_of(record);
        image.layers.iter().all(|l| l.is_dir()).then_some(image)
    }
}

impl Inner {
    /// Whether `opts.account` may use stored manifest `digest` of `reference`: no account
    /// (the operator), an imported image, the account's own pull or image cache, an image
    /// the group of `opts.pinned_by` resolved before, or a registry check within the TTL; else
    /// one manifest `HEAD` with the account's credentials (reported as `Pulling`), remembered
    /// when it passes. With `Never` nothing is asked: the image is not present for the
    /// account.
    pub(crate) async fn prove(
        &self,
        reference: &oci_client::Reference,
        digest: &str,
        imported: bool,
        opts: &PullOptions,
        written: &str,
        on_event: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<(), ImageError> {
        let Some(account) = &opts.account else {
            return Ok(());
        };
        let held = || {
            opts.pinned_by
                .as_deref()
                .is_some_and(|owner| self.pins.holds(owner, digest))
        };
        if imported || self.access.holds_digest(account, digest) || held() {
            return Ok(());
        }
        let repository = crate::access::repository_of(reference);
        if self.access.checked_recently(account, &repository) {
            return Ok(());
        }
        if opts.policy == ImagePullPolicy::Never {
            // No registry request; to the account the image is not there.
            return Err(ImageError::NotPresent {
                reference: reference.whole(),
            });
        }
        on_event(PullEvent::Pulling {
            reference: written.to_owned(),
        });
        crate::pull::check(self, reference, opts)
            .await
            .map_err(ImageError::into_refusal)?;
        self.access.record_check(account, &repository);
        Ok(())
    }

    pub fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers").join(format!("sha256-{hex}"))
    }

    pub fn layer_info_path(&self, hex: &str) -> PathBuf {
        self.root.join("layer-info").join(format!("{hex}.json"))
    }

    pub fn node_credentials(&self) -> Vec<RegistryCredential> {
        lock(&self.node_credentials).clone()
    }

    pub fn retry(&self) -> RetryPolicy {
        *lock(&self.retry)
    }

    pub fn unpack_limits(&self) -> UnpackLimits {
        *lock(&self.unpack_limits)
    }

    /// The lock held while layer `hex` is downloaded, so it is downloaded once.
    pub fn layer_lock(&self, hex: &str) -> Arc<tokio::sync::Mutex<()>> {
        keyed_lock(&self.layer_locks, hex)
    }

    /// The lock held while reference `name` is pulled, so concurrent pulls make one.
    fn ref_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        keyed_lock(&self.ref_locks, name)
    }

    /// A fresh empty directory on the store's filesystem for work in progress.
    pub fn temp_dir(&self, hex: &str) -> Result<PathBuf, ImageError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join("tmp").join(format!("{hex}-{n}"));
        fs::create_dir(&path).map_err(|e| ImageError::io("creating", &path, e))?;
        Ok(path)
    }

    pub fn record_path(&self, name: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(name.as_bytes()));
        self.root.join("refs").join(format!("{key}.json"))
    }

    pub fn image_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = crate::pull::sha256_hex(digest)?;
        Some(self.root.join("images").join(format!("{hex}.json")))
    }

    pub fn read_record(&self, name: &str) -> Result<Option<Record>, ImageError> {
        let record: Option<Record> = disk::read_json(&self.record_path(name))?;
        Ok(record.filter(|r| r.reference == name))
    }

    /// Records the reference and its image (by digest).
    pub fn write_record(&self, record: &Record) -> Result<(), ImageError> {
        if let Some(path) = self.image_path(&record.digest) {
            disk::write_json(&path, record)?;
        }
        disk::write_json(&self.record_path(&record.reference), record)
    }

    /// Marks the reference as used now (the record's mtime is its last use).
    pub fn touch(&self, name: &str) {
        let path = self.record_path(name);
        let now = nix::sys::time::TimeSpec::UTIME_NOW;
        let _ = nix::sys::stat::utimensat(
            None,
            &path,
            &now,
            &now,
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        );
    }

    pub fn image_of(&self, record: Record) -> Image {
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

fn keyed_lock(locks: &Locks, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = lock(locks);
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(key.to_owned()).or_default().clone()
}
