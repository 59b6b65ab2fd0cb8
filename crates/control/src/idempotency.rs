//! ClientToken idempotency of the create actions: what a token's first request is recorded as
//! (its parameters, as JSON), and what a later request with the same token answers: the first
//! request's id when its parameters are the same, else [`ControlError::TokenMismatch`]. The
//! store makes the token unique per account (`Store::insert_group_claiming`).

use berth_core::{GroupId, GroupSpec};
use berth_store::TokenUse;
use serde::{Deserialize, Serialize};

use crate::ControlError;

/// The parameters of a CreateContainerGroup as recorded with its token: the spec as the
/// request gave it (before an image cache is matched), the region left out as ECI does.
pub(crate) fn group_params(spec: &GroupSpec) -> Result<String, ControlError> {
    let mut spec = spec.clone();
    spec.region_id.clear();
    Ok(serde_json::to_string(&spec)?)
}

/// The answer to a request with a token first used as `prev`, whose parameters are `params`.
pub(crate) fn same_group(prev: TokenUse, params: &str) -> Result<GroupId, ControlError> {
    let before: GroupSpec = serde_json::from_str(&prev.params)?;
    let now: GroupSpec = serde_json::from_str(params)?;
    if before != now {
        return Err(ControlError::TokenMismatch);
    }
    GroupId::parse(&prev.resource_id).ok_or(ControlError::TokenResource(prev.resource_id))
}

/// The parameters of a CreateImageCache as recorded with its token, with the synthetic group
/// id it answered (the cache may be gone when the token is used again).
#[derive(Serialize, Deserialize)]
struct CacheParams {
    name: String,
    /// Sorted: their order does not matter.
    images: Vec<String>,
    #[serde(default)]
    container_group_id: String,
}

pub(crate) fn cache_params(
    name: &str,
    images: &[String],
    container_group_id: &str,
) -> Result<String, ControlError> {
    let mut images = images.to_vec();
    images.sort();
    Ok(serde_json::to_string(&CacheParams {
        name: name.to_string(),
        images,
        container_group_id: container_group_id.to_string(),
    })?)
}

/// The answer (cache id, group id) to a CreateImageCache with a token first used as `prev`.
pub(crate) fn same_cache(
    prev: TokenUse,
    name: &str,
    images: &[String],
) -> Result<(String, String), ControlError> {
    let mut before: CacheParams = serde_json::from_str(&prev.params)?;
    before.images.sort();
    let mut images = images.to_vec();
    images.sort();
    if before.name != name || before.images != images {
        return Err(ControlError::TokenMismatch);
    }
    Ok((prev.resource_id, before.container_group_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prev(id: &str, params: String) -> TokenUse {
        TokenUse {
            resource_id: id.into(),
            params,
            deleted: None,
        }
    }

    #[test]
    fn groups_compare_by_spec_without_region() {
        let id = GroupId::from_random([3; 20]);
        let mut a = GroupSpec {
            name: "web".into(),
            region_id: "local".into(),
            ..Default::default()
        };
        let first = group_params(&a).unwrap();
        a.region_id = String::new();
        let again = group_params(&a).unwrap();
        assert_eq!(
            same_group(prev(id.as_str(), first.clone()), &again).unwrap(),
            id
        );
        a.name = "other".into();
        let changed = group_params(&a).unwrap();
        assert!(matches!(
            same_group(prev(id.as_str(), first.clone()), &changed),
            Err(ControlError::TokenMismatch)
        ));
        assert!(matches!(
            same_group(prev("not-an-id", first), &again),
            Err(ControlError::TokenResource(_))
        ));
    }

    #[test]
    fn caches_compare_by_name_and_images_in_any_order() {
        let imgs = ["b".to_string(), "a".to_string()];
        let p = cache_params("c", &imgs, "eci-1").unwrap();
        let ids = same_cache(prev("imc-1", p.clone()), "c", &["a".into(), "b".into()]).unwrap();
        assert_eq!(ids, ("imc-1".to_string(), "eci-1".to_string()));
        assert!(matches!(
            same_cache(prev("imc-1", p.clone()), "d", &imgs),
            Err(ControlError::TokenMismatch)
        ));
        assert!(matches!(
            same_cache(prev("imc-1", p), "c", &["a".into()]),
            Err(ControlError::TokenMismatch)
        ));
    }
}
