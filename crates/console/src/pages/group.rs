//! One container group: its containers (state, reason, exit code, restarts, ready), events,
//! logs that follow live (the API's log stream, `Follow=true`), the previous container's logs,
//! CPU, memory and network charts (DescribeContainerGroupMetric), a terminal over the exec
//! WebSocket, and restart and delete behind a confirmation (the update form is `update.rs`).
//! Another account's group, or one that does not exist, is the API's
//! `InvalidContainerGroup.NotFound`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use berth_eci::response::{
    ContainerGroup, DescribeContainerGroupMetricResponse, DescribeContainerGroupsResponse,
    DescribeContainerLogResponse, ExecContainerCommandResponse,
};
use berth_eci::{Action, ApiError};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::{age, num};
use crate::api::{call, call_as, kv};
use crate::auth::{signed, signed_post, Signed};
use crate::page::{csrf_field, error_page, html_response, layout, layout_with};
use crate::Console;

/// The group `id` of the caller, or the API's not-found error.
async fn describe(c: &Console, who: &Signed, id: &str) -> Result<ContainerGroup, ApiError> {
    let ids = serde_json::to_string(&[id]).map_err(ApiError::internal)?;
    let page: DescribeContainerGroupsResponse = call_as(
        c,
        who,
        Action::DescribeContainerGroups,
        vec![kv("ContainerGroupIds", ids), kv("WithEvent", "true")],
    )
    .await?;
    page.container_groups
        .into_iter()
        .find(|g| g.container_group_id == id)
        .ok_or_else(|| ApiError::container_group_not_found(id))
}

fn containers(g: &ContainerGroup) -> Markup {
    html! {
        div.scroll { table {
            caption { "Containers" }
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Image" } th scope="col" { "State" }
                th scope="col" { "Reason" } th scope="col" { "Exit code" }
                th scope="col" { "Restarts" } th scope="col" { "Ready" }
            } }
            tbody {
                @for ct in &g.containers {
                    @let st = &ct.current_state;
                    tr {
                        td { (ct.name) }
                        td { code { (ct.image) } }
                        td { (st.state.as_deref().unwrap_or("")) }
                        td {
                            (st.reason.as_deref().unwrap_or(""))
                            @if let Some(m) = &st.message { br; small { (m) } }
                            @if let Some(prev) = &ct.previous_state.reason { br; small { "previously: " (prev) } }
                        }
                        td { (st.exit_code.or(ct.previous_state.exit_code).map(|c| c.to_string()).unwrap_or_default()) }
                        td { (ct.restart_count) }
                        td { @if ct.ready { "yes" } @else { "no" } }
                    }
                }
            }
        } }
    }
}

fn events(g: &ContainerGroup) -> Markup {
    html! {
        div.scroll { table {
            caption { "Events" }
            thead { tr {
                th scope="col" { "Last seen" } th scope="col" { "Type" } th scope="col" { "Reason" }
                th scope="col" { "Message" } th scope="col" { "Count" }
            } }
            tbody {
                @for e in g.events.iter().rev() {
                    tr {
                        td title=(e.last_timestamp) { (age(&e.last_timestamp, Utc::now())) }
                        td { (e.event_type) } td { (e.reason) } td { (e.message) } td { (e.count) }
                    }
                }
            }
        } }
    }
}

/// What changes while the page is open: the status, the containers and the events (fetched
/// again by the script every 5 s).
fn state(g: &ContainerGroup) -> Markup {
    html! {
        p.status-line {
            "Status " span id="group-status" class={ "status s-" (g.status.to_ascii_lowercase()) } { (g.status) }
        }
        (containers(g))
        (events(g))
    }
}

/// `GET /console/groups/{id}/state`: [`state`] alone.
pub async fn live_state(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match describe(&c, &who, &id).await {
        Ok(g) => html_response(StatusCode::OK, state(&g)),
        Err(e) => html_response(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            crate::page::error_box(&e),
        ),
    }
}

fn container_select(g: &ContainerGroup, id: &str) -> Markup {
    html! {
        label for=(id) { "Container" }
        select id=(id) name="container" {
            @for ct in &g.containers { option value=(ct.name) { (ct.name) } }
        }
    }
}

/// `GET /console/groups/{id}`.
pub async fn show(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let g = match describe(&c, &who, &id).await {
        Ok(g) => g,
        Err(e) => return error_page(Some(&who), &e),
    };
    let base = format!("/console/groups/{}", g.container_group_id);
    let body = html! {
        dl.summary {
            dt { "Id" } dd { code { (g.container_group_id) } }
            dt { "IP" } dd { (g.intranet_ip) }
            dt { "Size" } dd { (num(g.cpu)) " vCPU / " (num(g.memory)) " GiB" }
            dt { "Restart policy" } dd { (g.restart_policy) }
            dt { "Created" } dd { (g.creation_time) }
            dt { "Tags" } dd {
                @for t in &g.tags { span.tag { (t.key) "=" (t.value) } " " }
            }
        }
        div.actions {
            form method="post" action={ (base) "/restart" } data-confirm={ "Restart " (g.container_group_name) "?" } {
                (csrf_field(&who))
                button type="submit" { "Restart" }
            }
            form method="post" action={ (base) "/delete" } data-confirm={ "Delete " (g.container_group_name) "? Its containers are stopped and removed." } {
                (csrf_field(&who))
                button.danger type="submit" { "Delete" }
            }
        }
        (super::update::form(&who, &g, &base))
        div id="group-state" data-poll={ (base) "/state" } aria-live="polite" {
            (state(&g))
        }
        section aria-labelledby="logs-h" {
            h2 id="logs-h" { "Logs" }
            form.inline id="log-form" data-stream={ (base) "/log-stream" } {
                (container_select(&g, "log-container"))
                button type="submit" { "Follow live" }
                a id="previous-logs" href={ (base) "/logs?previous=true&container=" (g.containers.first().map_or("", |c| c.name.as_str())) } { "Previous container's logs" }
            }
            pre.log id="log" tabindex="0" aria-live="off" aria-label="Log output" {}
        }
        section aria-labelledby="metrics-h" {
            h2 id="metrics-h" { "Metrics (last 10 minutes)" }
            div.charts id="charts" data-src={ (base) "/metrics" } {
                figure { figcaption { "CPU (millicores)" } div.chart id="chart-cpu" {} }
                figure { figcaption { "Memory (MiB)" } div.chart id="chart-mem" {} }
                figure { figcaption { "Network (KiB/s received, sent)" } div.chart id="chart-net" {} }
            }
        }
        section aria-labelledby="term-h" {
            h2 id="term-h" { "Terminal" }
            form.inline id="term-form" data-exec={ (base) "/exec" } {
                (container_select(&g, "term-container"))
                label for="term-command" { "Command" }
                input id="term-command" name="command" value="sh";
                button type="submit" { "Open terminal" }
            }
            div.terminal id="terminal" {}
        }
    };
    html_response(
        StatusCode::OK,
        layout_with(
            &g.container_group_name,
            Some(&who),
            &[
                "xterm.css",
                "uPlot.min.css",
                "xterm.js",
                "uPlot.iife.min.js",
            ],
            body,
        ),
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/groups/{id}/restart`.
pub async fn restart(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let back = format!("/console/groups/{}", super::enc(&id));
    act_on_group(&c, &headers, &f, Action::RestartContainerGroup, &id, &back).await
}

/// `POST /console/groups/{id}/delete`.
pub async fn delete(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    act_on_group(
        &c,
        &headers,
        &f,
        Action::DeleteContainerGroup,
        &id,
        "/console/groups",
    )
    .await
}

/// A form's `action` on the group `id` for the session's account, then `back`; the API's
/// error page when it is refused.
async fn act_on_group(
    c: &Console,
    headers: &HeaderMap,
    f: &CsrfForm,
    action: Action,
    id: &str,
    back: &str,
) -> Response {
    let who = match signed_post(c, headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match call(c, &who, action, vec![kv("ContainerGroupId", id)]).await {
        Ok(_) => Redirect::to(back).into_response(),
        Err(e) => error_page(Some(&who), &e),
    }
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    container: String,
    #[serde(default)]
    previous: bool,
}

/// `GET /console/groups/{id}/logs?container=..&previous=true`: the last 1,000 lines, of the
/// previous run of the container with `previous`.
pub async fn previous_logs(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let res: Result<DescribeContainerLogResponse, _> = call_as(
        &c,
        &who,
        Action::DescribeContainerLog,
        vec![
            kv("ContainerGroupId", &id),
            kv("ContainerName", &q.container),
            kv("Tail", "1000"),
            kv("LastTime", q.previous.to_string()),
        ],
    )
    .await;
    match res {
        Ok(l) => {
            let title = if q.previous {
                format!("Previous logs of {}", q.container)
            } else {
                format!("Logs of {}", q.container)
            };
            html_response(
                StatusCode::OK,
                layout(
                    &title,
                    Some(&who),
                    html! {
                        p { a href={ "/console/groups/" (super::enc(&id)) } { "Back to the group" } }
                        pre.log tabindex="0" { (l.content) }
                    },
                ),
            )
        }
        Err(e) => error_page(Some(&who), &e),
    }
}

#[derive(Deserialize)]
pub struct ContainerForm {
    csrf: Option<String>,
    #[serde(default)]
    container: String,
    #[serde(default)]
    command: String,
}

fn json_error(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(serde_json::json!({ "Code": e.code, "Message": e.message })),
    )
        .into_response()
}

/// `POST /console/groups/{id}/log-stream`: the one-time URL of the container's log stream.
pub async fn log_stream(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ContainerForm>,
) -> Response {
    let who = match signed_post(&c, &headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let res = call(
        &c,
        &who,
        Action::DescribeContainerLog,
        vec![
            kv("ContainerGroupId", &id),
            kv("ContainerName", &f.container),
            kv("Follow", "true"),
            kv("Tail", "500"),
        ],
    )
    .await;
    match res {
        Ok(v) => Json(serde_json::json!({ "url": v["StreamUrl"] })).into_response(),
        Err(e) => json_error(&e),
    }
}

/// `POST /console/groups/{id}/exec`: the one-time URL of an interactive exec session.
pub async fn exec(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ContainerForm>,
) -> Response {
    let who = match signed_post(&c, &headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let command = if f.command.trim().is_empty() {
        "sh"
    } else {
        f.command.trim()
    };
    let res: Result<ExecContainerCommandResponse, _> = call_as(
        &c,
        &who,
        Action::ExecContainerCommand,
        vec![
            kv("ContainerGroupId", &id),
            kv("ContainerName", &f.container),
            kv("Command", command),
            kv("TTY", "true"),
            kv("Stdin", "true"),
        ],
    )
    .await;
    match res {
        Ok(r) => Json(serde_json::json!({ "url": r.web_socket_uri })).into_response(),
        Err(e) => json_error(&e),
    }
}

/// The chart series: seconds since the epoch, CPU millicores, memory MiB, network KiB/s.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct Series {
    pub t: Vec<i64>,
    pub cpu: Vec<f64>,
    pub mem: Vec<f64>,
    pub rx: Vec<Option<f64>>,
    pub tx: Vec<Option<f64>>,
}

/// The series of a metric answer; network rates from the byte counters' differences.
pub fn series(m: &DescribeContainerGroupMetricResponse) -> Series {
    let mut s = Series::default();
    let mut last: Option<(i64, u64, u64)> = None;
    for r in &m.records {
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.timestamp) else {
            continue;
        };
        let t = t.timestamp();
        let rx: u64 = r.network.interfaces.iter().map(|i| i.rx_bytes).sum();
        let tx: u64 = r.network.interfaces.iter().map(|i| i.tx_bytes).sum();
        s.t.push(t);
        s.cpu.push(r.cpu.usage_nano_cores as f64 / 1e6);
        s.mem.push(r.memory.working_set as f64 / (1024.0 * 1024.0));
        let rate = |now: u64, before: u64, dt: i64| {
            (dt > 0 && now >= before).then(|| (now - before) as f64 / 1024.0 / dt as f64)
        };
        match last {
            Some((t0, rx0, tx0)) => {
                s.rx.push(rate(rx, rx0, t - t0));
                s.tx.push(rate(tx, tx0, t - t0));
            }
            None => {
                s.rx.push(None);
                s.tx.push(None);
            }
        }
        last = Some((t, rx, tx));
    }
    s
}

/// `GET /console/groups/{id}/metrics`: the last 10 minutes, 15 s apart, as chart series.
pub async fn metrics(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match signed(&c, &headers).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let now = Utc::now();
    let res: Result<DescribeContainerGroupMetricResponse, _> = call_as(
        &c,
        &who,
        Action::DescribeContainerGroupMetric,
        vec![
            kv("ContainerGroupId", &id),
            kv("Period", "15"),
            kv(
                "StartTime",
                (now - chrono::Duration::minutes(10))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            kv(
                "EndTime",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ],
    )
    .await;
    match res {
        Ok(m) => Json(series(&m)).into_response(),
        Err(e) => json_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_rates_come_from_counter_differences() {
        let m: DescribeContainerGroupMetricResponse = serde_json::from_value(serde_json::json!({
            "Records": [
                {"Timestamp": "2026-12-04T12:00:00Z", "CPU": {"UsageNanoCores": 250000000},
                 "Memory": {"WorkingSet": 10485760},
                 "Network": {"Interfaces": [{"Name": "eth0", "RxBytes": 1024, "TxBytes": 0}]}},
                {"Timestamp": "2026-12-04T12:00:15Z", "CPU": {"UsageNanoCores": 0},
                 "Memory": {"WorkingSet": 0},
                 "Network": {"Interfaces": [{"Name": "eth0", "RxBytes": 16384, "TxBytes": 1536}]}}
            ]
        }))
        .unwrap();
        let s = series(&m);
        assert_eq!(s.t.len(), 2);
        assert_eq!(s.cpu, vec![250.0, 0.0]);
        assert_eq!(s.mem, vec![10.0, 0.0]);
        assert_eq!(s.rx, vec![None, Some(1.0)]);
        assert_eq!(s.tx, vec![None, Some(0.1)]);
    }
}
