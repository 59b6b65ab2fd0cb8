//! The ConfigMaps and Secrets read to render running pods' volumes again, each kept for the
//! volume resync period, as the kubelet's `Cache` strategy keeps them: the pods of one
//! Deployment reference the same objects, and cost one read of each per period, not one per
//! pod. A new pod's objects are always read afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use tokio::time::Instant;

/// Most objects of a kind kept; past it, those older than their period go.
const MAX_KEPT: usize = 16 * 1024;

/// An object's namespace and name.
type Key = (String, String);

/// Objects of one kind by namespace and name, with when they were read (`None`: not found).
struct Kept<K>(Mutex<HashMap<Key, (Instant, Option<K>)>>);

impl<K> Default for Kept<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K> Kept<K>
where
    K: Clone + kube::Resource + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    async fn get(
        &self,
        api: &Api<K>,
        ns: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<K>, kube::Error> {
        let key = (ns.to_string(), name.to_string());
        let now = Instant::now();
        {
            let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, obj)) = map.get(&key) {
                if now.duration_since(*at) < ttl {
                    return Ok(obj.clone());
                }
            }
        }
        let got = api.get_opt(name).await?;
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEPT {
            map.retain(|_, (at, _)| now.duration_since(*at) < ttl);
        }
        if map.len() < MAX_KEPT {
            map.insert(key, (now, got.clone()));
        }
        Ok(got)
    }
}

/// The ConfigMaps and Secrets kept.
#[derive(Default)]
pub struct Objects {
    config_maps: Kept<ConfigMap>,
    secrets: Kept<Secret>,
}

impl Objects {
    /// The ConfigMap `ns/name`, read at most `ttl` ago.
    pub async fn config_map(
        &self,
        api: &Api<ConfigMap>,
        ns: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<ConfigMap>, kube::Error> {
        self.config_maps.get(api, ns, name, ttl).await
    }

    /// The Secret `ns/name`, read at most `ttl` ago.
    pub async fn secret(
        &self,
        api: &Api<Secret>,
        ns: &str,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<Secret>, kube::Error> {
        self.secrets.get(api, ns, name, ttl).await
    }
}
