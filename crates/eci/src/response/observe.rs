//! Bodies of the observe operations: ExecContainerCommand, DescribeContainerGroupMetric and
//! DescribeMultiContainerGroupMetric. The metric records of the two metric operations are the
//! same but for their `Disk[]` keys (`ReadIO`/`WriteIO` in the first, `ReadIo`/`WriteIo` in
//! the second) and `Filesystem[].Category` (only in the first).

use berth_core::metric::{ContainerMetric, CpuUsage, MemoryUsage, MetricPoint};
use serde::{Deserialize, Serialize};

use super::time;

/// ExecContainerCommand. `SyncResponse` holds the output of a sync exec (stdout, then
/// stderr); `WebSocketUri` the session of an interactive one. `ExitCode`, `Stdout` and
/// `Stderr` are berth's additions (the SDKs ignore them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecContainerCommandResponse {
    pub request_id: String,
    pub http_url: String,
    pub sync_response: String,
    pub web_socket_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricCpu {
    pub limit: u64,
    pub load: u64,
    pub usage_core_nano_seconds: u64,
    pub usage_nano_cores: u64,
}

impl From<&CpuUsage> for MetricCpu {
    fn from(c: &CpuUsage) -> Self {
        Self {
            limit: c.limit_millicores,
            load: 0,
            usage_core_nano_seconds: c.usage_core_ns,
            usage_nano_cores: c.usage_nano_cores,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricMemory {
    pub available_bytes: u64,
    pub cache: u64,
    pub rss: u64,
    pub usage_bytes: u64,
    pub working_set: u64,
}

impl From<&MemoryUsage> for MetricMemory {
    fn from(m: &MemoryUsage) -> Self {
        Self {
            available_bytes: m.available_bytes,
            cache: m.cache_bytes,
            rss: m.rss_bytes,
            usage_bytes: m.usage_bytes,
            working_set: m.working_set_bytes,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricContainer {
    pub name: String,
    #[serde(rename = "CPU")]
    pub cpu: MetricCpu,
    pub memory: MetricMemory,
}

impl From<&ContainerMetric> for MetricContainer {
    fn from(c: &ContainerMetric) -> Self {
        Self {
            name: c.name.clone(),
            cpu: (&c.cpu).into(),
            memory: (&c.memory).into(),
        }
    }
}

/// `Disk[]` of DescribeContainerGroupMetric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricDisk {
    pub device: String,
    pub read_bytes: u64,
    #[serde(rename = "ReadIO")]
    pub read_io: u64,
    pub write_bytes: u64,
    #[serde(rename = "WriteIO")]
    pub write_io: u64,
}

/// `Disk[]` of DescribeMultiContainerGroupMetric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiMetricDisk {
    pub device: String,
    pub read_bytes: u64,
    pub read_io: u64,
    pub write_bytes: u64,
    pub write_io: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricFilesystem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub available: u64,
    pub capacity: u64,
    pub fs_name: String,
    pub usage: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_drops: u64,
    pub rx_errors: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
    pub tx_errors: u64,
    pub tx_packets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricNetwork {
    pub interfaces: Vec<MetricInterface>,
}

/// One record; `D` is the `Disk[]` entry of the operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricRecord<D> {
    pub timestamp: String,
    #[serde(rename = "CPU")]
    pub cpu: MetricCpu,
    pub memory: MetricMemory,
    pub containers: Vec<MetricContainer>,
    pub disk: Vec<D>,
    pub filesystem: Vec<MetricFilesystem>,
    pub network: MetricNetwork,
}

impl<D> MetricRecord<D> {
    /// The record of a sample; `categories` keeps `Filesystem[].Category`.
    pub fn from_point(p: &MetricPoint, categories: bool) -> Self {
        Self {
            timestamp: time(p.timestamp),
            cpu: (&p.cpu).into(),
            memory: (&p.memory).into(),
            containers: p.containers.iter().map(Into::into).collect(),
            disk: Vec::new(),
            filesystem: p
                .filesystems
                .iter()
                .map(|f| MetricFilesystem {
                    category: categories.then(|| f.category.clone()),
                    available: f.available,
                    capacity: f.capacity,
                    fs_name: f.fs_name.clone(),
                    usage: f.usage,
                })
                .collect(),
            network: MetricNetwork {
                interfaces: p
                    .interfaces
                    .iter()
                    .map(|i| MetricInterface {
                        name: i.name.clone(),
                        rx_bytes: i.rx_bytes,
                        rx_drops: i.rx_drops,
                        rx_errors: i.rx_errors,
                        rx_packets: i.rx_packets,
                        tx_bytes: i.tx_bytes,
                        tx_drops: i.tx_drops,
                        tx_errors: i.tx_errors,
                        tx_packets: i.tx_packets,
                    })
                    .collect(),
            },
        }
    }
}

/// DescribeContainerGroupMetric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeContainerGroupMetricResponse {
    pub request_id: String,
    pub container_group_id: String,
    pub records: Vec<MetricRecord<MetricDisk>>,
}

/// One group of DescribeMultiContainerGroupMetric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MonitorData {
    pub container_group_id: String,
    pub records: Vec<MetricRecord<MultiMetricDisk>>,
}

/// DescribeMultiContainerGroupMetric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeMultiContainerGroupMetricResponse {
    pub request_id: String,
    pub monitor_datas: Vec<MonitorData>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::metric::{FilesystemMetric, InterfaceMetric};

    fn point() -> MetricPoint {
        MetricPoint {
            timestamp: "2024-01-01T00:00:15Z".parse().unwrap(),
            cpu: CpuUsage {
                usage_core_ns: 9,
                usage_nano_cores: 500_000_000,
                limit_millicores: 500,
            },
            containers: vec![ContainerMetric {
                name: "c".into(),
                ..Default::default()
            }],
            interfaces: vec![InterfaceMetric {
                name: "eth0".into(),
                rx_bytes: 5,
                ..Default::default()
            }],
            filesystems: vec![FilesystemMetric {
                fs_name: "rootfs".into(),
                category: "System".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn keys_as_the_sdk_reads_them() {
        let mut r = MetricRecord::<MetricDisk>::from_point(&point(), true);
        r.disk.push(MetricDisk::default());
        let v = serde_json::to_value(DescribeContainerGroupMetricResponse {
            request_id: "r".into(),
            container_group_id: "eci-1".into(),
            records: vec![r],
        })
        .unwrap();
        let rec = &v["Records"][0];
        assert_eq!(rec["Timestamp"], "2024-01-01T00:00:15Z");
        assert_eq!(rec["CPU"]["UsageNanoCores"], 500_000_000);
        assert_eq!(rec["CPU"]["Limit"], 500);
        assert_eq!(rec["CPU"]["UsageCoreNanoSeconds"], 9);
        assert!(rec["Memory"]["WorkingSet"].is_u64());
        assert_eq!(rec["Containers"][0]["Name"], "c");
        assert!(rec["Containers"][0]["CPU"]["Load"].is_u64());
        assert_eq!(rec["Network"]["Interfaces"][0]["RxBytes"], 5);
        assert!(rec["Disk"][0]["ReadIO"].is_u64() && rec["Disk"][0]["WriteIO"].is_u64());
        assert_eq!(rec["Filesystem"][0]["Category"], "System");

        let mut m = MetricRecord::<MultiMetricDisk>::from_point(&point(), false);
        m.disk.push(MultiMetricDisk::default());
        let v = serde_json::to_value(DescribeMultiContainerGroupMetricResponse {
            request_id: "r".into(),
            monitor_datas: vec![MonitorData {
                container_group_id: "eci-1".into(),
                records: vec![m],
            }],
        })
        .unwrap();
        let rec = &v["MonitorDatas"][0]["Records"][0];
        assert!(rec["Disk"][0]["ReadIo"].is_u64() && rec["Disk"][0]["WriteIo"].is_u64());
        assert!(rec["Filesystem"][0].get("Category").is_none());
        assert_eq!(v["MonitorDatas"][0]["ContainerGroupId"], "eci-1");
    }

    #[test]
    fn exec_keys() {
        let v = serde_json::to_value(ExecContainerCommandResponse {
            web_socket_uri: "ws://h/exec/t".into(),
            ..Default::default()
        })
        .unwrap();
        for k in ["RequestId", "HttpUrl", "SyncResponse", "WebSocketUri"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v.get("ExitCode").is_none());
    }
}
