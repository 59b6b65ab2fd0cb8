//! Handlers of the image cache actions and of ListUsage: decoded request in, response body
//! out; the work is the control plane's.

use std::sync::Arc;

use berth_control::{CacheFilter, Control, ImageCacheUpdate, NewImageCache};
use berth_eci::request::{
    CreateImageCacheRequest, DeleteImageCacheRequest, DescribeImageCachesRequest,
    UpdateImageCacheRequest,
};
use berth_eci::response::{
    CreateImageCacheResponse, DescribeImageCachesResponse, ImageCache, ListUsageResponse,
    RequestIdResponse,
};
use berth_eci::ApiError;

use crate::actions::{json, map_err};

pub(crate) async fn create(
    control: &Arc<Control>,
    account: &str,
    r: CreateImageCacheRequest,
) -> Result<serde_json::Value, ApiError> {
    let req = NewImageCache {
        name: r.name,
        images: r.images,
        registry_credentials: r.registry_credentials,
        plain_http_registries: r.plain_http_registries,
        insecure_registries: r.insecure_registries,
        retention_days: r.retention_days,
        elimination_strategy: r.elimination_strategy.unwrap_or_default(),
        size_gib: r.size_gib,
        tags: r.tags,
        client_token: r.client_token,
    };
    let (id, group) = control
        .create_image_cache(account, req)
        .await
        .map_err(map_err)?;
    json(CreateImageCacheResponse {
        request_id: String::new(),
        image_cache_id: id,
        container_group_id: group,
    })
}

pub(crate) async fn describe(
    control: &Arc<Control>,
    account: &str,
    r: DescribeImageCachesRequest,
) -> Result<serde_json::Value, ApiError> {
    let other_region = r
        .region_id
        .as_deref()
        .is_some_and(|x| !x.is_empty() && x != control.region());
    if other_region {
        return json(DescribeImageCachesResponse::default());
    }
    let mut ids = r.ids;
    ids.extend(r.snapshot_ids);
    let f = CacheFilter {
        ids,
        names: r.names,
        image: r.image,
        match_images: r.match_images,
        full_match: r.image_full_match,
        tags: r.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    };
    let page = control
        .describe_image_caches(account, &f, r.limit as usize, r.next_token.as_deref())
        .await
        .map_err(map_err)?;
    json(DescribeImageCachesResponse {
        request_id: String::new(),
        total_count: page.total,
        next_token: page.next_token.unwrap_or_default(),
        image_caches: page.caches.iter().map(ImageCache::from_record).collect(),
    })
}

pub(crate) async fn update(
    control: &Arc<Control>,
    account: &str,
    r: UpdateImageCacheRequest,
) -> Result<serde_json::Value, ApiError> {
    let u = ImageCacheUpdate {
        name: r.name,
        images: r.images,
        registry_credentials: r.registry_credentials,
        plain_http_registries: r.plain_http_registries,
        insecure_registries: r.insecure_registries,
        retention_days: r.retention_days,
        elimination_strategy: r.elimination_strategy,
        size_gib: r.size_gib,
        tags: r.tags,
    };
    control
        .update_image_cache(account, &r.id, u)
        .await
        .map_err(map_err)?;
    json(RequestIdResponse::default())
}

pub(crate) async fn delete(
    control: &Arc<Control>,
    account: &str,
    r: DeleteImageCacheRequest,
) -> Result<serde_json::Value, ApiError> {
    control
        .delete_image_cache(account, &r.id)
        .await
        .map_err(map_err)?;
    json(RequestIdResponse::default())
}

pub(crate) async fn usage(
    control: &Arc<Control>,
    account: &str,
) -> Result<serde_json::Value, ApiError> {
    let attributes = control
        .usage(account)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|(k, v)| {
            let n = if v.fract() == 0.0 && v.abs() < 1e15 {
                serde_json::Value::from(v as i64)
            } else {
                serde_json::Value::from(v)
            };
            (k, n)
        })
        .collect();
    json(ListUsageResponse {
        request_id: String::new(),
        attributes,
    })
}
