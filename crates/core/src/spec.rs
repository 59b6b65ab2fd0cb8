//! What a user asked for: a container group and its containers, as decoded from the API.

use serde::{Deserialize, Serialize};

/// When a container that exited is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Always" => Some(Self::Always),
            "OnFailure" => Some(Self::OnFailure),
            "Never" => Some(Self::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::OnFailure => "OnFailure",
            Self::Never => "Never",
        }
    }
}

/// When the image of a container is pulled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImagePullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Always" => Some(Self::Always),
            "IfNotPresent" => Some(Self::IfNotPresent),
            "Never" => Some(Self::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The `FieldRef.FieldPath`s berth resolves when a container starts: the group's address
/// (`status.podIP`, and `status.podIPs`, the same single address), its name
/// (`metadata.name`) and its id (`metadata.uid`).
pub const FIELD_PATHS: &[&str] = &[
    "status.podIP",
    "status.podIPs",
    "metadata.name",
    "metadata.uid",
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
    /// `FieldRef.FieldPath`, one of [`FIELD_PATHS`], resolved when the container starts.
    #[serde(default)]
    pub field_path: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// The host port asked for (`Port.N.HostPort`, a berth extension), with a public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Login for one registry host (`ImageRegistryCredential.N`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCredential {
    pub server: String,
    pub user_name: String,
    pub password: String,
}

/// One container (app or init) of a group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,
    /// Replaces the image's entrypoint when non-empty.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's cmd when non-empty.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub working_dir: Option<String>,
    /// vCPU asked for this container, if any.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// GiB asked for this container, if any.
    #[serde(default)]
    pub memory: Option<f64>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub run_as_user: Option<u32>,
    #[serde(default)]
    pub run_as_group: Option<u32>,
    /// `SecurityContextRunAsNonRoot`: the container does not start when its user is root.
    #[serde(default)]
    pub run_as_non_root: bool,
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    /// Extra capabilities (`SecurityContext.Capability.Add.N`).
    #[serde(default)]
    pub capability_add: Vec<String>,
    /// Capabilities taken away (`SecurityContext.Capability.Drop.N`, berth's extension);
    /// `ALL` drops the default set, leaving only what `capability_add` gives.
    #[serde(default)]
    pub capability_drop: Vec<String>,
    /// The group's volumes this container mounts (`VolumeMount.N`).
    #[serde(default)]
    pub volume_mounts: Vec<crate::volume::VolumeMount>,
    /// `LivenessProbe`: failing it restarts the container under the restart policy.
    #[serde(default)]
    pub liveness_probe: Option<crate::probe::Probe>,
    /// `ReadinessProbe`: the container is Ready while it passes.
    #[serde(default)]
    pub readiness_probe: Option<crate::probe::Probe>,
    /// `StartupProbe` (berth's extension): holds the other probes back until it passes.
    #[serde(default)]
    pub startup_probe: Option<crate::probe::Probe>,
    /// `LifecyclePostStartHandler*`: run right after the start; failing kills the container.
    #[serde(default)]
    pub post_start: Option<crate::probe::Handler>,
    /// `LifecyclePreStopHandler*`: run before SIGTERM, within the grace period.
    #[serde(default)]
    pub pre_stop: Option<crate::probe::Handler>,
}

/// The largest `SecurityContext.FsGroup`: a group id every group's user namespace maps (a
/// group runs with 65,536 ids under `berth serve --userns`).
pub const MAX_FS_GROUP: u32 = 65_535;

/// A container group as created: what the user asked for, normalised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub name: String,
    pub region_id: String,
    #[serde(default)]
    pub zone_id: Option<String>,
    /// vCPU of the whole group after rounding to an offered size.
    pub cpu: f64,
    /// GiB of the whole group after rounding to an offered size.
    pub memory: f64,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    pub containers: Vec<ContainerSpec>,
    #[serde(default)]
    pub init_containers: Vec<ContainerSpec>,
    #[serde(default)]
    pub registry_credentials: Vec<RegistryCredential>,
    /// Registry hosts to reach over plain HTTP.
    #[serde(default)]
    pub plain_http_registries: Vec<String>,
    /// Registry hosts whose TLS certificate is not checked.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL on stop.
    #[serde(default = "default_grace")]
    pub termination_grace_period_secs: u64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub host_name: Option<String>,
    #[serde(default)]
    pub active_deadline_secs: Option<u64>,
    /// Image cache the images come from (`ImageSnapshotId`); chosen by the control plane when
    /// `auto_match_image_cache` found one.
    #[serde(default)]
    pub image_snapshot_id: Option<String>,
    /// `AutoMatchImageCache`: use the best matching cache, or make one from these images.
    #[serde(default)]
    pub auto_match_image_cache: bool,
    /// `EphemeralStorage`: GiB of the group's temporary storage (writable layers and the
    /// `/etc` files); [`DEFAULT_EPHEMERAL_STORAGE_GIB`] when not given.
    #[serde(default)]
    pub ephemeral_storage: Option<u32>,
    /// `Volume.N`: the volumes the containers may mount.
    #[serde(default)]
    pub volumes: Vec<crate::volume::Volume>,
    /// `DnsConfig`: name servers, search domains and options of the containers' resolver.
    #[serde(default)]
    pub dns_config: Option<crate::dns::DnsConfig>,
    /// `HostAliase.N`: extra lines of the containers' `/etc/hosts`.
    #[serde(default)]
    pub host_aliases: Vec<crate::dns::HostAlias>,
    /// `SecurityContext.Sysctl.N`: namespaced sysctls set in every container of the group.
    #[serde(default)]
    pub sysctls: Vec<crate::sysctl::Sysctl>,
    /// `SecurityContext.FsGroup` (berth's extension; Kubernetes' `fsGroup`): the group that
    /// owns the group's emptyDir and config-file volumes (their directories set-group-id,
    /// group-writable where the volume is writable), and a supplementary group of every
    /// container's processes. At most [`MAX_FS_GROUP`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
    /// `DnsPolicy`: whether the host's resolvers are merged in (`Default`) or not (`None`).
    #[serde(default)]
    pub dns_policy: crate::dns::DnsPolicy,
    /// `AutoCreateEip=true`: the containers' ports are published on the node's public address.
    #[serde(default)]
    pub public_address: bool,
    /// Where the ports were published, decided by the control plane at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<crate::publish::Publication>,
    /// The group's runtime class: as the request asked (`RuntimeClassName`), then as the
    /// control plane decided it at creation (else the account's default, else the node's).
    /// Records written before classes existed have none: `runc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<crate::RuntimeClass>,
    /// `SpotStrategy`, `SpotPriceLimit`, `SpotDuration`: the terms of a preemptible group
    /// (`None`: pay-as-you-go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<crate::SpotTerms>,
}

/// The temporary storage every group gets unless it asks for another size (as ECI).
pub const DEFAULT_EPHEMERAL_STORAGE_GIB: u32 = 30;
/// The largest temporary storage one group may ask for (64 TiB).
pub const MAX_EPHEMERAL_STORAGE_GIB: u32 = 65_536;

fn default_grace() -> u64 {
    30
}

impl GroupSpec {
    /// GiB of temporary storage the group gets.
    pub fn ephemeral_storage_gib(&self) -> u32 {
        self.ephemeral_storage
            .unwrap_or(DEFAULT_EPHEMERAL_STORAGE_GIB)
    }

    /// The group's runtime class (`runc` when none was recorded).
    pub fn runtime_class(&self) -> crate::RuntimeClass {
        self.runtime_class.unwrap_or_default()
    }

    /// All containers, init containers first, in the order they start.
    pub fn all_containers(&self) -> impl Iterator<Item = &ContainerSpec> {
        self.init_containers.iter().chain(self.containers.iter())
    }
}
