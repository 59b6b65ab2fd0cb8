//! One function per ECI action: decoded request in, response body out.

use std::sync::Arc;

use berth_control::{Control, ControlError, LogRequest};
use berth_control::{GroupFilter, Page, QuotaResource};
use berth_core::GroupId;
use berth_eci::request::{
    DescribeEventsRequest, DescribeGroupsRequest, DescribeStatusRequest, TagFilter,
};
use berth_eci::response::{
    CreateContainerGroupResponse, DescribeContainerGroupEventsResponse,
    DescribeContainerGroupStatusResponse, DescribeContainerLogResponse, DescribeRegionsResponse,
    EventsData, Region, RequestIdResponse, StatusData,
};
use berth_eci::{ApiError, Request};

use crate::rendered::Rendered;
use crate::Reply;
use chrono::Utc;
use serde::Serialize;

pub(crate) fn json<T: Serialize>(v: T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

pub(crate) fn map_err(e: ControlError) -> ApiError {
    match e {
        ControlError::CacheNotFound(id) => ApiError::new(
            404,
            "InvalidImageCache.NotFound",
            format!("The specified image cache does not exist: {id}"),
        ),
        ControlError::CacheIncorrectStatus { .. } => ApiError::incorrect_status(e),
        ControlError::CacheNameTaken(n) => ApiError::new(
            409,
            "ImageCacheName.Duplicate",
            format!("An image cache with this name exists already: {n}"),
        ),
        ControlError::CacheQuotaExceeded { .. } => {
            ApiError::new(400, "QuotaExceeded.ImageCache", format!("Quota exceeded: {e}"))
        }
        ControlError::QuotaExceeded(q) => {
            let code = match q.resource {
                QuotaResource::Cpu => "QuotaExceeded.Cpu",
                QuotaResource::Memory => "QuotaExceeded.Memory",
                QuotaResource::Groups => "QuotaExceeded.ContainerGroup",
                QuotaResource::Storage => "QuotaExceeded.EphemeralStorage",
            };
            ApiError::new(400, code, format!("Quota exceeded: {q}"))
        }
        ControlError::NotFound(id) => ApiError::container_group_not_found(&id),
        ControlError::IncorrectStatus { .. } | ControlError::ChangedMeanwhile(_) => {
            ApiError::incorrect_status(e)
        }
        ControlError::TokenMismatch => ApiError::new(400, "IdempotentParameterMismatch", format!("The request uses the same client token as a previous, but non-identical request: {e}")),
        ControlError::NoSuchContainer(c) => ApiError::not_found("ContainerName", &c),
        ControlError::Node(m) => ApiError::internal(m),
        ControlError::CapabilityRefused(r) => ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter SecurityContext.Capability.Add is not valid: {r}"),
        ),
        ControlError::VolumeRefused(r) => ApiError::new(400, "InvalidParameter", r.to_string()),
        ControlError::RuntimeClassForbidden { .. } => ApiError::new(
            403,
            "Forbidden.RuntimeClass",
            format!("The specified parameter RuntimeClassName is not allowed: {e}"),
        ),
        ControlError::RuntimeClassUnsupported(..) => ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter RuntimeClassName is not valid: {e}"),
        ),
        ControlError::PublishRefused(r) if r.quota => ApiError::new(
            400,
            "QuotaExceeded.PublishedPorts",
            format!("Quota exceeded: {r}"),
        ),
        ControlError::PublishRefused(r) if r.conflict => ApiError::new(
            400,
            "InvalidParameter.HostPortInUse",
            format!("The specified parameter {} cannot be honoured: {r}", r.parameter),
        ),
        ControlError::PublishRefused(r) => ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter {} is not valid: {r}", r.parameter),
        ),
        ControlError::SpotPriceLimitTooLow { .. } => ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter SpotPriceLimit is not valid: {e}"),
        ),
        ControlError::InsufficientCapacity(_) => {
            ApiError::new(403, "OperationDenied.NoStock", format!("The resource is out of stock: {e}"))
        }
        ControlError::TokenParams(_) | ControlError::TokenResource(_) => ApiError::internal(e),
        ControlError::TooManyLines(t) => ApiError::invalid_parameter("GroupBy", format!("with this Since and Until: {t}")),
        ControlError::TooManyTags { .. } => {
            ApiError::new(400, "QuotaExceeded.Tag", format!("Quota exceeded: {e}"))
        }
        ControlError::Store(s) if s.is_disk_full() => ApiError::service_unavailable(
            "the disk of berth's state directory is full; nothing was changed, retry once space is freed",
        ),
        ControlError::Store(s) => ApiError::internal(s),
    }
}

pub(crate) fn group_id(s: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(s).ok_or_else(|| ApiError::container_group_not_found(s))
}

/// Runs one decoded request; `rid` is the request id the answer carries.
pub(crate) async fn dispatch(
    control: &Arc<Control>,
    rendered: &Rendered,
    account: &str,
    req: Request,
    rid: &str,
) -> Result<Reply, ApiError> {
    let req = match req {
        Request::DescribeGroups(d) => {
            return describe_groups(control, rendered, account, d, rid).await
        }
        Request::Price(r) => return crate::price::describe_price(control, r, rid),
        Request::Usage(r) => return crate::usage::describe_usage(control, account, r, rid).await,
        other => other,
    };
    dispatch_value(control, account, req)
        .await
        .map(Reply::Value)
}

async fn dispatch_value(
    control: &Arc<Control>,
    account: &str,
    req: Request,
) -> Result<serde_json::Value, ApiError> {
    match req {
        Request::CreateImageCache(r) => crate::cache::create(control, account, r).await,
        Request::DescribeImageCaches(r) => crate::cache::describe(control, account, r).await,
        Request::UpdateImageCache(r) => crate::cache::update(control, account, r).await,
        Request::DeleteImageCache(r) => crate::cache::delete(control, account, r).await,
        Request::ListUsage(_) => crate::cache::usage(control, account).await,
        Request::TagResources(r) => {
            crate::tags::change(
                control,
                account,
                &r.region_id,
                r.resource_type,
                &r.ids,
                &r.change,
            )
            .await
        }
        Request::UntagResources(r) => {
            crate::tags::change(
                control,
                account,
                &r.region_id,
                r.resource_type,
                &r.ids,
                &r.change,
            )
            .await
        }
        Request::ListTagResources(r) => crate::tags::list(control, account, r).await,
        // Served by the observe handlers before this dispatch.
        Request::Exec(_)
        | Request::PortForward(_)
        | Request::GroupMetric(_)
        | Request::MultiMetric(_) => Err(ApiError::internal(
            "an observe action reached the generic dispatch",
        )),
        Request::Create(c) => {
            if c.dry_run {
                return Err(ApiError::dry_run_operation());
            }
            let id = control
                .create(account, c.spec, c.client_token)
                .await
                .map_err(map_err)?;
            json(CreateContainerGroupResponse {
                request_id: String::new(),
                container_group_id: id.to_string(),
            })
        }
        // Answered as text by `dispatch`.
        Request::DescribeGroups(_) | Request::Price(_) | Request::Usage(_) => Err(
            ApiError::internal("an action answered as text reached the value dispatch"),
        ),
        Request::DescribeStatus(d) => describe_status(control, account, d).await,
        Request::DescribeEvents(d) => describe_events(control, account, d).await,
        Request::Delete(d) => {
            control
                .delete(
                    account,
                    &group_id(&d.container_group_id)?,
                    d.grace_period_secs,
                )
                .await
                .map_err(map_err)?;
            json(RequestIdResponse::default())
        }
        Request::Restart(d) => {
            control
                .restart(
                    account,
                    &group_id(&d.container_group_id)?,
                    d.client_token.as_deref(),
                )
                .await
                .map_err(map_err)?;
            json(RequestIdResponse::default())
        }
        Request::Update(u) => {
            let id = group_id(&u.container_group_id)?;
            let rec = control.get(account, &id).await.map_err(map_err)?;
            let new = u.apply(&rec.spec)?;
            control
                .update(
                    account,
                    &id,
                    &rec.spec,
                    new,
                    u.client_token.as_deref(),
                    &u.fingerprint(),
                )
                .await
                .map_err(map_err)?;
            json(RequestIdResponse::default())
        }
        Request::Log(l) => {
            let id = group_id(&l.container_group_id)?;
            let mut since = l.since_seconds;
            if let Some(st) = l.start_time {
                let secs = (Utc::now() - st).num_seconds().max(0) as u64;
                since = Some(since.map_or(secs, |s| s.min(secs)));
            }
            let req = LogRequest {
                container: l.container_name.clone(),
                tail: Some(l.tail as usize),
                since_seconds: since,
                limit_bytes: l.limit_bytes.map(|b| b as usize),
                timestamps: l.timestamps,
                previous: l.last_time,
                restart_count: None,
            };
            let content = control.logs(account, &id, &req).await.map_err(map_err)?;
            json(DescribeContainerLogResponse {
                request_id: String::new(),
                container_name: l.container_name,
                content,
            })
        }
        Request::DescribeRegions(_) => {
            let region = control.region().to_string();
            json(DescribeRegionsResponse {
                request_id: String::new(),
                regions: vec![Region {
                    region_id: region.clone(),
                    region_endpoint: String::new(),
                    zones: vec![format!("{region}-a")],
                    recommend_zones: vec![format!("{region}-a")],
                }],
            })
        }
    }
}

fn filter(
    ids: Option<Vec<String>>,
    name: Option<String>,
    status: Option<berth_core::GroupStatus>,
    tags: &[TagFilter],
    since_second: Option<u64>,
) -> GroupFilter {
    GroupFilter {
        ids: ids.unwrap_or_default(),
        name,
        status,
        name_contains: None,
        ended: None,
        newest_first: false,
        tags: tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        changed_since: since_second.map(|s| {
            Utc::now() - chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
        }),
    }
}

/// Whether a request names another region than this one (then it sees nothing).
fn other_region(control: &Control, region: &Option<String>) -> bool {
    region
        .as_deref()
        .is_some_and(|r| !r.is_empty() && r != control.region())
}

async fn list(
    control: &Control,
    account: &str,
    f: &GroupFilter,
    limit: u32,
    token: Option<&str>,
    other: bool,
) -> Result<Page, ApiError> {
    if other || (!f.ids.is_empty() && f.ids.iter().all(|i| GroupId::parse(i).is_none())) {
        return Ok(Page::default());
    }
    control
        .list(account, f, limit as usize, token)
        .await
        .map_err(map_err)
}

/// Written straight as text from each group's rendered object: a page of groups is the largest
/// answer there is, and the first pages are asked for most.
async fn describe_groups(
    control: &Control,
    rendered: &Rendered,
    account: &str,
    d: DescribeGroupsRequest,
    rid: &str,
) -> Result<Reply, ApiError> {
    let mut f = filter(d.ids, d.name, d.status, &d.tags, d.since_second);
    f.name_contains = d.name_contains;
    f.newest_first = d.newest_first;
    f.ended = d.ended;
    let page = list(
        control,
        account,
        &f,
        d.limit,
        d.next_token.as_deref(),
        other_region(control, &d.region_id),
    )
    .await?;
    let groups = page
        .groups
        .iter()
        .map(|g| rendered.group(g, d.with_event))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    crate::rendered::describe_groups_text(
        rid,
        page.total,
        page.next_token.as_deref().unwrap_or_default(),
        &groups,
    )
    .map(Reply::Text)
    .map_err(ApiError::internal)
}

async fn describe_status(
    control: &Control,
    account: &str,
    d: DescribeStatusRequest,
) -> Result<serde_json::Value, ApiError> {
    let f = filter(d.ids, None, None, &d.tags, d.since_second);
    let page = list(
        control,
        account,
        &f,
        d.limit,
        d.next_token.as_deref(),
        other_region(control, &d.region_id),
    )
    .await?;
    json(DescribeContainerGroupStatusResponse {
        request_id: String::new(),
        total_count: page.total,
        next_token: page.next_token.unwrap_or_default(),
        data: page
            .groups
            .iter()
            .map(|g| StatusData::from_record(g))
            .collect(),
    })
}

async fn describe_events(
    control: &Control,
    account: &str,
    d: DescribeEventsRequest,
) -> Result<serde_json::Value, ApiError> {
    let f = filter(d.ids, None, None, &d.tags, None);
    let page = list(
        control,
        account,
        &f,
        20,
        d.next_token.as_deref(),
        other_region(control, &d.region_id),
    )
    .await?;
    let mut data: Vec<EventsData> = page
        .groups
        .iter()
        .map(|g| EventsData::from_record(g, d.limit as usize))
        .collect();
    if let Some(s) = d.since_second {
        let cutoff = Utc::now() - chrono::Duration::seconds(s as i64);
        for (g, out) in page.groups.iter().zip(data.iter_mut()) {
            let keep = g
                .events
                .iter()
                .filter(|e| e.last_timestamp >= cutoff)
                .count();
            let skip = out.events.len().saturating_sub(keep);
            out.events.drain(..skip);
        }
    }
    json(DescribeContainerGroupEventsResponse {
        request_id: String::new(),
        total_count: page.total,
        data,
    })
}
