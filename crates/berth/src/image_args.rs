//! A node's image store settings, shared by `berth serve` and `berth node`: what one image
//! may unpack to, how long a registry check of an account's access counts, and the periodic
//! collection of unused images between disk-use watermarks.

use std::time::Duration;

use berth_image::GcPolicy;
use berth_node::Agent;

#[derive(clap::Args, Clone, Debug)]
pub struct ImageArgs {
    /// Disk use (percent) at which unused images are collected.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub image_gc_high: u8,
    /// Disk use (percent) that a collection brings the store down to.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low: u8,
    /// Seconds between two image collections.
    #[arg(long, default_value_t = 300)]
    pub image_gc_interval: u64,
    /// GiB that the layers of one image may unpack to, all together; a larger image is
    /// refused when it is pulled.
    #[arg(long, default_value_t = 10.0, value_parser = crate::cache_node::non_negative)]
    pub max_image_size: f64,
    /// Files, directories and links that the layers of one image may hold together.
    #[arg(long, default_value_t = berth_image::UnpackLimits::DEFAULT_MAX_ENTRIES)]
    pub max_image_entries: u64,
    /// Seconds a registry check counts that lets an account use an image stored on the node
    /// which it did not pull itself (a manifest HEAD with its credentials, per account and
    /// repository; 0: check at every use). Refusals are never remembered.
    #[arg(long, default_value_t = berth_image::DEFAULT_ACCESS_TTL.as_secs())]
    pub image_auth_ttl: u64,
}

impl ImageArgs {
    /// Refuses watermarks in the wrong order (before anything is started).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.image_gc_low > self.image_gc_high {
            anyhow::bail!(
                "--image-gc-low ({}) must not be above --image-gc-high ({})",
                self.image_gc_low,
                self.image_gc_high
            );
        }
        Ok(())
    }

    /// Applies the limits to the node's image store and starts its collection.
    pub fn apply(&self, agent: &Agent) {
        agent.set_unpack_limits(berth_image::UnpackLimits {
            max_bytes: (self.max_image_size * (1u64 << 30) as f64) as u64,
            max_entries: self.max_image_entries,
        });
        agent.set_image_access_ttl(Duration::from_secs(self.image_auth_ttl));
        let policy = GcPolicy {
            high_watermark_pct: self.image_gc_high,
            low_watermark_pct: self.image_gc_low,
            capacity_bytes: None,
        };
        agent.spawn_image_gc(policy, Duration::from_secs(self.image_gc_interval.max(1)));
    }
}
