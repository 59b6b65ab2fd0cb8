//! The image caches a node of a cluster makes for the groups placed on it: what a cache
//! holds is asked of the control plane (`POST /node/v1/cache`, answered only for a group
//! placed on this node and a cache of the group's account), and the control plane is told
//! once the node holds it, so that placement prefers this node for the cache's groups.

use std::sync::OnceLock;

use berth_control::cluster::protocol::CacheQuery;
use berth_core::GroupId;
use berth_node::{CacheOrder, CachePull, CacheSource};

use super::link::{ControlLink, Refused};

#[derive(Default)]
pub(crate) struct ControlCaches {
    /// Set once the node has joined: no group starts before.
    link: OnceLock<ControlLink>,
}

impl ControlCaches {
    pub(crate) fn connect(&self, link: ControlLink) {
        let _ = self.link.set(link);
    }

    fn link(&self) -> Result<&ControlLink, String> {
        self.link
            .get()
            .ok_or_else(|| "the node has not joined the control plane yet".to_string())
    }
}

#[async_trait::async_trait]
impl CacheSource for ControlCaches {
    async fn order(&self, group: &GroupId, cache: &str) -> Result<Option<CacheOrder>, String> {
        let q = CacheQuery {
            group: group.clone(),
            made: false,
        };
        let order = match self.link()?.cache(&q).await {
            Ok(o) => o,
            // The cache is gone, or not the group's account's: nothing to make.
            Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status == 404) => {
                return Ok(None)
            }
            Err(e) => return Err(format!("{e:#}")),
        };
        if order.id != cache {
            return Err(format!(
                "the control plane answered for image cache {}, not {cache}",
                order.id
            ));
        }
        Ok(Some(CacheOrder {
            images: order.images,
            pull: CachePull {
                account: order.account,
                credentials: order.registry_credentials,
                plain_http: order.plain_http_registries,
                insecure: order.insecure_registries,
            },
        }))
    }

    async fn made(&self, group: &GroupId, _cache: &str) -> Result<(), String> {
        let q = CacheQuery {
            group: group.clone(),
            made: true,
        };
        self.link()?
            .cache(&q)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }
}
