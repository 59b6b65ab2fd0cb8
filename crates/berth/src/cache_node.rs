//! Image caches of the in-process node agent, as the control plane sees them, the accounts'
//! quotas, and the retention sweep of image caches.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_control::{CacheBuild, CacheMade, CacheNode, Control, NodeError, Quota};
use berth_node::CachePull;

use crate::serve::LocalNode;

/// Flags of `berth serve` for the accounts' quotas of groups and image caches.
#[derive(clap::Args, Clone, Debug)]
pub struct CacheArgs {
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
}

/// A finite number, zero or more.
pub(crate) fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a number of zero or more")),
    }
}

/// Applies the quotas.
pub fn set_quota(args: &CacheArgs, control: &Control) {
    control.set_quota(Quota {
        max_image_caches: args.max_image_caches,
        max_auto_image_caches: args.max_auto_image_caches,
        max_cpu: args.max_cpu,
        max_memory: args.max_memory,
        max_groups: args.max_groups,
        max_storage: args.max_storage,
    });
}

/// Builds again the image caches a stop interrupted, and starts their retention sweep.
pub async fn start(control: &Arc<Control>) -> anyhow::Result<()> {
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
    async fn create_image_cache(&self, build: &CacheBuild) -> Result<CacheMade, NodeError> {
        let pull = CachePull {
            account: build.account.clone(),
            credentials: build.registry_credentials.clone(),
            plain_http: build.plain_http_registries.clone(),
            insecure: build.insecure_registries.clone(),
        };
        self.agent
            .create_image_cache(&build.id, &build.images, &pull)
            .await
            .map(|info| CacheMade {
                size_bytes: info.size_bytes,
                node: None,
            })
            .map_err(|e| NodeError::Failed(error_chain(&e)))
    }

    async fn delete_image_cache(&self, id: &str, _holders: &[String]) -> Result<(), NodeError> {
        self.agent
            .delete_image_cache(id)
            .map_err(|e| NodeError::Failed(error_chain(&e)))
    }

    async fn image_cache_matches(&self, images: &[String]) -> Vec<(String, usize)> {
        self.agent.image_cache_matches(images)
    }
}

/// An error with its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
