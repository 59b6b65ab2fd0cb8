//! The image cache a group names, made on this node when the node does not hold it (a node
//! of a cluster whose group was placed away from the node that built the cache): its images
//! are pulled with the cache's own credentials and pinned as the cache, before the group's
//! images are resolved from it. What fails leaves the group to pull its images itself.

use berth_core::{EventType, GroupRecord};
use tokio_util::sync::CancellationToken;

use super::state::GroupState;
use crate::files::error_chain;
use crate::host::Host;

/// Makes the group's image cache on the node unless the node holds it or its source does
/// not make it here.
pub async fn ensure_cache(
    host: &Host,
    rec: &GroupRecord,
    state: &GroupState,
    cancel: &CancellationToken,
) {
    let Some(id) = rec.spec.image_snapshot_id.as_deref() else {
        return;
    };
    if matches!(host.images.cache(id), Ok(Some(_))) {
        return;
    }
    // One at a time: a second group of the cache finds it made by the first.
    let _making = tokio::select! {
        g = host.cache_making.lock() => g,
        _ = cancel.cancelled() => return,
    };
    if matches!(host.images.cache(id), Ok(Some(_))) {
        return;
    }
    let order = match host.caches.order(&rec.id, id).await {
        Ok(Some(o)) => o,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(group = %rec.id, cache = id, error = %e, "cannot learn what the group's image cache holds");
            let msg = format!("Cannot make image cache {id} on this node: {e}; pulling the images");
            state.event(EventType::Warning, "Failed", msg, None);
            return;
        }
    };
    state.event(
        EventType::Normal,
        "MakingImageCache",
        format!("Making image cache {id} on this node"),
        None,
    );
    let opts = order.pull.options();
    let made = tokio::select! {
        r = host.images.create_cache(id, &order.images, &opts) => r,
        _ = cancel.cancelled() => return,
    };
    match made {
        Ok(info) => {
            tracing::info!(group = %rec.id, cache = id, bytes = info.size_bytes, "made the group's image cache on this node");
            if let Err(e) = host.caches.made(&rec.id, id).await {
                tracing::warn!(cache = id, error = %e, "cannot tell that this node holds the image cache");
            }
            state.event(
                EventType::Normal,
                "MadeImageCache",
                format!(
                    "Made image cache {id} on this node ({} bytes)",
                    info.size_bytes
                ),
                None,
            );
        }
        Err(e) => {
            let msg = format!(
                "Cannot make image cache {id} on this node: {}; pulling the images",
                error_chain(&e)
            );
            state.event(EventType::Warning, "Failed", msg, None);
        }
    }
}
