//! Response bodies (ECI_API.md §5, §7.2) with the exact key names the SDKs read, and their
//! construction from `berth_core::GroupRecord`. Lists are always present (empty when berth has
//! nothing), strings are empty where berth has no value, times are RFC 3339 UTC
//! (`2024-01-01T00:00:05Z`). Every struct also deserialises, leniently, for berth's own client.

mod cache;
mod container;
mod events;
mod group;
mod observe;
mod price;
mod status;
mod tags;
mod usage;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cache::{
    CreateImageCacheResponse, DescribeImageCachesResponse, ImageCache, ListUsageResponse,
};
pub use container::{
    Capability, ContainerInfo, ContainerStateInfo, EnvironmentVar, FieldRef, InitContainerInfo,
    PortInfo, Probe, ProbeHttpGet, ProbeTcpSocket, SecurityContext, ValueFrom, VolumeMount,
};
pub use events::{
    DescribeContainerGroupEventsResponse, EventMetadata, EventSource, EventsData, InvolvedObject,
    K8sEvent, EVENT_COMPONENT,
};
pub use group::{
    ContainerGroup, DescribeContainerGroupsResponse, DnsConfig, EciSecurityContext, GroupEvent,
    HostAlias, NameValue, PublishedPortInfo, TagInfo, Volume, VolumeConfigFileToPath,
};
pub use observe::{
    DescribeContainerGroupMetricResponse, DescribeMultiContainerGroupMetricResponse,
    ExecContainerCommandResponse, MetricContainer, MetricCpu, MetricDisk, MetricFilesystem,
    MetricInterface, MetricMemory, MetricNetwork, MetricRecord, MonitorData, MultiMetricDisk,
};
pub use price::{
    DescribeContainerGroupPriceResponse, DetailInfo, DetailInfos, Money, Price, PriceInfo, Rule,
    Rules, SpotPrice, SpotPrices,
};
pub use status::{
    ContainerStatusInfo, DescribeContainerGroupStatusResponse, PodCondition, PodIp, PodStatus,
    RunningState, StateInfo, StatusData, TerminatedState, WaitingState,
};
pub use tags::{ListTagResourcesResponse, TagResource};
pub use usage::{DescribeUsageResponse, UnitPrices, UsageAmounts, UsageLine};

/// A time as ECI writes it: `2024-01-01T00:00:05Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time, or the empty string.
pub fn time_or_empty(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_default()
}

/// A stable UUID-shaped id for a group (the `uuid` of the status and event bodies), derived
/// from its id.
pub fn group_uuid(id: &str) -> String {
    let h = hex::encode(Sha256::digest(id.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `{RequestId}`: DeleteContainerGroup, RestartContainerGroup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestIdResponse {
    pub request_id: String,
}

/// CreateContainerGroup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateContainerGroupResponse {
    pub request_id: String,
    pub container_group_id: String,
}

/// DescribeContainerLog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeContainerLogResponse {
    pub request_id: String,
    pub container_name: String,
    pub content: String,
}

/// One region of DescribeRegions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Region {
    pub region_id: String,
    pub region_endpoint: String,
    pub zones: Vec<String>,
    pub recommend_zones: Vec<String>,
}

/// DescribeRegions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeRegionsResponse {
    pub request_id: String,
    pub regions: Vec<Region>,
}

#[cfg(test)]
mod tests;
