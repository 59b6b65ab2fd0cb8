//! Image caches as the control plane records them (ECI `CreateImageCache`): a named set of
//! images that a node holds pulled, unpacked and pinned, with its state, retention and events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::spec::{RegistryCredential, Tag};

/// State of an image cache (ECI values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheStatus {
    #[default]
    Preparing,
    Creating,
    Ready,
    Failed,
    Updating,
    UpdateFailed,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "Preparing",
            Self::Creating => "Creating",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
            Self::Updating => "Updating",
            Self::UpdateFailed => "UpdateFailed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Preparing,
            Self::Creating,
            Self::Ready,
            Self::Failed,
            Self::Updating,
            Self::UpdateFailed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether groups may start from the cache: Ready, or being updated from Ready (the old
    /// images stay until the update is done) or after a failed update.
    pub fn usable(self) -> bool {
        matches!(self, Self::Ready | Self::Updating | Self::UpdateFailed)
    }

    /// Whether UpdateImageCache is allowed (ECI: Ready or UpdateFailed).
    pub fn updatable(self) -> bool {
        matches!(self, Self::Ready | Self::UpdateFailed)
    }
}

/// One image cache of an account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageCacheRecord {
    /// `imc-…`.
    pub id: String,
    pub account: String,
    pub name: String,
    pub region_id: String,
    /// Images as the user wrote them, in order.
    pub images: Vec<String>,
    pub status: CacheStatus,
    /// The (synthetic) group that built it, as ECI reports it.
    pub container_group_id: String,
    pub creation_time: DateTime<Utc>,
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// When it goes (from `retention_days`, or a day after a failure).
    #[serde(default)]
    pub expire_time: Option<DateTime<Utc>>,
    /// `LRU` (evicted when the quota is full) or empty.
    #[serde(default)]
    pub elimination_strategy: String,
    #[serde(default)]
    pub last_matched_time: Option<DateTime<Utc>>,
    /// Bytes its layers take on the node.
    #[serde(default)]
    pub size_bytes: u64,
    /// `ImageCacheSize` asked for (GiB).
    #[serde(default)]
    pub size_gib: u32,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Made by `AutoMatchImageCache`, not by CreateImageCache.
    #[serde(default)]
    pub auto_created: bool,
    #[serde(default)]
    pub registry_credentials: Vec<RegistryCredential>,
    #[serde(default)]
    pub plain_http_registries: Vec<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    pub client_token: Option<String>,
    /// Images a running update is making the cache hold.
    #[serde(default)]
    pub pending_images: Option<Vec<String>>,
    /// The nodes of a cluster that hold the cache (node ids; docs/CLUSTER.md): the one that
    /// built it, and those that made it for a group placed on them. Empty on a single
    /// machine, whose one node holds every cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl ImageCacheRecord {
    /// Appends an event, folding repeats as group events do.
    pub fn push_event(&mut self, ev: Event) {
        if let Some(last) = self.events.iter_mut().rev().find(|e| e.same_as(&ev)) {
            last.count += ev.count;
            last.last_timestamp = ev.last_timestamp;
            return;
        }
        self.events.push(ev);
        const MAX_EVENTS: usize = 100;
        if self.events.len() > MAX_EVENTS {
            let excess = self.events.len() - MAX_EVENTS;
            self.events.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in [
            CacheStatus::Preparing,
            CacheStatus::Creating,
            CacheStatus::Ready,
            CacheStatus::Failed,
            CacheStatus::Updating,
            CacheStatus::UpdateFailed,
        ] {
            assert_eq!(CacheStatus::parse(s.as_str()), Some(s));
        }
        assert!(CacheStatus::Ready.usable() && !CacheStatus::Creating.usable());
        assert!(CacheStatus::UpdateFailed.updatable() && !CacheStatus::Updating.updatable());
    }
}
