use std::collections::BTreeMap;

use berth_client::CreateParams;
use berth_core::probe::{Handler, Scheme};
use berth_core::{DnsPolicy, EmptyDirMedium, RestartPolicy, RuntimeClass, VolumeSource};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::*;
use crate::inputs::ClusterDns;

/// A pod from JSON, as the API server sends it.
fn pod(v: Value) -> Pod {
    serde_json::from_value(v).expect("pod JSON")
}

/// A minimal pod, with `spec` merged over its one container's spec.
fn base() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "0b6c1c6e-1111-4222-8333-944445555666",
                      "labels": {"app": "web"}, "annotations": {"team": "a\"b"}},
        "spec": {"nodeName": "vk-1", "containers": [{"name": "app", "image": "nginx:1.27"}]}
    })
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut v;
    for (i, p) in path.iter().enumerate() {
        if i + 1 == path.len() {
            if let Ok(n) = p.parse::<usize>() {
                cur[n] = value;
            } else {
                cur[*p] = value;
            }
            break;
        }
        cur = if let Ok(n) = p.parse::<usize>() {
            &mut cur[n]
        } else {
            &mut cur[*p]
        };
    }
    v
}

fn inputs() -> Inputs {
    let mut i = Inputs {
        host_ip: Some("192.0.2.10".into()),
        ..Default::default()
    };
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg"},
        "data": {"LEVEL": "debug", "app.conf": "listen 80;\n", "bad=key": "x"},
        "binaryData": {"logo.png": "iVBORw=="}
    }))
    .unwrap();
    i.config_maps.insert("cfg".into(), cm);
    let mut data = BTreeMap::new();
    data.insert("password".to_string(), ByteString(b"s3cret".to_vec()));
    data.insert(
        ".dockerconfigjson".to_string(),
        ByteString(
            json!({"auths": {
                "https://registry.example.com/v1/": {"username": "u", "password": "p"},
                "ghcr.io": {"auth": "YWxpY2U6cHc="}
            }})
            .to_string()
            .into_bytes(),
        ),
    );
    i.secrets.insert(
        "creds".into(),
        Secret {
            data: Some(data),
            ..Default::default()
        },
    );
    i.service_account_tokens
        .insert("kube-api-access/token".into(), "eyJhbGciOi.token".into());
    i
}

/// Maps a pod and checks that berth's API decoder takes the parameters as they are sent.
fn map(v: Value) -> CreateParams {
    let p = pod_to_group(&pod(v), &inputs()).expect("pod maps");
    let decoded =
        berth_eci::request::CreateRequest::decode(&berth_eci::Params::from_pairs(p.to_query()));
    if let Err(e) = decoded {
        panic!("berth's API refuses the mapped pod: {}", e.message);
    }
    p
}

fn err(v: Value) -> PodError {
    pod_to_group(&pod(v), &inputs()).expect_err("pod is refused")
}

#[test]
fn a_full_pod_maps_every_field() {
    let v = json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "0b6c1c6e-1111-4222-8333-944445555666",
            "labels": {"app": "web"},
            "annotations": {"k8s.aliyun.com/eci-imc-id": "imc-abc123", "k8s.aliyun.com/eci-auto-imc": "false",
                             "k8s.aliyun.com/eci-vswitch": "vsw-1", "k8s.aliyun.com/eci-spot-strategy": "NoSpot"}},
        "spec": {
            "nodeName": "vk-1",
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 45,
            "activeDeadlineSeconds": 600,
            "hostname": "front",
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.96.0.10"], "searches": ["shop.svc.cluster.local"],
                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
            "hostAliases": [{"ip": "10.0.0.5", "hostnames": ["db", "db.local"]}],
            "imagePullSecrets": [{"name": "creds"}],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": true,
                                "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
                                "fsGroup": 3000, "fsGroupChangePolicy": "OnRootMismatch",
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "migrate", "image": "busybox:1.36", "command": ["sh", "-c", "echo $(LEVEL)"],
                                "env": [{"name": "LEVEL", "value": "v"}],
                                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}],
            "containers": [{
                "name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                "command": ["nginx"], "args": ["-g", "daemon off;", "$(GREETING)", "$$(GREETING)"],
                "workingDir": "/srv",
                "env": [{"name": "GREETING", "value": "hi"}],
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}},
                "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 2, "timeoutSeconds": 3,
                                   "successThreshold": 1, "failureThreshold": 4},
                "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
                "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "touch /tmp/ready"]}},
                              "preStop": {"httpGet": {"path": "/quit", "port": 80, "httpHeaders": [{"name": "X-Why", "value": "stop"}]}}},
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                                 {"name": "conf", "mountPath": "/etc/nginx/conf.d", "readOnly": true},
                                 {"name": "shm", "mountPath": "/dev/shm", "mountPropagation": "HostToContainer"},
                                 {"name": "conf", "mountPath": "/etc/one.conf", "subPath": "app.conf"}]
            }],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "app.conf", "mode": 384}], "defaultMode": 420}},
                {"name": "share", "nfs": {"server": "NFS.example.com", "path": "/exports/a", "readOnly": true}}
            ]
        }
    });
    let p = map(v);
    assert_eq!(p.name, "shop-web-1");
    assert_eq!(
        p.client_token.as_deref(),
        Some("0b6c1c6e-1111-4222-8333-944445555666")
    );
    assert_eq!(p.tags[0].key, TAG_POD_UID);
    assert_eq!(p.tags[0].value, "0b6c1c6e-1111-4222-8333-944445555666");
    assert_eq!(
        (p.tags[1].value.as_str(), p.tags[2].value.as_str()),
        ("shop", "web-1")
    );
    // 0.5 vCPU / 1 GiB of the app, raised to the 2 vCPU / 1 GiB init container: 2 / 1.
    assert_eq!((p.cpu, p.memory), (Some(2.0), Some(1.0)));
    assert_eq!(p.restart_policy, Some(RestartPolicy::OnFailure));
    assert_eq!(p.termination_grace_period_secs, Some(45));
    assert_eq!(p.active_deadline_secs, Some(600));
    assert_eq!(p.host_name.as_deref(), Some("front"));
    assert_eq!(p.dns_policy, Some(DnsPolicy::None));
    let dns = p.dns_config.as_ref().unwrap();
    assert_eq!(dns.name_servers, ["10.96.0.10"]);
    assert_eq!(dns.options.len(), 2);
    assert_eq!(p.host_aliases[0].hostnames, ["db", "db.local"]);
    assert_eq!(p.sysctls[0].name, "net.core.somaxconn");
    assert_eq!(p.fs_group, Some(3000));
    assert_eq!(p.image_snapshot_id.as_deref(), Some("imc-abc123"));
    assert!(!p.auto_match_image_cache);
    let sent =
        berth_eci::request::CreateRequest::decode(&berth_eci::Params::from_pairs(p.to_query()))
            .unwrap()
            .spec;
    assert_eq!(sent.image_snapshot_id.as_deref(), Some("imc-abc123"));
    assert_eq!(sent.tags.len(), 3);
    assert_eq!(p.registry_credentials.len(), 2);
    let c = &p.containers[0];
    assert_eq!(c.command, ["nginx"]);
    assert_eq!(c.args, ["-g", "daemon off;", "hi", "$(GREETING)"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!((c.cpu, c.memory), (Some(0.5), Some(1.0)));
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[1].protocol, "UDP");
    assert_eq!(c.run_as_user, Some(1001));
    assert_eq!(c.run_as_group, Some(2000));
    assert!(c.run_as_non_root && c.read_only_root_filesystem);
    assert_eq!(c.capability_add, ["NET_BIND_SERVICE"]);
    assert_eq!(c.capability_drop, ["ALL"]);
    let live = c.liveness_probe.as_ref().unwrap();
    assert!(
        matches!(&live.handler, Handler::HttpGet { port: 80, path, scheme: Scheme::Http, .. } if path == "/healthz")
    );
    assert_eq!(
        (live.period_secs, live.timeout_secs, live.failure_threshold),
        (5, 1, 3)
    );
    let ready = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            ready.initial_delay_secs,
            ready.timeout_secs,
            ready.failure_threshold
        ),
        (2, 3, 4)
    );
    assert_eq!(c.startup_probe.as_ref().unwrap().failure_threshold, 30);
    assert!(matches!(&c.post_start, Some(Handler::Exec { command }) if command[0] == "sh"));
    assert!(
        matches!(&c.pre_stop, Some(Handler::HttpGet { headers, .. }) if headers[0].name == "X-Why")
    );
    assert_eq!(c.volume_mounts.len(), 4);
    assert_eq!(c.volume_mounts[3].sub_path.as_deref(), Some("app.conf"));
    assert!(c.volume_mounts[1].read_only);
    let i = &p.init_containers[0];
    assert_eq!(i.command, ["sh", "-c", "echo v"]);
    assert!(i.liveness_probe.is_none());
    assert_eq!(p.volumes.len(), 4);
    match &p.volumes[2].source {
        VolumeSource::ConfigFile {
            files,
            default_mode,
        } => {
            assert_eq!(*default_mode, Some(0o644));
            assert_eq!(files[0].path, "app.conf");
            assert_eq!(files[0].mode, Some(0o600));
            assert_eq!(files[0].content, "bGlzdGVuIDgwOwo=");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&p.volumes[3].source, VolumeSource::Nfs { server, read_only: true, .. } if server == "nfs.example.com")
    );
}

#[test]
fn env_is_resolved_from_the_pod_and_the_inputs() {
    let env = json!([
        {"name": "PLAIN", "value": "x"},
        {"name": "EXPANDED", "value": "$(PLAIN)-$(UNKNOWN)-$$"},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}}
    ]);
    let v = with(base(), &["spec", "containers", "0", "env"], env);
    let v = with(
        v,
        &["spec", "containers", "0", "resources"],
        json!({"limits": {"cpu": "1500m"}, "requests": {"cpu": "250m"}}),
    );
    let v = with(
        v,
        &["spec", "containers", "0", "envFrom"],
        json!([{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "absent", "optional": true}}]),
    );
    let p = map(v);
    let got: BTreeMap<&str, (&str, Option<&str>)> = p.containers[0]
        .env
        .iter()
        .map(|e| (e.key.as_str(), (e.value.as_str(), e.field_path.as_deref())))
        .collect();
    let want = [
        ("PLAIN", "x"),
        ("EXPANDED", "x-$(UNKNOWN)-$"),
        ("LEVEL", "debug"),
        ("PW", "s3cret"),
        ("NAME", "web-1"),
        ("NS", "shop"),
        ("UID", "0b6c1c6e-1111-4222-8333-944445555666"),
        ("APP", "web"),
        ("NODE", "vk-1"),
        ("HOST_IP", "192.0.2.10"),
        ("CPU_M", "1500"),
        // No memory limit: the group's, in MiB (1.5 vCPU rounds up to 2 vCPU with the
        // smallest memory offered with it, 1 GiB).
        ("MEM", "1024"),
        ("REQ_CPU", "1"),
        ("CFG_LEVEL", "debug"),
        ("CFG_app.conf", "listen 80;\n"),
    ];
    for (k, v) in want {
        assert_eq!(got.get(k).map(|x| x.0), Some(v), "{k}");
    }
    assert_eq!(got["POD_IP"], ("", Some("status.podIP")));
    assert!(
        !got.contains_key("OPT"),
        "an optional missing key sets nothing"
    );
    assert!(
        !got.contains_key("CFG_bad=key"),
        "invalid names from envFrom are skipped"
    );
}

#[test]
fn resources_round_up_as_eci_does() {
    let cases: &[(Value, Value, (f64, f64))] = &[
        (json!(null), json!(null), (2.0, 4.0)),
        (
            json!({"requests": {"cpu": "100m", "memory": "100Mi"}}),
            json!(null),
            (0.25, 0.5),
        ),
        (
            json!({"limits": {"cpu": "7", "memory": "13Gi"}}),
            json!(null),
            (8.0, 16.0),
        ),
        (
            json!({"requests": {"cpu": "7"}, "limits": {"cpu": "1"}}),
            json!(null),
            (1.0, 2.0),
        ),
        (
            json!({"requests": {"memory": "3Gi"}}),
            json!(null),
            (1.0, 4.0),
        ),
        (
            json!({"limits": {"cpu": "1", "memory": "2Gi"}}),
            json!({"limits": {"cpu": "4", "memory": "1Gi"}}),
            (4.0, 2.0),
        ),
        (json!({"limits": {"cpu": "0.5e1"}}), json!(null), (8.0, 4.0)),
    ];
    for (app, init, want) in cases {
        let mut v = with(
            base(),
            &["spec", "containers", "0", "resources"],
            app.clone(),
        );
        if !init.is_null() {
            v = with(
                v,
                &["spec", "initContainers"],
                json!([{"name": "i", "image": "busybox", "resources": init}]),
            );
        }
        let p = map(v);
        assert_eq!((p.cpu.unwrap(), p.memory.unwrap()), *want, "{app} {init}");
    }
    // Two app containers add up.
    let v = with(
        base(),
        &["spec", "containers"],
        json!([
            {"name": "a", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "3Gi"}}}
        ]),
    );
    let p = map(v);
    assert_eq!((p.cpu, p.memory), (Some(2.0), Some(4.0)));
    // Pod-level resources size the group themselves.
    let v = with(
        base(),
        &["spec", "resources"],
        json!({"limits": {"cpu": "3", "memory": "5Gi"}}),
    );
    assert_eq!(map(v).cpu, Some(4.0));
}

#[test]
fn volumes_become_berth_volumes() {
    let v = with(
        base(),
        &["spec", "volumes"],
        json!([
            {"name": "scratch", "emptyDir": {"sizeLimit": "40Gi"}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1.5Gi"}},
            {"name": "all", "configMap": {"name": "cfg"}},
            {"name": "sec", "secret": {"secretName": "creds", "items": [{"key": "password", "path": "db/pw"}]}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}]}},
            {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "cfg", "items": [{"key": "LEVEL", "path": "level"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
            {"name": "maybe", "secret": {"secretName": "absent", "optional": true}}
        ]),
    );
    let v = with(
        v,
        &["spec", "containers", "0", "resources"],
        json!({"limits": {"ephemeral-storage": "40Gi", "memory": "2Gi"}}),
    );
    let p = map(v);
    assert_eq!(p.ephemeral_storage, Some(40));
    let files = |i: usize| match &p.volumes[i].source {
        VolumeSource::ConfigFile { files, .. } => files.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(&p.volumes[0].source, VolumeSource::EmptyDir { medium: EmptyDirMedium::Disk, size_limit_bytes: Some(b), .. } if *b == 40 << 30)
    );
    assert!(
        matches!(&p.volumes[1].source, VolumeSource::EmptyDir { medium: EmptyDirMedium::Memory, size_limit: Some(s), .. } if s == "1610612736")
    );
    let all: Vec<String> = files(2).into_iter().map(|f| f.path).collect();
    assert_eq!(all, ["LEVEL", "app.conf", "bad=key", "logo.png"]);
    assert_eq!(files(3)[0].path, "db/pw");
    assert_eq!(files(3)[0].content, "czNjcmV0");
    let info = files(4);
    let text = |f: &berth_core::ConfigFile| {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&f.content)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(text(&info[0]), "app=\"web\"\n");
    assert_eq!(text(&info[1]), "team=\"a\\\"b\"\n");
    // No cpu limit: the group's, 0.5 vCPU (the smallest offered with 2 GiB).
    assert_eq!(text(&info[2]), "500");
    let projected = files(5);
    assert_eq!(
        projected
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        ["token", "level", "namespace"]
    );
    assert_eq!(text(&projected[0]), "eyJhbGciOi.token");
    assert_eq!(text(&projected[2]), "shop");
    assert!(files(6).is_empty());
}

#[test]
fn annotations_set_berth_options() {
    let v = with(
        base(),
        &["metadata", "annotations"],
        json!({
            "k8s.aliyun.com/eci-auto-imc": "true",
            "k8s.aliyun.com/eci-extra-ephemeral-storage": "50Gi",
            "k8s.aliyun.com/eci-security-group": "sg-1",
            "k8s.aliyun.com/plain-http-registry": "127.0.0.1:5000, reg.local",
            "k8s.aliyun.com/insecure-registry": "[::1]:5443",
            "example.com/unrelated": "kept out"
        }),
    );
    let p = map(v);
    assert_eq!(p.plain_http_registries, ["127.0.0.1:5000", "reg.local"]);
    assert_eq!(p.insecure_registries, ["[::1]:5443"]);
    assert!(p.auto_match_image_cache);
    assert_eq!(p.image_snapshot_id, None);
    assert_eq!(p.ephemeral_storage, Some(80));
    // A larger ephemeral-storage request wins over the annotation, as on ECI.
    let v = with(
        base(),
        &["metadata", "annotations"],
        json!({"k8s.aliyun.com/eci-extra-ephemeral-storage": "10Gi"}),
    );
    let v = with(
        v,
        &["spec", "containers", "0", "resources"],
        json!({"requests": {"ephemeral-storage": "100Gi"}}),
    );
    assert_eq!(map(v).ephemeral_storage, Some(100));
}

#[test]
fn spot_annotations_make_a_preemptible_group() {
    let v = with(
        base(),
        &["metadata", "annotations"],
        json!({
            "k8s.aliyun.com/eci-spot-strategy": "SpotWithPriceLimit",
            "k8s.aliyun.com/eci-spot-price-limit": "0.250",
            "k8s.aliyun.com/eci-spot-duration": "0"
        }),
    );
    let t = map(v).spot.unwrap();
    assert_eq!(t.strategy, berth_core::SpotStrategy::SpotWithPriceLimit);
    assert_eq!(t.price_limit.as_deref(), Some("0.250"));
    assert_eq!(t.duration_hours, 0);
    let v = with(
        base(),
        &["metadata", "annotations"],
        json!({"k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo"}),
    );
    let t = map(v).spot.unwrap();
    assert_eq!(
        (t.price_limit, t.duration_hours, t.fallback),
        (None, 1, false)
    );
    let v = with(
        base(),
        &["metadata", "annotations"],
        json!({
            "k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo",
            "k8s.aliyun.com/eci-spot-fallback": "true"
        }),
    );
    assert!(map(v).spot.unwrap().fallback);
    assert_eq!(map(base()).spot, None);
    assert_eq!(map(base()).ephemeral_storage, None);
}

#[test]
fn dns_follows_the_policy() {
    let p = map(base());
    assert_eq!(
        (p.dns_policy, p.dns_config.clone()),
        (Some(DnsPolicy::Default), None)
    );
    let mut i = inputs();
    i.cluster_dns = Some(ClusterDns {
        servers: vec!["10.96.0.10".into()],
        domain: "cluster.local".into(),
    });
    let v = with(
        base(),
        &["spec", "dnsConfig"],
        json!({"searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]}),
    );
    let p = pod_to_group(&pod(v), &i).unwrap();
    assert_eq!(p.dns_policy, Some(DnsPolicy::None));
    let d = p.dns_config.unwrap();
    assert_eq!(d.name_servers, ["10.96.0.10"]);
    assert_eq!(
        d.searches,
        [
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example"
        ]
    );
    assert_eq!(d.options.len(), 1);
    assert_eq!(d.options[0].value.as_deref(), Some("2"));
    let v = with(base(), &["spec", "dnsPolicy"], json!("Default"));
    let v = with(
        v,
        &["spec", "dnsConfig"],
        json!({"nameservers": ["1.1.1.1"]}),
    );
    let p = map(v);
    assert_eq!(p.dns_policy, Some(DnsPolicy::Default));
    assert_eq!(p.dns_config.unwrap().name_servers, ["1.1.1.1"]);
    // The pod's name is the host name without spec.hostname.
    assert_eq!(map(base()).host_name.as_deref(), Some("web-1"));
}

#[test]
fn pull_secrets_become_registry_credentials() {
    let v = with(
        base(),
        &["spec", "imagePullSecrets"],
        json!([{"name": "creds"}]),
    );
    let p = map(v);
    let got: Vec<(&str, &str, &str)> = p
        .registry_credentials
        .iter()
        .map(|c| (c.server.as_str(), c.user_name.as_str(), c.password.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("ghcr.io", "alice", "pw"),
            ("registry.example.com", "u", "p")
        ]
    );
}

#[test]
fn group_names_are_in_ecis_alphabet() {
    assert_eq!(group_name("default", "web.v2_A"), "default-web-v2-a");
    assert_eq!(group_name("-", "-"), "pod-0");
    assert!(group_name("ns", &"x".repeat(300)).len() <= 128);
}

#[test]
fn what_berth_cannot_run_is_refused_by_name() {
    let c = |k: &str, v: Value| with(base(), &["spec", "containers", "0", k], v);
    let s = |k: &str, v: Value| with(base(), &["spec", k], v);
    let vol = |v: Value| with(base(), &["spec", "volumes"], json!([v]));
    let annotation = |k: &str, v: &str| with(base(), &["metadata", "annotations"], json!({k: v}));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "daemonset",
            with(
                base(),
                &["metadata", "ownerReferences"],
                json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u"}]),
            ),
            "DaemonSet",
        ),
        (
            "hostPath",
            vol(json!({"name": "h", "hostPath": {"path": "/var/run"}})),
            "spec.volumes[0].hostPath",
        ),
        (
            "pvc",
            vol(json!({"name": "h", "persistentVolumeClaim": {"claimName": "c"}})),
            "spec.volumes[0].persistentVolumeClaim",
        ),
        (
            "hugepages",
            vol(json!({"name": "h", "emptyDir": {"medium": "HugePages"}})),
            "emptyDir.medium",
        ),
        (
            "small disk emptyDir",
            vol(json!({"name": "h", "emptyDir": {"sizeLimit": "1Gi"}})),
            "emptyDir.sizeLimit",
        ),
        (
            "two unbounded memory emptyDirs",
            with(
                base(),
                &["spec", "volumes"],
                json!([{"name": "a", "emptyDir": {"medium": "Memory"}}, {"name": "b", "emptyDir": {"medium": "Memory"}}]),
            ),
            "spec.volumes[1].emptyDir.sizeLimit",
        ),
        (
            "trust bundle",
            vol(
                json!({"name": "t", "projected": {"sources": [{"clusterTrustBundle": {"path": "ca"}}]}}),
            ),
            "clusterTrustBundle",
        ),
        (
            "file path escapes",
            vol(
                json!({"name": "t", "configMap": {"name": "cfg", "items": [{"key": "LEVEL", "path": "../x"}]}}),
            ),
            "items[0].path",
        ),
        (
            "too many volumes",
            s(
                "volumes",
                Value::Array(
                    (0..33)
                        .map(|i| json!({"name": format!("v{i}"), "emptyDir": {}}))
                        .collect(),
                ),
            ),
            "spec.volumes",
        ),
        (
            "hostNetwork",
            s("hostNetwork", json!(true)),
            "spec.hostNetwork",
        ),
        (
            "fsGroup",
            s("securityContext", json!({"fsGroup": 65536})),
            "spec.securityContext.fsGroup",
        ),
        (
            "unconfined",
            s(
                "securityContext",
                json!({"seccompProfile": {"type": "Unconfined"}}),
            ),
            "seccompProfile",
        ),
        (
            "subdomain",
            s("subdomain", json!("headless")),
            "spec.subdomain",
        ),
        (
            "readiness gates",
            s("readinessGates", json!([{"conditionType": "x"}])),
            "spec.readinessGates",
        ),
        (
            "too big",
            c("resources", json!({"limits": {"cpu": "65"}})),
            "resources",
        ),
        (
            "gpu",
            c("resources", json!({"limits": {"nvidia.com/gpu": "1"}})),
            "spec.containers[0].resources.limits.nvidia.com/gpu",
        ),
        ("tty", c("tty", json!(true)), "spec.containers[0].tty"),
        (
            "privileged",
            c("securityContext", json!({"privileged": true})),
            "securityContext.privileged",
        ),
        (
            "grpc probe",
            c("livenessProbe", json!({"grpc": {"port": 9000}})),
            "livenessProbe.grpc",
        ),
        (
            "probe host",
            c(
                "readinessProbe",
                json!({"httpGet": {"port": 80, "host": "example.org"}}),
            ),
            "readinessProbe.httpGet.host",
        ),
        (
            "unknown port name",
            c("livenessProbe", json!({"tcpSocket": {"port": "metrics"}})),
            "livenessProbe.tcpSocket.port",
        ),
        (
            "sleep hook",
            c("lifecycle", json!({"preStop": {"sleep": {"seconds": 5}}})),
            "lifecycle.preStop.sleep",
        ),
        (
            "host port",
            c("ports", json!([{"containerPort": 80, "hostPort": 8080}])),
            "ports[0].hostPort",
        ),
        (
            "sctp",
            c("ports", json!([{"containerPort": 80, "protocol": "SCTP"}])),
            "ports[0].protocol",
        ),
        (
            "subPathExpr",
            c(
                "volumeMounts",
                json!([{"name": "v", "mountPath": "/v", "subPathExpr": "$(POD)"}]),
            ),
            "subPathExpr",
        ),
        (
            "bidirectional",
            c(
                "volumeMounts",
                json!([{"name": "v", "mountPath": "/v", "mountPropagation": "Bidirectional"}]),
            ),
            "mountPropagation",
        ),
        (
            "sidecar",
            with(
                base(),
                &["spec", "initContainers"],
                json!([{"name": "s", "image": "x", "restartPolicy": "Always"}]),
            ),
            "spec.initContainers[0].restartPolicy",
        ),
        (
            "pod ip in args",
            with(
                c(
                    "env",
                    json!([{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]),
                ),
                &["spec", "containers", "0", "args"],
                json!(["$(IP)"]),
            ),
            "spec.containers[0].args",
        ),
        (
            "unknown fieldRef",
            c(
                "env",
                json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.schedulerName"}}}]),
            ),
            "fieldRef.fieldPath",
        ),
        (
            "unknown spot strategy",
            annotation("k8s.aliyun.com/eci-spot-strategy", "Cheap"),
            "eci-spot-strategy",
        ),
        (
            "spot duration too long",
            annotation("k8s.aliyun.com/eci-spot-duration", "7"),
            "eci-spot-duration",
        ),
        (
            "spot price limit without a strategy",
            annotation("k8s.aliyun.com/eci-spot-price-limit", "0.5"),
            "eci-spot-strategy",
        ),
        (
            "spot fallback without a strategy",
            annotation("k8s.aliyun.com/eci-spot-fallback", "true"),
            "eci-spot-strategy",
        ),
        (
            "spot fallback not a boolean",
            annotation("k8s.aliyun.com/eci-spot-fallback", "yes"),
            "eci-spot-fallback",
        ),
        (
            "unknown eci option",
            annotation("k8s.aliyun.com/eci-use-specs", "2-4Gi"),
            "eci-use-specs",
        ),
        (
            "unknown aliyun option",
            annotation("k8s.aliyun.com/eip-bandwidth", "5"),
            "eip-bandwidth",
        ),
        (
            "bad plain-http registry",
            annotation("k8s.aliyun.com/plain-http-registry", "reg/evil path"),
            "plain-http-registry",
        ),
        (
            "empty insecure registry",
            annotation("k8s.aliyun.com/insecure-registry", " , "),
            "insecure-registry",
        ),
        (
            "bad image cache id",
            annotation("k8s.aliyun.com/eci-imc-id", "imc 1"),
            "eci-imc-id",
        ),
        (
            "storage beyond berth",
            annotation("k8s.aliyun.com/eci-extra-ephemeral-storage", "100Ti"),
            "ephemeral-storage",
        ),
        ("nul", c("args", json!(["a\u{0}b"])), "NUL byte"),
        (
            "too many args",
            c("args", json!(vec!["a"; 11])),
            "spec.containers[0].args",
        ),
        (
            "config bytes",
            with(
                base(),
                &["spec", "volumes"],
                json!([{"name": "big", "downwardAPI": {"items": [{"path": "a", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}]),
            ),
            "spec.volumes[0]",
        ),
    ];
    for (what, v, field) in cases {
        let v = if what == "config bytes" {
            with(
                v,
                &["metadata", "annotations"],
                json!({"big": "x".repeat(berth_core::volume::MAX_CONFIG_BYTES)}),
            )
        } else {
            v
        };
        let e = err(v);
        assert!(e.is_permanent(), "{what}: {e}");
        assert!(e.to_string().contains(field), "{what}: {e}");
        let s = crate::failed_status(&e);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.message, Some(e.to_string()));
    }
}

#[test]
fn missing_references_wait_rather_than_fail() {
    let cases = [
        (
            with(
                base(),
                &["spec", "imagePullSecrets"],
                json!([{"name": "later"}]),
            ),
            "spec.imagePullSecrets[0]",
        ),
        (
            with(
                base(),
                &["spec", "containers", "0", "env"],
                json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOPE"}}}]),
            ),
            "configMapKeyRef",
        ),
        (
            with(
                base(),
                &["spec", "containers", "0", "envFrom"],
                json!([{"secretRef": {"name": "later"}}]),
            ),
            "envFrom[0]",
        ),
        (
            with(
                base(),
                &["spec", "volumes"],
                json!([{"name": "c", "configMap": {"name": "later"}}]),
            ),
            "spec.volumes[0].configMap",
        ),
        (
            with(
                base(),
                &["spec", "volumes"],
                json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]),
            ),
            "serviceAccountToken",
        ),
    ];
    for (v, field) in cases {
        let e = err(v);
        assert!(!e.is_permanent(), "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn runtime_class_handlers_choose_berths_class() {
    let with_class = |handler: Option<&str>| {
        let v = with(base(), &["spec", "runtimeClassName"], json!("sandboxed"));
        let mut i = inputs();
        i.runtime_handler = handler.map(str::to_string);
        pod_to_group(&pod(v), &i)
    };
    assert_eq!(map(base()).runtime_class, None);
    for (handler, class) in [
        ("runc", RuntimeClass::Runc),
        ("crun", RuntimeClass::Runc),
        ("runsc", RuntimeClass::Gvisor),
        ("gvisor", RuntimeClass::Gvisor),
    ] {
        let p = with_class(Some(handler)).unwrap();
        assert_eq!(p.runtime_class, Some(class), "{handler}");
        assert!(p
            .to_query()
            .contains(&("RuntimeClassName".into(), class.as_str().into())));
    }
    let e = with_class(Some("kata")).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(e.to_string().contains("kata"), "{e}");
    // A RuntimeClass not there (yet): the pod waits, as for a ConfigMap.
    let e = with_class(None).unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(e.to_string().contains("sandboxed"), "{e}");
}
