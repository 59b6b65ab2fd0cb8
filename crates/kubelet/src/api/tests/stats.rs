//! `/stats/summary` and `/metrics/resource` from berth's metric records.

use super::*;

fn record() -> MonitorData {
    serde_json::from_value(json!({
        "ContainerGroupId": "eci-1",
        "Records": [{
            "Timestamp": "2026-01-01T00:01:00Z",
            "CPU": {"UsageNanoCores": 250000000u64, "UsageCoreNanoSeconds": 3000000000u64},
            "Memory": {"WorkingSet": 1000, "UsageBytes": 1500, "Rss": 800, "AvailableBytes": 9000},
            "Containers": [
                {"Name": "app", "CPU": {"UsageNanoCores": 200000000u64, "UsageCoreNanoSeconds": 2500000000u64},
                 "Memory": {"WorkingSet": 700, "UsageBytes": 1000, "Rss": 600}},
                {"Name": "sidecar", "CPU": {"UsageNanoCores": 50000000u64, "UsageCoreNanoSeconds": 500000000u64},
                 "Memory": {"WorkingSet": 300, "UsageBytes": 500, "Rss": 200}}
            ]
        }]
    }))
    .unwrap()
}

async fn setup() -> (Pki, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let pki = Pki::new();
    let mut pending = group("eci-2", "uid-2", "2026-01-01T00:00:30Z");
    pending.tags[2].value = "web-2".into();
    let berth = Arc::new(FakeBerth {
        groups: vec![group("eci-1", UID, "2026-01-01T00:00:00Z"), pending],
        metrics: vec![record()],
        ..Default::default()
    });
    let (addr, stop) = start(&pki, AuthConfig::Anonymous, berth).await;
    (pki, addr, stop)
}

#[tokio::test]
async fn summary_has_the_node_pods_and_containers() {
    let (pki, addr, _stop) = setup().await;
    let v: Value = pki
        .http(false)
        .get(format!(
            "https://{addr}/stats/summary?only_cpu_and_memory=true"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(v["node"]["nodeName"], NODE);
    assert_eq!(v["node"]["cpu"]["usageNanoCores"], 250000000u64);
    assert_eq!(v["node"]["memory"]["workingSetBytes"], 1000);
    let pod = &v["pods"][0];
    assert_eq!(
        pod["podRef"],
        json!({"name": "web-1", "namespace": "shop", "uid": UID})
    );
    assert_eq!(pod["startTime"], "2026-01-01T00:00:00Z");
    assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 3000000000u64);
    assert_eq!(pod["memory"]["rssBytes"], 800);
    assert_eq!(pod["memory"]["time"], "2026-01-01T00:01:00Z");
    let app = &pod["containers"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["startTime"], "2026-01-01T00:00:05Z");
    assert_eq!(app["cpu"]["usageNanoCores"], 200000000u64);
    assert_eq!(app["memory"]["usageBytes"], 1000);
    // A pod without a sample yet is listed, without figures.
    assert_eq!(v["pods"][1]["podRef"]["name"], "web-2");
    assert!(v["pods"][1].get("cpu").is_none());
}

#[tokio::test]
async fn resource_metrics_are_what_metrics_server_reads() {
    let (pki, addr, _stop) = setup().await;
    let r = pki
        .http(false)
        .get(format!("https://{addr}/metrics/resource"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let ts = "1767225660000";
    for line in [
        "# TYPE container_cpu_usage_seconds_total counter".to_string(),
        format!(
            r#"container_cpu_usage_seconds_total{{container="app",namespace="shop",pod="web-1"}} 2.5 {ts}"#
        ),
        format!(
            r#"container_memory_working_set_bytes{{container="sidecar",namespace="shop",pod="web-1"}} 300 {ts}"#
        ),
        format!(
            r#"container_start_time_seconds{{container="app",namespace="shop",pod="web-1"}} 1767225605 {ts}"#
        ),
        format!(r#"pod_cpu_usage_seconds_total{{namespace="shop",pod="web-1"}} 3 {ts}"#),
        format!(r#"pod_memory_working_set_bytes{{namespace="shop",pod="web-1"}} 1000 {ts}"#),
        "scrape_error 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("node_cpu_usage_seconds_total 3 ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("node_memory_working_set_bytes 1000 ")),
        "{text}"
    );
    let r = pki
        .http(false)
        .get(format!("https://{addr}/metrics/resource?format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // web-2 has no sample: no series.
    assert!(!text.contains("web-2"));
    // Every sample line is `name{labels} value [timestamp]`.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let numbers: Vec<&str> = l.split_whitespace().skip(1).collect();
        assert!((1..=2).contains(&numbers.len()), "{l}");
        assert!(numbers.iter().all(|n| n.parse::<f64>().is_ok()), "{l}");
    }
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(
        crate::api::stats::label_escape("a\"b\\c\nd"),
        "a\\\"b\\\\c\\nd"
    );
}
