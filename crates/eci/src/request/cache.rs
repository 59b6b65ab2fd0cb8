//! Requests of the image cache operations (ECI_API.md §7.2: CreateImageCache,
//! DescribeImageCaches, UpdateImageCache, DeleteImageCache) and of ListUsage.

use berth_core::{RegistryCredential, Tag};

use super::create::{credentials, tags};
use super::{limit, tag_filters, validate, TagFilter};
use crate::error::ApiError;
use crate::params::Params;

/// Most images one cache may hold.
pub const MAX_CACHE_IMAGES: usize = 20;
/// Longest image cache name.
pub const MAX_CACHE_NAME_LEN: usize = 128;
/// Most `MatchImage.N` of one DescribeImageCaches.
pub const MAX_MATCH_IMAGES: usize = 20;
/// Longest retention accepted (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// `ImageCacheName`: 2–128 of `[a-z0-9-]`, not starting or ending with `-` (the rule of
/// container group names).
fn cache_name(name: &str) -> Result<(), ApiError> {
    let ok = (2..=MAX_CACHE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "ImageCacheName",
            format!("must be 2 to 128 lower-case letters, digits and '-', not starting or ending with '-', got {name:?}"),
        ))
    }
}

fn images(p: &Params, required: bool) -> Result<Vec<String>, ApiError> {
    let list = p.string_list("Image")?;
    if required && list.is_empty() {
        return Err(ApiError::missing_parameter("Image.1"));
    }
    if list.len() > MAX_CACHE_IMAGES {
        return Err(ApiError::value_exceeded(
            "Image",
            format!("allows at most {MAX_CACHE_IMAGES} images"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, image) in list.into_iter().enumerate() {
        let image = image.trim().to_string();
        if image.is_empty() || image.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(ApiError::invalid_parameter(
                &format!("Image.{}", i + 1),
                format!("must be an image reference, got {image:?}"),
            ));
        }
        if !out.contains(&image) {
            out.push(image);
        }
    }
    Ok(out)
}

fn elimination_strategy(p: &Params) -> Result<Option<String>, ApiError> {
    match p.string("EliminationStrategy") {
        None => Ok(None),
        Some(s) if s == "LRU" => Ok(Some(s)),
        Some(s) => Err(ApiError::invalid_parameter(
            "EliminationStrategy",
            format!("must be LRU, got {s:?}"),
        )),
    }
}

fn retention_days(p: &Params) -> Result<Option<u32>, ApiError> {
    let days = p.int::<u32>("RetentionDays")?;
    if days.is_some_and(|d| d == 0 || d > MAX_RETENTION_DAYS) {
        return Err(ApiError::value_exceeded(
            "RetentionDays",
            format!("must be between 1 and {MAX_RETENTION_DAYS}"),
        ));
    }
    Ok(days)
}

fn cache_size(p: &Params) -> Result<Option<u32>, ApiError> {
    let size = p.int::<u32>("ImageCacheSize")?;
    if size.is_some_and(|s| s == 0 || s > 2048) {
        return Err(ApiError::value_exceeded(
            "ImageCacheSize",
            "must be between 1 and 2048 GiB",
        ));
    }
    Ok(size)
}

/// CreateImageCache.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateImageCacheRequest {
    pub region_id: Option<String>,
    pub name: String,
    pub images: Vec<String>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub retention_days: Option<u32>,
    pub elimination_strategy: Option<String>,
    /// `ImageCacheSize` in GiB (20 by default).
    pub size_gib: u32,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

impl CreateImageCacheRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let name = p.required("ImageCacheName")?;
        cache_name(&name)?;
        Ok(Self {
            region_id: p.string("RegionId"),
            name,
            images: images(p, true)?,
            registry_credentials: credentials(p)?,
            plain_http_registries: validate::host_list(p, "PlainHttpRegistry")?,
            insecure_registries: validate::host_list(p, "InsecureRegistry")?,
            retention_days: retention_days(p)?,
            elimination_strategy: elimination_strategy(p)?,
            size_gib: cache_size(p)?.unwrap_or(20),
            tags: tags(p)?,
            client_token: validate::client_token(p)?,
        })
    }
}

/// DescribeImageCaches. `Limit` defaults to 20 and is capped at 100.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribeImageCachesRequest {
    pub region_id: Option<String>,
    /// `ImageCacheId`: one id or a comma-separated list.
    pub ids: Vec<String>,
    /// `ImageCacheName`: one name or a comma-separated list.
    pub names: Vec<String>,
    /// `SnapshotId` (berth's snapshot of a cache is the cache itself).
    pub snapshot_ids: Vec<String>,
    /// `Image`: caches holding this image.
    pub image: Option<String>,
    /// `MatchImage.N`: the best matching caches for these images, best first.
    pub match_images: Vec<String>,
    pub image_full_match: bool,
    pub limit: u32,
    pub next_token: Option<String>,
    pub tags: Vec<TagFilter>,
}

fn comma_list(p: &Params, name: &str) -> Vec<String> {
    p.string(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl DescribeImageCachesRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let match_images = p.string_list("MatchImage")?;
        if match_images.len() > MAX_MATCH_IMAGES {
            return Err(ApiError::value_exceeded(
                "MatchImage",
                format!("allows at most {MAX_MATCH_IMAGES} images"),
            ));
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            ids: comma_list(p, "ImageCacheId"),
            names: comma_list(p, "ImageCacheName"),
            snapshot_ids: comma_list(p, "SnapshotId"),
            image: p.string("Image"),
            match_images,
            image_full_match: p.bool("ImageFullMatch")?.unwrap_or(false),
            limit: limit(p, 20, 100)?,
            next_token: p.string("NextToken"),
            tags: tag_filters(p)?,
        })
    }
}

/// UpdateImageCache: every field but the id is optional; absent ones keep their value.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateImageCacheRequest {
    pub region_id: Option<String>,
    pub id: String,
    pub name: Option<String>,
    /// New images (empty: unchanged).
    pub images: Vec<String>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub retention_days: Option<u32>,
    pub elimination_strategy: Option<String>,
    pub size_gib: Option<u32>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

impl UpdateImageCacheRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let name = p.string("ImageCacheName");
        if let Some(n) = &name {
            cache_name(n)?;
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            id: p.required("ImageCacheId")?,
            name,
            images: images(p, false)?,
            registry_credentials: credentials(p)?,
            plain_http_registries: validate::host_list(p, "PlainHttpRegistry")?,
            insecure_registries: validate::host_list(p, "InsecureRegistry")?,
            retention_days: retention_days(p)?,
            elimination_strategy: elimination_strategy(p)?,
            size_gib: cache_size(p)?,
            tags: tags(p)?,
            client_token: validate::client_token(p)?,
        })
    }
}

/// DeleteImageCache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteImageCacheRequest {
    pub region_id: Option<String>,
    pub id: String,
    pub client_token: Option<String>,
}

impl DeleteImageCacheRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            region_id: p.string("RegionId"),
            id: p.required("ImageCacheId")?,
            client_token: validate::client_token(p)?,
        })
    }
}

/// ListUsage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListUsageRequest {
    pub region_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn create_decodes_images_credentials_and_retention() {
        let p = params(&[
            ("RegionId", "local"),
            ("ImageCacheName", "web-cache"),
            ("Image.1", "127.0.0.1:5000/busybox:latest"),
            ("Image.2", "nginx"),
            ("Image.3", "nginx"),
            ("ImageRegistryCredential.1.Server", "127.0.0.1:5000"),
            ("ImageRegistryCredential.1.UserName", "u"),
            ("ImageRegistryCredential.1.Password", "p"),
            ("PlainHttpRegistry", "127.0.0.1:5000"),
            ("RetentionDays", "7"),
            ("EliminationStrategy", "LRU"),
        ]);
        let r = CreateImageCacheRequest::decode(&p).unwrap();
        assert_eq!(r.name, "web-cache");
        assert_eq!(r.images, ["127.0.0.1:5000/busybox:latest", "nginx"]);
        assert_eq!(r.registry_credentials.len(), 1);
        assert_eq!(r.plain_http_registries, ["127.0.0.1:5000"]);
        assert_eq!(r.retention_days, Some(7));
        assert_eq!(r.elimination_strategy.as_deref(), Some("LRU"));
        assert_eq!(r.size_gib, 20);
    }

    #[test]
    fn create_refuses_bad_input() {
        let code = |pairs: &[(&str, &str)]| {
            CreateImageCacheRequest::decode(&params(pairs))
                .unwrap_err()
                .code
                .clone()
        };
        assert_eq!(code(&[("Image.1", "busybox")]), "MissingParameter");
        assert_eq!(code(&[("ImageCacheName", "c1")]), "MissingParameter");
        assert_eq!(
            code(&[("ImageCacheName", "Bad_Name"), ("Image.1", "busybox")]),
            "InvalidParameter"
        );
        assert_eq!(
            code(&[
                ("ImageCacheName", "c1"),
                ("Image.1", "busybox"),
                ("EliminationStrategy", "FIFO")
            ]),
            "InvalidParameter"
        );
        assert_eq!(
            code(&[
                ("ImageCacheName", "c1"),
                ("Image.1", "busybox"),
                ("RetentionDays", "0")
            ]),
            "InvalidParameter.ValueExceeded"
        );
    }

    #[test]
    fn describe_decodes_match_images_and_paging() {
        let p = params(&[
            ("MatchImage.1", "busybox"),
            ("MatchImage.2", "nginx:1"),
            ("ImageCacheId", "imc-1,imc-2"),
            ("Limit", "500"),
            ("NextToken", "3"),
        ]);
        let r = DescribeImageCachesRequest::decode(&p).unwrap();
        assert_eq!(r.match_images, ["busybox", "nginx:1"]);
        assert_eq!(r.ids, ["imc-1", "imc-2"]);
        assert_eq!(r.limit, 100);
        assert_eq!(r.next_token.as_deref(), Some("3"));
    }

    #[test]
    fn update_and_delete_need_the_id() {
        assert!(UpdateImageCacheRequest::decode(&params(&[("ImageCacheName", "x1")])).is_err());
        let r = UpdateImageCacheRequest::decode(&params(&[
            ("ImageCacheId", "imc-1"),
            ("Image.1", "busybox"),
        ]))
        .unwrap();
        assert_eq!(r.images, ["busybox"]);
        assert_eq!(r.name, None);
        assert!(DeleteImageCacheRequest::decode(&params(&[])).is_err());
    }
}
