//! Where a node gets an image cache that a group names and the node does not hold. A
//! single machine's node holds every cache (the control plane has it build them); a node of
//! a cluster asks the control plane what the cache holds and makes it itself, so that a
//! group placed away from the node that built its cache still starts from a cache.

use berth_core::{GroupId, RegistryCredential};

/// How an image cache is pulled.
#[derive(Clone, Debug, Default)]
pub struct CachePull {
    /// The account the cache belongs to: its images must be proved for it (see
    /// `berth_image`'s access proofs), and then count as proved while the cache exists.
    pub account: String,
    pub credentials: Vec<RegistryCredential>,
    pub plain_http: Vec<String>,
    pub insecure: Vec<String>,
}

impl CachePull {
    /// The pull options of the cache's images.
    pub fn options(&self) -> berth_image::PullOptions {
        berth_image::PullOptions {
            credentials: self.credentials.clone(),
            plain_http: self.plain_http.clone(),
            insecure: self.insecure.clone(),
            account: Some(self.account.clone()),
            ..berth_image::PullOptions::default()
        }
    }
}

/// What a node makes an image cache of.
#[derive(Clone, Debug, Default)]
pub struct CacheOrder {
    pub images: Vec<String>,
    pub pull: CachePull,
}

/// The source of image caches a node lacks.
#[async_trait::async_trait]
pub trait CacheSource: Send + Sync {
    /// What image cache `cache` of `group` (placed on this node) holds, for the node to make
    /// it; `None`: it is not made here (the group's images are pulled as without a cache).
    async fn order(&self, group: &GroupId, cache: &str) -> Result<Option<CacheOrder>, String>;
    /// The node made `cache` for `group`.
    async fn made(&self, group: &GroupId, cache: &str) -> Result<(), String>;
}

/// A node that makes no image cache of its own accord (a single machine's).
pub struct NoCacheSource;

#[async_trait::async_trait]
impl CacheSource for NoCacheSource {
    async fn order(&self, _group: &GroupId, _cache: &str) -> Result<Option<CacheOrder>, String> {
        Ok(None)
    }

    async fn made(&self, _group: &GroupId, _cache: &str) -> Result<(), String> {
        Ok(())
    }
}
