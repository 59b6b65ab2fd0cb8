//! A group's images: from its image cache when it names one, else pulled (with the
//! account's access proof) and pinned for as long as the group exists.

use std::collections::HashMap;
use std::sync::Arc;

use berth_core::{ContainerState, Event, EventDetail, EventType, GroupSpec};
use berth_image::{Image, ImageStore, PullEvent, PullOptions};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::state::GroupState;
use crate::files::error_chain;

/// Pulls every image of the group, retrying with back-off until it works or the group goes.
/// A stored image serves the group only when its account proved it may pull it (see
/// `berth_image`'s access proofs); what the group resolved once (its pins) it uses again
/// after a restart without asking a registry.
pub async fn pull_images(
    store: &ImageStore,
    spec: &GroupSpec,
    account: &str,
    state: &Arc<GroupState>,
    cancel: &CancellationToken,
) -> Option<HashMap<String, Image>> {
    let mut images = HashMap::new();
    let opts_for = |c: &berth_core::ContainerSpec| PullOptions {
        credentials: spec.registry_credentials.clone(),
        plain_http: spec.plain_http_registries.clone(),
        insecure: spec.insecure_registries.clone(),
        policy: c.image_pull_policy,
        account: Some(account.to_owned()),
        pinned_by: Some(spec_owner(state)),
    };
    for c in spec.all_containers() {
        if images.contains_key(&c.image) {
            continue;
        }
        let init = spec.init_containers.iter().any(|i| i.name == c.name);
        if let Some(img) = from_cache(store, spec, account, &c.image, state, &c.name) {
            images.insert(c.image.clone(), img);
            continue;
        }
        let mut attempt = 0u32;
        loop {
            let st = state.clone();
            let name = c.name.clone();
            let on_event = move |ev: PullEvent| match ev {
                PullEvent::Pulling { reference } => st.event(
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image \"{reference}\""),
                    Some(&name),
                ),
                PullEvent::Pulled {
                    reference,
                    bytes,
                    elapsed,
                    cached,
                    ..
                } => {
                    if cached {
                        let msg =
                            format!("Container image \"{reference}\" already present on machine");
                        return st.event(EventType::Normal, "Pulled", msg, Some(&name));
                    }
                    let msg = format!(
                        "Successfully pulled image \"{reference}\" in {:.3}s ({bytes} bytes)",
                        elapsed.as_secs_f64()
                    );
                    let detail = EventDetail::Pull {
                        millis: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                        bytes,
                    };
                    st.push_event(
                        Event::new(EventType::Normal, "Pulled", msg, Some(&name), Utc::now())
                            .with_detail(detail),
                    )
                }
            };
            let opts = opts_for(c);
            let res = tokio::select! {
                r = store.ensure(&c.image, &opts, &on_event) => r,
                _ = cancel.cancelled() => return None,
            };
            match res {
                Ok(img) => {
                    // Pinned for as long as the group exists: GC never takes an image in use.
                    if let Err(e) = store.pin_deferred(&spec_owner(state), &img.digest) {
                        tracing::warn!(image = %c.image, error = %e, "cannot pin image");
                    }
                    images.insert(c.image.clone(), img);
                    break;
                }
                Err(e) => {
                    let msg = format!("Failed to pull image \"{}\": {}", c.image, error_chain(&e));
                    let detail = if attempt == 0 {
                        "ErrImagePull"
                    } else {
                        "ImagePullBackOff"
                    };
                    let delay = berth_core::backoff_delay(attempt);
                    state.set_container(
                        init,
                        &c.name,
                        Some((EventType::Warning, "Failed", msg.clone())),
                        |s| {
                            s.current = ContainerState::waiting(detail);
                            s.current.reason = Some(detail.to_string());
                            s.current.message = Some(msg.clone());
                        },
                    );
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return None,
                    }
                }
            }
        }
    }
    Some(images)
}

/// The image from the group's image cache (`ImageSnapshotId`), without asking any registry;
/// `None` when the group names no cache or the cache lacks the image (it is pulled then).
fn from_cache(
    store: &ImageStore,
    spec: &GroupSpec,
    account: &str,
    reference: &str,
    state: &Arc<GroupState>,
    container: &str,
) -> Option<Image> {
    let id = spec.image_snapshot_id.as_deref()?;
    match store.resolve_from_cache(id, reference, Some(account)) {
        Ok(img) => {
            if let Err(e) = store.pin_deferred(&spec_owner(state), &img.digest) {
                tracing::warn!(image = %reference, error = %e, "cannot pin image");
            }
            state.event(
                EventType::Normal,
                "Pulled",
                format!("Container image \"{reference}\" already present in image cache {id}"),
                Some(container),
            );
            Some(img)
        }
        Err(e) => {
            tracing::info!(image = %reference, cache = %id, error = %e, "image not served by the image cache; pulling it");
            None
        }
    }
}

fn spec_owner(state: &GroupState) -> String {
    format!("group:{}", state.id())
}
