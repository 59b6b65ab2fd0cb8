//! Who builds an image cache: one builder at a time. A build running in this process is
//! never started twice here; in a cluster the builder also holds the lease
//! `cache-build:<id>`, renewed while the build runs, so that a replica that starts, or the
//! leader's sweep, resumes only the builds whose replica is gone.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Control;

/// How long a build's lease lasts unless renewed, and how often it is renewed.
const LEASE_TTL: Duration = Duration::from_secs(30);
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// The builds running in this process.
#[derive(Default)]
pub(crate) struct Builds(Arc<Mutex<HashSet<String>>>);

/// A build claimed by this process: the cache id, and the lease holder in a cluster.
pub(crate) struct Claim {
    id: String,
    holder: Option<String>,
    builds: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.builds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

fn lease_name(id: &str) -> String {
    format!("cache-build:{id}")
}

impl Control {
    /// Claims the build of cache `id`: `None` when it is being built already, here or by a
    /// live replica.
    pub(crate) async fn claim_build(&self, id: &str) -> Option<Claim> {
        let builds = Arc::clone(&self.caches.builds.0);
        if !builds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
        {
            return None;
        }
        let claim = Claim {
            id: id.to_string(),
            holder: self.cluster.holder.get().cloned(),
            builds,
        };
        if let Some(holder) = &claim.holder {
            match self
                .store
                .take_lease(&lease_name(id), holder, LEASE_TTL)
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(cache = %id, error = %e, "cannot take the lease of an image cache build");
                    return None;
                }
            }
        }
        Some(claim)
    }

    /// Runs `work` while keeping the claim's lease.
    pub(crate) async fn while_claimed<T>(&self, claim: &Claim, work: impl Future<Output = T>) -> T {
        let Some(holder) = &claim.holder else {
            return work.await;
        };
        tokio::pin!(work);
        let mut renew = tokio::time::interval(LEASE_RENEW);
        renew.tick().await;
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = renew.tick() => {
                    let name = lease_name(&claim.id);
                    if let Err(e) = self.store.take_lease(&name, holder, LEASE_TTL).await {
                        tracing::warn!(cache = %claim.id, error = %e, "cannot renew the lease of an image cache build");
                    }
                }
            }
        }
    }

    /// Ends the claim once the build's outcome is recorded.
    pub(crate) async fn release_build(&self, claim: Claim) {
        if let Some(holder) = &claim.holder {
            if let Err(e) = self
                .store
                .release_lease(&lease_name(&claim.id), holder)
                .await
            {
                tracing::warn!(cache = %claim.id, error = %e, "cannot release the lease of an image cache build");
            }
        }
    }
}
