//! DescribeContainerGroups: the `ContainerGroups[]` object with every key of the SDK model.

use berth_core::GroupRecord;
use serde::{Deserialize, Serialize};

use super::container::{ContainerInfo, InitContainerInfo};
use super::{time, time_or_empty};

/// DescribeContainerGroups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeContainerGroupsResponse {
    pub request_id: String,
    pub total_count: u64,
    /// Empty when there is no further page.
    pub next_token: String,
    pub container_groups: Vec<ContainerGroup>,
}

/// One container group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerGroup {
    pub container_group_id: String,
    pub container_group_name: String,
    pub region_id: String,
    pub zone_id: String,
    pub vpc_id: String,
    pub v_switch_id: String,
    pub security_group_id: String,
    pub resource_group_id: String,
    pub eni_instance_id: String,
    pub instance_type: String,
    pub compute_category: String,
    pub tags: Vec<TagInfo>,
    pub cpu: f64,
    pub memory: f64,
    pub ephemeral_storage: i64,
    pub spot_strategy: String,
    pub spot_price_limit: f64,
    /// berth's extension (ECI takes it in CreateContainerGroup, its description has none):
    /// `SpotDuration`, the hours of protection of a preemptible group (0 for pay-as-you-go).
    pub spot_duration: i64,
    pub discount: i64,
    pub ram_role_name: String,
    pub restart_policy: String,
    pub intranet_ip: String,
    pub internet_ip: String,
    pub ipv6_address: String,
    pub tenant_eni_instance_id: String,
    pub tenant_eni_ip: String,
    pub tenant_security_group_id: String,
    pub tenant_v_switch_id: String,
    pub host_aliases: Vec<HostAlias>,
    pub dns_config: DnsConfig,
    pub eci_security_context: EciSecurityContext,
    pub status: String,
    pub creation_time: String,
    pub succeeded_time: String,
    pub failed_time: String,
    pub expired_time: String,
    pub events: Vec<GroupEvent>,
    pub containers: Vec<ContainerInfo>,
    pub init_containers: Vec<InitContainerInfo>,
    pub volumes: Vec<Volume>,
    /// berth's extension: the host ports published for the group (with `InternetIp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published_ports: Vec<PublishedPortInfo>,
    /// berth's extension: the group's runtime class (`runc`, `gvisor`).
    pub runtime_class_name: String,
}

/// One published port: `HostPort` on the group's `InternetIp` reaches `ContainerPort`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PublishedPortInfo {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagInfo {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DnsConfig {
    pub name_servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<NameValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EciSecurityContext {
    pub sysctls: Vec<NameValue>,
    /// berth's extension: `SecurityContext.FsGroup` as created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
}

/// `Events[]` of a group (filled when `WithEvent=true`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GroupEvent {
    pub count: u32,
    #[serde(rename = "Type")]
    pub event_type: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    pub first_timestamp: String,
    pub last_timestamp: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeConfigFileToPath {
    pub path: String,
    pub content: String,
}

/// `Volumes[]`, flat as the response model has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    #[serde(rename = "Type")]
    pub volume_type: String,
    #[serde(rename = "NFSVolumeServer")]
    pub nfs_volume_server: String,
    #[serde(rename = "NFSVolumePath")]
    pub nfs_volume_path: String,
    #[serde(rename = "NFSVolumeReadOnly")]
    pub nfs_volume_read_only: bool,
    pub empty_dir_volume_medium: String,
    pub empty_dir_volume_size_limit: String,
    pub disk_volume_disk_id: String,
    pub disk_volume_fs_type: String,
    pub flex_volume_driver: String,
    pub flex_volume_fs_type: String,
    pub flex_volume_options: String,
    pub config_file_volume_config_file_to_paths: Vec<VolumeConfigFileToPath>,
}

impl ContainerGroup {
    /// The description of a group; its events only when `with_events`.
    pub fn from_record(r: &GroupRecord, with_events: bool) -> Self {
        let s = &r.spec;
        let events = if with_events {
            r.events
                .iter()
                .enumerate()
                .map(|(i, e)| GroupEvent {
                    count: e.count,
                    event_type: e.event_type.as_str().to_string(),
                    name: format!("{}.{}", r.id, i + 1),
                    reason: e.reason.clone(),
                    message: e.message.clone(),
                    first_timestamp: time(e.first_timestamp),
                    last_timestamp: time(e.last_timestamp),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            container_group_id: r.id.to_string(),
            container_group_name: s.name.clone(),
            region_id: s.region_id.clone(),
            zone_id: s.zone_id.clone().unwrap_or_default(),
            tags: s
                .tags
                .iter()
                .map(|t| TagInfo {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect(),
            cpu: s.cpu,
            memory: s.memory,
            ephemeral_storage: s.ephemeral_storage_gib().into(),
            spot_strategy: s
                .spot
                .as_ref()
                .map_or(berth_core::SpotStrategy::NoSpot, |t| t.strategy)
                .as_str()
                .to_string(),
            spot_price_limit: s
                .spot
                .as_ref()
                .and_then(|t| t.price_limit.as_deref())
                .and_then(|l| l.parse().ok())
                .unwrap_or(0.0),
            spot_duration: s.spot.as_ref().map_or(0, |t| t.duration_hours.into()),
            restart_policy: s.restart_policy.as_str().to_string(),
            intranet_ip: r.intranet_ip.clone().unwrap_or_default(),
            internet_ip: s
                .published
                .as_ref()
                .map(|p| p.address.clone())
                .unwrap_or_default(),
            published_ports: s
                .published
                .iter()
                .flat_map(|p| p.ports.iter())
                .map(|p| PublishedPortInfo {
                    host_port: p.host_port,
                    container_port: p.container_port,
                    protocol: p.protocol.clone(),
                })
                .collect(),
            status: r.status.as_str().to_string(),
            runtime_class_name: s.runtime_class().as_str().to_string(),
            creation_time: time(r.creation_time),
            succeeded_time: time_or_empty(r.succeeded_time),
            failed_time: time_or_empty(r.failed_time),
            expired_time: time_or_empty(r.expired_time),
            events,
            containers: s
                .containers
                .iter()
                .map(|c| ContainerInfo::from_spec(c, &r.containers))
                .collect(),
            init_containers: s
                .init_containers
                .iter()
                .map(|c| InitContainerInfo::from_spec(c, &r.init_containers))
                .collect(),
            volumes: s.volumes.iter().map(Volume::from_spec).collect(),
            host_aliases: s
                .host_aliases
                .iter()
                .map(|a| HostAlias {
                    ip: a.ip.clone(),
                    hostnames: a.hostnames.clone(),
                })
                .collect(),
            dns_config: s
                .dns_config
                .as_ref()
                .map(|d| DnsConfig {
                    name_servers: d.name_servers.clone(),
                    searches: d.searches.clone(),
                    options: d
                        .options
                        .iter()
                        .map(|o| NameValue {
                            name: o.name.clone(),
                            value: o.value.clone().unwrap_or_default(),
                        })
                        .collect(),
                })
                .unwrap_or_default(),
            eci_security_context: EciSecurityContext {
                sysctls: s
                    .sysctls
                    .iter()
                    .map(|x| NameValue {
                        name: x.name.clone(),
                        value: x.value.clone(),
                    })
                    .collect(),
                fs_group: s.fs_group,
            },
            ..Default::default()
        }
    }
}

impl Volume {
    /// The flat `Volumes[]` entry of a volume.
    pub fn from_spec(v: &berth_core::Volume) -> Self {
        let mut out = Self {
            name: v.name.clone(),
            volume_type: v.source.type_name().to_string(),
            ..Default::default()
        };
        match &v.source {
            berth_core::VolumeSource::EmptyDir {
                medium, size_limit, ..
            } => {
                if *medium == berth_core::EmptyDirMedium::Memory {
                    out.empty_dir_volume_medium = "Memory".to_string();
                }
                out.empty_dir_volume_size_limit = size_limit.clone().unwrap_or_default();
            }
            berth_core::VolumeSource::ConfigFile { files, .. } => {
                out.config_file_volume_config_file_to_paths = files
                    .iter()
                    .map(|f| VolumeConfigFileToPath {
                        path: f.path.clone(),
                        content: f.content.clone(),
                    })
                    .collect();
            }
            berth_core::VolumeSource::Nfs {
                server,
                path,
                read_only,
            } => {
                out.nfs_volume_server = server.clone();
                out.nfs_volume_path = path.clone();
                out.nfs_volume_read_only = *read_only;
            }
            // ECI's Volumes[] has no field for a host path.
            berth_core::VolumeSource::HostPath { .. } => {}
        }
        out
    }
}
