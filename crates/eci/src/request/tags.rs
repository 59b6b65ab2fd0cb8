//! TagResources, UntagResources and ListTagResources: decoded and checked against ECI's rules
//! for tags (a key of 1 to 128 characters, a value of at most 128, neither starting with
//! `aliyun` or `acs:` nor holding `http://` or `https://`), at most 50 `ResourceId.N` and 20
//! `Tag.N` or `TagKey.N` per call. The virtual kubelet's own keys (`k8s.pod.*`) cannot be set
//! or removed by name (`berth_core::RESERVED_TAG_PREFIX`).

use berth_core::{is_reserved_tag_key, Tag, TagChange, TagResourceType, RESERVED_TAG_PREFIX};

use super::{limit, MAX_TAGS};
use crate::error::ApiError;
use crate::params::Params;

/// Most `ResourceId.N` one call names.
pub const MAX_TAG_RESOURCE_IDS: usize = 50;
/// Longest tag key or value, in characters.
pub const MAX_TAG_TEXT: usize = 128;
/// ListTagResources' `Limit` when none is given, and the most rows a page holds.
pub const DEFAULT_TAG_LIMIT: u32 = 20;
pub const MAX_TAG_LIMIT: u32 = 50;

/// TagResources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagResourcesRequest {
    pub region_id: Option<String>,
    pub resource_type: TagResourceType,
    pub ids: Vec<String>,
    /// [`TagChange::Set`].
    pub change: TagChange,
}

/// UntagResources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UntagResourcesRequest {
    pub region_id: Option<String>,
    pub resource_type: TagResourceType,
    pub ids: Vec<String>,
    /// [`TagChange::Remove`] by `TagKey.N`, else [`TagChange::RemoveAll`] for `All=true`.
    pub change: TagChange,
    /// Checked like every ClientToken, and kept with no record: a removal of tags repeated
    /// leaves what the first left, so the call is idempotent without one.
    pub client_token: Option<String>,
}

/// ListTagResources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListTagResourcesRequest {
    pub region_id: Option<String>,
    pub resource_type: TagResourceType,
    /// Only these resources (empty: all of the type).
    pub ids: Vec<String>,
    /// Only resources carrying every one of these tags (a key alone: any value).
    pub tags: Vec<(String, Option<String>)>,
    /// `Limit`, a string in ECI's model: 20 by default, larger values count as 50.
    pub limit: u32,
    pub next_token: Option<String>,
}

fn resource_type(p: &Params) -> Result<TagResourceType, ApiError> {
    let t = p.required("ResourceType")?;
    TagResourceType::parse(&t).ok_or_else(|| {
        ApiError::invalid_parameter(
            "ResourceType",
            format!("must be ContainerGroup or ImageCache, got {t:?}"),
        )
    })
}

fn resource_ids(p: &Params, required: bool) -> Result<Vec<String>, ApiError> {
    let ids = p.string_list("ResourceId")?;
    if ids.len() > MAX_TAG_RESOURCE_IDS {
        return Err(ApiError::value_exceeded(
            "ResourceId",
            format!("allows at most {MAX_TAG_RESOURCE_IDS} ids"),
        ));
    }
    if let Some(i) = ids.iter().position(String::is_empty) {
        return Err(ApiError::invalid_parameter(
            &format!("ResourceId.{}", i + 1),
            "must not be empty",
        ));
    }
    if required && ids.is_empty() {
        return Err(ApiError::missing_parameter("ResourceId.1"));
    }
    Ok(ids)
}

/// Checks a key or value against ECI's rules; `key` says which it is.
fn check_text(param: &str, text: &str, key: bool) -> Result<(), ApiError> {
    if key && text.is_empty() {
        return Err(ApiError::missing_parameter(param));
    }
    if text.chars().count() > MAX_TAG_TEXT {
        return Err(ApiError::length_exceeded(param, MAX_TAG_TEXT));
    }
    if text.starts_with("aliyun") || text.starts_with("acs:") {
        return Err(ApiError::invalid_parameter(
            param,
            "must not start with aliyun or acs:",
        ));
    }
    if text.contains("http://") || text.contains("https://") {
        return Err(ApiError::invalid_parameter(
            param,
            "must not contain http:// or https://",
        ));
    }
    Ok(())
}

fn not_reserved(param: &str, key: &str) -> Result<(), ApiError> {
    if is_reserved_tag_key(key) {
        return Err(ApiError::invalid_parameter(
            param,
            format!(
                "names a key reserved for the virtual kubelet ({RESERVED_TAG_PREFIX}*): {key:?}"
            ),
        ));
    }
    Ok(())
}

fn too_many(name: &str) -> ApiError {
    ApiError::value_exceeded(name, format!("allows at most {MAX_TAGS} tags"))
}

impl TagResourcesRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let resource_type = resource_type(p)?;
        let ids = resource_ids(p, true)?;
        let indexes = p.indexes("Tag")?;
        if indexes.is_empty() {
            return Err(ApiError::missing_parameter("Tag.1.Key"));
        }
        if indexes.len() > MAX_TAGS {
            return Err(too_many("Tag"));
        }
        let mut tags: Vec<Tag> = Vec::with_capacity(indexes.len());
        for i in indexes {
            let key_param = format!("Tag.{i}.Key");
            let key = p.raw(&key_param).unwrap_or_default().to_string();
            let value_param = format!("Tag.{i}.Value");
            let value = p.raw(&value_param).unwrap_or_default().to_string();
            check_text(&key_param, &key, true)?;
            check_text(&value_param, &value, false)?;
            not_reserved(&key_param, &key)?;
            if tags.iter().any(|t| t.key == key) {
                return Err(ApiError::invalid_parameter(
                    &key_param,
                    format!("repeats the key {key:?}"),
                ));
            }
            tags.push(Tag { key, value });
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            resource_type,
            ids,
            change: TagChange::Set(tags),
        })
    }
}

impl UntagResourcesRequest {
    /// `TagKey.N` when given (then `All` is not looked at, as in ECI), else `All=true`;
    /// neither is a 400.
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let client_token = super::validate::client_token(p)?;
        let resource_type = resource_type(p)?;
        let ids = resource_ids(p, true)?;
        let keys = p.string_list("TagKey")?;
        if keys.len() > MAX_TAGS {
            return Err(too_many("TagKey"));
        }
        for (i, k) in keys.iter().enumerate() {
            let param = format!("TagKey.{}", i + 1);
            check_text(&param, k, true)?;
            not_reserved(&param, k)?;
        }
        let all = p.bool("All")?.unwrap_or(false);
        let change = match (keys.is_empty(), all) {
            (false, _) => TagChange::Remove(keys),
            (true, true) => TagChange::RemoveAll,
            (true, false) => {
                return Err(ApiError::missing_parameter(
                    "TagKey.1 (or All=true to remove every tag)",
                ))
            }
        };
        Ok(Self {
            region_id: p.string("RegionId"),
            resource_type,
            ids,
            change,
            client_token,
        })
    }
}

impl ListTagResourcesRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let resource_type = resource_type(p)?;
        let ids = resource_ids(p, false)?;
        let indexes = p.indexes("Tag")?;
        if indexes.len() > MAX_TAGS {
            return Err(too_many("Tag"));
        }
        let mut tags = Vec::with_capacity(indexes.len());
        for i in indexes {
            let key_param = format!("Tag.{i}.Key");
            let key = p.raw(&key_param).unwrap_or_default().to_string();
            check_text(&key_param, &key, true)?;
            let value_param = format!("Tag.{i}.Value");
            let value = p.raw(&value_param).map(str::to_string);
            if let Some(v) = &value {
                check_text(&value_param, v, false)?;
            }
            tags.push((key, value));
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            resource_type,
            ids,
            tags,
            limit: limit(p, DEFAULT_TAG_LIMIT, MAX_TAG_LIMIT)?,
            next_token: p.string("NextToken"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::MAX_CLIENT_TOKEN_LEN;

    fn p(q: &str) -> Params {
        Params::parse(q, None).unwrap()
    }

    fn code(e: ApiError) -> String {
        format!("{} {}", e.status, e.code)
    }

    #[test]
    fn tag_resources_decodes_a_batch() {
        let r = TagResourcesRequest::decode(&p(
            "RegionId=local&ResourceType=ContainerGroup&ResourceId.1=eci-a&ResourceId.2=eci-b\
             &Tag.1.Key=team&Tag.1.Value=web&Tag.2.Key=empty",
        ))
        .unwrap();
        assert_eq!(r.resource_type, TagResourceType::ContainerGroup);
        assert_eq!(r.ids, ["eci-a", "eci-b"]);
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            r.change,
            TagChange::Set(vec![tag("team", "web"), tag("empty", "")])
        );
    }

    #[test]
    fn tag_resources_refuses_what_eci_refuses() {
        let base = "ResourceType=ImageCache&ResourceId.1=imc-a";
        let bad = [
            (
                "ResourceType=DataCache&ResourceId.1=x&Tag.1.Key=k",
                "400 InvalidParameter",
            ),
            (
                "ResourceType=containergroup&ResourceId.1=x&Tag.1.Key=k",
                "400 InvalidParameter",
            ),
            ("ResourceId.1=x&Tag.1.Key=k", "400 MissingParameter"),
            (
                "ResourceType=ImageCache&Tag.1.Key=k",
                "400 MissingParameter",
            ),
            (base, "400 MissingParameter"),
        ];
        for (q, want) in bad {
            let e = TagResourcesRequest::decode(&p(q)).unwrap_err();
            assert_eq!(code(e), want, "{q}");
        }
        let long = "x".repeat(129);
        let with = |tail: &str| format!("{base}&{tail}");
        let bad_tags = [
            (with("Tag.1.Key="), "400 MissingParameter"),
            (
                with(&format!("Tag.1.Key={long}")),
                "400 InvalidParameter.LengthExceeded",
            ),
            (
                with(&format!("Tag.1.Key=k&Tag.1.Value={long}")),
                "400 InvalidParameter.LengthExceeded",
            ),
            (with("Tag.1.Key=aliyun-x"), "400 InvalidParameter"),
            (with("Tag.1.Key=acs:x"), "400 InvalidParameter"),
            (
                with("Tag.1.Key=k&Tag.1.Value=see%20http://x"),
                "400 InvalidParameter",
            ),
            (with("Tag.1.Key=https://k"), "400 InvalidParameter"),
            (
                with("Tag.1.Key=k8s.pod.uid&Tag.1.Value=x"),
                "400 InvalidParameter",
            ),
            (with("Tag.1.Key=k&Tag.2.Key=k"), "400 InvalidParameter"),
        ];
        for (q, want) in bad_tags {
            let e = TagResourcesRequest::decode(&p(&q)).unwrap_err();
            assert_eq!(code(e), want, "{q}");
        }
        let k: String = (1..=128).map(|_| 'é').collect();
        assert!(TagResourcesRequest::decode(&p(&with(&format!("Tag.1.Key={k}")))).is_ok());
        let tags21: String = (1..=21).map(|i| format!("&Tag.{i}.Key=k{i}")).collect();
        let e = TagResourcesRequest::decode(&p(&format!("{base}{tags21}"))).unwrap_err();
        assert_eq!(code(e), "400 InvalidParameter.ValueExceeded");
        let ids51: String = (1..=51)
            .map(|i| format!("&ResourceId.{i}=eci-{i}"))
            .collect();
        let e = TagResourcesRequest::decode(&p(&format!(
            "ResourceType=ContainerGroup&Tag.1.Key=k{ids51}"
        )))
        .unwrap_err();
        assert_eq!(code(e), "400 InvalidParameter.ValueExceeded");
        let ids50: String = (1..=50)
            .map(|i| format!("&ResourceId.{i}=eci-{i}"))
            .collect();
        let r = TagResourcesRequest::decode(&p(&format!(
            "ResourceType=ContainerGroup&Tag.1.Key=k{ids50}"
        )))
        .unwrap();
        assert_eq!(r.ids.len(), 50);
    }

    #[test]
    fn untag_by_keys_or_all_but_not_neither() {
        let base = "ResourceType=ContainerGroup&ResourceId.1=eci-a";
        let r =
            UntagResourcesRequest::decode(&p(&format!("{base}&TagKey.1=a&TagKey.2=b"))).unwrap();
        assert_eq!(r.change, TagChange::Remove(vec!["a".into(), "b".into()]));
        let r = UntagResourcesRequest::decode(&p(&format!("{base}&All=true"))).unwrap();
        assert_eq!(r.change, TagChange::RemoveAll);
        for q in [base.to_string(), format!("{base}&All=false")] {
            let e = UntagResourcesRequest::decode(&p(&q)).unwrap_err();
            assert_eq!(code(e), "400 MissingParameter", "{q}");
        }
        let e =
            UntagResourcesRequest::decode(&p(&format!("{base}&TagKey.1=k8s.pod.uid"))).unwrap_err();
        assert_eq!(code(e), "400 InvalidParameter");
        let e = UntagResourcesRequest::decode(&p(&format!("{base}&All=maybe"))).unwrap_err();
        assert_eq!(code(e), "400 InvalidParameter");
        let long = "t".repeat(MAX_CLIENT_TOKEN_LEN + 1);
        let e = UntagResourcesRequest::decode(&p(&format!("{base}&All=true&ClientToken={long}")))
            .unwrap_err();
        assert_eq!(code(e), "400 InvalidParameter.LengthExceeded");
    }

    #[test]
    fn list_takes_limit_as_a_string_and_key_only_filters() {
        let r = ListTagResourcesRequest::decode(&p(
            "ResourceType=ContainerGroup&Tag.1.Key=env&Tag.2.Key=team&Tag.2.Value=&Limit=7\
             &NextToken=abc",
        ))
        .unwrap();
        assert_eq!(
            r.tags,
            vec![("env".into(), None), ("team".into(), Some(String::new()))]
        );
        assert_eq!((r.limit, r.next_token.as_deref()), (7, Some("abc")));
        assert!(r.ids.is_empty());
        let r = ListTagResourcesRequest::decode(&p("ResourceType=ImageCache")).unwrap();
        assert_eq!(r.limit, DEFAULT_TAG_LIMIT);
        let r = ListTagResourcesRequest::decode(&p("ResourceType=ImageCache&Limit=1000")).unwrap();
        assert_eq!(r.limit, MAX_TAG_LIMIT);
        for q in [
            "ResourceType=ImageCache&Limit=0",
            "ResourceType=ImageCache&Limit=ten",
        ] {
            let e = ListTagResourcesRequest::decode(&p(q)).unwrap_err();
            assert_eq!(code(e), "400 InvalidParameter", "{q}");
        }
        let e = ListTagResourcesRequest::decode(&p("ResourceType=VirtualNode")).unwrap_err();
        assert!(e.message.contains("VirtualNode"), "{}", e.message);
    }
}
