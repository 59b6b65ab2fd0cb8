//! Decoding of the operations' parameters.

use berth_core::{GroupStatus, ImagePullPolicy, RestartPolicy};

use super::*;

fn p(q: &str) -> Params {
    Params::parse(q, None).unwrap()
}

fn create(q: &str) -> Result<CreateRequest, ApiError> {
    CreateRequest::decode(&p(q))
}

const SMOKE: &str = "Container.1.Command.1=sleep&Container.1.Command.2=3600&Container.1.Cpu=0.5&Container.1.Image=busybox&Container.1.Memory=1.0&Container.1.Name=busybox&ContainerGroupName=smoke&RegionId=cn-local&RestartPolicy=Always";

#[test]
fn smoke_request_decodes() {
    let r = create(SMOKE).unwrap();
    let s = &r.spec;
    assert_eq!(s.name, "smoke");
    assert_eq!(s.region_id, "cn-local");
    assert_eq!((s.cpu, s.memory), (0.5, 1.0));
    assert_eq!(s.restart_policy, RestartPolicy::Always);
    assert_eq!(s.containers.len(), 1);
    let c = &s.containers[0];
    assert_eq!(c.name, "busybox");
    assert_eq!(c.image, "busybox");
    assert_eq!(c.command, vec!["sleep", "3600"]);
    assert_eq!((c.cpu, c.memory), (Some(0.5), Some(1.0)));
    assert_eq!(s.termination_grace_period_secs, 30);
    assert!(!r.dry_run);
    assert_eq!(r.client_token, None);
}

#[test]
fn rich_request_decodes() {
    let q = "ContainerGroupName=web-1&Cpu=2.0&Memory=4&ClientToken=tok-1&DryRun=True\
        &Container.2.Name=side&Container.2.Image=alpine%3A3&Container.2.Tty=False\
        &Container.1.Name=app&Container.1.Image=nginx&Container.1.ImagePullPolicy=Always\
        &Container.1.Arg.2=b&Container.1.Arg.1=a&Container.1.WorkingDir=%2Fsrv\
        &Container.1.EnvironmentVar.1.Key=A&Container.1.EnvironmentVar.1.Value=v%3D1%262%2B3+%25\
        &Container.1.EnvironmentVar.2.Key=IP&Container.1.EnvironmentVar.2.FieldRef.FieldPath=status.podIP\
        &Container.1.Port.1.Port=80&Container.1.Port.2.Port=53&Container.1.Port.2.Protocol=udp\
        &Container.1.Tty=false&Container.1.Stdin=False\
        &Container.1.SecurityContext.RunAsUser=1000&Container.1.SecurityContextRunAsGroup=2000\
        &Container.1.SecurityContext.ReadOnlyRootFilesystem=true\
        &Container.1.SecurityContext.Capability.Add.1=NET_ADMIN\
        &Container.1.VolumeMount.1.ReadOnly=None\
        &InitContainer.1.Name=init&InitContainer.1.Image=busybox&InitContainer.1.Command.1=true\
        &ImageRegistryCredential.1.Server=reg.local%3A5000&ImageRegistryCredential.1.UserName=u\
        &ImageRegistryCredential.1.Password=p%26w\
        &PlainHttpRegistry=reg.local%3A5000%2C+other%3A80&InsecureRegistry=secure.local\
        &RestartPolicy=OnFailure&TerminationGracePeriodSeconds=5&Tag.1.Key=env&Tag.1.Value=dev+test\
        &HostName=web&ZoneId=cn-local-a";
    let r = create(q).unwrap();
    let s = &r.spec;
    assert!(r.dry_run);
    assert_eq!(r.client_token.as_deref(), Some("tok-1"));
    assert_eq!((s.cpu, s.memory), (2.0, 4.0));
    assert_eq!(s.region_id, "");
    assert_eq!(s.zone_id.as_deref(), Some("cn-local-a"));
    assert_eq!(
        s.containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["app", "side"]
    );
    let c = &s.containers[0];
    assert_eq!(c.image_pull_policy, ImagePullPolicy::Always);
    assert_eq!(c.args, vec!["a", "b"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.env[0].value, "v=1&2+3 %");
    assert_eq!(c.env[1].field_path.as_deref(), Some("status.podIP"));
    assert_eq!(c.ports[1].protocol, "UDP");
    assert_eq!(c.ports[0].port, 80);
    assert!(!c.tty && !c.stdin && c.read_only_root_filesystem);
    assert_eq!((c.run_as_user, c.run_as_group), (Some(1000), Some(2000)));
    assert_eq!(c.capability_add, vec!["NET_ADMIN"]);
    assert!(!s.containers[1].tty);
    assert_eq!(s.init_containers[0].command, vec!["true"]);
    assert_eq!(s.registry_credentials[0].password, "p&w");
    assert_eq!(s.plain_http_registries, vec!["reg.local:5000", "other:80"]);
    assert_eq!(s.insecure_registries, vec!["secure.local"]);
    assert_eq!(s.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(s.termination_grace_period_secs, 5);
    assert_eq!(s.tags[0].value, "dev test");
    assert_eq!(s.host_name.as_deref(), Some("web"));
    assert_eq!(s.active_deadline_secs, None);
}

#[test]
fn group_size_rules() {
    let size = |q: &str| {
        let s = create(&format!("ContainerGroupName=ab&{q}")).unwrap().spec;
        (s.cpu, s.memory)
    };
    let one = "Container.1.Name=a&Container.1.Image=i";
    assert_eq!(size(one), (2.0, 4.0));
    assert_eq!(size(&format!("{one}&Cpu=1")), (1.0, 2.0));
    let two = "Container.1.Name=a&Container.1.Image=i&Container.1.Cpu=0.5&Container.1.Memory=1\
        &Container.2.Name=b&Container.2.Image=i&Container.2.Cpu=0.5&Container.2.Memory=2";
    assert_eq!(size(two), (1.0, 4.0));
    let big_init =
        format!("{two}&InitContainer.1.Name=c&InitContainer.1.Image=i&InitContainer.1.Cpu=4");
    assert_eq!(size(&big_init), (4.0, 4.0));
    let err = create(&format!("ContainerGroupName=ab&{two}&Cpu=0.5")).unwrap_err();
    assert!(err.message.contains("Container.N.Cpu"), "{}", err.message);
    assert!(create(&format!("ContainerGroupName=ab&{one}&Cpu=65")).is_err());
    assert!(create(&format!("ContainerGroupName=ab&{one}&Container.1.Cpu=0")).is_err());
}

#[test]
fn create_refusals_name_the_parameter() {
    let err = |q: &str| create(q).unwrap_err();
    let one = "Container.1.Name=a&Container.1.Image=i";
    assert_eq!(err(one).code, "MissingParameter");
    assert!(err(one).message.contains("ContainerGroupName"));
    for bad in ["a", "-ab", "ab-", "Ab", "a_b"] {
        assert!(err(&format!("ContainerGroupName={bad}&{one}"))
            .message
            .contains("ContainerGroupName"));
    }
    assert!(create(&format!("ContainerGroupName={}&{one}", "a".repeat(128))).is_ok());
    assert!(create(&format!("ContainerGroupName={}&{one}", "a".repeat(129))).is_err());
    assert!(err("ContainerGroupName=ab")
        .message
        .contains("Container.1.Image"));
    assert!(err("ContainerGroupName=ab&Container.1.Name=a")
        .message
        .contains("Container.1.Image"));
    let dup = "ContainerGroupName=ab&Container.1.Name=a&Container.1.Image=i&InitContainer.1.Name=a&InitContainer.1.Image=i";
    assert!(err(dup).message.contains("unique"));
    let e = err(&format!(
        "ContainerGroupName=ab&{one}&Container.1.Port.1.Port=70000"
    ));
    assert!(
        e.message.contains("Container.1.Port.1.Port"),
        "{}",
        e.message
    );
    let args: String = (1..=11)
        .map(|i| format!("&Container.1.Arg.{i}=x"))
        .collect();
    assert_eq!(
        err(&format!("ContainerGroupName=ab&{one}{args}")).code,
        "InvalidParameter.ValueExceeded"
    );
    let many: String = (1..=21)
        .map(|i| format!("&Container.{i}.Name=c{i}&Container.{i}.Image=i"))
        .collect();
    assert!(create(&format!("ContainerGroupName=ab{many}")).is_err());
    assert!(err(&format!(
        "ContainerGroupName=ab&{one}&RestartPolicy=Sometimes"
    ))
    .message
    .contains("RestartPolicy"));
    assert_eq!(
        err(&format!(
            "ContainerGroupName=ab&{one}&ClientToken={}",
            "t".repeat(65)
        ))
        .code,
        "InvalidParameter.LengthExceeded"
    );
    assert!(
        err("ContainerGroupName=ab&Container.1.Name=A_b&Container.1.Image=i")
            .message
            .contains("Container.1.Name")
    );
    assert!(
        err(&format!("ContainerGroupName=ab&{one}&Container.1.Cpu=abc"))
            .message
            .contains("Container.1.Cpu")
    );
    assert!(err(&format!(
        "ContainerGroupName=ab&{one}&Container.1.Tty=maybe"
    ))
    .message
    .contains("Container.1.Tty"));
    assert!(err(&format!(
        "ContainerGroupName=ab&{one}&Container.1.Command.1=a%00b"
    ))
    .message
    .contains("NUL"));
}

#[test]
fn describe_requests() {
    let r = DescribeGroupsRequest::decode(&p(
        "ContainerGroupIds=%5B%22eci-a%22%5D&Status=Running&Limit=50&WithEvent=true&Tag.1.Key=k",
    ))
    .unwrap();
    assert_eq!(r.ids, Some(vec!["eci-a".to_string()]));
    assert_eq!(r.status, Some(GroupStatus::Running));
    assert_eq!(r.limit, 20);
    assert!(r.with_event);
    assert_eq!(
        r.tags[0],
        TagFilter {
            key: "k".into(),
            value: None
        }
    );
    assert_eq!(DescribeGroupsRequest::decode(&p("")).unwrap().limit, 20);
    assert!(DescribeGroupsRequest::decode(&p("Limit=0")).is_err());
    assert!(DescribeGroupsRequest::decode(&p("Status=running")).is_err());
    assert_eq!(DescribeGroupsRequest::decode(&p("")).unwrap().ended, None);
    assert_eq!(
        DescribeGroupsRequest::decode(&p("Ended=false"))
            .unwrap()
            .ended,
        Some(false)
    );
    assert!(DescribeGroupsRequest::decode(&p("Ended=maybe")).is_err());
    let ids: Vec<String> = (0..21).map(|i| format!("\"eci-{i}\"")).collect();
    let q = format!("ContainerGroupIds=[{}]", ids.join(","));
    assert!(DescribeGroupsRequest::decode(&p(&q)).is_err());

    let d = DescribeGroupsRequest::decode(&p("SinceSecond=3")).unwrap();
    assert_eq!(d.since_second, Some(3));
    assert_eq!(
        DescribeGroupsRequest::decode(&p("")).unwrap().since_second,
        None
    );
    assert!(DescribeGroupsRequest::decode(&p("SinceSecond=-1")).is_err());
    assert!(DescribeGroupsRequest::decode(&p("SinceSecond=soon")).is_err());

    let st = DescribeStatusRequest::decode(&p("SinceSecond=60")).unwrap();
    assert_eq!((st.limit, st.since_second), (200, Some(60)));
    let ev = DescribeEventsRequest::decode(&p("EventSource=EciService&Limit=5")).unwrap();
    assert_eq!(ev.limit, 5);
    assert!(DescribeEventsRequest::decode(&p("EventSource=Other")).is_err());
}

#[test]
fn group_and_log_requests() {
    assert_eq!(
        GroupIdRequest::decode(&p("")).unwrap_err().code,
        "MissingParameter"
    );
    let g = GroupIdRequest::decode(&p("ContainerGroupId=eci-x&ClientToken=t")).unwrap();
    assert_eq!(g.container_group_id, "eci-x");
    let l = ContainerLogRequest::decode(&p("ContainerGroupId=eci-x&ContainerName=c")).unwrap();
    assert_eq!(
        (l.tail, l.limit_bytes, l.timestamps, l.last_time),
        (500, None, false, false)
    );
    let l = ContainerLogRequest::decode(&p(
        "ContainerGroupId=eci-x&ContainerName=c&Tail=5000&LimitBytes=10&Timestamps=True&LastTime=true&StartTime=2024-01-01T00%3A00%3A00Z&SinceSeconds=9",
    ))
    .unwrap();
    assert_eq!(
        (l.tail, l.limit_bytes, l.since_seconds),
        (2000, Some(10), Some(9))
    );
    assert!(l.timestamps && l.last_time && l.start_time.is_some());
    assert!(
        ContainerLogRequest::decode(&p("ContainerGroupId=e&ContainerName=c&LimitBytes=0")).is_err()
    );
    assert!(ContainerLogRequest::decode(&p(
        "ContainerGroupId=e&ContainerName=c&LimitBytes=1048577"
    ))
    .is_err());
    assert!(
        ContainerLogRequest::decode(&p("ContainerGroupId=e&ContainerName=c&StartTime=x")).is_err()
    );
    assert!(ContainerLogRequest::decode(&p("ContainerGroupId=e")).is_err());
}

#[test]
fn actions_and_versions() {
    assert_eq!(
        Action::parse("DescribeRegions").unwrap(),
        Action::DescribeRegions
    );
    let e = Action::parse("describeregions").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (404, "InvalidApi.NotFound"));
    for a in ACTIONS {
        assert_eq!(Action::parse(a.as_str()).unwrap(), a);
    }
    assert!(check_version(Some("2018-08-08")).is_ok());
    assert!(check_version(None).is_ok());
    assert!(check_version(Some("2019-01-01")).is_err());
    match decode(Action::DescribeRegions, &p("RegionId=cn-local")).unwrap() {
        Request::DescribeRegions(r) => assert_eq!(r.region_id.as_deref(), Some("cn-local")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn public_address_and_host_ports_decode() {
    let r = create(&format!(
        "{SMOKE}&AutoCreateEip=true&Container.1.Port.1.Port=80&Container.1.Port.1.HostPort=30080\
         &Container.1.Port.2.Port=53&Container.1.Port.2.Protocol=udp"
    ))
    .unwrap();
    assert!(r.spec.public_address);
    assert!(r.spec.published.is_none());
    let ports = &r.spec.containers[0].ports;
    assert_eq!((ports[0].port, ports[0].host_port), (80, Some(30080)));
    assert_eq!(
        (
            ports[1].port,
            ports[1].protocol.as_str(),
            ports[1].host_port
        ),
        (53, "UDP", None)
    );
    assert!(!create(SMOKE).unwrap().spec.public_address);
    for (q, name) in [
        (
            "&Container.1.Port.1.Port=80&Container.1.Port.1.HostPort=30080",
            "HostPort",
        ),
        (
            "&AutoCreateEip=true&Container.1.Port.1.Port=80&Container.1.Port.1.HostPort=70000",
            "HostPort",
        ),
        ("&AutoCreateEip=maybe", "AutoCreateEip"),
    ] {
        let e = create(&format!("{SMOKE}{q}")).unwrap_err();
        assert!(e.message.contains(name), "{q}: {}", e.message);
    }
}

#[test]
fn dns_policy_decodes_default_and_none_only() {
    use berth_core::DnsPolicy;
    assert_eq!(create(SMOKE).unwrap().spec.dns_policy, DnsPolicy::Default);
    let none = create(&format!(
        "{SMOKE}&DnsPolicy=None&DnsConfig.NameServer.1=10.0.0.53"
    ))
    .unwrap();
    assert_eq!(none.spec.dns_policy, DnsPolicy::None);
    for q in [
        "&DnsPolicy=None",
        "&DnsPolicy=ClusterFirst",
        "&DnsPolicy=ClusterFirstWithHostNet",
    ] {
        let e = create(&format!("{SMOKE}{q}")).unwrap_err();
        assert!(e.message.contains("DnsPolicy"), "{q}: {}", e.message);
    }
}

#[test]
fn runtime_class_name_decodes_runc_and_gvisor_only() {
    use berth_core::RuntimeClass;
    assert_eq!(create(SMOKE).unwrap().spec.runtime_class, None);
    for (v, class) in [
        ("runc", RuntimeClass::Runc),
        ("gvisor", RuntimeClass::Gvisor),
    ] {
        let r = create(&format!("{SMOKE}&RuntimeClassName={v}")).unwrap();
        assert_eq!(r.spec.runtime_class, Some(class));
    }
    for v in ["kata", "GVISOR", "runsc"] {
        let e = create(&format!("{SMOKE}&RuntimeClassName={v}")).unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
        assert!(
            e.message.contains("RuntimeClassName") && e.message.contains(v),
            "{v}: {}",
            e.message
        );
    }
}

#[test]
fn env_field_paths_are_those_berth_resolves() {
    for path in berth_core::spec::FIELD_PATHS {
        let q = format!("{SMOKE}&Container.1.EnvironmentVar.1.Key=X&Container.1.EnvironmentVar.1.FieldRef.FieldPath={path}");
        let r = create(&q).unwrap();
        assert_eq!(
            r.spec.containers[0].env[0].field_path.as_deref(),
            Some(*path)
        );
    }
    for (extra, why) in [
        ("Container.1.EnvironmentVar.1.FieldRef.FieldPath=spec.nodeName", "names no field"),
        ("Container.1.EnvironmentVar.1.FieldRef.FieldPath=metadata.labels%5B%27a%27%5D", "names no field"),
        ("Container.1.EnvironmentVar.1.FieldRef.FieldPath=status.podIP&Container.1.EnvironmentVar.1.Value=1", "one source"),
    ] {
        let q = format!("{SMOKE}&Container.1.EnvironmentVar.1.Key=X&{extra}");
        let e = create(&q).expect_err(extra);
        assert!(e.message.contains("Container.1.EnvironmentVar.1.FieldRef.FieldPath"), "{}", e.message);
        assert!(e.message.contains(why), "{}", e.message);
    }
}

#[test]
fn spot_terms_decode() {
    assert_eq!(create(SMOKE).unwrap().spec.spot, None);
    assert_eq!(
        create(&format!("{SMOKE}&SpotStrategy=NoSpot"))
            .unwrap()
            .spec
            .spot,
        None
    );
    let s = create(&format!("{SMOKE}&SpotStrategy=SpotAsPriceGo"))
        .unwrap()
        .spec
        .spot
        .unwrap();
    assert_eq!(s.strategy, berth_core::SpotStrategy::SpotAsPriceGo);
    assert_eq!((s.price_limit, s.duration_hours), (None, 1));
    let s = create(&format!(
        "{SMOKE}&SpotStrategy=SpotWithPriceLimit&SpotPriceLimit=0.250&SpotDuration=0"
    ))
    .unwrap()
    .spec
    .spot
    .unwrap();
    assert_eq!(s.price_limit.as_deref(), Some("0.25"));
    assert_eq!(s.duration_hours, 0);
    for (q, name) in [
        ("SpotStrategy=SpotWithPriceLimit", "SpotPriceLimit"),
        (
            "SpotStrategy=SpotAsPriceGo&SpotPriceLimit=1",
            "SpotPriceLimit",
        ),
        ("SpotPriceLimit=1", "SpotPriceLimit"),
        ("SpotDuration=2", "SpotDuration"),
        ("SpotStrategy=SpotAsPriceGo&SpotDuration=7", "SpotDuration"),
        ("SpotStrategy=Cheap", "SpotStrategy"),
        (
            "SpotStrategy=SpotWithPriceLimit&SpotPriceLimit=0.0001",
            "SpotPriceLimit",
        ),
    ] {
        let e = create(&format!("{SMOKE}&{q}")).expect_err(q);
        assert!(e.message.contains(name), "{q}: {}", e.message);
    }
}

#[test]
fn describe_groups_name_contains_and_order() {
    let d = DescribeGroupsRequest::decode(&p("NameContains=web&Order=Newest")).unwrap();
    assert_eq!(d.name_contains.as_deref(), Some("web"));
    assert!(d.newest_first);
    let d = DescribeGroupsRequest::decode(&p("NameContains=&Order=Oldest")).unwrap();
    assert_eq!(d.name_contains, None);
    assert!(!d.newest_first);
    let e = DescribeGroupsRequest::decode(&p("Order=Random")).unwrap_err();
    assert!(e.message.contains("Order"), "{}", e.message);
    let long = "x".repeat(129);
    let e = DescribeGroupsRequest::decode(&p(&format!("NameContains={long}"))).unwrap_err();
    assert!(e.message.contains("NameContains"), "{}", e.message);
}
