//! Tests of the generated OCI spec: capabilities, masked paths, limits, namespaces, mounts.

use super::*;
use serde_json::Value;

fn spec() -> BundleSpec {
    BundleSpec {
        rootfs: "/var/lib/berth/c/rootfs".into(),
        args: vec!["/app".into(), "--serve".into()],
        env: vec!["A=1".into()],
        cwd: "/work".into(),
        uid: 1000,
        gid: 1000,
        additional_gids: vec![],
        hostname: "web-0".into(),
        netns: Some("/run/netns/eci-x".into()),
        cpu: Some(0.5),
        memory_bytes: Some(64 << 20),
        pids_limit: Some(64),
        cgroup_path: "/berth/eci-x/web".into(),
        readonly_rootfs: true,
        capability_add: vec![],
        capability_drop: vec![],
        sysctls: vec![],
        binds: vec![(
            "/run/berth/resolv.conf".into(),
            "/etc/resolv.conf".into(),
            true,
        )],
        seccomp: Seccomp::Default,
        user_map: None,
        volumes: Vec::new(),
    }
}

fn v2() -> CgroupLayout {
    CgroupLayout::V2 {
        root: "/sys/fs/cgroup".into(),
    }
}

fn json(spec: &BundleSpec, layout: &CgroupLayout) -> Value {
    serde_json::to_value(build_spec(spec, layout).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn default_capabilities_without_sys_admin() {
    let j = json(&spec(), &v2());
    let caps = &j["process"]["capabilities"];
    let mut expected: Vec<String> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    expected.sort();
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(strings(&caps[set]), expected, "{set}");
    }
    assert!(strings(&caps["inheritable"]).is_empty());
    assert!(strings(&caps["ambient"]).is_empty());
    assert!(!j.to_string().contains("CAP_SYS_ADMIN"));
    for dropped in ["CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE"] {
        assert!(
            !j.to_string().contains(dropped),
            "{dropped} is not a default"
        );
    }
    assert_eq!(j["process"]["noNewPrivileges"], true);
    assert_eq!(j["process"]["terminal"], false);
}

#[test]
fn dropped_capabilities() {
    let mut s = spec();
    s.capability_drop = vec!["chown".into(), "CAP_KILL".into()];
    s.capability_add = vec!["NET_ADMIN".into()];
    let j = json(&s, &v2());
    let eff = strings(&j["process"]["capabilities"]["effective"]);
    assert!(!eff.contains(&"CAP_CHOWN".to_string()));
    assert!(!eff.contains(&"CAP_KILL".to_string()));
    assert!(eff.contains(&"CAP_NET_ADMIN".to_string()));
    assert_eq!(eff.len(), DEFAULT_CAPABILITIES.len() - 1);
    s.capability_drop = vec!["ALL".into()];
    let j = json(&s, &v2());
    assert_eq!(
        strings(&j["process"]["capabilities"]["bounding"]),
        ["CAP_NET_ADMIN"]
    );
}

#[test]
fn sysctls_go_to_linux_sysctl() {
    let mut s = spec();
    s.sysctls = vec![
        ("net.ipv4.ping_group_range".into(), "0 0".into()),
        ("kernel.shmmni".into(), "8192".into()),
    ];
    let j = json(&s, &v2());
    assert_eq!(j["linux"]["sysctl"]["net.ipv4.ping_group_range"], "0 0");
    assert_eq!(j["linux"]["sysctl"]["kernel.shmmni"], "8192");
    // In a user namespace the node writes the net.* ones: the netns is the host's.
    s.user_map = Some(UserMap {
        host: 1 << 30,
        count: 65536,
    });
    let j = json(&s, &v2());
    assert!(j["linux"]["sysctl"]
        .get("net.ipv4.ping_group_range")
        .is_none());
    assert_eq!(j["linux"]["sysctl"]["kernel.shmmni"], "8192");
    s.user_map = None;
    s.netns = None;
    assert!(build_spec(&s, &v2()).is_err());
}

#[test]
fn added_capabilities() {
    let mut s = spec();
    s.capability_add = vec!["SYS_ADMIN".into(), "cap_net_admin".into()];
    let j = json(&s, &v2());
    let bounding = strings(&j["process"]["capabilities"]["bounding"]);
    assert!(bounding.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(bounding.contains(&"CAP_NET_ADMIN".to_string()));
    assert_eq!(bounding.len(), DEFAULT_CAPABILITIES.len() + 2);
    s.capability_add = vec!["FLY".into()];
    assert!(matches!(
        build_spec(&s, &v2()),
        Err(RuntimeError::InvalidSpec { .. })
    ));
}

#[test]
fn masked_and_readonly_paths() {
    let j = json(&spec(), &v2());
    let masked = strings(&j["linux"]["maskedPaths"]);
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/proc/scsi",
        "/proc/acpi",
    ] {
        assert!(masked.contains(&p.to_string()), "{p}");
    }
    let ro = strings(&j["linux"]["readonlyPaths"]);
    for p in [
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/bus",
        "/proc/irq",
        "/proc/fs",
    ] {
        assert!(ro.contains(&p.to_string()), "{p}");
    }
}

#[test]
fn limits() {
    let j = json(&spec(), &v2());
    let r = &j["linux"]["resources"];
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 64 << 20);
    assert_eq!(r["pids"]["limit"], 64);
    assert_eq!(r["devices"][0]["allow"], false);
    assert_eq!(r["devices"][0]["access"], "rwm");
    let rl = &j["process"]["rlimits"][0];
    assert_eq!(
        (
            rl["type"].as_str(),
            rl["soft"].as_u64(),
            rl["hard"].as_u64()
        ),
        (Some("RLIMIT_NOFILE"), Some(1024), Some(1024))
    );
    assert_eq!(j["linux"]["cgroupsPath"], "/berth/eci-x/web");

    // Without swap accounting no memory+swap limit is set.
    let empty = tempfile::tempdir().unwrap();
    let v1 = CgroupLayout::V1 {
        root: empty.path().into(),
    };
    let j = json(&spec(), &v1);
    assert!(j["linux"]["resources"]["memory"].get("swap").is_none());

    let mut s = spec();
    s.cpu = None;
    s.memory_bytes = None;
    s.pids_limit = None;
    let j = json(&s, &v2());
    let r = &j["linux"]["resources"];
    assert!(r.get("cpu").is_none() && r.get("memory").is_none() && r.get("pids").is_none());
}

#[test]
fn namespaces_and_mounts() {
    let j = json(&spec(), &v2());
    let ns = j["linux"]["namespaces"].as_array().unwrap();
    let types: Vec<&str> = ns.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["pid", "ipc", "uts", "mount", "network", "cgroup"]);
    assert_eq!(ns[4]["path"], "/run/netns/eci-x");
    let hybrid = CgroupLayout::Hybrid {
        root: "/sys/fs/cgroup".into(),
        unified: "/sys/fs/cgroup/unified".into(),
    };
    let j = json(&spec(), &hybrid);
    assert_eq!(j["linux"]["namespaces"].as_array().unwrap().len(), 5);

    let mounts = j["mounts"].as_array().unwrap();
    let dests: Vec<&str> = mounts
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/etc/resolv.conf",
    ] {
        assert!(dests.contains(&d), "{d}");
    }
    let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
    assert!(strings(&sys["options"]).contains(&"ro".to_string()));
    let resolv = mounts.last().unwrap();
    assert_eq!(resolv["type"], "bind");
    assert_eq!(resolv["source"], "/run/berth/resolv.conf");
    assert!(strings(&resolv["options"]).contains(&"ro".to_string()));
    assert_eq!(j["root"]["readonly"], true);
    assert_eq!(j["hostname"], "web-0");
}

#[test]
fn process_fields() {
    let j = json(&spec(), &v2());
    let p = &j["process"];
    assert_eq!(p["user"]["uid"], 1000);
    assert_eq!(p["cwd"], "/work");
    assert_eq!(p["args"][1], "--serve");
    let env = strings(&p["env"]);
    assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin:")));
    let mut s = spec();
    s.env = vec!["PATH=/opt/bin".into()];
    s.cwd = String::new();
    let j = json(&s, &v2());
    assert_eq!(strings(&j["process"]["env"]), ["PATH=/opt/bin"]);
    assert_eq!(j["process"]["cwd"], "/");
    assert_eq!(j["ociVersion"], OCI_VERSION);
    assert!(
        j["process"]["user"].get("additionalGids").is_none(),
        "no supplementary groups unless asked"
    );
    s.additional_gids = vec![2000];
    let j = json(&s, &v2());
    assert_eq!(
        j["process"]["user"]["additionalGids"],
        serde_json::json!([2000])
    );
}

#[test]
fn rejects_bad_input() {
    let bad: Vec<fn(&mut BundleSpec)> = vec![
        |s| s.args.clear(),
        |s| s.cwd = "relative".into(),
        |s| s.cgroup_path = "berth/x".into(),
        |s| s.cgroup_path = "/berth/../x".into(),
        |s| s.cpu = Some(f64::NAN),
        |s| s.cpu = Some(-1.0),
        |s| s.memory_bytes = Some(1),
        |s| s.memory_bytes = Some(u64::MAX),
        |s| s.pids_limit = Some(0),
        |s| s.binds[0].1 = "etc/hosts".into(),
        |s| s.binds[0].0 = "relative".into(),
        |s| s.rootfs = PathBuf::new(),
    ];
    for (i, change) in bad.iter().enumerate() {
        let mut s = spec();
        change(&mut s);
        assert!(
            matches!(build_spec(&s, &v2()), Err(RuntimeError::InvalidSpec { .. })),
            "case {i}"
        );
    }
}

#[test]
fn capability_names_are_canonical() {
    assert_eq!(
        capability_name("cap_sys_admin").as_deref(),
        Some("SYS_ADMIN")
    );
    assert_eq!(capability_name("NET_ADMIN").as_deref(), Some("NET_ADMIN"));
    assert_eq!(capability_name("FLY"), None);
    for c in berth_core::capability::DEFAULT_ALLOWED
        .iter()
        .chain(DEFAULT_CAPABILITIES)
    {
        assert_eq!(
            capability_name(c).as_deref(),
            Some(*c),
            "the kernel knows {c}"
        );
    }
}

#[test]
fn ping_works_without_raw_sockets_in_the_groups_namespace() {
    let mut s = spec();
    s.netns = Some("/run/berth/netns/g".into());
    let j = json(&s, &v2());
    assert_eq!(
        j["linux"]["sysctl"]["net.ipv4.ping_group_range"],
        PING_GROUP_RANGE
    );
}

#[test]
fn user_namespace_maps_the_range_and_leaves_sysctls_to_the_node() {
    let mut s = spec();
    s.netns = Some("/run/netns/g".into());
    s.user_map = Some(crate::UserMap {
        host: 1 << 30,
        count: 65536,
    });
    let out = build_spec(&s, &v2()).unwrap();
    let json = serde_json::to_value(&out).unwrap();
    let linux = &json["linux"];
    assert!(linux["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user" && n.get("path").is_none()));
    for key in ["uidMappings", "gidMappings"] {
        assert_eq!(
            linux[key],
            serde_json::json!([{"containerID": 0, "hostID": 1073741824u32, "size": 65536}])
        );
    }
    assert!(linux["sysctl"].get("net.ipv4.ping_group_range").is_none());
    s.user_map = Some(crate::UserMap {
        host: u32::MAX,
        count: 2,
    });
    assert!(build_spec(&s, &v2()).is_err());
}

#[test]
fn masked_directories_become_one_read_only_bind() {
    let s = spec();
    let mut oci = build_spec(&s, &v2()).unwrap();
    let dirs = ["/proc/acpi", "/sys/firmware"];
    super::mounts::bind_masked_dirs(&mut oci, std::path::Path::new("/run/x/.masked"), |p| {
        dirs.contains(&p)
    })
    .unwrap();
    let j = serde_json::to_value(&oci).unwrap();
    let masked = strings(&j["linux"]["maskedPaths"]);
    for d in dirs {
        assert!(
            !masked.contains(&d.to_string()),
            "{d} still left to the runtime"
        );
        let m = j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == d)
            .unwrap_or_else(|| panic!("no bind over {d}"));
        assert_eq!(m["source"], "/run/x/.masked");
        assert_eq!(m["type"], "bind");
        let opts = strings(&m["options"]);
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.contains(&o.to_string()), "{d}: {opts:?}");
        }
    }
    // Files and paths this host lacks stay masked by the runtime.
    for p in ["/proc/kcore", "/proc/keys", "/sys/dev/block"] {
        assert!(masked.contains(&p.to_string()), "{p}");
    }
}
