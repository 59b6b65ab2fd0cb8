//! Image caches of the in-process node agent, as the control plane sees them, and the
//! periodic work that keeps them (retention sweep) and the image store (GC) in bounds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_control::{CacheBuild, CacheNode, Control, NodeError, Quota};
use berth_image::GcPolicy;
use berth_node::{Agent, CachePull};

use crate::serve::LocalNode;

/// Flags of `berth serve` for image caches and image garbage collection.
#[derive(clap::Args, Clone, Debug)]
pub struct CacheArgs {
    /// Disk use (percent) at which unused images are collected.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub image_gc_high: u8,
    /// Disk use (percent) that a collection brings the store down to.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low: u8,
    /// Seconds between two image collections.
    #[arg(long, default_value_t = 300)]
    pub image_gc_interval: u64,
    /// Image caches an account may create (CreateImageCache).
    #[arg(long, default_value_t = 50)]
    pub max_image_caches: u32,
    /// Image caches made for an account by AutoMatchImageCache.
    #[arg(long, default_value_t = 20)]
    pub max_auto_image_caches: u32,
    /// vCPU an account's unfinished groups may hold together (`berth admin account
    /// set-quota` overrides it per account).
    #[arg(long, default_value_t = 1000.0, value_parser = non_negative)]
    pub max_cpu: f64,
    /// GiB of memory an account's unfinished groups may hold together.
    #[arg(long, default_value_t = 4000.0, value_parser = non_negative)]
    pub max_memory: f64,
    /// Unfinished container groups an account may hold.
    #[arg(long, default_value_t = 1000)]
    pub max_groups: u64,
    /// GiB of temporary storage (EphemeralStorage, 30 GiB by default per group) an
    /// account's unfinished groups may hold together. The storage is thin: this bounds what
    /// one account can take of the backing filesystem.
    #[arg(long, default_value_t = 30_000.0, value_parser = non_negative)]
    pub max_storage: f64,
    /// GiB that the layers of one image may unpack to, all together; a larger image is
    /// refused when it is pulled.
    #[arg(long, default_value_t = 10.0, value_parser = non_negative)]
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

/// A finite number, zero or more.
pub(crate) fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a number of zero or more")),
    }
}

/// Applies the quotas and starts the image GC and the image-cache retention sweep.
pub async fn start(args: &CacheArgs, control: &Arc<Control>, agent: &Agent) -> anyhow::Result<()> {
    if args.image_gc_low > args.image_gc_high {
        anyhow::bail!(
            "--image-gc-low ({}) must not be above --image-gc-high ({})",
            args.image_gc_low,
            args.image_gc_high
        );
    }
    control.set_quota(Quota {
        max_image_caches: args.max_image_caches,
        max_auto_image_caches: args.max_auto_image_caches,
        max_cpu: args.max_cpu,
        max_memory: args.max_memory,
        max_groups: args.max_groups,
        max_storage: args.max_storage,
    });
    agent.set_unpack_limits(berth_image::UnpackLimits {
        max_bytes: (args.max_image_size * (1u64 << 30) as f64) as u64,
        max_entries: args.max_image_entries,
    });
    agent.set_image_access_ttl(Duration::from_secs(args.image_auth_ttl));
    let policy = GcPolicy {
        high_watermark_pct: args.image_gc_high,
        low_watermark_pct: args.image_gc_low,
        capacity_bytes: None,
    };
    agent.spawn_image_gc(policy, Duration::from_secs(args.image_gc_interval.max(1)));
    let resumed = control.resume_image_caches().await?;
    if resumed > 0 {
        tracing::info!(caches = resumed, "resumed interrupted image cache builds");
    }
    let control = control.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = control.expire_image_caches().await {
                tracing::warn!(error = %e, "cannot expire image caches");
            }
        }
    });
    Ok(())
}

#[async_trait]
impl CacheNode for LocalNode {
    async fn create_image_cache(&self, build: &CacheBuild) -> Result<u64, NodeError> {
        let pull = CachePull {
            account: build.account.clone(),
            credentials: build.registry_credentials.clone(),
            plain_http: build.plain_http_registries.clone(),
            insecure: build.insecure_registries.clone(),
        };
        self.agent
            .create_image_cache(&build.id, &build.images, &pull)
            .await
            .map(|info| info.size_bytes)
            .map_err(|e| NodeError::Failed(error_chain(&e)))
    }

    async fn delete_image_cache(&self, id: &str) -> Result<(), NodeError> {
        self.agent
            .delete_image_cache(id)
            .map_err(|e| NodeError::Failed(error_chain(&e)))
    }

    async fn image_cache_matches(&self, images: &[String]) -> Vec<(String, usize)> {
        self.agent.image_cache_matches(images)
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
