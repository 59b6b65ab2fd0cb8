//! Request parameters of the client's calls, flattened into ECI query pairs
//! (`Container.1.Image=…`, 1-based lists, JSON-string id lists) the way the SDKs write them.

use berth_core::{
    ContainerSpec, EmptyDirMedium, GroupSpec, GroupStatus, Handler, MountPropagation, Probe,
    RegistryCredential, RestartPolicy, Tag, Volume, VolumeSource,
};

/// What CreateContainerGroup is asked for. `None` leaves a value to the server's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateParams {
    pub name: String,
    pub region_id: Option<String>,
    pub zone_id: Option<String>,
    /// Group vCPU; when unset the server sums the containers' or uses 2.
    pub cpu: Option<f64>,
    /// Group GiB; when unset the server sums the containers' or uses 4.
    pub memory: Option<f64>,
    pub restart_policy: Option<RestartPolicy>,
    pub containers: Vec<ContainerSpec>,
    pub init_containers: Vec<ContainerSpec>,
    pub registry_credentials: Vec<RegistryCredential>,
    pub plain_http_registries: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub termination_grace_period_secs: Option<u64>,
    pub tags: Vec<Tag>,
    pub host_name: Option<String>,
    pub active_deadline_secs: Option<u64>,
    /// `EphemeralStorage`, GiB.
    pub ephemeral_storage: Option<u32>,
    /// `ImageSnapshotId`: the image cache (`imc-…`) the images come from.
    pub image_snapshot_id: Option<String>,
    /// `AutoMatchImageCache=true`: the best matching image cache, or a new one.
    pub auto_match_image_cache: bool,
    /// `Volume.N`.
    pub volumes: Vec<Volume>,
    pub dns_config: Option<berth_core::DnsConfig>,
    pub host_aliases: Vec<berth_core::HostAlias>,
    /// `SecurityContext.Sysctl.N`.
    pub sysctls: Vec<berth_core::Sysctl>,
    /// `SecurityContext.FsGroup` (berth's extension).
    pub fs_group: Option<u32>,
    /// `DnsPolicy`; unset: the server's default (`Default`).
    pub dns_policy: Option<berth_core::DnsPolicy>,
    /// `AutoCreateEip=true`: the containers' ports published on the node's public address.
    pub auto_create_eip: bool,
    /// `RuntimeClassName` (berth's extension): runc or gvisor; unset: the account's or the
    /// node's default.
    pub runtime_class: Option<berth_core::RuntimeClass>,
    /// `SpotStrategy`, `SpotPriceLimit`, `SpotDuration` (the price in force is the
    /// server's, never sent).
    pub spot: Option<berth_core::SpotTerms>,
    pub client_token: Option<String>,
    pub dry_run: bool,
}

impl CreateParams {
    /// Everything of a spec, its size included.
    pub fn from_spec(spec: &GroupSpec) -> Self {
        Self {
            name: spec.name.clone(),
            region_id: Some(spec.region_id.clone()).filter(|r| !r.is_empty()),
            zone_id: spec.zone_id.clone(),
            cpu: Some(spec.cpu),
            memory: Some(spec.memory),
            restart_policy: Some(spec.restart_policy),
            containers: spec.containers.clone(),
            init_containers: spec.init_containers.clone(),
            registry_credentials: spec.registry_credentials.clone(),
            plain_http_registries: spec.plain_http_registries.clone(),
            insecure_registries: spec.insecure_registries.clone(),
            termination_grace_period_secs: Some(spec.termination_grace_period_secs),
            tags: spec.tags.clone(),
            host_name: spec.host_name.clone(),
            active_deadline_secs: spec.active_deadline_secs,
            ephemeral_storage: spec.ephemeral_storage,
            image_snapshot_id: spec.image_snapshot_id.clone(),
            auto_match_image_cache: spec.auto_match_image_cache,
            volumes: spec.volumes.clone(),
            dns_config: spec.dns_config.clone(),
            host_aliases: spec.host_aliases.clone(),
            sysctls: spec.sysctls.clone(),
            fs_group: spec.fs_group,
            dns_policy: Some(spec.dns_policy),
            auto_create_eip: spec.public_address,
            runtime_class: spec.runtime_class,
            spot: spec.spot.clone(),
            client_token: None,
            dry_run: false,
        }
    }

    /// The flattened query pairs.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Q::default();
        q.put("ContainerGroupName", &self.name);
        q.opt("RegionId", self.region_id.as_deref());
        q.opt("ZoneId", self.zone_id.as_deref());
        q.opt("Cpu", self.cpu.map(num).as_deref());
        q.opt("Memory", self.memory.map(num).as_deref());
        q.opt(
            "RestartPolicy",
            self.restart_policy.map(RestartPolicy::as_str),
        );
        for (i, c) in self.containers.iter().enumerate() {
            container(&mut q, &format!("Container.{}", i + 1), c, false);
        }
        for (i, c) in self.init_containers.iter().enumerate() {
            container(&mut q, &format!("InitContainer.{}", i + 1), c, true);
        }
        for (i, c) in self.registry_credentials.iter().enumerate() {
            let p = format!("ImageRegistryCredential.{}", i + 1);
            q.put(&format!("{p}.Server"), &c.server);
            q.put(&format!("{p}.UserName"), &c.user_name);
            q.put(&format!("{p}.Password"), &c.password);
        }
        if !self.plain_http_registries.is_empty() {
            q.put("PlainHttpRegistry", &self.plain_http_registries.join(","));
        }
        if !self.insecure_registries.is_empty() {
            q.put("InsecureRegistry", &self.insecure_registries.join(","));
        }
        q.opt(
            "TerminationGracePeriodSeconds",
            self.termination_grace_period_secs
                .map(|s| s.to_string())
                .as_deref(),
        );
        tags(&mut q, &self.tags);
        q.opt("HostName", self.host_name.as_deref());
        q.opt(
            "ActiveDeadlineSeconds",
            self.active_deadline_secs.map(|s| s.to_string()).as_deref(),
        );
        q.opt(
            "EphemeralStorage",
            self.ephemeral_storage.map(|s| s.to_string()).as_deref(),
        );
        q.opt("ImageSnapshotId", self.image_snapshot_id.as_deref());
        if self.auto_match_image_cache {
            q.put("AutoMatchImageCache", "true");
        }
        if let Some(t) = &self.spot {
            q.put("SpotStrategy", t.strategy.as_str());
            q.opt("SpotPriceLimit", t.price_limit.as_deref());
            if t.strategy.is_spot() {
                q.put("SpotDuration", &t.duration_hours.to_string());
                if t.fallback {
                    q.put("StrictSpot", "false");
                }
            }
        }
        for (i, v) in self.volumes.iter().enumerate() {
            volume(&mut q, &format!("Volume.{}", i + 1), v);
        }
        for (i, s) in self.sysctls.iter().enumerate() {
            q.put(&format!("SecurityContext.Sysctl.{}.Name", i + 1), &s.name);
            q.put(&format!("SecurityContext.Sysctl.{}.Value", i + 1), &s.value);
        }
        if let Some(g) = self.fs_group {
            q.put("SecurityContext.FsGroup", &g.to_string());
        }
        q.opt(
            "RuntimeClassName",
            self.runtime_class.map(berth_core::RuntimeClass::as_str),
        );
        if let Some(d) = &self.dns_config {
            for (i, s) in d.name_servers.iter().enumerate() {
                q.put(&format!("DnsConfig.NameServer.{}", i + 1), s);
            }
            for (i, s) in d.searches.iter().enumerate() {
                q.put(&format!("DnsConfig.Search.{}", i + 1), s);
            }
            for (i, o) in d.options.iter().enumerate() {
                q.put(&format!("DnsConfig.Option.{}.Name", i + 1), &o.name);
                q.opt(
                    &format!("DnsConfig.Option.{}.Value", i + 1),
                    o.value.as_deref(),
                );
            }
        }
        q.opt(
            "DnsPolicy",
            self.dns_policy.map(berth_core::DnsPolicy::as_str),
        );
        if self.auto_create_eip {
            q.put("AutoCreateEip", "true");
        }
        for (i, a) in self.host_aliases.iter().enumerate() {
            q.put(&format!("HostAliase.{}.Ip", i + 1), &a.ip);
            for (j, h) in a.hostnames.iter().enumerate() {
                q.put(&format!("HostAliase.{}.Hostname.{}", i + 1, j + 1), h);
            }
        }
        q.opt("ClientToken", self.client_token.as_deref());
        if self.dry_run {
            q.put("DryRun", "true");
        }
        q.0
    }
}

/// DescribeContainerGroups filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DescribeParams {
    /// Sent as one JSON array; empty for all groups.
    pub ids: Vec<String>,
    pub name: Option<String>,
    pub status: Option<GroupStatus>,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
    pub with_event: bool,
    pub tags: Vec<Tag>,
    /// berth's extension: only groups whose record changed within this many seconds.
    pub since_second: Option<u64>,
    /// berth's extension: only groups that have ended (`true`) or that have not (`false`).
    pub ended: Option<bool>,
}

impl DescribeParams {
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Q::default();
        if !self.ids.is_empty() {
            q.put("ContainerGroupIds", &json_list(&self.ids));
        }
        q.opt("ContainerGroupName", self.name.as_deref());
        q.opt("Status", self.status.map(GroupStatus::as_str));
        q.opt("Limit", self.limit.map(|l| l.to_string()).as_deref());
        q.opt("NextToken", self.next_token.as_deref());
        if self.with_event {
            q.put("WithEvent", "true");
        }
        q.opt(
            "SinceSecond",
            self.since_second.map(|s| s.to_string()).as_deref(),
        );
        q.opt("Ended", self.ended.map(|e| e.to_string()).as_deref());
        tags(&mut q, &self.tags);
        q.0
    }
}

/// The volumes of an `IncrementalUpdate` UpdateContainerGroup: each replaces the group's
/// volume of its name (a ConfigFile volume whose files alone change is written in place).
pub fn volume_update_query(id: &str, volumes: &[Volume]) -> Vec<(String, String)> {
    let mut q = Q::default();
    q.put("ContainerGroupId", id);
    q.put("UpdateType", "IncrementalUpdate");
    for (i, v) in volumes.iter().enumerate() {
        volume(&mut q, &format!("Volume.{}", i + 1), v);
    }
    q.0
}

/// DescribeContainerLog options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogParams {
    pub container_group_id: String,
    pub container_name: String,
    pub tail: Option<u32>,
    pub since_seconds: Option<u64>,
    pub limit_bytes: Option<u32>,
    pub timestamps: bool,
    pub last_time: bool,
}

impl LogParams {
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Q::default();
        q.put("ContainerGroupId", &self.container_group_id);
        q.put("ContainerName", &self.container_name);
        q.opt("Tail", self.tail.map(|n| n.to_string()).as_deref());
        q.opt(
            "SinceSeconds",
            self.since_seconds.map(|n| n.to_string()).as_deref(),
        );
        q.opt(
            "LimitBytes",
            self.limit_bytes.map(|n| n.to_string()).as_deref(),
        );
        if self.timestamps {
            q.put("Timestamps", "true");
        }
        if self.last_time {
            q.put("LastTime", "true");
        }
        q.0
    }
}

/// ExecContainerCommand. `sync` runs the command to its end and returns its output; without
/// it the answer carries the one-time `WebSocketUri` of an interactive session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecParams {
    pub container_group_id: String,
    pub container_name: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub sync: bool,
}

impl ExecParams {
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Q::default();
        q.put("ContainerGroupId", &self.container_group_id);
        q.put("ContainerName", &self.container_name);
        q.put("Command", &json_list(&self.command));
        q.put("TTY", if self.tty { "true" } else { "false" });
        q.put("Stdin", if self.stdin { "true" } else { "false" });
        q.put("Sync", if self.sync { "true" } else { "false" });
        q.0
    }
}

/// DescribeUsage options (berth's bill); `None` takes the server's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageParams {
    /// An account name, or `*` for every account (an operator's key only).
    pub account_id: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    pub until: Option<String>,
    /// `group`, `day`, `account` or `tag:KEY`.
    pub group_by: Option<String>,
}

impl UsageParams {
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Q::default();
        q.opt("AccountId", self.account_id.as_deref());
        q.opt("Since", self.since.as_deref());
        q.opt("Until", self.until.as_deref());
        q.opt("GroupBy", self.group_by.as_deref());
        q.0
    }
}

/// A JSON array of strings, as `ContainerGroupIds` takes it.
pub(crate) fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

#[derive(Default)]
struct Q(Vec<(String, String)>);

impl Q {
    fn put(&mut self, k: &str, v: &str) {
        self.0.push((k.to_string(), v.to_string()));
    }

    fn opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.put(k, v);
        }
    }

    fn list(&mut self, prefix: &str, items: &[String]) {
        for (i, v) in items.iter().enumerate() {
            self.put(&format!("{prefix}.{}", i + 1), v);
        }
    }
}

/// A number as the Python SDK writes a float: `0.5`, `1.0`.
fn num(v: f64) -> String {
    format!("{v:?}")
}

fn tags(q: &mut Q, tags: &[Tag]) {
    for (i, t) in tags.iter().enumerate() {
        q.put(&format!("Tag.{}.Key", i + 1), &t.key);
        q.put(&format!("Tag.{}.Value", i + 1), &t.value);
    }
}

fn container(q: &mut Q, p: &str, c: &ContainerSpec, init: bool) {
    q.put(&format!("{p}.Name"), &c.name);
    q.put(&format!("{p}.Image"), &c.image);
    q.put(
        &format!("{p}.ImagePullPolicy"),
        c.image_pull_policy.as_str(),
    );
    q.list(&format!("{p}.Command"), &c.command);
    q.list(&format!("{p}.Arg"), &c.args);
    for (i, e) in c.env.iter().enumerate() {
        let ep = format!("{p}.EnvironmentVar.{}", i + 1);
        q.put(&format!("{ep}.Key"), &e.key);
        q.put(&format!("{ep}.Value"), &e.value);
        q.opt(&format!("{ep}.FieldRef.FieldPath"), e.field_path.as_deref());
    }
    q.opt(&format!("{p}.WorkingDir"), c.working_dir.as_deref());
    q.opt(&format!("{p}.Cpu"), c.cpu.map(num).as_deref());
    q.opt(&format!("{p}.Memory"), c.memory.map(num).as_deref());
    for (i, port) in c.ports.iter().enumerate() {
        q.put(&format!("{p}.Port.{}.Port", i + 1), &port.port.to_string());
        q.put(&format!("{p}.Port.{}.Protocol", i + 1), &port.protocol);
        if let Some(h) = port.host_port {
            q.put(&format!("{p}.Port.{}.HostPort", i + 1), &h.to_string());
        }
    }
    if !init {
        q.put(&format!("{p}.Tty"), if c.tty { "true" } else { "false" });
        q.put(
            &format!("{p}.Stdin"),
            if c.stdin { "true" } else { "false" },
        );
    }
    let sc = format!("{p}.SecurityContext");
    q.opt(
        &format!("{sc}.RunAsUser"),
        c.run_as_user.map(|u| u.to_string()).as_deref(),
    );
    q.opt(
        &format!("{p}.SecurityContextRunAsGroup"),
        c.run_as_group.map(|g| g.to_string()).as_deref(),
    );
    if c.read_only_root_filesystem {
        q.put(&format!("{sc}.ReadOnlyRootFilesystem"), "true");
    }
    if c.run_as_non_root {
        q.put(&format!("{p}.SecurityContextRunAsNonRoot"), "true");
    }
    q.list(&format!("{sc}.Capability.Add"), &c.capability_add);
    q.list(&format!("{sc}.Capability.Drop"), &c.capability_drop);
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{p}.VolumeMount.{}", i + 1);
        q.put(&format!("{mp}.Name"), &m.name);
        q.put(&format!("{mp}.MountPath"), &m.mount_path);
        q.opt(&format!("{mp}.SubPath"), m.sub_path.as_deref());
        if m.read_only {
            q.put(&format!("{mp}.ReadOnly"), "true");
        }
        if m.propagation != MountPropagation::None {
            q.put(&format!("{mp}.MountPropagation"), m.propagation.as_str());
        }
    }
    for (kind, probe) in [
        ("LivenessProbe", &c.liveness_probe),
        ("ReadinessProbe", &c.readiness_probe),
        ("StartupProbe", &c.startup_probe),
    ] {
        if let Some(pr) = probe {
            probe_params(q, &format!("{p}.{kind}"), pr);
        }
    }
    for (which, hook) in [("PostStart", &c.post_start), ("PreStop", &c.pre_stop)] {
        if let Some(h) = hook {
            hook_params(q, &format!("{p}.Lifecycle{which}Handler"), h);
        }
    }
}

fn probe_params(q: &mut Q, p: &str, pr: &Probe) {
    match &pr.handler {
        Handler::Exec { command } => q.list(&format!("{p}.Exec.Command"), command),
        Handler::HttpGet {
            path,
            port,
            scheme,
            headers,
            ..
        } => {
            q.put(&format!("{p}.HttpGet.Path"), path);
            q.put(&format!("{p}.HttpGet.Port"), &port.to_string());
            q.put(&format!("{p}.HttpGet.Scheme"), scheme.as_str());
            for (i, h) in headers.iter().enumerate() {
                let hp = format!("{p}.HttpGet.HttpHeader.{}", i + 1);
                q.put(&format!("{hp}.Name"), &h.name);
                q.put(&format!("{hp}.Value"), &h.value);
            }
        }
        Handler::TcpSocket { port, .. } => q.put(&format!("{p}.TcpSocket.Port"), &port.to_string()),
    }
    for (k, v) in [
        ("InitialDelaySeconds", pr.initial_delay_secs),
        ("PeriodSeconds", pr.period_secs),
        ("TimeoutSeconds", pr.timeout_secs),
        ("SuccessThreshold", pr.success_threshold),
        ("FailureThreshold", pr.failure_threshold),
    ] {
        q.put(&format!("{p}.{k}"), &v.to_string());
    }
}

fn hook_params(q: &mut Q, p: &str, h: &Handler) {
    match h {
        Handler::Exec { command } => q.list(&format!("{p}Exec"), command),
        Handler::HttpGet {
            host,
            path,
            port,
            scheme,
            headers,
        } => {
            q.opt(&format!("{p}HttpGetHost"), host.as_deref());
            q.put(&format!("{p}HttpGetPath"), path);
            q.put(&format!("{p}HttpGetPort"), &port.to_string());
            q.put(&format!("{p}HttpGetScheme"), scheme.as_str());
            for (i, hd) in headers.iter().enumerate() {
                let hp = format!("{p}HttpGetHttpHeader.{}", i + 1);
                q.put(&format!("{hp}.Name"), &hd.name);
                q.put(&format!("{hp}.Value"), &hd.value);
            }
        }
        Handler::TcpSocket { host, port } => {
            q.opt(&format!("{p}TcpSocketHost"), host.as_deref());
            q.put(&format!("{p}TcpSocketPort"), &port.to_string());
        }
    }
}

fn volume(q: &mut Q, p: &str, v: &Volume) {
    q.put(&format!("{p}.Name"), &v.name);
    q.put(&format!("{p}.Type"), v.source.type_name());
    match &v.source {
        VolumeSource::EmptyDir {
            medium, size_limit, ..
        } => {
            if *medium == EmptyDirMedium::Memory {
                q.put(&format!("{p}.EmptyDirVolume.Medium"), "Memory");
            }
            q.opt(
                &format!("{p}.EmptyDirVolume.SizeLimit"),
                size_limit.as_deref(),
            );
        }
        VolumeSource::ConfigFile {
            files,
            default_mode,
        } => {
            let cp = format!("{p}.ConfigFileVolume");
            q.opt(
                &format!("{cp}.DefaultMode"),
                default_mode.map(|m| format!("0{m:o}")).as_deref(),
            );
            for (i, f) in files.iter().enumerate() {
                let fp = format!("{cp}.ConfigFileToPath.{}", i + 1);
                q.put(&format!("{fp}.Path"), &f.path);
                q.put(&format!("{fp}.Content"), &f.content);
                q.opt(
                    &format!("{fp}.Mode"),
                    f.mode.map(|m| format!("0{m:o}")).as_deref(),
                );
            }
        }
        VolumeSource::Nfs {
            server,
            path,
            read_only,
        } => {
            q.put(&format!("{p}.NFSVolume.Server"), server);
            q.put(&format!("{p}.NFSVolume.Path"), path);
            if *read_only {
                q.put(&format!("{p}.NFSVolume.ReadOnly"), "true");
            }
        }
        VolumeSource::HostPath { path, kind } => {
            q.put(&format!("{p}.HostPathVolume.Path"), path);
            if *kind != berth_core::HostPathType::Any {
                q.put(&format!("{p}.HostPathVolume.Type"), kind.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_core::{EnvVar, ImagePullPolicy, PortSpec};
    use berth_eci::request::CreateRequest;
    use berth_eci::Params;

    use super::*;

    #[test]
    fn flattened_spec_decodes_back_to_itself() {
        let app = ContainerSpec {
            name: "app".into(),
            image: "nginx:1.25".into(),
            image_pull_policy: ImagePullPolicy::Always,
            command: vec!["sh".into(), "-c".into(), "echo a b*c~/é && sleep 1".into()],
            args: vec!["".into(), "x=y&z".into()],
            env: vec![
                EnvVar {
                    key: "A".into(),
                    value: "v=1&2+3 %".into(),
                    field_path: None,
                },
                EnvVar {
                    key: "IP".into(),
                    value: "".into(),
                    field_path: Some("status.podIP".into()),
                },
            ],
            working_dir: Some("/srv".into()),
            cpu: Some(0.5),
            memory: Some(1.0),
            ports: vec![PortSpec {
                port: 8080,
                protocol: "UDP".into(),
                host_port: Some(30080),
            }],
            // A TTY and stdin are refused until berth gives containers one.
            tty: false,
            stdin: false,
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            read_only_root_filesystem: true,
            run_as_non_root: true,
            capability_add: vec!["NET_ADMIN".into()],
            capability_drop: vec!["ALL".into()],
            volume_mounts: vec![
                berth_core::VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    sub_path: Some("a/b".into()),
                    read_only: true,
                    propagation: MountPropagation::HostToContainer,
                },
                berth_core::VolumeMount {
                    name: "conf".into(),
                    mount_path: "/etc/app".into(),
                    ..Default::default()
                },
            ],
            liveness_probe: Some(Probe {
                initial_delay_secs: 5,
                failure_threshold: 7,
                ..Probe::new(Handler::Exec {
                    command: vec!["cat".into(), "/tmp/a b".into()],
                })
            }),
            readiness_probe: Some(Probe {
                success_threshold: 2,
                period_secs: 3,
                timeout_secs: 2,
                ..Probe::new(Handler::HttpGet {
                    host: None,
                    path: "/healthz?x=1".into(),
                    port: 8080,
                    scheme: berth_core::Scheme::Https,
                    headers: vec![berth_core::HttpHeader {
                        name: "X-Probe".into(),
                        value: "a b".into(),
                    }],
                })
            }),
            startup_probe: Some(Probe::new(Handler::TcpSocket {
                host: None,
                port: 9000,
            })),
            post_start: Some(Handler::HttpGet {
                host: Some("127.0.0.1".into()),
                path: "/start".into(),
                port: 80,
                scheme: berth_core::Scheme::Http,
                headers: vec![berth_core::HttpHeader {
                    name: "X-Token".into(),
                    value: "a b&c".into(),
                }],
            }),
            pre_stop: Some(Handler::Exec {
                command: vec!["sh".into(), "-c".into(), "echo bye > /data/x".into()],
            }),
        };
        let init = ContainerSpec {
            name: "init".into(),
            image: "busybox".into(),
            command: vec!["true".into()],
            ..Default::default()
        };
        let spec = GroupSpec {
            name: "web".into(),
            region_id: "cn-local".into(),
            zone_id: Some("cn-local-a".into()),
            cpu: 1.0,
            memory: 2.0,
            restart_policy: RestartPolicy::OnFailure,
            containers: vec![app],
            init_containers: vec![init],
            registry_credentials: vec![RegistryCredential {
                server: "reg:5000".into(),
                user_name: "u".into(),
                password: "p&ss word".into(),
            }],
            plain_http_registries: vec!["reg:5000".into(), "other".into()],
            insecure_registries: vec!["secure:443".into()],
            termination_grace_period_secs: 7,
            tags: vec![Tag {
                key: "team".into(),
                value: "dev test".into(),
            }],
            host_name: Some("web-1".into()),
            dns_config: Some(berth_core::DnsConfig {
                name_servers: vec!["10.1.1.1".into()],
                searches: vec!["svc.local".into()],
                options: vec![berth_core::DnsOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                }],
            }),
            host_aliases: vec![berth_core::HostAlias {
                ip: "10.0.0.9".into(),
                hostnames: vec!["db".into(), "db.local".into()],
            }],
            sysctls: vec![berth_core::Sysctl {
                name: "net.ipv4.ip_local_port_range".into(),
                value: "2000 30000".into(),
            }],
            ephemeral_storage: Some(40),
            dns_policy: berth_core::DnsPolicy::None,
            public_address: true,
            volumes: vec![
                Volume {
                    name: "data".into(),
                    source: VolumeSource::EmptyDir {
                        medium: EmptyDirMedium::Memory,
                        size_limit: Some("64Mi".into()),
                        size_limit_bytes: Some(64 << 20),
                    },
                },
                Volume {
                    name: "conf".into(),
                    source: VolumeSource::ConfigFile {
                        files: vec![berth_core::ConfigFile {
                            path: "app.conf".into(),
                            content: "aGVsbG8K".into(),
                            mode: Some(0o600),
                        }],
                        default_mode: Some(0o640),
                    },
                },
            ],
            runtime_class: Some(berth_core::RuntimeClass::Gvisor),
            spot: Some(berth_core::SpotTerms {
                strategy: berth_core::SpotStrategy::SpotWithPriceLimit,
                price_limit: Some("0.5".into()),
                duration_hours: 0,
                hour_price: None,
                fallback: true,
            }),
            ..Default::default()
        };
        let mut params = CreateParams::from_spec(&spec);
        params.client_token = Some("tok".into());
        params.dry_run = true;
        let q = params.to_query();
        assert!(q.contains(&("Container.1.Cpu".into(), "0.5".into())));
        assert!(q.contains(&("Memory".into(), "2.0".into())));
        let decoded = CreateRequest::decode(&Params::from_pairs(q)).unwrap();
        assert_eq!(decoded.spec, spec);
        assert_eq!(decoded.client_token.as_deref(), Some("tok"));
        assert!(decoded.dry_run);
    }

    #[test]
    fn describe_and_log_queries() {
        let d = DescribeParams {
            ids: vec!["eci-a".into(), "eci-b".into()],
            status: Some(GroupStatus::Running),
            limit: Some(5),
            with_event: true,
            ..Default::default()
        };
        let r =
            berth_eci::request::DescribeGroupsRequest::decode(&Params::from_pairs(d.to_query()))
                .unwrap();
        assert_eq!(r.ids, Some(vec!["eci-a".to_string(), "eci-b".to_string()]));
        assert_eq!(
            (r.limit, r.with_event, r.status),
            (5, true, Some(GroupStatus::Running))
        );
        let l = LogParams {
            container_group_id: "eci-a".into(),
            container_name: "app".into(),
            tail: Some(10),
            timestamps: true,
            ..Default::default()
        };
        let r = berth_eci::request::ContainerLogRequest::decode(&Params::from_pairs(l.to_query()))
            .unwrap();
        assert_eq!((r.tail, r.timestamps, r.last_time), (10, true, false));
    }

    #[test]
    fn exec_params_decode() {
        let e = ExecParams {
            container_group_id: "eci-a".into(),
            container_name: "app".into(),
            command: vec!["sh".into(), "-c".into(), "echo \"a b\"".into()],
            tty: true,
            stdin: true,
            sync: false,
        };
        let r = berth_eci::request::ExecRequest::decode(&Params::from_pairs(e.to_query())).unwrap();
        assert_eq!(r.command, e.command);
        assert_eq!((r.tty, r.stdin, r.sync), (true, true, false));
    }
}
