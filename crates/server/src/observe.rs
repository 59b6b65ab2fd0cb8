//! The observe actions served next to the generic dispatch: ExecContainerCommand, the two
//! metric operations, and DescribeContainerLog with berth's `Follow=true` extension, which
//! answers with a `StreamUrl` (`http://<host>/logs/<group>/<container>?token=<token>`,
//! `https://` when the API is served over TLS, with a one-time token valid 30 s) from which the log streams as chunked text until the container
//! exits or the client goes (docs/API-EXTENSIONS.md).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_control::{LogRequest, MetricRange};
use berth_core::GroupId;
use berth_eci::request::{GroupMetricRequest, MultiMetricRequest, MAX_METRIC_RECORDS};
use berth_eci::response::{
    DescribeContainerGroupMetricResponse, DescribeMultiContainerGroupMetricResponse, MetricRecord,
    MonitorData,
};
use berth_eci::{ApiError, Params, Request};
use chrono::{Duration, Utc};

use crate::actions::{group_id, json, map_err};
use crate::AppState;

/// What a log stream token stands for.
pub struct LogGrant {
    account: String,
    group: GroupId,
    req: LogRequest,
}

/// Serves `request` when it is an observe action; `None` hands it to the generic dispatch.
pub async fn dispatch(
    state: &AppState,
    account: &str,
    request: Request,
    params: &Params,
    host: &str,
) -> Result<Result<serde_json::Value, Request>, ApiError> {
    Ok(Ok(match request {
        Request::Exec(r) => crate::exec::action(state, account, r, host).await?,
        Request::PortForward(r) => crate::forward::action(state, account, r, host).await?,
        Request::GroupMetric(r) => group_metric(state, account, r).await?,
        Request::MultiMetric(r) => multi_metric(state, account, r).await?,
        Request::Log(l) if params.bool("Follow")?.unwrap_or(false) => {
            let id = group_id(&l.container_group_id)?;
            let rec = state.control.get(account, &id).await.map_err(map_err)?;
            if !rec
                .spec
                .all_containers()
                .any(|c| c.name == l.container_name)
            {
                return Err(ApiError::not_found("ContainerName", &l.container_name));
            }
            let tail = params.int::<usize>("Tail")?;
            let req = LogRequest {
                container: l.container_name.clone(),
                tail,
                since_seconds: l.since_seconds,
                limit_bytes: l.limit_bytes.map(|b| b as usize),
                timestamps: l.timestamps,
                previous: l.last_time,
                restart_count: None,
            };
            let token = state.log_tokens.issue(LogGrant {
                account: account.to_string(),
                group: id.clone(),
                req,
            });
            serde_json::json!({
                "ContainerName": l.container_name,
                "Content": "",
                "StreamUrl": format!(
                    "{}://{host}/logs/{id}/{}?token={token}",
                    state.url_scheme(false),
                    l.container_name
                ),
            })
        }
        other => return Ok(Err(other)),
    }))
}

async fn group_metric(
    state: &AppState,
    account: &str,
    r: GroupMetricRequest,
) -> Result<serde_json::Value, ApiError> {
    let id = group_id(&r.container_group_id)?;
    let range = MetricRange {
        start: r.start,
        end: r.end,
    };
    let (_, points) = state
        .control
        .metrics(account, &id, &range)
        .await
        .map_err(map_err)?;
    let points =
        berth_core::metric::aggregate(&points, r.start, r.end, r.period, MAX_METRIC_RECORDS);
    json(DescribeContainerGroupMetricResponse {
        request_id: String::new(),
        container_group_id: id.to_string(),
        records: points
            .iter()
            .map(|p| MetricRecord::from_point(p, true))
            .collect(),
    })
}

async fn multi_metric(
    state: &AppState,
    account: &str,
    r: MultiMetricRequest,
) -> Result<serde_json::Value, ApiError> {
    let now = Utc::now();
    let range = MetricRange {
        start: now - Duration::seconds(600),
        end: now,
    };
    let mut out = Vec::new();
    for raw in r.ids {
        let Some(id) = GroupId::parse(&raw) else {
            continue;
        };
        let points = match state.control.metrics(account, &id, &range).await {
            Ok((_, p)) => p,
            Err(berth_control::ControlError::NotFound(_)) => continue,
            Err(e) => return Err(map_err(e)),
        };
        out.push(MonitorData {
            container_group_id: id.to_string(),
            records: points
                .last()
                .map(|p| MetricRecord::from_point(p, false))
                .into_iter()
                .collect(),
        });
    }
    json(DescribeMultiContainerGroupMetricResponse {
        request_id: String::new(),
        monitor_datas: out,
    })
}

/// `GET /logs/<group>/<container>?token=<token>[&follow=false]`: the log stream of a token
/// from DescribeContainerLog with `Follow=true`.
pub async fn log_stream(
    State(state): State<AppState>,
    Path((group, container)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let refuse = |code: StatusCode, msg: &str| (code, format!("{msg}\n")).into_response();
    let Some(token) = q.get("token") else {
        return refuse(StatusCode::UNAUTHORIZED, "a token is required");
    };
    let Some(grant) = state.log_tokens.take(token) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the log token is unknown, used or expired",
        );
    };
    if grant.group.as_str() != group || grant.req.container != container {
        return refuse(StatusCode::FORBIDDEN, "the token is for another container");
    }
    let follow = q.get("follow").is_none_or(|v| v != "false");
    let mut resp = if follow {
        let rx = match state
            .control
            .follow_log(&grant.account, &grant.group, &grant.req)
            .await
        {
            Ok(rx) => rx,
            Err(e) => return refuse(StatusCode::NOT_FOUND, &e.to_string()),
        };
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|line| (Ok::<_, std::io::Error>(Bytes::from(line)), rx))
        });
        Body::from_stream(stream).into_response()
    } else {
        match state
            .control
            .logs(&grant.account, &grant.group, &grant.req)
            .await
        {
            Ok(text) => text.into_response(),
            Err(e) => return refuse(StatusCode::NOT_FOUND, &e.to_string()),
        }
    };
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
