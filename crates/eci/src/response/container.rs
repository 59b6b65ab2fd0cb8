//! The `Containers[]` and `InitContainers[]` entries of a container group's description.

use berth_core::{ContainerSpec, ContainerState, ContainerStatus};
use serde::{Deserialize, Serialize};

use super::time;

/// `CurrentState` / `PreviousState`; `{}` when there is none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStateInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
}

impl From<&ContainerState> for ContainerStateInfo {
    fn from(s: &ContainerState) -> Self {
        Self {
            state: Some(s.state.as_str().to_string()),
            detail_status: Some(s.detail_status.clone().unwrap_or_default()),
            exit_code: s.exit_code,
            signal: s.signal,
            reason: Some(s.reason.clone().unwrap_or_default()),
            message: Some(s.message.clone().unwrap_or_default()),
            start_time: s.start_time.map(time),
            finish_time: s.finish_time.map(time),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ValueFrom {
    pub field_ref: FieldRef,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnvironmentVar {
    pub key: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortInfo {
    pub port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub sub_path: String,
    pub read_only: bool,
    pub mount_propagation: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Capability {
    pub adds: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityContext {
    pub capability: Capability,
    pub read_only_root_filesystem: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProbeHttpGet {
    pub path: String,
    pub port: u16,
    pub scheme: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProbeTcpSocket {
    pub host: String,
    pub port: u16,
}

/// `LivenessProbe` / `ReadinessProbe`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Probe {
    pub execs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<ProbeHttpGet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<ProbeTcpSocket>,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub timeout_seconds: u32,
}

/// `Containers[]`: note `Commands` (plural).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub image_pull_policy: String,
    pub commands: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub cpu: f64,
    pub memory: f64,
    pub gpu: u32,
    pub ports: Vec<PortInfo>,
    pub environment_vars: Vec<EnvironmentVar>,
    pub volume_mounts: Vec<VolumeMount>,
    pub ready: bool,
    pub restart_count: u32,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub security_context: SecurityContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    pub current_state: ContainerStateInfo,
    pub previous_state: ContainerStateInfo,
}

/// `InitContainers[]`: note `Command` (singular), no probes, no Stdin or Tty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitContainerInfo {
    pub name: String,
    pub image: String,
    pub image_pull_policy: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub cpu: f64,
    pub memory: f64,
    pub gpu: u32,
    pub ports: Vec<PortInfo>,
    pub environment_vars: Vec<EnvironmentVar>,
    pub volume_mounts: Vec<VolumeMount>,
    pub ready: bool,
    pub restart_count: u32,
    pub security_context: SecurityContext,
    pub current_state: ContainerStateInfo,
    pub previous_state: ContainerStateInfo,
}

/// The parts of a container's description shared by app and init containers.
struct Common {
    env: Vec<EnvironmentVar>,
    ports: Vec<PortInfo>,
    security: SecurityContext,
    current: ContainerStateInfo,
    previous: ContainerStateInfo,
    ready: bool,
    restarts: u32,
}

fn common(spec: &ContainerSpec, statuses: &[ContainerStatus]) -> Common {
    let st = statuses.iter().find(|s| s.name == spec.name);
    let current = st.map_or_else(
        || ContainerStateInfo::from(&ContainerState::waiting("ContainerCreating")),
        |s| ContainerStateInfo::from(&s.current),
    );
    Common {
        env: spec
            .env
            .iter()
            .map(|e| EnvironmentVar {
                key: e.key.clone(),
                value: e.value.clone(),
                value_from: e.field_path.as_ref().map(|p| ValueFrom {
                    field_ref: FieldRef {
                        field_path: p.clone(),
                    },
                }),
            })
            .collect(),
        ports: spec
            .ports
            .iter()
            .map(|p| PortInfo {
                port: p.port,
                protocol: p.protocol.clone(),
            })
            .collect(),
        security: SecurityContext {
            capability: Capability {
                adds: spec.capability_add.clone(),
            },
            read_only_root_filesystem: spec.read_only_root_filesystem,
            run_as_user: spec.run_as_user,
        },
        current,
        previous: st
            .and_then(|s| s.previous.as_ref())
            .map(ContainerStateInfo::from)
            .unwrap_or_default(),
        ready: st.is_some_and(|s| s.ready),
        restarts: st.map_or(0, |s| s.restart_count),
    }
}

impl ContainerInfo {
    pub fn from_spec(spec: &ContainerSpec, statuses: &[ContainerStatus]) -> Self {
        let c = common(spec, statuses);
        Self {
            name: spec.name.clone(),
            image: spec.image.clone(),
            image_pull_policy: spec.image_pull_policy.as_str().to_string(),
            commands: spec.command.clone(),
            args: spec.args.clone(),
            working_dir: spec.working_dir.clone().unwrap_or_default(),
            cpu: spec.cpu.unwrap_or(0.0),
            memory: spec.memory.unwrap_or(0.0),
            ports: c.ports,
            environment_vars: c.env,
            ready: c.ready,
            restart_count: c.restarts,
            stdin: spec.stdin,
            tty: spec.tty,
            security_context: c.security,
            current_state: c.current,
            previous_state: c.previous,
            volume_mounts: volume_mounts(spec),
            liveness_probe: spec.liveness_probe.as_ref().map(Probe::from),
            readiness_probe: spec.readiness_probe.as_ref().map(Probe::from),
            ..Default::default()
        }
    }
}

impl From<&berth_core::Probe> for Probe {
    fn from(p: &berth_core::Probe) -> Self {
        let mut out = Self {
            initial_delay_seconds: p.initial_delay_secs,
            period_seconds: p.period_secs,
            success_threshold: p.success_threshold,
            failure_threshold: p.failure_threshold,
            timeout_seconds: p.timeout_secs,
            ..Default::default()
        };
        match &p.handler {
            berth_core::Handler::Exec { command } => out.execs = command.clone(),
            berth_core::Handler::HttpGet {
                path, port, scheme, ..
            } => {
                out.http_get = Some(ProbeHttpGet {
                    path: path.clone(),
                    port: *port,
                    scheme: scheme.as_str().to_string(),
                })
            }
            berth_core::Handler::TcpSocket { host, port } => {
                out.tcp_socket = Some(ProbeTcpSocket {
                    host: host.clone().unwrap_or_default(),
                    port: *port,
                })
            }
        }
        out
    }
}

impl InitContainerInfo {
    pub fn from_spec(spec: &ContainerSpec, statuses: &[ContainerStatus]) -> Self {
        let c = common(spec, statuses);
        Self {
            name: spec.name.clone(),
            image: spec.image.clone(),
            image_pull_policy: spec.image_pull_policy.as_str().to_string(),
            command: spec.command.clone(),
            args: spec.args.clone(),
            working_dir: spec.working_dir.clone().unwrap_or_default(),
            cpu: spec.cpu.unwrap_or(0.0),
            memory: spec.memory.unwrap_or(0.0),
            ports: c.ports,
            environment_vars: c.env,
            ready: c.ready,
            restart_count: c.restarts,
            security_context: c.security,
            current_state: c.current,
            previous_state: c.previous,
            volume_mounts: volume_mounts(spec),
            ..Default::default()
        }
    }
}

/// `VolumeMounts[]` of a container.
fn volume_mounts(spec: &ContainerSpec) -> Vec<VolumeMount> {
    spec.volume_mounts
        .iter()
        .map(|m| VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            sub_path: m.sub_path.clone().unwrap_or_default(),
            read_only: m.read_only,
            mount_propagation: m.propagation.as_str().to_string(),
        })
        .collect()
}
