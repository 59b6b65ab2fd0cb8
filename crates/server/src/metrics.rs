//! `GET /metrics`: Prometheus text exposition (OpenMetrics) of every group and container —
//! CPU seconds, memory, network bytes, restarts, states — and of berth itself: the latency of
//! each API action, image pull durations and the start latency of groups (both read from the
//! records of the groups that exist) — and per account, the spend and the billed seconds
//! from the metering ledger.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_control::MetricRange;
use berth_core::{Event, EventDetail, GroupRecord, GroupStatus};
use chrono::{Duration, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpendLabels {
    account: String,
    currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    group: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    group: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerStateLabels {
    group: String,
    container: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabels {
    group: String,
    interface: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
    .into_iter()
}

fn long_buckets() -> impl Iterator<Item = f64> {
    [
        0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
}

/// berth's own metrics that live across scrapes.
pub struct ApiMetrics {
    latency: Family<ActionLabels, Histogram>,
    /// Image pulls, observed when their `Pulled` event is reported.
    pulls: Histogram,
    /// CreateContainerGroup → first app container running, observed at its `Started` event.
    starts: Histogram,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            pulls: Histogram::new(long_buckets()),
            starts: Histogram::new(long_buckets()),
        }
    }
}

impl ApiMetrics {
    /// Records one API call.
    pub fn observe(&self, action: &str, code: u16, seconds: f64) {
        self.latency
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                code: code.to_string(),
            })
            .observe(seconds);
    }
}

/// The duration of a pull, from the measurement its `Pulled` event carries (none for an
/// image found present).
fn pull_seconds(ev: &Event) -> Option<f64> {
    match ev.detail? {
        EventDetail::Pull { millis, .. } => Some(millis as f64 / 1000.0),
    }
}

impl ApiMetrics {
    /// Takes the events nodes report: pull durations and the start latency of groups.
    pub fn observe_event(&self, rec: &GroupRecord, ev: &Event) {
        match ev.reason.as_str() {
            "Pulled" => {
                if let Some(s) = pull_seconds(ev) {
                    self.pulls.observe(s);
                }
            }
            "Started" => {
                if let Some(s) = first_start_latency(rec, ev) {
                    self.starts.observe(s);
                }
            }
            _ => {}
        }
    }
}

/// Seconds from creation to this start, when it is the group's first app container to start
/// (restarts and later containers do not count).
fn first_start_latency(rec: &GroupRecord, ev: &Event) -> Option<f64> {
    let name = ev.container.as_deref()?;
    if !rec.containers.iter().any(|c| c.name == name) {
        return None;
    }
    let ever_started = rec
        .containers
        .iter()
        .filter(|c| c.restart_count > 0 || c.previous.is_some() || c.current.start_time.is_some())
        .count();
    if ever_started != 1 {
        return None;
    }
    Some(
        ((ev.first_timestamp - rec.creation_time)
            .num_milliseconds()
            .max(0) as f64)
            / 1000.0,
    )
}

/// `GET /metrics`.
/// `/metrics` on the API address: only with the operator's bearer token.
pub async fn guarded(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let rid = crate::request_id();
    let refuse = |status, code, msg: &str| {
        crate::guard::eci_response(&berth_eci::ApiError::new(status, code, msg), &rid)
    };
    let Some(token) = state.metrics_token.clone() else {
        return refuse(
            403,
            "Forbidden",
            "/metrics is not served on this address: use --metrics-listen or --metrics-token-file",
        );
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => refuse(
            401,
            "Unauthorized",
            "/metrics needs the operator's token: Authorization: Bearer <token>",
        ),
        Some(g) if !same(g.trim().as_bytes(), token.as_bytes()) => refuse(
            403,
            "Forbidden",
            "/metrics: the token is not the operator's",
        ),
        Some(_) => handler(State(state)).await,
    }
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn handler(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(text) => {
            let mut r = (StatusCode::OK, text).into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn render(state: &AppState) -> Result<String, String> {
    let mut reg = Registry::with_prefix("berth");
    reg.register(
        "api_request_duration_seconds",
        "Latency of the ECI API by action and HTTP status",
        state.api_metrics.latency.clone(),
    );
    let pulls = state.api_metrics.pulls.clone();
    let starts = state.api_metrics.starts.clone();
    let group_state = Family::<StateLabels, Gauge>::default();
    let container_state = Family::<ContainerStateLabels, Gauge>::default();
    let restarts = Family::<ContainerLabels, Counter>::default();
    let cpu = Family::<ContainerLabels, FloatCounter>::default();
    let group_cpu = Family::<GroupLabels, FloatCounter>::default();
    let cpu_limit = Family::<ContainerLabels, FloatGauge>::default();
    let memory = Family::<ContainerLabels, Gauge>::default();
    let group_memory = Family::<GroupLabels, Gauge>::default();
    let rx = Family::<InterfaceLabels, Counter>::default();
    let tx = Family::<InterfaceLabels, Counter>::default();

    let groups = state
        .control
        .every_group()
        .await
        .map_err(|e| e.to_string())?;
    let now = Utc::now();
    let range = MetricRange {
        start: now - Duration::seconds(600),
        end: now,
    };
    for rec in &groups {
        let gid = rec.id.to_string();
        group_state
            .get_or_create(&StateLabels {
                group: gid.clone(),
                state: rec.status.as_str().to_string(),
            })
            .set(1);
        for c in rec.init_containers.iter().chain(&rec.containers) {
            let l = ContainerLabels {
                group: gid.clone(),
                container: c.name.clone(),
            };
            restarts
                .get_or_create(&l)
                .inc_by(u64::from(c.restart_count));
            container_state
                .get_or_create(&ContainerStateLabels {
                    group: gid.clone(),
                    container: c.name.clone(),
                    state: c.current.state.as_str().to_string(),
                })
                .set(1);
        }
        if !matches!(rec.status, GroupStatus::Running | GroupStatus::Pending) {
            continue;
        }
        let Ok((_, points)) = state.control.metrics(&rec.account, &rec.id, &range).await else {
            continue;
        };
        let Some(p) = points.last() else { continue };
        let g = GroupLabels { group: gid.clone() };
        group_cpu
            .get_or_create(&g)
            .inc_by(p.cpu.usage_core_ns as f64 / 1e9);
        group_memory
            .get_or_create(&g)
            .set(p.memory.working_set_bytes.min(i64::MAX as u64) as i64);
        for c in &p.containers {
            let l = ContainerLabels {
                group: gid.clone(),
                container: c.name.clone(),
            };
            cpu.get_or_create(&l)
                .inc_by(c.cpu.usage_core_ns as f64 / 1e9);
            cpu_limit
                .get_or_create(&l)
                .set(c.cpu.limit_millicores as f64 / 1000.0);
            memory
                .get_or_create(&l)
                .set(c.memory.working_set_bytes.min(i64::MAX as u64) as i64);
        }
        for i in &p.interfaces {
            let l = InterfaceLabels {
                group: gid.clone(),
                interface: i.name.clone(),
            };
            rx.get_or_create(&l).inc_by(i.rx_bytes);
            tx.get_or_create(&l).inc_by(i.tx_bytes);
        }
    }
    reg.register(
        "image_pull_duration_seconds",
        "Durations of image pulls since berth started",
        pulls,
    );
    reg.register(
        "group_start_latency_seconds",
        "Time from CreateContainerGroup to the first app container running, since berth started",
        starts,
    );
    reg.register("group_state", "The status of each group (1)", group_state);
    reg.register(
        "container_state",
        "The state of each container (1)",
        container_state,
    );
    reg.register("container_restarts", "Restarts of each container", restarts);
    reg.register(
        "container_cpu_usage_seconds",
        "CPU time used by each container",
        cpu,
    );
    reg.register(
        "group_cpu_usage_seconds",
        "CPU time used by each group",
        group_cpu,
    );
    reg.register(
        "container_cpu_limit_cores",
        "The CPU limit of each container (0: none)",
        cpu_limit,
    );
    reg.register(
        "container_memory_working_set_bytes",
        "Memory working set of each container",
        memory,
    );
    reg.register(
        "group_memory_working_set_bytes",
        "Memory working set of each group",
        group_memory,
    );
    reg.register(
        "group_network_receive_bytes",
        "Bytes received by each interface of a group",
        rx,
    );
    reg.register(
        "group_network_transmit_bytes",
        "Bytes sent by each interface of a group",
        tx,
    );
    // A bill that cannot be made (more accounts than a bill has lines) leaves these two
    // out rather than the whole exposition.
    let (spend, billed) = account_spend(state, now).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "per-account spend left out of /metrics");
        Default::default()
    });
    reg.register(
        "account_spend",
        "What each account's groups and image caches cost since metering began, exact to 12 places (the bill's own figures are in DescribeUsage)",
        spend,
    );
    reg.register(
        "account_billed_seconds",
        "Seconds each account's groups were billed since metering began, summed over groups",
        billed,
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Each account's spend and its billed seconds.
type AccountTotals = (
    Family<SpendLabels, FloatCounter>,
    Family<AccountLabels, FloatCounter>,
);

/// Every account's spend and billed seconds from the start of the ledger to `now`: one line
/// per account (so as many series as accounts with usage), priced as DescribeUsage does.
async fn account_spend(
    state: &AppState,
    now: chrono::DateTime<Utc>,
) -> Result<AccountTotals, String> {
    let spend = Family::<SpendLabels, FloatCounter>::default();
    let billed = Family::<AccountLabels, FloatCounter>::default();
    let bill = state
        .control
        .bill(
            None,
            chrono::DateTime::<Utc>::UNIX_EPOCH,
            now,
            &berth_core::price::GroupBy::Account,
        )
        .await
        .map_err(|e| e.to_string())?;
    for l in &bill.lines {
        spend
            .get_or_create(&SpendLabels {
                account: l.account.clone(),
                currency: bill.currency.clone(),
            })
            .inc_by(l.amounts.total.to_string().parse().unwrap_or(0.0));
        billed
            .get_or_create(&AccountLabels {
                account: l.account.clone(),
            })
            .inc_by(l.amounts.billed_millis as f64 / 1000.0);
    }
    Ok((spend, billed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_durations_come_from_the_measurement_not_the_message() {
        use berth_core::EventType;
        let pulled = |msg: &str| Event::new(EventType::Normal, "Pulled", msg, None, Utc::now());
        let measured = pulled("Successfully pulled image \"r/busybox:1\" in 9.000s (1 bytes)")
            .with_detail(EventDetail::Pull {
                millis: 1250,
                bytes: 2048,
            });
        assert_eq!(pull_seconds(&measured), Some(1.25));
        // A message alone is never read, whatever it says.
        assert_eq!(
            pull_seconds(&pulled(
                "Successfully pulled image \"x\" in 1.250s (2 bytes)"
            )),
            None
        );
        assert_eq!(
            pull_seconds(&pulled("Container image \"x\" already present on machine")),
            None
        );
    }

    #[test]
    fn start_latency_counts_the_first_app_container_only() {
        use berth_core::{ContainerState, ContainerStatus, EventType, GroupId, GroupSpec};
        let created = Utc::now();
        let started = created + Duration::milliseconds(150);
        let status = |name: &str, running: bool| ContainerStatus {
            name: name.into(),
            current: if running {
                ContainerState::running(started)
            } else {
                ContainerState::waiting("ContainerCreating")
            },
            ..Default::default()
        };
        let mut rec = GroupRecord {
            status: GroupStatus::Pending,
            containers: vec![status("a", true), status("b", false)],
            ..GroupRecord::new(
                GroupId::from_random([1; 20]),
                "a",
                GroupSpec::default(),
                created,
            )
        };
        let ev = Event::new(
            EventType::Normal,
            "Started",
            "Started container a",
            Some("a"),
            started,
        );
        assert_eq!(first_start_latency(&rec, &ev), Some(0.15));
        rec.containers[1] = status("b", true);
        let ev_b = Event::new(
            EventType::Normal,
            "Started",
            "Started container b",
            Some("b"),
            started,
        );
        assert_eq!(first_start_latency(&rec, &ev_b), None);
        // Through observe_event: the first start is counted, the second container's is not.
        let m = ApiMetrics::default();
        rec.containers[1] = status("b", false);
        m.observe_event(&rec, &ev);
        rec.containers[1] = status("b", true);
        m.observe_event(&rec, &ev_b);
        let mut reg = Registry::default();
        reg.register("starts", "", m.starts.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(text.contains("starts_count 1\n"), "{text}");
        assert!(text.contains("starts_sum 0.15\n"), "{text}");
    }
}
