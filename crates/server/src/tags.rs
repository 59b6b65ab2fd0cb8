//! Handlers of TagResources, UntagResources and ListTagResources: decoded request in,
//! response body out. A request naming another region than this one finds none of its
//! resources (the first id is not found; a listing is empty).

use std::sync::Arc;

use berth_control::{Control, ControlError};
use berth_control::{TagCursor, TagQuery};
use berth_core::{TagChange, TagResourceType};
use berth_eci::request::ListTagResourcesRequest;
use berth_eci::response::{ListTagResourcesResponse, RequestIdResponse, TagResource};
use berth_eci::ApiError;

use crate::actions::{json, map_err};

fn other_region(control: &Control, region: &Option<String>) -> bool {
    region
        .as_deref()
        .is_some_and(|r| !r.is_empty() && r != control.region())
}

/// TagResources and UntagResources: `change` on every one of `ids`, or on none.
pub(crate) async fn change(
    control: &Arc<Control>,
    account: &str,
    region: &Option<String>,
    kind: TagResourceType,
    ids: &[String],
    change: &TagChange,
) -> Result<serde_json::Value, ApiError> {
    if other_region(control, region) {
        let id = ids.first().cloned().unwrap_or_default();
        return Err(map_err(match kind {
            TagResourceType::ContainerGroup => ControlError::NotFound(id),
            TagResourceType::ImageCache => ControlError::CacheNotFound(id),
        }));
    }
    control
        .change_tags(account, kind, ids, change)
        .await
        .map_err(map_err)?;
    json(RequestIdResponse::default())
}

pub(crate) async fn list(
    control: &Arc<Control>,
    account: &str,
    r: ListTagResourcesRequest,
) -> Result<serde_json::Value, ApiError> {
    let after = r
        .next_token
        .as_deref()
        .map(|t| {
            TagCursor::parse(t).ok_or_else(|| {
                ApiError::invalid_parameter("NextToken", "is not a token this listing handed out")
            })
        })
        .transpose()?;
    if other_region(control, &r.region_id) {
        return json(ListTagResourcesResponse::default());
    }
    let q = TagQuery {
        ids: r.ids,
        tags: r.tags,
    };
    let page = control
        .list_tags(
            account,
            r.resource_type,
            &q,
            r.limit as usize,
            after.as_ref(),
        )
        .await
        .map_err(map_err)?;
    let kind = r.resource_type.as_str();
    json(ListTagResourcesResponse {
        request_id: String::new(),
        next_token: page.next.map(|c| c.encode()).unwrap_or_default(),
        tag_resources: page
            .rows
            .into_iter()
            .map(|t| TagResource {
                resource_id: t.resource_id,
                resource_type: kind.to_string(),
                tag_key: t.key,
                tag_value: t.value,
            })
            .collect(),
    })
}
