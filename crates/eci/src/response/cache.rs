//! Response bodies of the image cache operations and of ListUsage (ECI_API.md §7.2).

use std::collections::BTreeMap;

use berth_core::ImageCacheRecord;
use serde::{Deserialize, Serialize};

use super::{time, time_or_empty, GroupEvent, TagInfo};

const GIB: u64 = 1 << 30;

/// CreateImageCache.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateImageCacheResponse {
    pub request_id: String,
    pub image_cache_id: String,
    pub container_group_id: String,
}

/// One entry of `ImageCaches[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageCache {
    pub image_cache_id: String,
    pub image_cache_name: String,
    pub container_group_id: String,
    pub creation_time: String,
    pub elimination_strategy: String,
    pub events: Vec<GroupEvent>,
    pub expire_date_time: String,
    pub flash_snapshot_id: String,
    /// GiB (rounded up; at least 1 once anything is stored).
    pub image_cache_size: u64,
    pub images: Vec<String>,
    pub last_matched_time: String,
    pub progress: String,
    pub region_id: String,
    pub resource_group_id: String,
    pub snapshot_id: String,
    pub status: String,
    pub tags: Vec<TagInfo>,
}

impl ImageCache {
    pub fn from_record(r: &ImageCacheRecord) -> Self {
        let progress = match r.status {
            berth_core::CacheStatus::Ready => "100%",
            berth_core::CacheStatus::Preparing => "0%",
            _ => "",
        };
        Self {
            image_cache_id: r.id.clone(),
            image_cache_name: r.name.clone(),
            container_group_id: r.container_group_id.clone(),
            creation_time: time(r.creation_time),
            elimination_strategy: r.elimination_strategy.clone(),
            events: r
                .events
                .iter()
                .map(|e| GroupEvent {
                    count: e.count,
                    event_type: e.event_type.as_str().to_string(),
                    name: r.id.clone(),
                    reason: e.reason.clone(),
                    message: e.message.clone(),
                    first_timestamp: time(e.first_timestamp),
                    last_timestamp: time(e.last_timestamp),
                })
                .collect(),
            expire_date_time: time_or_empty(r.expire_time),
            flash_snapshot_id: String::new(),
            image_cache_size: r.size_bytes.div_ceil(GIB),
            images: r.images.clone(),
            last_matched_time: time_or_empty(r.last_matched_time),
            progress: progress.to_string(),
            region_id: r.region_id.clone(),
            resource_group_id: String::new(),
            snapshot_id: r.id.clone(),
            status: r.status.as_str().to_string(),
            tags: r
                .tags
                .iter()
                .map(|t| TagInfo {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect(),
        }
    }
}

/// DescribeImageCaches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeImageCachesResponse {
    pub request_id: String,
    pub total_count: u64,
    pub next_token: String,
    pub image_caches: Vec<ImageCache>,
}

/// ListUsage: `Attributes` maps `UsedCpu`, `MaxCpu`, `UsedImageCacheCount`… to numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListUsageResponse {
    pub request_id: String,
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{CacheStatus, Event, EventType};
    use chrono::TimeZone;

    #[test]
    fn image_cache_has_the_sdk_keys() {
        let t = chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 5).unwrap();
        let mut r = ImageCacheRecord {
            id: "imc-1".into(),
            name: "c1".into(),
            region_id: "local".into(),
            images: vec!["busybox".into()],
            status: CacheStatus::Ready,
            container_group_id: "eci-1".into(),
            creation_time: t,
            size_bytes: 5,
            elimination_strategy: "LRU".into(),
            ..Default::default()
        };
        r.push_event(Event::new(EventType::Normal, "Created", "done", None, t));
        let v = serde_json::to_value(ImageCache::from_record(&r)).unwrap();
        for key in [
            "ImageCacheId",
            "ImageCacheName",
            "ContainerGroupId",
            "CreationTime",
            "EliminationStrategy",
            "Events",
            "ExpireDateTime",
            "ImageCacheSize",
            "Images",
            "LastMatchedTime",
            "Progress",
            "RegionId",
            "SnapshotId",
            "Status",
            "Tags",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["Status"], "Ready");
        assert_eq!(v["ImageCacheSize"], 1);
        assert_eq!(v["CreationTime"], "2024-01-01T00:00:05Z");
        assert_eq!(v["Events"][0]["Reason"], "Created");
        assert_eq!(v["Events"][0]["Type"], "Normal");
    }
}
