//! `GET /stats/summary` (the kubelet's Summary API) and `GET /metrics/resource` (the
//! Prometheus text metrics-server scrapes for `kubectl top` and HPA), both from the latest
//! metric record of each pod's group (DescribeMultiContainerGroupMetric: berth samples every
//! running group every 15 s). The node's figures are the sums over its pods: a virtual node
//! has no machine of its own (so its CPU counter drops when a pod goes).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_client::response::{ContainerGroup, MetricCpu, MetricMemory, MonitorData};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::params::Query;
use super::reply::Refusal;
use super::AppState;
use crate::pod::{TAG_POD_NAME, TAG_POD_NAMESPACE};
use crate::pods::pod_uid;

/// The pods of the node with their latest records, and whether reading them failed.
pub(crate) struct Sample {
    pub pods: Vec<PodSample>,
    pub error: bool,
}

pub(crate) struct PodSample {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub group: ContainerGroup,
    pub record:
        Option<berth_client::response::MetricRecord<berth_client::response::MultiMetricDisk>>,
}

async fn sample(state: &AppState) -> Result<Sample, Refusal> {
    let groups = state.backend.pod_groups().await?;
    let ids: Vec<String> = groups
        .iter()
        .map(|g| g.container_group_id.clone())
        .collect();
    let (metrics, error) = match state.backend.metrics(&ids).await {
        Ok(m) => (m, false),
        Err(e) => {
            tracing::warn!(error = %e, "reading the pods' metrics");
            (Vec::new(), true)
        }
    };
    let mut by_id: HashMap<String, MonitorData> = metrics
        .into_iter()
        .map(|m| (m.container_group_id.clone(), m))
        .collect();
    let pods = groups
        .into_iter()
        .filter_map(|g| {
            let tag = |k: &str| g.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
            let namespace = tag(TAG_POD_NAMESPACE)?;
            let name = tag(TAG_POD_NAME)?;
            let uid = pod_uid(&g)?.to_string();
            let record = by_id
                .remove(&g.container_group_id)
                .and_then(|m| m.records.into_iter().last());
            Some(PodSample {
                namespace,
                name,
                uid,
                group: g,
                record,
            })
        })
        .collect();
    Ok(Sample { pods, error })
}

fn cpu(time: &str, c: &MetricCpu) -> Value {
    json!({"time": time, "usageNanoCores": c.usage_nano_cores,
           "usageCoreNanoSeconds": c.usage_core_nano_seconds})
}

fn memory(time: &str, m: &MetricMemory) -> Value {
    json!({"time": time, "availableBytes": m.available_bytes, "usageBytes": m.usage_bytes,
           "workingSetBytes": m.working_set, "rssBytes": m.rss,
           "pageFaults": 0, "majorPageFaults": 0})
}

fn container_start(g: &ContainerGroup, name: &str) -> Option<String> {
    g.containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.current_state.start_time.clone())
}

/// The Summary of the node and its pods.
pub(crate) fn summary_json(node: &str, started: DateTime<Utc>, s: &Sample) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (mut cpu_sum, mut mem_sum) = (MetricCpu::default(), MetricMemory::default());
    let pods: Vec<Value> = s
        .pods
        .iter()
        .map(|p| {
            let mut v = json!({
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": p.group.creation_time,
                "containers": [],
            });
            if let Some(r) = &p.record {
                cpu_sum.usage_nano_cores += r.cpu.usage_nano_cores;
                cpu_sum.usage_core_nano_seconds += r.cpu.usage_core_nano_seconds;
                mem_sum.available_bytes += r.memory.available_bytes;
                mem_sum.usage_bytes += r.memory.usage_bytes;
                mem_sum.working_set += r.memory.working_set;
                mem_sum.rss += r.memory.rss;
                v["cpu"] = cpu(&r.timestamp, &r.cpu);
                v["memory"] = memory(&r.timestamp, &r.memory);
                v["containers"] = r
                    .containers
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "startTime": container_start(&p.group, &c.name),
                            "cpu": cpu(&r.timestamp, &c.cpu),
                            "memory": memory(&r.timestamp, &c.memory),
                        })
                    })
                    .collect();
            }
            v
        })
        .collect();
    json!({
        "node": {
            "nodeName": node,
            "startTime": started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "cpu": cpu(&now, &cpu_sum),
            "memory": memory(&now, &mem_sum),
            "systemContainers": [],
        },
        "pods": pods,
    })
}

/// A label value as the Prometheus text format writes it.
pub(crate) fn label_escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn millis(time: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The Prometheus text of `/metrics/resource`, as the kubelet writes it.
pub(crate) fn resource_text(s: &Sample, now: DateTime<Utc>) -> String {
    let mut node_cpu = 0u64;
    let mut node_mem = 0u64;
    let mut containers = Vec::new();
    let mut pods = Vec::new();
    for p in &s.pods {
        let Some(r) = &p.record else { continue };
        let Some(ts) = millis(&r.timestamp) else {
            continue;
        };
        node_cpu += r.cpu.usage_core_nano_seconds;
        node_mem += r.memory.working_set;
        let pod_labels = format!(
            "namespace=\"{}\",pod=\"{}\"",
            label_escape(&p.namespace),
            label_escape(&p.name)
        );
        pods.push((
            pod_labels.clone(),
            r.cpu.usage_core_nano_seconds,
            r.memory.working_set,
            ts,
        ));
        for c in &r.containers {
            let labels = format!("container=\"{}\",{pod_labels}", label_escape(&c.name));
            let start = container_start(&p.group, &c.name)
                .and_then(|t| millis(&t))
                .map(|ms| ms as f64 / 1e3);
            containers.push((
                labels,
                c.cpu.usage_core_nano_seconds,
                c.memory.working_set,
                start,
                ts,
            ));
        }
    }
    let now = now.timestamp_millis();
    let secs = |ns: u64| ns as f64 / 1e9;
    let families: [Family; 8] = [
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the container in core-seconds",
            containers
                .iter()
                .map(|c| format!("{{{}}} {} {}", c.0, secs(c.1), c.4))
                .collect(),
        ),
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set of the container in bytes",
            containers
                .iter()
                .map(|c| format!("{{{}}} {} {}", c.0, c.2, c.4))
                .collect(),
        ),
        (
            "container_start_time_seconds",
            "gauge",
            "Start time of the container since unix epoch in seconds",
            containers
                .iter()
                .filter_map(|c| Some(format!("{{{}}} {} {}", c.0, c.3?, c.4)))
                .collect(),
        ),
        (
            "node_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the node in core-seconds",
            vec![format!(" {} {now}", secs(node_cpu))],
        ),
        (
            "node_memory_working_set_bytes",
            "gauge",
            "Current working set of the node in bytes",
            vec![format!(" {node_mem} {now}")],
        ),
        (
            "pod_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the pod in core-seconds",
            pods.iter()
                .map(|p| format!("{{{}}} {} {}", p.0, secs(p.1), p.3))
                .collect(),
        ),
        (
            "pod_memory_working_set_bytes",
            "gauge",
            "Current working set of the pod in bytes",
            pods.iter()
                .map(|p| format!("{{{}}} {} {}", p.0, p.2, p.3))
                .collect(),
        ),
        (
            "scrape_error",
            "gauge",
            "1 if there was an error while getting container metrics, 0 otherwise",
            vec![format!(" {}", u8::from(s.error))],
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, samples) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for sample in samples {
            let _ = writeln!(text, "{name}{sample}");
        }
    }
    text
}

/// A metric family: name, type, help and its samples (labels, value, time stamp).
type Family = (&'static str, &'static str, &'static str, Vec<String>);

/// `GET /stats/summary[?only_cpu_and_memory=…]`: the answer has only CPU and memory either
/// way.
pub(crate) async fn summary(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    Query::parse(raw.as_deref(), &["only_cpu_and_memory"])?.bool("only_cpu_and_memory")?;
    let s = sample(&state).await?;
    let body = summary_json(&state.node, state.started, &s).to_string();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /metrics/resource`, which takes no parameter.
pub(crate) async fn resource_metrics(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    Query::parse(raw.as_deref(), &[])?;
    let s = match sample(&state).await {
        Ok(s) => s,
        // The kubelet answers 200 with scrape_error 1 when it cannot read the metrics.
        Err(_) => Sample {
            pods: Vec::new(),
            error: true,
        },
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        resource_text(&s, Utc::now()),
    )
        .into_response())
}
