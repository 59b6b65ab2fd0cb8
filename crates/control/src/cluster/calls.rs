//! The control plane's answers to node calls (docs/NODE_PROTOCOL.md): a join, then watches,
//! reports and heartbeats of a node whose signature the server checked with the key
//! [`Control::node_key`] gave it. A node sees and changes only the groups placed on it.

use std::pin::pin;
use std::time::Duration;

use berth_core::node::{
    MAX_NODE_ADDRESS, MAX_NODE_CLASSES, MAX_NODE_IMAGES, MAX_NODE_IMAGE_REF, MAX_NODE_NAME,
    MAX_NODE_VOLUME_RULES,
};
use berth_core::{GroupId, GroupRecord, NodeInfo, NodeRecord, NodeState};
use berth_store::{AccountSeccomp, StoreError};
use chrono::Utc;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::protocol::{
    CacheOrder, CacheQuery, CachesHeld, Heartbeat, HeartbeatReply, JoinReply, JoinRequest,
    ReportBatch, ReportReply, SeccompQuery, SeccompReply, SeccompSetting, WatchReply,
    HEARTBEAT_SECS, MAX_REPORTS, MAX_WATCH_GROUPS, WATCH_WAIT_SECS,
};
use super::signing::KEY_LEN;
use crate::Control;

/// How often a waiting watch reads the store again: writes through this replica wake it at
/// once, and those of other replicas too where the store tells of them (PostgreSQL's
/// `LISTEN`); the poll is what is left when a word is lost.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// Why a node call was refused.
#[derive(Debug, thiserror::Error)]
pub enum NodeCallError {
    /// The node or its token is not known, or no longer valid (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The node may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The call is malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// What the call names is not there (404).
    #[error("{0}")]
    NotFound(String),
    /// The store failed (500).
    #[error("the control plane's store failed")]
    Store(#[from] StoreError),
}

impl NodeCallError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::Invalid(_) => 400,
            Self::NotFound(_) => 404,
            Self::Store(_) => 500,
        }
    }

    /// The code of the refusal's body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::Invalid(_) => "InvalidParameter",
            Self::NotFound(_) => "NotFound",
            Self::Store(_) => "InternalError",
        }
    }
}

fn invalid(msg: impl Into<String>) -> NodeCallError {
    NodeCallError::Invalid(msg.into())
}

/// `name`: 1 to 63 of `[a-z0-9-]`, not starting or ending with `-`.
fn check_name(name: &str) -> Result<(), NodeCallError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        invalid(format!(
            "node name {name:?}: 1 to {MAX_NODE_NAME} lowercase letters, digits and '-'"
        ))
    })
}

/// `address`: `host:port`, the host a name or an IP address (IPv6 in brackets).
fn check_address(address: &str) -> Result<(), NodeCallError> {
    let refuse = || invalid(format!("node address {address:?} is not host:port"));
    if address.len() > MAX_NODE_ADDRESS {
        return Err(refuse());
    }
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(refuse)?;
    port.parse::<u16>().map_err(|_| refuse())?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    host_ok.then_some(()).ok_or_else(refuse)
}

/// The longest host-path prefix a node may allow.
const MAX_NODE_PREFIX_BYTES: usize = 4096;

fn check_offer(offer: &berth_core::NodeOffer) -> Result<(), NodeCallError> {
    if offer.runtime_classes.len() > MAX_NODE_CLASSES {
        return Err(invalid(format!(
            "a node offers at most {MAX_NODE_CLASSES} runtime classes"
        )));
    }
    for c in &offer.runtime_classes {
        c.parse::<berth_core::RuntimeClass>()
            .map_err(|_| invalid(format!("unknown runtime class {c:?}")))?;
    }
    if offer.images.len() > MAX_NODE_IMAGES
        || offer.images.iter().any(|i| i.len() > MAX_NODE_IMAGE_REF)
    {
        return Err(invalid(format!(
            "a node lists at most {MAX_NODE_IMAGES} images of {MAX_NODE_IMAGE_REF} bytes"
        )));
    }
    if offer.storage_free_bytes > offer.storage_bytes {
        return Err(invalid("a node cannot have more storage free than it has"));
    }
    let v = &offer.volumes;
    let long = v.nfs_servers().any(|s| s.len() > 253)
        || v.host_path_prefixes()
            .any(|p| p.len() > MAX_NODE_PREFIX_BYTES);
    if v.nfs_servers().count() > MAX_NODE_VOLUME_RULES
        || v.host_path_prefixes().count() > MAX_NODE_VOLUME_RULES
        || long
    {
        return Err(invalid(format!(
            "a node allows at most {MAX_NODE_VOLUME_RULES} NFS servers (253 bytes each) and {MAX_NODE_VOLUME_RULES} host-path prefixes ({MAX_NODE_PREFIX_BYTES} bytes each)"
        )));
    }
    Ok(())
}

/// Compares two strings in time that depends only on their lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn random_text(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Control {
    /// A node presents its join token: it gets its id (the one it had, when it joined under
    /// its name before) and a new key.
    pub async fn node_join(&self, req: JoinRequest) -> Result<JoinReply, NodeCallError> {
        let refused = || NodeCallError::Unauthorized("the join token is not valid".into());
        let (id, secret) = req.token.split_once('.').ok_or_else(refused)?;
        if id.len() != 6 || secret.len() != 16 {
            return Err(refused());
        }
        let token = self.store.join_token(id).await?.ok_or_else(refused)?;
        let digest = hex::encode(Sha256::digest(secret.as_bytes()));
        if !same(&digest, &token.digest) {
            return Err(refused());
        }
        if token.expires <= Utc::now() {
            return Err(NodeCallError::Unauthorized(
                "the join token has expired".into(),
            ));
        }
        check_name(&req.name)?;
        check_address(&req.address)?;
        check_offer(&req.offer)?;
        let now = Utc::now();
        let old = self.store.node_by_name(&req.name).await?;
        let mut key = vec![0u8; KEY_LEN];
        rand::thread_rng().fill(&mut key[..]);
        let info = NodeInfo {
            id: old.as_ref().map_or_else(
                || format!("node-{}", random_text(16)),
                |o| o.info.id.clone(),
            ),
            name: req.name.clone(),
            address: req.address,
            state: NodeState::Ready,
            cordoned: old.as_ref().is_some_and(|o| o.info.cordoned),
            draining: old.as_ref().is_some_and(|o| o.info.draining),
            offer: req.offer,
            joined: old.as_ref().map_or(now, |o| o.info.joined),
            last_heartbeat: now,
        };
        let node = info.id.clone();
        self.store
            .upsert_node(&NodeRecord {
                info,
                key: key.clone(),
            })
            .await?;
        tracing::info!(node = %node, name = %req.name, token = id, rejoined = old.is_some(), "a node joined");
        self.cluster.wake_placement();
        Ok(JoinReply {
            node,
            key: hex::encode(key),
            heartbeat_secs: HEARTBEAT_SECS,
        })
    }

    /// The key a node signs with; `None` for a node not known.
    pub async fn node_key(&self, node: &str) -> Result<Option<Vec<u8>>, NodeCallError> {
        Ok(self.store.get_node(node).await?.map(|n| n.key))
    }

    /// The groups placed on `node` written after revision `after`, waiting up to
    /// [`WATCH_WAIT_SECS`] for one (a watch from 0 answers at once).
    pub async fn node_watch(&self, node: &str, after: u64) -> Result<WatchReply, NodeCallError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(WATCH_WAIT_SECS);
        let elsewhere = self.store.group_writes();
        loop {
            let mut changed = pin!(self.cluster.changed.notified());
            changed.as_mut().enable();
            // Both registered before the read, so a write committed meanwhile is not missed.
            let mut written = elsewhere.as_ref().map(|n| Box::pin(n.notified()));
            if let Some(w) = written.as_mut() {
                w.as_mut().enable();
            }
            let page = self
                .store
                .node_groups(node, after, MAX_WATCH_GROUPS)
                .await?;
            if !page.groups.is_empty() || after == 0 {
                let more = page.groups.len() >= MAX_WATCH_GROUPS;
                // The store's answer says where every write up to it was read.
                let revision = page.revision.max(after);
                return Ok(WatchReply {
                    revision,
                    groups: page.groups.into_iter().map(|(_, g)| g).collect(),
                    more,
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(WatchReply {
                    revision: page.revision.max(after),
                    groups: Vec::new(),
                    more: false,
                });
            }
            let wait = WATCH_POLL.min(deadline - now);
            let _ = tokio::time::timeout(wait, async {
                let other = async {
                    match written.as_mut() {
                        Some(w) => w.as_mut().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = changed => {}
                    _ = other => {}
                }
            })
            .await;
        }
    }

    /// Folds a node's reports into its groups' records. A report of a group not placed on
    /// the node is refused, checked again where it would be written.
    pub async fn node_report(
        &self,
        node: &str,
        batch: ReportBatch,
    ) -> Result<ReportReply, NodeCallError> {
        if batch.reports.len() > MAX_REPORTS {
            return Err(invalid(format!(
                "a report call carries at most {MAX_REPORTS} reports"
            )));
        }
        let mut refused = Vec::new();
        for r in batch.reports {
            if GroupId::parse(r.group.as_str()).is_none() {
                return Err(invalid(format!(
                    "{:?} is not a container group id",
                    r.group.as_str()
                )));
            }
            if !self.report_from(node, &r.group, r.observed).await? {
                refused.push(r.group);
            }
        }
        if !refused.is_empty() {
            tracing::warn!(
                node,
                refused = refused.len(),
                "refused reports of groups not placed on the node"
            );
        }
        Ok(ReportReply { refused })
    }

    /// The group, which must be placed on the node.
    async fn placed_on(&self, node: &str, group: &GroupId) -> Result<GroupRecord, NodeCallError> {
        if GroupId::parse(group.as_str()).is_none() {
            return Err(invalid(format!(
                "{:?} is not a container group id",
                group.as_str()
            )));
        }
        let rec = self.store.get_group(None, group).await?;
        rec.filter(|r| r.node.as_deref() == Some(node))
            .ok_or_else(|| {
                NodeCallError::Forbidden(format!("the group {group} is not placed on this node"))
            })
    }

    /// The image cache of `q.group`, which must be placed on the node, for the node to make
    /// it; with `q.made`, records the node as one that holds it.
    pub async fn node_cache(&self, node: &str, q: CacheQuery) -> Result<CacheOrder, NodeCallError> {
        let rec = self.placed_on(node, &q.group).await?;
        let none = || {
            NodeCallError::NotFound(format!("the group {} names no usable image cache", q.group))
        };
        let id = rec.spec.image_snapshot_id.as_deref().ok_or_else(none)?;
        let cache = self
            .store
            .get_cache(Some(&rec.account), id)
            .await?
            .filter(|c| c.status.usable())
            .ok_or_else(none)?;
        if q.made && !cache.nodes.iter().any(|n| n == node) {
            let res = self
                .store
                .modify_cache(id, &mut |c| {
                    if !c.nodes.iter().any(|n| n == node) {
                        c.nodes.push(node.to_string());
                    }
                })
                .await;
            match res {
                Ok(_) => tracing::info!(
                    cache = id,
                    node,
                    "a node made an image cache for a group placed on it"
                ),
                Err(StoreError::NotFound(_)) => return Err(none()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(CacheOrder {
            id: cache.id,
            account: cache.account,
            images: cache.images,
            registry_credentials: cache.registry_credentials,
            plain_http_registries: cache.plain_http_registries,
            insecure_registries: cache.insecure_registries,
        })
    }

    /// The image caches whose records list the node as holding them.
    pub async fn node_caches(&self, node: &str) -> Result<CachesHeld, NodeCallError> {
        let ids = self
            .store
            .list_caches(None)
            .await?
            .into_iter()
            .filter(|c| c.nodes.iter().any(|n| n == node))
            .map(|c| c.id)
            .collect();
        Ok(CachesHeld { ids })
    }

    /// The seccomp setting of the account that owns `q.group`, which must be placed on the
    /// node: a node learns no other account's setting.
    pub async fn node_seccomp(
        &self,
        node: &str,
        q: SeccompQuery,
    ) -> Result<SeccompReply, NodeCallError> {
        let rec = self.placed_on(node, &q.group).await?;
        let setting = match self.store.account_seccomp(&rec.account).await? {
            AccountSeccomp::Default => SeccompSetting::Default,
            AccountSeccomp::Unconfined => SeccompSetting::Unconfined,
            AccountSeccomp::Profile(text) => SeccompSetting::Profile(text),
        };
        Ok(SeccompReply { setting })
    }

    /// A node is alive and offers this.
    pub async fn node_heartbeat(
        &self,
        node: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, NodeCallError> {
        check_offer(&hb.offer)?;
        let now = Utc::now();
        let mut back = false;
        let info = self
            .store
            .modify_node(node, &mut |n| {
                back = n.state == NodeState::NotReady;
                n.state = NodeState::Ready;
                n.last_heartbeat = now;
                n.offer = hb.offer.clone();
            })
            .await?
            .ok_or_else(|| NodeCallError::Unauthorized(format!("no node {node}")))?;
        if back {
            tracing::info!(node, name = %info.name, "a node is heard from again: Ready");
            self.cluster.wake_placement();
        }
        Ok(HeartbeatReply {
            state: info.state,
            cordoned: info.cordoned,
            draining: info.draining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert!(check_name("node-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["10.0.0.1:8090", "[::1]:80", "node-1.example:8090"] {
            assert!(check_address(good).is_ok(), "{good:?}");
        }
        for bad in ["10.0.0.1", "host:", "host:99999", "a/b:80", ":80", "a b:80"] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
