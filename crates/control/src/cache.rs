//! Image caches (ECI CreateImageCache and friends) in the control plane: records in the
//! [`Store`](berth_store::Store), builds handed to the node agent in the background, states
//! Preparing → Creating → Ready / Failed and Updating → Ready / UpdateFailed, retention,
//! LRU elimination under the per-account quota, the choice of a cache for a new group
//! (`ImageSnapshotId`, `AutoMatchImageCache`) and ListUsage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_core::{
    CacheStatus, Event, EventType, GroupId, GroupSpec, ImageCacheRecord, RegistryCredential, Tag,
};
use berth_store::{GroupLimits, StoreError, TokenKind};
use chrono::{Duration, Utc};
use rand::RngCore;

use crate::{CacheBuild, Control, ControlError};

/// The metering kind of image-cache storage (quantity: bytes).
pub const CACHE_STORAGE: &str = "ImageCacheStorage";

/// Limits per account.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    /// Image caches made with CreateImageCache.
    pub max_image_caches: u32,
    /// Image caches made by `AutoMatchImageCache`.
    pub max_auto_image_caches: u32,
    /// vCPU of all groups that are not finished.
    pub max_cpu: f64,
    /// GiB of memory of all groups that are not finished.
    pub max_memory: f64,
    /// Groups that are not finished.
    pub max_groups: u64,
    /// GiB of temporary storage (EphemeralStorage) of all groups that are not finished.
    pub max_storage: f64,
}

impl Quota {
    /// The limits of groups, before an account's own.
    pub fn group_limits(&self) -> GroupLimits {
        GroupLimits {
            max_cpu: self.max_cpu,
            max_memory: self.max_memory,
            max_groups: self.max_groups,
            max_storage: self.max_storage,
        }
    }
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            max_image_caches: 50,
            max_auto_image_caches: 20,
            max_cpu: 1000.0,
            max_memory: 4000.0,
            max_groups: 1000,
            max_storage: 30_000.0,
        }
    }
}

/// How long a failed cache is kept (ECI: one day).
const FAILED_RETENTION_HOURS: i64 = 24;

#[derive(Default)]
pub(crate) struct CacheState {
    quota: Mutex<Quota>,
    /// Held while a cache is chosen and recorded, so concurrent requests see each other's.
    admission: tokio::sync::Mutex<()>,
    /// The builds running in this process (`cache_claim`).
    pub(crate) builds: crate::cache_claim::Builds,
}

/// What CreateImageCache asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewImageCache {
    pub name: String,
    pub images: Vec<String>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub retention_days: Option<u32>,
    /// `LRU` or empty.
    pub elimination_strategy: String,
    pub size_gib: u32,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// What UpdateImageCache changes (`None`/empty: unchanged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageCacheUpdate {
    pub name: Option<String>,
    pub images: Vec<String>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub retention_days: Option<u32>,
    pub elimination_strategy: Option<String>,
    pub size_gib: Option<u32>,
    pub tags: Vec<Tag>,
}

/// Which caches DescribeImageCaches returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheFilter {
    pub ids: Vec<String>,
    pub names: Vec<String>,
    /// Caches holding this image.
    pub image: Option<String>,
    /// Usable caches holding any of these images, best match first.
    pub match_images: Vec<String>,
    /// With `match_images`: only caches holding all of them.
    pub full_match: bool,
    pub tags: Vec<(String, Option<String>)>,
}

/// One page of image caches.
#[derive(Clone, Debug, Default)]
pub struct CachePage {
    pub caches: Vec<ImageCacheRecord>,
    pub total: u64,
    pub next_token: Option<String>,
}

fn cache_id() -> String {
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("imc-{hex}")
}

fn synthetic_group_id() -> GroupId {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    GroupId::from_random(bytes)
}

fn event(t: EventType, reason: &str, msg: impl Into<String>) -> Event {
    Event::new(t, reason, msg, None, Utc::now())
}

fn build_of(r: &ImageCacheRecord, images: Vec<String>) -> CacheBuild {
    CacheBuild {
        id: r.id.clone(),
        account: r.account.clone(),
        images,
        registry_credentials: r.registry_credentials.clone(),
        plain_http_registries: r.plain_http_registries.clone(),
        insecure_registries: r.insecure_registries.clone(),
    }
}

fn same_images(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

impl Control {
    /// Sets the per-account limits.
    pub fn set_quota(&self, quota: Quota) {
        *self.caches.quota.lock().unwrap_or_else(|p| p.into_inner()) = quota;
    }

    pub fn quota(&self) -> Quota {
        *self.caches.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new image cache as Preparing and has the node build it in the background.
    /// Returns the cache's id and the id of the (synthetic) group that builds it.
    pub async fn create_image_cache(
        self: &Arc<Self>,
        account: &str,
        req: NewImageCache,
    ) -> Result<(String, String), ControlError> {
        let _admission = self.caches.admission.lock().await;
        if let Some(tok) = &req.client_token {
            let prev = self
                .store
                .find_client_token(account, TokenKind::ImageCache, tok)
                .await?;
            if let Some(prev) = prev {
                return crate::idempotency::same_cache(prev, &req.name, &req.images);
            }
        }
        let caches = self.store.list_caches(Some(account)).await?;
        if caches.iter().any(|c| c.name == req.name) {
            return Err(ControlError::CacheNameTaken(req.name));
        }
        let max = self
            .store
            .account_quota(account)
            .await?
            .image_caches
            .unwrap_or(self.quota().max_image_caches) as usize;
        let manual: Vec<&ImageCacheRecord> = caches.iter().filter(|c| !c.auto_created).collect();
        if manual.len() >= max {
            let victim = manual
                .iter()
                .filter(|c| c.elimination_strategy == "LRU" && !self.building(c))
                .min_by_key(|c| c.last_matched_time.unwrap_or(c.creation_time));
            match victim {
                Some(v) => {
                    tracing::info!(cache = %v.id, "evicting the least recently matched image cache (LRU)");
                    self.remove_cache(&v.id).await;
                }
                None => {
                    return Err(ControlError::CacheQuotaExceeded {
                        limit: max,
                        used: manual.len(),
                    })
                }
            }
        }
        let now = Utc::now();
        let mut rec = ImageCacheRecord {
            id: cache_id(),
            account: account.to_string(),
            name: req.name,
            region_id: self.region.clone(),
            images: req.images,
            status: CacheStatus::Preparing,
            container_group_id: synthetic_group_id().to_string(),
            creation_time: now,
            retention_days: req.retention_days,
            expire_time: None,
            elimination_strategy: req.elimination_strategy,
            size_gib: req.size_gib,
            tags: req.tags,
            registry_credentials: req.registry_credentials,
            plain_http_registries: req.plain_http_registries,
            insecure_registries: req.insecure_registries,
            client_token: req.client_token,
            ..Default::default()
        };
        rec.push_event(event(
            EventType::Normal,
            "Preparing",
            format!(
                "Preparing image cache {} of {} images",
                rec.id,
                rec.images.len()
            ),
        ));
        let params = match &rec.client_token {
            Some(_) => {
                crate::idempotency::cache_params(&rec.name, &rec.images, &rec.container_group_id)?
            }
            None => String::new(),
        };
        let inserted = self
            .store
            .insert_cache(&rec, &params)
            .await
            .map_err(|e| match e {
                StoreError::Exists(_) => ControlError::CacheNameTaken(rec.name.clone()),
                e => e.into(),
            })?;
        if let Some(prev) = inserted {
            return crate::idempotency::same_cache(prev, &rec.name, &rec.images);
        }
        let ids = (rec.id.clone(), rec.container_group_id.clone());
        let images = rec.images.clone();
        self.spawn_build(&rec, images, false);
        Ok(ids)
    }

    fn building(&self, c: &ImageCacheRecord) -> bool {
        matches!(
            c.status,
            CacheStatus::Preparing | CacheStatus::Creating | CacheStatus::Updating
        )
    }

    /// Has the node make cache `rec` hold `images`; records Ready / Failed (or UpdateFailed).
    fn spawn_build(self: &Arc<Self>, rec: &ImageCacheRecord, images: Vec<String>, update: bool) {
        let this = Arc::clone(self);
        let build = build_of(rec, images);
        tokio::spawn(async move {
            let id = build.id.clone();
            // Built already, here or by a live replica of the cluster.
            let Some(claim) = this.claim_build(&id).await else {
                return;
            };
            // Finished (or deleted) between the look that started this and the claim.
            match this.store.get_cache(None, &id).await {
                Ok(Some(c)) if this.building(&c) => {}
                _ => return this.release_build(claim).await,
            }
            if !update {
                let started = this
                    .store
                    .modify_cache(&id, &mut |r| {
                        r.status = CacheStatus::Creating;
                        r.push_event(event(
                            EventType::Normal,
                            "Creating",
                            format!("Pulling images {}", build.images.join(", ")),
                        ));
                    })
                    .await;
                if started.is_err() {
                    return;
                }
            }
            let result = this
                .while_claimed(&claim, async {
                    match this.node() {
                        Ok(node) => node.create_image_cache(&build).await,
                        Err(e) => Err(crate::NodeError::Failed(e.to_string())),
                    }
                })
                .await;
            let now = Utc::now();
            let mut ready_size: Option<(String, u64)> = None;
            // Nodes holding an older build, released once the new one is recorded.
            let mut stale: Vec<String> = Vec::new();
            let res = this
                .store
                .modify_cache(&id, &mut |r| match &result {
                    Ok(made) => {
                        let size = &made.size_bytes;
                        r.status = CacheStatus::Ready;
                        r.size_bytes = *size;
                        ready_size = Some((r.account.clone(), *size));
                        stale = r
                            .nodes
                            .iter()
                            .filter(|n| Some(*n) != made.node.as_ref())
                            .cloned()
                            .collect();
                        r.nodes = made.node.iter().cloned().collect();
                        r.images.clone_from(&build.images);
                        r.pending_images = None;
                        r.expire_time = r
                            .retention_days
                            .map(|d| r.creation_time + Duration::days(i64::from(d)));
                        r.push_event(event(
                            EventType::Normal,
                            if update { "Updated" } else { "Created" },
                            format!("Image cache {} is ready ({size} bytes)", r.id),
                        ));
                    }
                    Err(e) => {
                        r.pending_images = None;
                        if update {
                            r.status = CacheStatus::UpdateFailed;
                        } else {
                            r.status = CacheStatus::Failed;
                            r.expire_time = Some(now + Duration::hours(FAILED_RETENTION_HOURS));
                        }
                        r.push_event(event(
                            EventType::Warning,
                            "Failed",
                            format!("Failed to build image cache {}: {e}", r.id),
                        ));
                    }
                })
                .await;
            match res {
                Ok(r) => {
                    tracing::info!(cache = %id, status = r.status.as_str(), "image cache built");
                    if !stale.is_empty() {
                        if let Ok(node) = this.node() {
                            if let Err(e) = node.delete_image_cache(&id, &stale).await {
                                tracing::warn!(cache = %id, error = %e, "cannot release an older build of an image cache");
                            }
                        }
                    }
                    // Its storage is metered (bytes × seconds) from now until it is deleted.
                    if let Some((account, size)) = &ready_size {
                        if let Err(e) = this
                            .store
                            .meter_start(account, CACHE_STORAGE, &id, *size, now)
                            .await
                        {
                            tracing::error!(cache = %id, error = %e, "cannot meter an image cache");
                        }
                    }
                }
                Err(StoreError::NotFound(_)) => {
                    // Deleted while it was being built: release what the node made.
                    if let (Ok(node), Ok(made)) = (this.node(), &result) {
                        let holders: Vec<String> = made.node.iter().cloned().collect();
                        let _ = node.delete_image_cache(&id, &holders).await;
                    }
                }
                Err(e) => {
                    tracing::error!(cache = %id, error = %e, "cannot record an image cache build")
                }
            }
            this.release_build(claim).await;
        });
    }

    /// Builds again the caches a stop of berth interrupted (at start; in a cluster also in
    /// the leader's sweep, for builds whose replica went away: `cache_claim`). Returns how
    /// many builds it asked for.
    pub async fn resume_image_caches(self: &Arc<Self>) -> Result<usize, ControlError> {
        let mut n = 0;
        for c in self.store.list_caches(None).await? {
            if self.building(&c) {
                let update = c.status == CacheStatus::Updating;
                let images = c.pending_images.clone().unwrap_or_else(|| c.images.clone());
                self.spawn_build(&c, images, update);
                n += 1;
            }
        }
        Ok(n)
    }

    /// DescribeImageCaches.
    pub async fn describe_image_caches(
        &self,
        account: &str,
        f: &CacheFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<CachePage, ControlError> {
        let mut caches = self.store.list_caches(Some(account)).await?;
        caches.retain(|c| {
            (f.ids.is_empty() || f.ids.contains(&c.id))
                && (f.names.is_empty() || f.names.contains(&c.name))
                && f.tags.iter().all(|(k, v)| {
                    c.tags
                        .iter()
                        .any(|t| &t.key == k && v.as_ref().is_none_or(|v| &t.value == v))
                })
        });
        if let Some(image) = &f.image {
            let covered = self.coverage(std::slice::from_ref(image)).await;
            caches
                .retain(|c| c.images.contains(image) || covered.get(&c.id).is_some_and(|n| *n > 0));
        }
        if !f.match_images.is_empty() {
            let covered = self.coverage(&f.match_images).await;
            let want = f.match_images.len();
            caches.retain(|c| {
                let n = covered.get(&c.id).copied().unwrap_or(0);
                c.status.usable() && n > 0 && (!f.full_match || n >= want)
            });
            caches.sort_by(|a, b| {
                let na = covered.get(&a.id).copied().unwrap_or(0);
                let nb = covered.get(&b.id).copied().unwrap_or(0);
                nb.cmp(&na).then(b.creation_time.cmp(&a.creation_time))
            });
        }
        let total = caches.len();
        let start: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0).min(total);
        let end = start.saturating_add(limit.max(1)).min(total);
        Ok(CachePage {
            caches: caches[start..end].to_vec(),
            total: total as u64,
            next_token: (end < total).then(|| end.to_string()),
        })
    }

    /// How many of `images` each cache on the node holds.
    async fn coverage(&self, images: &[String]) -> BTreeMap<String, usize> {
        match self.node() {
            Ok(node) => node.image_cache_matches(images).await.into_iter().collect(),
            Err(_) => BTreeMap::new(),
        }
    }

    /// UpdateImageCache: metadata at once; new images make the node rebuild it (Updating).
    pub async fn update_image_cache(
        self: &Arc<Self>,
        account: &str,
        id: &str,
        u: ImageCacheUpdate,
    ) -> Result<(), ControlError> {
        let _admission = self.caches.admission.lock().await;
        let rec = self.get_image_cache(account, id).await?;
        if !rec.status.updatable() {
            return Err(ControlError::CacheIncorrectStatus {
                id: id.to_string(),
                status: rec.status.as_str(),
                needs: "Ready or UpdateFailed",
            });
        }
        if let Some(name) = &u.name {
            let taken = self
                .store
                .list_caches(Some(account))
                .await?
                .iter()
                .any(|c| &c.name == name && c.id != id);
            if taken {
                return Err(ControlError::CacheNameTaken(name.clone()));
            }
        }
        let rebuild = !u.images.is_empty() && !same_images(&u.images, &rec.images)
            || rec.status == CacheStatus::UpdateFailed && !u.images.is_empty();
        let rec = self
            .store
            .modify_cache(id, &mut |r| {
                if let Some(n) = &u.name {
                    r.name.clone_from(n);
                }
                if let Some(d) = u.retention_days {
                    r.retention_days = Some(d);
                    if r.status != CacheStatus::Failed {
                        r.expire_time = Some(r.creation_time + Duration::days(i64::from(d)));
                    }
                }
                if let Some(s) = &u.elimination_strategy {
                    r.elimination_strategy.clone_from(s);
                }
                if let Some(s) = u.size_gib {
                    r.size_gib = s;
                }
                if !u.tags.is_empty() {
                    r.tags.clone_from(&u.tags);
                }
                if !u.registry_credentials.is_empty() {
                    r.registry_credentials.clone_from(&u.registry_credentials);
                }
                if !u.plain_http_registries.is_empty() {
                    r.plain_http_registries.clone_from(&u.plain_http_registries);
                }
                if !u.insecure_registries.is_empty() {
                    r.insecure_registries.clone_from(&u.insecure_registries);
                }
                if rebuild {
                    r.status = CacheStatus::Updating;
                    r.pending_images = Some(u.images.clone());
                    r.push_event(event(
                        EventType::Normal,
                        "Updating",
                        format!("Updating image cache to {}", u.images.join(", ")),
                    ));
                }
            })
            .await?;
        if rebuild {
            self.spawn_build(&rec, u.images, true);
        }
        Ok(())
    }

    pub async fn get_image_cache(
        &self,
        account: &str,
        id: &str,
    ) -> Result<ImageCacheRecord, ControlError> {
        self.store
            .get_cache(Some(account), id)
            .await?
            .ok_or_else(|| ControlError::CacheNotFound(id.to_string()))
    }

    /// DeleteImageCache: the record goes at once, the node releases the images.
    pub async fn delete_image_cache(&self, account: &str, id: &str) -> Result<(), ControlError> {
        self.get_image_cache(account, id).await?;
        self.remove_cache(id).await;
        Ok(())
    }

    async fn remove_cache(&self, id: &str) {
        let holders = match self.store.get_cache(None, id).await {
            Ok(Some(c)) => c.nodes,
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(cache = %id, error = %e, "cannot read the record of an image cache");
                return;
            }
        };
        if let Err(e) = self.store.delete_cache(id).await {
            tracing::error!(cache = %id, error = %e, "cannot delete the record of an image cache");
            return;
        }
        if let Err(e) = self.store.meter_stop(id, Utc::now()).await {
            tracing::error!(cache = %id, error = %e, "cannot stop metering an image cache");
        }
        if let Ok(node) = self.node() {
            if let Err(e) = node.delete_image_cache(id, &holders).await {
                tracing::warn!(cache = %id, error = %e, "the node cannot release an image cache");
            }
        }
    }

    /// Deletes the caches whose retention ended (and failed ones after a day). Returns how
    /// many went.
    pub async fn expire_image_caches(&self) -> Result<usize, ControlError> {
        let now = Utc::now();
        let mut n = 0;
        for c in self.store.list_caches(None).await? {
            if c.expire_time.is_some_and(|t| t <= now) && !self.building(&c) {
                tracing::info!(cache = %c.id, "image cache expired");
                self.remove_cache(&c.id).await;
                n += 1;
            }
        }
        Ok(n)
    }

    /// ListUsage `Attributes`: what the account holds and its limits (its own, else the
    /// server's).
    pub async fn usage(&self, account: &str) -> Result<BTreeMap<String, f64>, ControlError> {
        let q = self.quota();
        let own = self.store.account_quota(account).await?;
        let limits = q.group_limits().with(&own);
        let max_caches = own.image_caches.unwrap_or(q.max_image_caches);
        let caches = self.store.list_caches(Some(account)).await?;
        let auto = caches.iter().filter(|c| c.auto_created).count();
        let used = self.store.group_usage(account).await?;
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        Ok(BTreeMap::from([
            ("UsedCpu".to_string(), round(used.cpu)),
            ("MaxCpu".to_string(), limits.max_cpu),
            ("UsedMemory".to_string(), round(used.memory)),
            ("MaxMemory".to_string(), limits.max_memory),
            ("UsedContainerGroupCount".to_string(), used.groups as f64),
            (
                "MaxContainerGroupCount".to_string(),
                limits.max_groups as f64,
            ),
            (
                "UsedImageCacheCount".to_string(),
                (caches.len() - auto) as f64,
            ),
            ("MaxImageCacheCount".to_string(), f64::from(max_caches)),
            ("UsedAutoImageCacheCount".to_string(), auto as f64),
            (
                "MaxAutoImageCacheCount".to_string(),
                f64::from(q.max_auto_image_caches),
            ),
            ("UsedEphemeralStorage".to_string(), round(used.storage)),
            ("MaxEphemeralStorage".to_string(), limits.max_storage),
            ("UsedDataCacheCount".to_string(), 0.0),
            ("MaxDataCacheCount".to_string(), 0.0),
        ]))
    }

    /// Checks or chooses the image cache of a new group: an explicit `ImageSnapshotId` must
    /// be the account's and usable; `AutoMatchImageCache` takes the best usable match (and
    /// sets `ImageSnapshotId`). Returns the event to record on the group, and whether a cache
    /// should be made from the group's images (auto match found none). Nothing is written:
    /// the cache counts as matched ([`Self::cache_matched`]) only once the group is created.
    pub(crate) async fn choose_image_cache(
        &self,
        account: &str,
        spec: &mut GroupSpec,
    ) -> Result<(Option<Event>, bool), ControlError> {
        if let Some(id) = spec.image_snapshot_id.clone() {
            let c = self
                .store
                .get_cache(Some(account), &id)
                .await?
                .ok_or_else(|| ControlError::CacheNotFound(id.clone()))?;
            if !c.status.usable() {
                return Err(ControlError::CacheIncorrectStatus {
                    id,
                    status: c.status.as_str(),
                    needs: "Ready",
                });
            }
            let ev = event(
                EventType::Normal,
                "ImageCacheUsed",
                format!("Using image cache {id}"),
            );
            return Ok((Some(ev), false));
        }
        if !spec.auto_match_image_cache {
            return Ok((None, false));
        }
        let images: Vec<String> = spec.all_containers().map(|c| c.image.clone()).collect();
        let covered = self.coverage(&images).await;
        let mut best: Option<(usize, ImageCacheRecord)> = None;
        for c in self.store.list_caches(Some(account)).await? {
            let n = covered.get(&c.id).copied().unwrap_or(0);
            if n == 0 || !c.status.usable() {
                continue;
            }
            let better = match &best {
                None => true,
                Some((bn, b)) => (n, c.creation_time) > (*bn, b.creation_time),
            };
            if better {
                best = Some((n, c));
            }
        }
        match best {
            Some((_, c)) => {
                spec.image_snapshot_id = Some(c.id.clone());
                let ev = event(
                    EventType::Normal,
                    "SuccessfulHitImageCache",
                    format!("Successfully hit image cache {}", c.id),
                );
                Ok((Some(ev), false))
            }
            None => Ok((None, true)),
        }
    }

    /// Records that a new group uses the image cache `id` (its `LastMatchedTime`, which
    /// the elimination of automatic caches goes by).
    pub(crate) async fn cache_matched(&self, id: &str) {
        let now = Utc::now();
        if let Err(e) = self
            .store
            .modify_cache(id, &mut |r| r.last_matched_time = Some(now))
            .await
        {
            tracing::warn!(cache = id, error = %e, "cannot record the match of an image cache");
        }
    }

    /// Makes an image cache of a group's images (AutoMatchImageCache found none), unless the
    /// auto quota is full or one with these images is already there or being made.
    pub(crate) async fn auto_create_image_cache(
        self: &Arc<Self>,
        account: &str,
        group: &GroupId,
        spec: &GroupSpec,
    ) {
        let mut images: Vec<String> = Vec::new();
        for c in spec.all_containers() {
            if !images.contains(&c.image) {
                images.push(c.image.clone());
            }
        }
        let _admission = self.caches.admission.lock().await;
        let caches = match self.store.list_caches(Some(account)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot list image caches");
                return;
            }
        };
        let auto: Vec<&ImageCacheRecord> = caches.iter().filter(|c| c.auto_created).collect();
        if auto
            .iter()
            .any(|c| c.status != CacheStatus::Failed && same_images(&c.images, &images))
        {
            return;
        }
        if auto.len() >= self.quota().max_auto_image_caches as usize {
            let victim = auto
                .iter()
                .filter(|c| !self.building(c))
                .min_by_key(|c| c.last_matched_time.unwrap_or(c.creation_time));
            match victim {
                Some(v) => self.remove_cache(&v.id).await,
                None => return,
            }
        }
        let now = Utc::now();
        let mut rec = ImageCacheRecord {
            id: cache_id(),
            account: account.to_string(),
            name: format!("auto-{}", group.as_str().to_ascii_lowercase()),
            region_id: self.region.clone(),
            images,
            status: CacheStatus::Preparing,
            container_group_id: group.to_string(),
            creation_time: now,
            elimination_strategy: "LRU".into(),
            size_gib: 20,
            auto_created: true,
            registry_credentials: spec.registry_credentials.clone(),
            plain_http_registries: spec.plain_http_registries.clone(),
            insecure_registries: spec.insecure_registries.clone(),
            ..Default::default()
        };
        rec.push_event(event(
            EventType::Normal,
            "Preparing",
            format!("Automatically creating an image cache for container group {group}"),
        ));
        match self.store.insert_cache(&rec, "").await {
            Ok(_) => {
                let images = rec.images.clone();
                self.spawn_build(&rec, images, false);
            }
            Err(e) => tracing::warn!(error = %e, "cannot record an automatic image cache"),
        }
    }
}
