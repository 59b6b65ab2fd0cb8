//! Serialised responses carry the SDK's key names.

use berth_core::{
    ContainerSpec, ContainerState, ContainerStatus, EnvVar, Event, EventType, GroupId, GroupRecord,
    GroupSpec, GroupStatus, PortSpec, Tag,
};
use chrono::TimeZone;
use chrono::Utc;
use serde_json::Value;

use super::*;

fn t(s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, s).unwrap()
}

fn record() -> GroupRecord {
    let app = ContainerSpec {
        name: "app".into(),
        image: "busybox".into(),
        command: vec!["sleep".into(), "3600".into()],
        cpu: Some(0.5),
        memory: Some(1.0),
        env: vec![
            EnvVar {
                key: "A".into(),
                value: "1".into(),
                field_path: None,
            },
            EnvVar {
                key: "IP".into(),
                value: "".into(),
                field_path: Some("status.podIP".into()),
            },
        ],
        ports: vec![PortSpec {
            port: 80,
            protocol: "TCP".into(),
            host_port: None,
        }],
        ..Default::default()
    };
    let init = ContainerSpec {
        name: "init".into(),
        image: "busybox".into(),
        command: vec!["true".into()],
        ..Default::default()
    };
    let mut r = GroupRecord {
        status: GroupStatus::Running,
        intranet_ip: Some("10.0.0.2".into()),
        init_containers: vec![ContainerStatus {
            name: "init".into(),
            current: ContainerState::terminated(0, None, false, Some(t(1)), t(2)),
            ..Default::default()
        }],
        containers: vec![ContainerStatus {
            name: "app".into(),
            current: ContainerState::running(t(5)),
            previous: Some(ContainerState::terminated(
                137,
                Some(9),
                true,
                Some(t(3)),
                t(4),
            )),
            restart_count: 1,
            ready: true,
            crash_streak: 0,
        }],
        events: Vec::new(),
        ..GroupRecord::new(
            GroupId::parse("eci-abcdefghij0123456789").unwrap(),
            "acct",
            GroupSpec {
                name: "smoke".into(),
                region_id: "cn-local".into(),
                cpu: 0.5,
                memory: 1.0,
                containers: vec![app],
                init_containers: vec![init],
                tags: vec![Tag {
                    key: "k".into(),
                    value: "v".into(),
                }],
                termination_grace_period_secs: 30,
                ..Default::default()
            },
            t(0),
        )
    };
    r.push_event(Event::new(
        EventType::Normal,
        "Started",
        "Started container",
        Some("app"),
        t(5),
    ));
    r
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn container_group_keys() {
    let g = ContainerGroup::from_record(&record(), true);
    let v = serde_json::to_value(&g).unwrap();
    for k in [
        "ContainerGroupId",
        "ContainerGroupName",
        "RegionId",
        "ZoneId",
        "VpcId",
        "VSwitchId",
        "SecurityGroupId",
        "ResourceGroupId",
        "EniInstanceId",
        "InstanceType",
        "ComputeCategory",
        "Tags",
        "Cpu",
        "Memory",
        "EphemeralStorage",
        "SpotStrategy",
        "SpotPriceLimit",
        "Discount",
        "RamRoleName",
        "RestartPolicy",
        "IntranetIp",
        "InternetIp",
        "Ipv6Address",
        "TenantEniInstanceId",
        "TenantEniIp",
        "TenantSecurityGroupId",
        "TenantVSwitchId",
        "HostAliases",
        "DnsConfig",
        "EciSecurityContext",
        "Status",
        "CreationTime",
        "SucceededTime",
        "FailedTime",
        "ExpiredTime",
        "Events",
        "Containers",
        "InitContainers",
        "Volumes",
        // berth's extensions.
        "RuntimeClassName",
        "SpotDuration",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {:?}", keys(&v));
    }
    assert_eq!(keys(&v).len(), 41);
    assert_eq!(v["SpotStrategy"], "NoSpot");
    assert_eq!(v["SpotDuration"], 0);
    assert_eq!(v["RuntimeClassName"], "runc");
    assert_eq!(v["CreationTime"], "2024-01-01T00:00:00Z");
    assert_eq!(v["SucceededTime"], "");
    assert_eq!(v["Volumes"], serde_json::json!([]));
    assert_eq!(v["Tags"][0]["Key"], "k");
    assert_eq!(v["Events"][0]["Type"], "Normal");
    assert_eq!(v["Events"][0]["FirstTimestamp"], "2024-01-01T00:00:05Z");
    assert_eq!(v["DnsConfig"]["NameServers"], serde_json::json!([]));
    let c = &v["Containers"][0];
    assert_eq!(c["Commands"], serde_json::json!(["sleep", "3600"]));
    assert!(c.get("Command").is_none());
    assert_eq!(c["CurrentState"]["State"], "Running");
    assert_eq!(c["CurrentState"]["StartTime"], "2024-01-01T00:00:05Z");
    assert_eq!(c["PreviousState"]["Reason"], "OOMKilled");
    assert_eq!(c["PreviousState"]["ExitCode"], 137);
    assert_eq!(c["RestartCount"], 1);
    assert_eq!(c["Ready"], true);
    assert_eq!(c["Ports"][0]["Port"], 80);
    assert_eq!(
        c["EnvironmentVars"][1]["ValueFrom"]["FieldRef"]["FieldPath"],
        "status.podIP"
    );
    assert!(c["EnvironmentVars"][0].get("ValueFrom").is_none());
    assert_eq!(
        c["SecurityContext"]["Capability"]["Adds"],
        serde_json::json!([])
    );
    for k in [
        "Args",
        "VolumeMounts",
        "Stdin",
        "StdinOnce",
        "Tty",
        "Gpu",
        "WorkingDir",
    ] {
        assert!(c.get(k).is_some(), "container misses {k}");
    }
    let i = &v["InitContainers"][0];
    assert_eq!(i["Command"], serde_json::json!(["true"]));
    assert!(i.get("Commands").is_none() && i.get("Tty").is_none());
    assert_eq!(i["CurrentState"]["State"], "Terminated");
    assert_eq!(i["PreviousState"], serde_json::json!({}));

    let without = serde_json::to_value(ContainerGroup::from_record(&record(), false)).unwrap();
    assert_eq!(without["Events"], serde_json::json!([]));
    // Round trip for berth's own client.
    let back: ContainerGroup = serde_json::from_value(v).unwrap();
    assert_eq!(back, g);
}

#[test]
fn status_keys() {
    let d = StatusData::from_record(&record());
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(v["ContainerGroupId"], "eci-abcdefghij0123456789");
    let ps = &v["PodStatus"];
    assert_eq!(ps["Phase"], "Running");
    assert_eq!(ps["PodIp"], "10.0.0.2");
    assert_eq!(ps["PodIps"][0]["Ip"], "10.0.0.2");
    let cond = &ps["Conditions"][3];
    assert_eq!(
        (cond["type"].as_str(), cond["status"].as_str()),
        (Some("Ready"), Some("True"))
    );
    assert!(cond.get("lastTransitionTime").is_some());
    let cs = &ps["ContainerStatuses"][0];
    assert_eq!(
        cs["State"]["Running"]["StartedAtstartedAt"],
        "2024-01-01T00:00:05Z"
    );
    assert_eq!(cs["LastState"]["Terminated"]["ExitCode"], 137);
    assert_eq!(cs["LastState"]["Terminated"]["Reason"], "OOMKilled");
    assert!(cs["LastState"]["Terminated"].get("ContainerID").is_some());
    assert!(cs.get("ImageID").is_some());
    assert_eq!(cs["Started"], true);
}

#[test]
fn events_keys() {
    let d = EventsData::from_record(&record(), 50);
    let v = serde_json::to_value(&d).unwrap();
    assert!(v.get("uuid").is_some());
    let e = &v["Events"][0];
    assert_eq!(e["involvedObject"]["Kind"], "Pod");
    assert_eq!(e["Reason"], "Started");
    assert_eq!(e["Count"], 1);
    assert_eq!(e["Source"]["Component"], "EciService");
    assert!(e["Metadata"].get("Name").is_some());
    assert!(EventsData::from_record(&record(), 0).events.is_empty());
}

#[test]
fn small_bodies() {
    let v = serde_json::to_value(CreateContainerGroupResponse {
        request_id: "r".into(),
        container_group_id: "eci-x".into(),
    })
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"RequestId": "r", "ContainerGroupId": "eci-x"})
    );
    let v = serde_json::to_value(DescribeRegionsResponse {
        request_id: "r".into(),
        regions: vec![Region {
            region_id: "cn-local".into(),
            region_endpoint: "127.0.0.1:8080".into(),
            zones: vec!["cn-local-a".into()],
            recommend_zones: vec![],
        }],
    })
    .unwrap();
    assert_eq!(v["Regions"][0]["RecommendZones"], serde_json::json!([]));
    let v = serde_json::to_value(DescribeContainerLogResponse::default()).unwrap();
    assert_eq!(keys(&v), ["ContainerName", "Content", "RequestId"]);
    let v = serde_json::to_value(DescribeContainerGroupsResponse::default()).unwrap();
    assert_eq!(v["NextToken"], "");
    assert_eq!(v["ContainerGroups"], serde_json::json!([]));
    assert_eq!(group_uuid("eci-a"), group_uuid("eci-a"));
    assert_ne!(group_uuid("eci-a"), group_uuid("eci-b"));
}

#[test]
fn volumes_and_mounts_are_described_flat() {
    let mut r = record();
    r.spec.volumes = vec![
        berth_core::Volume {
            name: "mem".into(),
            source: berth_core::VolumeSource::EmptyDir {
                medium: berth_core::EmptyDirMedium::Memory,
                size_limit: Some("64Mi".into()),
                size_limit_bytes: Some(64 << 20),
            },
        },
        berth_core::Volume {
            name: "conf".into(),
            source: berth_core::VolumeSource::ConfigFile {
                files: vec![berth_core::ConfigFile {
                    path: "a.conf".into(),
                    content: "aGk=".into(),
                    mode: Some(0o600),
                }],
                default_mode: None,
            },
        },
    ];
    r.spec.containers[0].volume_mounts = vec![berth_core::VolumeMount {
        name: "conf".into(),
        mount_path: "/etc/app".into(),
        sub_path: Some("a.conf".into()),
        read_only: true,
        propagation: berth_core::MountPropagation::None,
    }];
    let v = serde_json::to_value(ContainerGroup::from_record(&r, false)).unwrap();
    assert_eq!(v["Volumes"][0]["Type"], "EmptyDirVolume");
    assert_eq!(v["Volumes"][0]["EmptyDirVolumeMedium"], "Memory");
    assert_eq!(v["Volumes"][0]["EmptyDirVolumeSizeLimit"], "64Mi");
    assert_eq!(v["Volumes"][1]["Type"], "ConfigFileVolume");
    assert_eq!(
        v["Volumes"][1]["ConfigFileVolumeConfigFileToPaths"],
        serde_json::json!([{"Path": "a.conf", "Content": "aGk="}])
    );
    assert_eq!(
        v["Containers"][0]["VolumeMounts"],
        serde_json::json!([{"Name": "conf", "MountPath": "/etc/app", "SubPath": "a.conf",
            "ReadOnly": true, "MountPropagation": "None"}])
    );
}

#[test]
fn probes_are_described_with_the_sdk_keys() {
    use berth_core::{Handler, Probe, Scheme};
    let mut r = record();
    r.spec.containers[0].readiness_probe = Some(Probe {
        success_threshold: 2,
        ..Probe::new(Handler::HttpGet {
            host: None,
            path: "/ok".into(),
            port: 8080,
            scheme: Scheme::Http,
            headers: vec![],
        })
    });
    r.spec.containers[0].liveness_probe = Some(Probe::new(Handler::TcpSocket {
        host: None,
        port: 9000,
    }));
    let g = ContainerGroup::from_record(&r, false);
    let v = serde_json::to_value(&g).unwrap();
    let c = &v["Containers"][0];
    assert_eq!(
        c["ReadinessProbe"]["HttpGet"],
        serde_json::json!({"Path": "/ok", "Port": 8080, "Scheme": "HTTP"})
    );
    assert_eq!(c["ReadinessProbe"]["SuccessThreshold"], 2);
    assert_eq!(c["ReadinessProbe"]["PeriodSeconds"], 10);
    assert_eq!(c["LivenessProbe"]["TcpSocket"]["Port"], 9000);
    assert_eq!(c["LivenessProbe"]["FailureThreshold"], 3);
    assert!(c["LivenessProbe"].get("HttpGet").is_none());
}
