//! The `k8s.aliyun.com/eci-*` pod annotations, spelled as ECI's own virtual node reads them
//! (Alibaba Cloud, "ECI Pod Annotation" and "Use an ImageCache to accelerate pod creation").
//! Annotations berth acts on set the group's options; cloud placement ones (vSwitch,
//! security group) have no meaning on a self-hosted node and are passed over, as the API's
//! `VSwitchId` is; any other `k8s.aliyun.com/` annotation is refused by name.

use std::collections::BTreeMap;

use berth_client::CreateParams;

use crate::error::PodError;
use crate::quantity::{gib, parse_quantity};

/// `ImageSnapshotId`: the image cache (`imc-…`) the pod's images come from.
pub const ANNOTATION_IMAGE_CACHE_ID: &str = "k8s.aliyun.com/eci-imc-id";
/// `AutoMatchImageCache`: `"true"` or `"false"`.
pub const ANNOTATION_AUTO_IMAGE_CACHE: &str = "k8s.aliyun.com/eci-auto-imc";
/// Temporary storage added to the 30 GiB every group has (`50Gi`).
pub const ANNOTATION_EXTRA_EPHEMERAL_STORAGE: &str = "k8s.aliyun.com/eci-extra-ephemeral-storage";
/// `SpotStrategy`: `SpotAsPriceGo` or `SpotWithPriceLimit` make a preemptible group.
pub const ANNOTATION_SPOT_STRATEGY: &str = "k8s.aliyun.com/eci-spot-strategy";
/// `SpotPriceLimit`: the highest hourly price, with `SpotWithPriceLimit` (`"0.250"`).
pub const ANNOTATION_SPOT_PRICE_LIMIT: &str = "k8s.aliyun.com/eci-spot-price-limit";
/// `SpotDuration`: hours of protection from reclaim (`"0"` for none; ECI's default 1).
pub const ANNOTATION_SPOT_DURATION: &str = "k8s.aliyun.com/eci-spot-duration";
/// `StrictSpot=false`: `"true"` lets a spot pod with no room run as pay-as-you-go.
pub const ANNOTATION_SPOT_FALLBACK: &str = "k8s.aliyun.com/eci-spot-fallback";

/// `PlainHttpRegistry`: registries (`host[:port]`, comma-separated) pulled over plain HTTP.
pub const ANNOTATION_PLAIN_HTTP_REGISTRY: &str = "k8s.aliyun.com/plain-http-registry";
/// `InsecureRegistry`: registries reached over HTTPS whose certificate is not checked.
pub const ANNOTATION_INSECURE_REGISTRY: &str = "k8s.aliyun.com/insecure-registry";
/// Most registries one of those annotations names.
const MAX_REGISTRIES: usize = 16;

/// The registries of a `plain-http-registry`/`insecure-registry` annotation: `host[:port]`
/// each (berth's API checks them again).
fn registries(field: &str, v: &str) -> Result<Vec<String>, PodError> {
    let list: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    let bad = list.iter().find(|r| {
        r.len() > 253
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    });
    if let Some(r) = bad {
        return Err(PodError::unsupported(
            field,
            format!("{r:?} is not a registry host[:port]"),
        ));
    }
    if list.is_empty() || list.len() > MAX_REGISTRIES {
        return Err(PodError::unsupported(
            field,
            format!("names 1 to {MAX_REGISTRIES} registries, comma-separated"),
        ));
    }
    Ok(list)
}

/// Cloud placement and billing: no effect on a self-hosted node (as `honoured.rs` ignores the
/// API parameters they set).
const IGNORED: &[&str] = &[
    "k8s.aliyun.com/eci-vswitch",
    "k8s.aliyun.com/eci-security-group",
    "k8s.aliyun.com/eci-schedule-strategy",
    "k8s.aliyun.com/eci-resource-group-id",
];

/// Applies the annotations to `out`; returns the GiB of extra temporary storage asked for.
pub(crate) fn apply(
    annotations: Option<&BTreeMap<String, String>>,
    out: &mut CreateParams,
) -> Result<Option<f64>, PodError> {
    let mut extra = None;
    let (mut strategy, mut limit, mut duration, mut fallback) = (None, None, None, None);
    for (k, v) in annotations.into_iter().flatten() {
        let field = || format!("metadata.annotations[{k:?}]");
        match k.as_str() {
            ANNOTATION_IMAGE_CACHE_ID => {
                let ok = (1..=128).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(PodError::unsupported(
                        field(),
                        format!("is not an image cache id such as imc-…: {v:?}"),
                    ));
                }
                out.image_snapshot_id = Some(v.clone());
            }
            ANNOTATION_AUTO_IMAGE_CACHE => out.auto_match_image_cache = boolean(&field(), v)?,
            ANNOTATION_EXTRA_EPHEMERAL_STORAGE => {
                let bytes = parse_quantity(v).filter(|b| *b > 0.0).ok_or_else(|| {
                    PodError::unsupported(field(), format!("is not a size such as 50Gi: {v:?}"))
                })?;
                extra = Some(gib(bytes));
            }
            ANNOTATION_PLAIN_HTTP_REGISTRY => {
                out.plain_http_registries = registries(&field(), v)?;
            }
            ANNOTATION_INSECURE_REGISTRY => {
                out.insecure_registries = registries(&field(), v)?;
            }
            ANNOTATION_SPOT_STRATEGY => {
                strategy = Some(berth_core::SpotStrategy::parse(v).ok_or_else(|| {
                    PodError::unsupported(
                        field(),
                        format!("must be NoSpot, SpotAsPriceGo or SpotWithPriceLimit, got {v:?}"),
                    )
                })?);
            }
            ANNOTATION_SPOT_PRICE_LIMIT => {
                let ok = (1..=32).contains(&v.len())
                    && v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                if !ok {
                    return Err(PodError::unsupported(
                        field(),
                        format!("is not an hourly price such as 0.250: {v:?}"),
                    ));
                }
                limit = Some(v.clone());
            }
            ANNOTATION_SPOT_DURATION => {
                duration = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|h| *h <= berth_core::spot::MAX_SPOT_DURATION_HOURS)
                        .ok_or_else(|| {
                            PodError::unsupported(
                                field(),
                                format!(
                                    "must be 0 to {} hours, got {v:?}",
                                    berth_core::spot::MAX_SPOT_DURATION_HOURS
                                ),
                            )
                        })?,
                );
            }
            ANNOTATION_SPOT_FALLBACK => fallback = Some(boolean(&field(), v)?),
            _ if IGNORED.contains(&k.as_str()) => {}
            _ if k.starts_with("k8s.aliyun.com/") => {
                return Err(PodError::unsupported(
                    field(),
                    "is an ECI option berth does not offer",
                ))
            }
            _ => {}
        }
    }
    out.spot = spot_terms(strategy, limit, duration, fallback)?;
    Ok(extra)
}

/// `"true"` or `"false"`, else refused naming `field`.
fn boolean(field: &str, v: &str) -> Result<bool, PodError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PodError::unsupported(
            field,
            format!("must be \"true\" or \"false\", got {v:?}"),
        )),
    }
}

/// The spot terms of the spot annotations; a price limit or a duration without a spot
/// strategy is refused (the API would refuse it too, naming its parameter).
fn spot_terms(
    strategy: Option<berth_core::SpotStrategy>,
    limit: Option<String>,
    duration: Option<u32>,
    fallback: Option<bool>,
) -> Result<Option<berth_core::SpotTerms>, PodError> {
    let strategy = strategy.unwrap_or_default();
    if !strategy.is_spot() {
        if limit.is_some() || duration.is_some() || fallback.is_some() {
            return Err(PodError::unsupported(
                format!("metadata.annotations[{ANNOTATION_SPOT_STRATEGY:?}]"),
                "must be SpotAsPriceGo or SpotWithPriceLimit with a spot price limit, duration \
                 or fallback",
            ));
        }
        return Ok(None);
    }
    Ok(Some(berth_core::SpotTerms {
        strategy,
        price_limit: limit,
        duration_hours: duration.unwrap_or(berth_core::spot::DEFAULT_SPOT_DURATION_HOURS),
        hour_price: None,
        fallback: fallback.unwrap_or(false),
    }))
}
