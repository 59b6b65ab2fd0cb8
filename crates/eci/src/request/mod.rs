//! Typed requests of the operations berth serves, decoded and checked from their parameters
//! (ECI_API.md §7.2). Anything a request cannot mean is refused here, before any state is read.

mod cache;
mod create;
mod dns;
mod honoured;
mod observe;
mod patch;
mod price;
mod probes;
mod security;
mod tags;
mod update;
mod usage;
mod validate;
mod volumes;

use berth_core::GroupStatus;
use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::params::Params;

pub use cache::{
    CreateImageCacheRequest, DeleteImageCacheRequest, DescribeImageCachesRequest, ListUsageRequest,
    UpdateImageCacheRequest,
};
pub use create::{CreateRequest, MAX_ARGS, MAX_CLIENT_TOKEN_LEN, MAX_CONTAINERS, MAX_TAGS};
pub use observe::{
    ExecRequest, GroupMetricRequest, MultiMetricRequest, PortForwardRequest, DEFAULT_METRIC_PERIOD,
    MAX_EXEC_ARGS, MAX_EXEC_ARG_LEN, MAX_METRIC_RECORDS, METRIC_PERIODS,
};
pub use price::{PriceRequest, MAX_SPOT_PRICE_LIMIT, SPOT_PRICE_LIMIT_DECIMALS};
pub use tags::{
    ListTagResourcesRequest, TagResourcesRequest, UntagResourcesRequest, DEFAULT_TAG_LIMIT,
    MAX_TAG_LIMIT, MAX_TAG_RESOURCE_IDS, MAX_TAG_TEXT,
};
pub use update::{UpdateRequest, UpdateType};
pub use usage::{UsageAccount, UsageRequest, MAX_USAGE_DAYS};

/// Most ids a JSON `ContainerGroupIds` list may hold.
pub const MAX_IDS: usize = 20;
pub const MAX_LOG_TAIL: u32 = 2000;
pub const DEFAULT_LOG_TAIL: u32 = 500;
pub const MAX_LOG_BYTES: u32 = 1_048_576;
/// Largest `SinceSecond`/`SinceSeconds`: a hundred years reaches back before any group, and
/// keeps `now - since` a valid time.
pub const MAX_SINCE_SECONDS: u64 = 100 * 366 * 86_400;

/// The operations berth serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    CreateContainerGroup,
    DescribeContainerGroups,
    DescribeContainerGroupStatus,
    DescribeContainerGroupEvents,
    DeleteContainerGroup,
    RestartContainerGroup,
    UpdateContainerGroup,
    DescribeContainerLog,
    DescribeRegions,
    CreateImageCache,
    DescribeImageCaches,
    UpdateImageCache,
    DeleteImageCache,
    ListUsage,
    ExecContainerCommand,
    DescribeContainerGroupMetric,
    DescribeMultiContainerGroupMetric,
    DescribeContainerGroupPrice,
    DescribeUsage,
    PortForward,
    TagResources,
    UntagResources,
    ListTagResources,
}

const ACTIONS: [Action; 23] = [
    Action::CreateContainerGroup,
    Action::DescribeContainerGroups,
    Action::DescribeContainerGroupStatus,
    Action::DescribeContainerGroupEvents,
    Action::DeleteContainerGroup,
    Action::RestartContainerGroup,
    Action::UpdateContainerGroup,
    Action::DescribeContainerLog,
    Action::DescribeRegions,
    Action::CreateImageCache,
    Action::DescribeImageCaches,
    Action::UpdateImageCache,
    Action::DeleteImageCache,
    Action::ListUsage,
    Action::ExecContainerCommand,
    Action::DescribeContainerGroupMetric,
    Action::DescribeMultiContainerGroupMetric,
    Action::DescribeContainerGroupPrice,
    Action::DescribeUsage,
    Action::PortForward,
    Action::TagResources,
    Action::UntagResources,
    Action::ListTagResources,
];

impl Action {
    /// Every action berth serves.
    pub const ALL: [Action; 23] = ACTIONS;

    /// The action of a name (case-sensitive); 404 `InvalidApi.NotFound` otherwise.
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        ACTIONS
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| ApiError::invalid_action(name))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateContainerGroup => "CreateContainerGroup",
            Self::DescribeContainerGroups => "DescribeContainerGroups",
            Self::DescribeContainerGroupStatus => "DescribeContainerGroupStatus",
            Self::DescribeContainerGroupEvents => "DescribeContainerGroupEvents",
            Self::DeleteContainerGroup => "DeleteContainerGroup",
            Self::RestartContainerGroup => "RestartContainerGroup",
            Self::UpdateContainerGroup => "UpdateContainerGroup",
            Self::DescribeContainerLog => "DescribeContainerLog",
            Self::DescribeRegions => "DescribeRegions",
            Self::CreateImageCache => "CreateImageCache",
            Self::DescribeImageCaches => "DescribeImageCaches",
            Self::UpdateImageCache => "UpdateImageCache",
            Self::DeleteImageCache => "DeleteImageCache",
            Self::ListUsage => "ListUsage",
            Self::ExecContainerCommand => "ExecContainerCommand",
            Self::DescribeContainerGroupMetric => "DescribeContainerGroupMetric",
            Self::DescribeMultiContainerGroupMetric => "DescribeMultiContainerGroupMetric",
            Self::DescribeContainerGroupPrice => "DescribeContainerGroupPrice",
            Self::DescribeUsage => "DescribeUsage",
            Self::PortForward => "PortForward",
            Self::TagResources => "TagResources",
            Self::UntagResources => "UntagResources",
            Self::ListTagResources => "ListTagResources",
        }
    }
}

/// Checks the API version (`x-acs-version` or `Version`); a missing version is accepted.
pub fn check_version(version: Option<&str>) -> Result<(), ApiError> {
    match version {
        Some(v) if !v.is_empty() && v != crate::API_VERSION => {
            Err(ApiError::unsupported_version(v))
        }
        _ => Ok(()),
    }
}

/// A decoded request.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Create(Box<CreateRequest>),
    DescribeGroups(DescribeGroupsRequest),
    DescribeStatus(DescribeStatusRequest),
    DescribeEvents(DescribeEventsRequest),
    Delete(GroupIdRequest),
    Restart(GroupIdRequest),
    Update(Box<UpdateRequest>),
    Log(ContainerLogRequest),
    DescribeRegions(DescribeRegionsRequest),
    CreateImageCache(CreateImageCacheRequest),
    DescribeImageCaches(DescribeImageCachesRequest),
    UpdateImageCache(UpdateImageCacheRequest),
    DeleteImageCache(DeleteImageCacheRequest),
    ListUsage(ListUsageRequest),
    Exec(ExecRequest),
    GroupMetric(GroupMetricRequest),
    MultiMetric(MultiMetricRequest),
    Price(PriceRequest),
    Usage(UsageRequest),
    PortForward(PortForwardRequest),
    TagResources(TagResourcesRequest),
    UntagResources(UntagResourcesRequest),
    ListTagResources(ListTagResourcesRequest),
}

/// Decodes the parameters of `action`.
pub fn decode(action: Action, p: &Params) -> Result<Request, ApiError> {
    Ok(match action {
        Action::CreateContainerGroup => Request::Create(Box::new(CreateRequest::decode(p)?)),
        Action::DescribeContainerGroups => {
            Request::DescribeGroups(DescribeGroupsRequest::decode(p)?)
        }
        Action::DescribeContainerGroupStatus => {
            Request::DescribeStatus(DescribeStatusRequest::decode(p)?)
        }
        Action::DescribeContainerGroupEvents => {
            Request::DescribeEvents(DescribeEventsRequest::decode(p)?)
        }
        Action::DeleteContainerGroup => Request::Delete(GroupIdRequest::decode_delete(p)?),
        Action::RestartContainerGroup => Request::Restart(GroupIdRequest::decode(p)?),
        Action::UpdateContainerGroup => Request::Update(Box::new(UpdateRequest::decode(p)?)),
        Action::DescribeContainerLog => Request::Log(ContainerLogRequest::decode(p)?),
        Action::DescribeRegions => Request::DescribeRegions(DescribeRegionsRequest {
            region_id: p.string("RegionId"),
        }),
        Action::CreateImageCache => Request::CreateImageCache(CreateImageCacheRequest::decode(p)?),
        Action::DescribeImageCaches => {
            Request::DescribeImageCaches(DescribeImageCachesRequest::decode(p)?)
        }
        Action::UpdateImageCache => Request::UpdateImageCache(UpdateImageCacheRequest::decode(p)?),
        Action::DeleteImageCache => Request::DeleteImageCache(DeleteImageCacheRequest::decode(p)?),
        Action::ListUsage => Request::ListUsage(ListUsageRequest {
            region_id: p.string("RegionId"),
        }),
        Action::ExecContainerCommand => Request::Exec(ExecRequest::decode(p)?),
        Action::DescribeContainerGroupMetric => {
            Request::GroupMetric(GroupMetricRequest::decode(p)?)
        }
        Action::DescribeMultiContainerGroupMetric => {
            Request::MultiMetric(MultiMetricRequest::decode(p)?)
        }
        Action::DescribeContainerGroupPrice => Request::Price(PriceRequest::decode(p)?),
        Action::DescribeUsage => Request::Usage(UsageRequest::decode(p)?),
        Action::PortForward => Request::PortForward(PortForwardRequest::decode(p)?),
        Action::TagResources => Request::TagResources(TagResourcesRequest::decode(p)?),
        Action::UntagResources => Request::UntagResources(UntagResourcesRequest::decode(p)?),
        Action::ListTagResources => Request::ListTagResources(ListTagResourcesRequest::decode(p)?),
    })
}

/// A `Tag.N` filter: groups carrying a tag with this key (and this value, when given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

fn tag_filters(p: &Params) -> Result<Vec<TagFilter>, ApiError> {
    let mut out = Vec::new();
    for i in p.indexes("Tag")? {
        out.push(TagFilter {
            key: p.required(&format!("Tag.{i}.Key"))?,
            value: p.string(&format!("Tag.{i}.Value")),
        });
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::value_exceeded(
            "Tag",
            format!("allows at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

/// `Limit`: `default` when absent, at least 1, and values above `max` count as `max`.
fn limit(p: &Params, default: u32, max: u32) -> Result<u32, ApiError> {
    match p.int::<u32>("Limit")? {
        None => Ok(default),
        Some(0) => Err(ApiError::invalid_parameter("Limit", "must be at least 1")),
        Some(n) => Ok(n.min(max)),
    }
}

fn group_status(p: &Params) -> Result<Option<GroupStatus>, ApiError> {
    p.string("Status")
        .map(|s| {
            GroupStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "Status",
                    format!("is not a container group status: {s:?}"),
                )
            })
        })
        .transpose()
}

/// DescribeContainerGroups. `Limit` defaults to 20 and is capped at 20.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribeGroupsRequest {
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    /// `ContainerGroupIds` (at most 20); `None` for all groups.
    pub ids: Option<Vec<String>>,
    pub name: Option<String>,
    pub status: Option<GroupStatus>,
    pub limit: u32,
    pub next_token: Option<String>,
    pub tags: Vec<TagFilter>,
    pub with_event: bool,
    /// berth's extension: only groups whose record changed within this many seconds.
    pub since_second: Option<u64>,
    /// berth's extension `NameContains`: only groups whose name contains this text.
    pub name_contains: Option<String>,
    /// berth's extension `Order=Newest`: newest groups first (`Oldest`, the default, is ECI's
    /// order).
    pub newest_first: bool,
    /// berth's extension `Ended`: only groups that have ended (`true`: Succeeded, Failed,
    /// ScheduleFailed, Expired) or that have not (`false`).
    pub ended: Option<bool>,
}

/// The longest `NameContains` (a group name's own limit).
const MAX_NAME_CONTAINS: usize = 128;

fn name_contains(p: &Params) -> Result<Option<String>, ApiError> {
    match p.string("NameContains") {
        Some(t) if t.chars().count() > MAX_NAME_CONTAINS => Err(ApiError::invalid_parameter(
            "NameContains",
            format!("longer than {MAX_NAME_CONTAINS} characters"),
        )),
        Some(t) if t.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn newest_first(p: &Params) -> Result<bool, ApiError> {
    match p.raw("Order") {
        None | Some("") | Some("Oldest") => Ok(false),
        Some("Newest") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(
            "Order",
            format!("{other:?} is neither Oldest nor Newest"),
        )),
    }
}

impl DescribeGroupsRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            region_id: p.string("RegionId"),
            zone_id: p.string("ZoneId"),
            ids: p.json_list("ContainerGroupIds", MAX_IDS)?,
            name: p.string("ContainerGroupName"),
            status: group_status(p)?,
            limit: limit(p, 20, 20)?,
            next_token: p.string("NextToken"),
            tags: tag_filters(p)?,
            with_event: p.bool("WithEvent")?.unwrap_or(false),
            since_second: p.int_at_most("SinceSecond", MAX_SINCE_SECONDS)?,
            name_contains: name_contains(p)?,
            newest_first: newest_first(p)?,
            ended: p.bool("Ended")?,
        })
    }
}

/// DescribeContainerGroupStatus. `Limit` defaults to 200 and is capped at 200.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribeStatusRequest {
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    pub ids: Option<Vec<String>>,
    pub limit: u32,
    pub next_token: Option<String>,
    /// Only groups whose record (status, containers, events) changed within this many
    /// seconds.
    pub since_second: Option<u64>,
    pub tags: Vec<TagFilter>,
}

impl DescribeStatusRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            region_id: p.string("RegionId"),
            zone_id: p.string("ZoneId"),
            ids: p.json_list("ContainerGroupIds", MAX_IDS)?,
            limit: limit(p, 200, 200)?,
            next_token: p.string("NextToken"),
            since_second: p.int_at_most("SinceSecond", MAX_SINCE_SECONDS)?,
            tags: tag_filters(p)?,
        })
    }
}

/// DescribeContainerGroupEvents. `Limit` defaults to 200 and is capped at 200.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribeEventsRequest {
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    pub ids: Option<Vec<String>>,
    pub limit: u32,
    pub next_token: Option<String>,
    pub since_second: Option<u64>,
    /// `EciService` or `K8sAgent`.
    pub event_source: Option<String>,
    pub tags: Vec<TagFilter>,
}

impl DescribeEventsRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let event_source = p.string("EventSource");
        if let Some(s) = &event_source {
            if s != "EciService" && s != "K8sAgent" {
                return Err(ApiError::invalid_parameter(
                    "EventSource",
                    format!("must be EciService or K8sAgent, got {s:?}"),
                ));
            }
        }
        Ok(Self {
            region_id: p.string("RegionId"),
            zone_id: p.string("ZoneId"),
            ids: p.json_list("ContainerGroupIds", MAX_IDS)?,
            limit: limit(p, 200, 200)?,
            next_token: p.string("NextToken"),
            since_second: p.int_at_most("SinceSecond", MAX_SINCE_SECONDS)?,
            event_source,
            tags: tag_filters(p)?,
        })
    }
}

/// DeleteContainerGroup and RestartContainerGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupIdRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    pub client_token: Option<String>,
    /// DeleteContainerGroup's `GracePeriodSeconds` (berth's extension, as a pod's deletion
    /// grace period): the seconds between SIGTERM and SIGKILL, instead of the group's own.
    pub grace_period_secs: Option<u64>,
}

impl GroupIdRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            client_token: validate::client_token(p)?,
            grace_period_secs: None,
        })
    }

    /// DeleteContainerGroup: the group, and the grace period it may be given.
    pub fn decode_delete(p: &Params) -> Result<Self, ApiError> {
        let grace = p.int::<u64>("GracePeriodSeconds")?;
        if let Some(g) = grace.filter(|g| *g > create::MAX_GRACE_SECS) {
            return Err(ApiError::invalid_parameter(
                "GracePeriodSeconds",
                format!("must be at most {}, got {g}", create::MAX_GRACE_SECS),
            ));
        }
        Ok(Self {
            grace_period_secs: grace,
            ..Self::decode(p)?
        })
    }
}

/// DescribeContainerLog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLogRequest {
    pub region_id: Option<String>,
    pub container_group_id: String,
    pub container_name: String,
    /// Last lines to return: 500 by default; larger values than 2000 count as 2000.
    pub tail: u32,
    pub since_seconds: Option<u64>,
    /// 1..=1048576.
    pub limit_bytes: Option<u32>,
    pub timestamps: bool,
    /// The logs of the previous run of a restarted container.
    pub last_time: bool,
    pub start_time: Option<DateTime<Utc>>,
}

impl ContainerLogRequest {
    pub fn decode(p: &Params) -> Result<Self, ApiError> {
        let tail = p
            .int::<u32>("Tail")?
            .unwrap_or(DEFAULT_LOG_TAIL)
            .min(MAX_LOG_TAIL);
        let limit_bytes = p.int::<u32>("LimitBytes")?;
        if limit_bytes.is_some_and(|n| n == 0 || n > MAX_LOG_BYTES) {
            return Err(ApiError::value_exceeded(
                "LimitBytes",
                format!("must be between 1 and {MAX_LOG_BYTES}"),
            ));
        }
        let start_time = p
            .string("StartTime")
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid_parameter(
                            "StartTime",
                            "must be an RFC 3339 time such as 2024-01-01T00:00:00Z",
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            region_id: p.string("RegionId"),
            container_group_id: p.required("ContainerGroupId")?,
            container_name: p.required("ContainerName")?,
            tail,
            since_seconds: p.int_at_most("SinceSeconds", MAX_SINCE_SECONDS)?,
            limit_bytes,
            timestamps: p.bool("Timestamps")?.unwrap_or(false),
            last_time: p.bool("LastTime")?.unwrap_or(false),
            start_time,
        })
    }
}

/// DescribeRegions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeRegionsRequest {
    pub region_id: Option<String>,
}

#[cfg(test)]
mod tests;
