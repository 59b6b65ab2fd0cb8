//! Image caches and image garbage collection on the node: building a cache (pull, unpack,
//! pin) for the control plane, releasing it, telling which caches hold which images, and the
//! periodic collection of unused images between disk-use watermarks.

use std::time::Duration;

use berth_image::{count_held, CacheInfo, GcPolicy, ImageError};
use tokio::task::JoinHandle;

use super::Agent;
use crate::cache_source::CachePull;
use crate::config::NodeError;

impl Agent {
    /// Makes image cache `id` hold exactly `images`: pulls what is missing, pins the images
    /// and records the cache so groups resolve them without a registry.
    pub async fn create_image_cache(
        &self,
        id: &str,
        images: &[String],
        pull: &CachePull,
    ) -> Result<CacheInfo, NodeError> {
        let info = self
            .host
            .images
            .create_cache(id, images, &pull.options())
            .await?;
        tracing::info!(cache = %id, images = images.len(), bytes = info.size_bytes, "image cache ready");
        Ok(info)
    }

    /// Releases image cache `id` (its layers go at the next collection unless used).
    /// Releasing a cache that is not there is not an error.
    pub fn delete_image_cache(&self, id: &str) -> Result<(), NodeError> {
        match self.host.images.delete_cache(id) {
            Ok(()) | Err(ImageError::NoSuchCache { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The ids of the image caches on this node.
    pub fn image_caches(&self) -> Result<Vec<String>, NodeError> {
        Ok(self
            .host
            .images
            .caches()?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// For every image cache of this node, how many of `images` it holds.
    pub fn image_cache_matches(&self, images: &[String]) -> Vec<(String, usize)> {
        let caches = match self.host.images.caches() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list image caches");
                return Vec::new();
            }
        };
        caches
            .into_iter()
            .map(|c| {
                let n = count_held(images, c.images.iter().map(|i| i.reference.as_str()));
                (c.id, n)
            })
            .collect()
    }

    /// Caps what one image may unpack to (a decompression bomb is refused with a clear pull
    /// error and leaves nothing on disk); pulls from now on use them.
    pub fn set_unpack_limits(&self, limits: berth_image::UnpackLimits) {
        self.host.images.set_unpack_limits(limits);
    }

    /// Sets how long a registry check that an account may pull an image counts (see
    /// `berth_image`'s access proofs).
    pub fn set_image_access_ttl(&self, ttl: Duration) {
        self.host.images.set_access_ttl(ttl);
    }

    /// Collects unused images every `every`, per `policy`, until the task is aborted.
    pub fn spawn_image_gc(&self, policy: GcPolicy, every: Duration) -> JoinHandle<()> {
        let images = self.host.images.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match images.gc(&policy).await {
                    Ok(r) if !r.removed_images.is_empty() || r.removed_layers > 0 => {
                        tracing::info!(
                            images = r.removed_images.len(),
                            layers = r.removed_layers,
                            before_pct = r.usage_before_pct,
                            after_pct = r.usage_after_pct,
                            "collected unused images"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
                }
            }
        })
    }
}
