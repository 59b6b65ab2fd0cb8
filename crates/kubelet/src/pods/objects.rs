//! The ConfigMaps and Secrets read to render running pods' volumes again, each kept for the
//! volume resync period, as the kubelet's `Cache` strategy keeps them: the pods of one
//! Deployment reference the same objects, and cost one read of each per period, not one per
//! pod. A new pod's objects are always read afresh. Readers of one stale object wait for the
//! first one's read instead of each reading it (the workers reconcile the pods of a
//! Deployment side by side).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use tokio::time::Instant;

/// Most objects of a kind kept; past it, those older than their period go.
const MAX_KEPT: usize = 16 * 1024;

/// An object's namespace and name.
type Key = (String, String);

/// Objects of one kind by namespace and name, with when they were read (`None`: not found),
/// and the reads under way.
struct Kept<K> {
    objects: Mutex<HashMap<Key, (Instant, Option<K>)>>,
    reading: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Kept<K> {
    fn default() -> Self {
        Self {
            objects: Mutex::default(),
            reading: Mutex::default(),
        }
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
        if let Some(obj) = self.fresh(&key, ttl) {
            return Ok(obj);
        }
        // One read of the key at a time; who waited finds it fresh.
        let turn = {
            let mut r = self.reading.lock().unwrap_or_else(|p| p.into_inner());
            r.entry(key.clone()).or_default().clone()
        };
        let read = {
            let _held = turn.lock().await;
            match self.fresh(&key, ttl) {
                Some(obj) => Ok(obj),
                None => self.read(api, key.clone(), ttl).await,
            }
        };
        let mut r = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and this one: nobody else waits for the key.
        if Arc::strong_count(&turn) <= 2 {
            r.remove(&key);
        }
        read
    }

    /// The object kept for `key` if it was read less than `ttl` ago.
    fn fresh(&self, key: &Key, ttl: Duration) -> Option<Option<K>> {
        let map = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let (at, obj) = map.get(key)?;
        (Instant::now().duration_since(*at) < ttl).then(|| obj.clone())
    }

    async fn read(&self, api: &Api<K>, key: Key, ttl: Duration) -> Result<Option<K>, kube::Error> {
        let got = api.get_opt(&key.1).await?;
        let now = Instant::now();
        let mut map = self.objects.lock().unwrap_or_else(|p| p.into_inner());
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

#[cfg(test)]
mod tests {
    use super::super::tests::{apiserver, Reply, Route, Seen};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn readers_of_one_stale_object_share_one_read() {
        let route: Route = Box::new(|s: &Seen| match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/api/v1/namespaces/shop/configmaps/settings") => Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "settings", "namespace": "shop",
                                    "resourceVersion": "7"},
                       "data": {"greeting": "hello"}}),
            ),
            _ => panic!("{} {}", s.method, s.path),
        });
        let (client, seen) = apiserver(route);
        let api: Api<ConfigMap> = Api::namespaced(client, "shop");
        let objects = Objects::default();
        let ttl = Duration::from_secs(60);
        let reads = (0..10).map(|_| objects.config_map(&api, "shop", "settings", ttl));
        for got in futures_util::future::join_all(reads).await {
            let cm = got.unwrap().expect("found");
            assert_eq!(cm.data.unwrap()["greeting"], "hello");
        }
        assert_eq!(seen.lock().unwrap().len(), 1, "one read for ten readers");
        assert!(objects.config_maps.reading.lock().unwrap().is_empty());
        // Stale again: read once more.
        objects
            .config_map(&api, "shop", "settings", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
