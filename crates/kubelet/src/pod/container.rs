//! One container of a pod → `berth_core::ContainerSpec`: image, command and args (with the
//! kubelet's `$(VAR)` expansion), resources, ports, security context, volume mounts, probes
//! and lifecycle hooks.

use berth_core::probe::{Handler, HttpHeader, Probe, Scheme};
use berth_core::volume::{MountPropagation, VolumeMount};
use berth_core::{ContainerSpec, ImagePullPolicy, PortSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, LifecycleHandler, SecurityContext, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env;
use super::Ctx;
use crate::error::PodError;

pub(crate) fn container(
    ctx: &Ctx,
    c: &Container,
    field: &str,
    init: bool,
) -> Result<ContainerSpec, PodError> {
    let f = |s: &str| format!("{field}.{s}");
    refuse_container_fields(c, field, init)?;
    let image = c
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| PodError::unsupported(f("image"), "is missing"))?;
    let image_pull_policy = match c.image_pull_policy.as_deref() {
        None if image.ends_with(":latest")
            || !image.rsplit('/').next().unwrap_or("").contains([':', '@']) =>
        {
            ImagePullPolicy::Always
        }
        None => ImagePullPolicy::IfNotPresent,
        Some(p) => ImagePullPolicy::parse(p).ok_or_else(|| {
            PodError::unsupported(
                f("imagePullPolicy"),
                format!("must be Always, IfNotPresent or Never, got {p:?}"),
            )
        })?,
    };
    let env = env::env(ctx, c, field)?;
    let expand = |list: &Option<Vec<String>>, what: &str| -> Result<Vec<String>, PodError> {
        list.iter()
            .flatten()
            .map(|s| env::expand(s, &env.values).map_err(|name| env::runtime_ref(&f(what), &name)))
            .collect()
    };
    let command = expand(&c.command, "command")?;
    let args = expand(&c.args, "args")?;
    if args.len() > berth_eci_max_args() {
        return Err(PodError::unsupported(
            f("args"),
            format!("berth allows at most {} arguments", berth_eci_max_args()),
        ));
    }
    let nul = |s: &String| s.contains('\0');
    if command.iter().any(nul)
        || args.iter().any(nul)
        || env.vars.iter().any(|e| nul(&e.value))
        || c.working_dir.as_ref().is_some_and(nul)
    {
        return Err(PodError::unsupported(
            field,
            "a command, argument, variable or working directory holds a NUL byte",
        ));
    }
    let (cpu, memory) = super::cpu_memory(c.resources.as_ref(), &f("resources"))?;
    let sc = security(ctx, c.security_context.as_ref(), &f("securityContext"))?;
    let (liveness_probe, readiness_probe, startup_probe, post_start, pre_stop) = if init {
        (None, None, None, None, None)
    } else {
        (
            probe(c, c.liveness_probe.as_ref(), &f("livenessProbe"))?,
            probe(c, c.readiness_probe.as_ref(), &f("readinessProbe"))?,
            probe(c, c.startup_probe.as_ref(), &f("startupProbe"))?,
            hook(
                c,
                c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()),
                &f("lifecycle.postStart"),
            )?,
            hook(
                c,
                c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()),
                &f("lifecycle.preStop"),
            )?,
        )
    };
    Ok(ContainerSpec {
        name: c.name.clone(),
        image,
        image_pull_policy,
        command,
        args,
        env: env.vars,
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        cpu,
        memory,
        ports: ports(c.ports.as_deref(), &f("ports"), init)?,
        tty: false,
        stdin: false,
        run_as_user: sc.run_as_user,
        run_as_group: sc.run_as_group,
        run_as_non_root: sc.run_as_non_root,
        read_only_root_filesystem: sc.read_only_root_filesystem,
        capability_add: sc.add,
        capability_drop: sc.drop,
        volume_mounts: mounts(c, field)?,
        liveness_probe,
        readiness_probe,
        startup_probe,
        post_start,
        pre_stop,
    })
}

fn berth_eci_max_args() -> usize {
    10
}

fn refuse_container_fields(c: &Container, field: &str, init: bool) -> Result<(), PodError> {
    let refuse = |s: &str, why: &str| Err(PodError::unsupported(format!("{field}.{s}"), why));
    if c.tty == Some(true) {
        return refuse(
            "tty",
            "berth gives containers no terminal of their own (kubectl exec -t still works)",
        );
    }
    if c.stdin == Some(true) || c.stdin_once == Some(true) {
        return refuse(
            "stdin",
            "berth does not keep a container's standard input open",
        );
    }
    if c.termination_message_path
        .as_deref()
        .is_some_and(|p| p != "/dev/termination-log")
    {
        return refuse(
            "terminationMessagePath",
            "berth reads no termination message",
        );
    }
    if c.termination_message_policy
        .as_deref()
        .is_some_and(|p| p != "File")
    {
        return refuse(
            "terminationMessagePolicy",
            "berth reads no termination message",
        );
    }
    if c.volume_devices.as_ref().is_some_and(|v| !v.is_empty()) {
        return refuse("volumeDevices", "berth has no block volumes");
    }
    if c.restart_policy.is_some()
        || c.restart_policy_rules
            .as_ref()
            .is_some_and(|r| !r.is_empty())
    {
        return refuse(
            "restartPolicy",
            if init {
                "sidecar init containers are not supported by berth"
            } else {
                "per-container restart policies are not supported by berth"
            },
        );
    }
    if c.lifecycle
        .as_ref()
        .is_some_and(|l| l.stop_signal.is_some())
    {
        return refuse(
            "lifecycle.stopSignal",
            "berth stops containers with SIGTERM",
        );
    }
    if init
        && (c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some())
    {
        return refuse("livenessProbe", "init containers have no probes");
    }
    if init
        && c.lifecycle
            .as_ref()
            .is_some_and(|l| l.post_start.is_some() || l.pre_stop.is_some())
    {
        return refuse("lifecycle", "init containers have no lifecycle hooks");
    }
    Ok(())
}

fn ports(ps: Option<&[ContainerPort]>, field: &str, init: bool) -> Result<Vec<PortSpec>, PodError> {
    let mut out = Vec::new();
    for (i, p) in ps.unwrap_or_default().iter().enumerate() {
        let f = |s: &str| format!("{field}[{i}].{s}");
        let port = u16::try_from(p.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                PodError::unsupported(
                    f("containerPort"),
                    format!("must be 1 to 65535, got {}", p.container_port),
                )
            })?;
        let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        if protocol != "TCP" && protocol != "UDP" {
            return Err(PodError::unsupported(
                f("protocol"),
                "berth offers TCP and UDP",
            ));
        }
        if p.host_port.is_some_and(|h| h != 0) || p.host_ip.is_some() {
            return Err(PodError::unsupported(
                f("hostPort"),
                "a virtual node has no host ports to give",
            ));
        }
        let _ = init;
        out.push(PortSpec {
            port,
            protocol,
            host_port: None,
        });
    }
    Ok(out)
}

/// The security context berth keeps per container. Pod-level `runAsUser`, `runAsGroup` and
/// `runAsNonRoot` are defaults the container's own override, as in Kubernetes.
struct Security {
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    run_as_non_root: bool,
    read_only_root_filesystem: bool,
    add: Vec<String>,
    drop: Vec<String>,
}

fn security(ctx: &Ctx, sc: Option<&SecurityContext>, field: &str) -> Result<Security, PodError> {
    let pod = ctx.spec.security_context.as_ref();
    let id = |v: Option<i64>, name: &str| -> Result<Option<u32>, PodError> {
        v.map(|v| {
            u32::try_from(v).map_err(|_| {
                PodError::unsupported(
                    format!("{field}.{name}"),
                    format!("must be 0 to 4294967295, got {v}"),
                )
            })
        })
        .transpose()
    };
    let refuse = |s: &str, why: &str| Err(PodError::unsupported(format!("{field}.{s}"), why));
    if let Some(sc) = sc {
        if sc.privileged == Some(true) {
            return refuse("privileged", "berth runs no privileged containers");
        }
        if sc.allow_privilege_escalation == Some(true) {
            return refuse("allowPrivilegeEscalation", "berth always sets no_new_privs");
        }
        if sc.proc_mount.as_deref().is_some_and(|p| p != "Default") {
            return refuse("procMount", "only Default is supported");
        }
        if sc.se_linux_options.is_some() {
            return refuse("seLinuxOptions", "berth does not use SELinux");
        }
        if sc.windows_options.is_some() {
            return refuse("windowsOptions", "berth runs Linux containers only");
        }
        if sc
            .seccomp_profile
            .as_ref()
            .is_some_and(|p| p.type_ != "RuntimeDefault")
        {
            return refuse(
                "seccompProfile",
                "only RuntimeDefault (berth's own filter) is supported",
            );
        }
        if sc
            .app_armor_profile
            .as_ref()
            .is_some_and(|p| p.type_ != "RuntimeDefault")
        {
            return refuse("appArmorProfile", "only RuntimeDefault is supported");
        }
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let strip = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_string())
            .collect()
    };
    Ok(Security {
        run_as_user: id(
            sc.and_then(|s| s.run_as_user)
                .or(pod.and_then(|p| p.run_as_user)),
            "runAsUser",
        )?,
        run_as_group: id(
            sc.and_then(|s| s.run_as_group)
                .or(pod.and_then(|p| p.run_as_group)),
            "runAsGroup",
        )?,
        run_as_non_root: sc
            .and_then(|s| s.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root))
            .unwrap_or(false),
        read_only_root_filesystem: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        add: caps.map(|c| strip(&c.add)).unwrap_or_default(),
        drop: caps.map(|c| strip(&c.drop)).unwrap_or_default(),
    })
}

fn mounts(c: &Container, field: &str) -> Result<Vec<VolumeMount>, PodError> {
    let mut out = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let f = |s: &str| format!("{field}.volumeMounts[{i}].{s}");
        if m.sub_path_expr.is_some() {
            return Err(PodError::unsupported(
                f("subPathExpr"),
                "is not supported by berth",
            ));
        }
        if m.recursive_read_only
            .as_deref()
            .is_some_and(|r| r != "Disabled")
        {
            return Err(PodError::unsupported(
                f("recursiveReadOnly"),
                "is not supported by berth",
            ));
        }
        let propagation = match m.mount_propagation.as_deref() {
            None | Some("None") => MountPropagation::None,
            Some("HostToContainer") => MountPropagation::HostToContainer,
            Some(p) => {
                return Err(PodError::unsupported(
                    f("mountPropagation"),
                    format!("{p:?} is not supported by berth (None and HostToContainer are)"),
                ))
            }
        };
        out.push(VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
            read_only: m.read_only.unwrap_or(false),
            propagation,
        });
    }
    Ok(out)
}

/// A port given by number or by the name of one of the container's ports.
fn port(c: &Container, p: &IntOrString, field: &str) -> Result<u16, PodError> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s))
                .map(|cp| cp.container_port)
                .ok_or_else(|| {
                    PodError::unsupported(field, format!("names no port of the container: {s:?}"))
                })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| PodError::unsupported(field, format!("must be 1 to 65535, got {n}")))
}

fn http_get(
    c: &Container,
    h: &HTTPGetAction,
    field: &str,
    hook: bool,
) -> Result<Handler, PodError> {
    let scheme = match h.scheme.as_deref().unwrap_or("HTTP") {
        "HTTP" => Scheme::Http,
        "HTTPS" => Scheme::Https,
        s => {
            return Err(PodError::unsupported(
                format!("{field}.scheme"),
                format!("must be HTTP or HTTPS, got {s:?}"),
            ))
        }
    };
    let headers: Vec<HttpHeader> = h
        .http_headers
        .iter()
        .flatten()
        .map(|x| HttpHeader {
            name: x.name.clone(),
            value: x.value.clone(),
        })
        .collect();
    if !hook && h.host.is_some() {
        return Err(PodError::unsupported(
            format!("{field}.host"),
            "berth's probes connect to the container itself",
        ));
    }
    Ok(Handler::HttpGet {
        host: h.host.clone(),
        path: h.path.clone().unwrap_or_else(|| "/".into()),
        port: port(c, &h.port, &format!("{field}.port"))?,
        scheme,
        headers,
    })
}

fn tcp(c: &Container, t: &TCPSocketAction, field: &str, hook: bool) -> Result<Handler, PodError> {
    if !hook && t.host.is_some() {
        return Err(PodError::unsupported(
            format!("{field}.host"),
            "berth's probes connect to the container itself",
        ));
    }
    Ok(Handler::TcpSocket {
        host: t.host.clone(),
        port: port(c, &t.port, &format!("{field}.port"))?,
    })
}

/// A probe, with Kubernetes' defaults for what it leaves out (period 10 s, timeout 1 s,
/// success 1, failure 3).
fn probe(
    c: &Container,
    p: Option<&k8s_openapi::api::core::v1::Probe>,
    field: &str,
) -> Result<Option<Probe>, PodError> {
    let Some(p) = p else { return Ok(None) };
    if p.grpc.is_some() {
        return Err(PodError::unsupported(
            format!("{field}.grpc"),
            "berth's probes are exec, httpGet and tcpSocket",
        ));
    }
    if p.termination_grace_period_seconds.is_some() {
        return Err(PodError::unsupported(
            format!("{field}.terminationGracePeriodSeconds"),
            "is not supported by berth",
        ));
    }
    let handler = if let Some(e) = &p.exec {
        Handler::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else if let Some(h) = &p.http_get {
        http_get(c, h, &format!("{field}.httpGet"), false)?
    } else if let Some(t) = &p.tcp_socket {
        tcp(c, t, &format!("{field}.tcpSocket"), false)?
    } else {
        return Err(PodError::unsupported(field, "has no handler"));
    };
    let n = |v: Option<i32>, d: u32, name: &str| -> Result<u32, PodError> {
        match v {
            None => Ok(d),
            Some(v) => u32::try_from(v).map_err(|_| {
                PodError::unsupported(format!("{field}.{name}"), "must not be negative")
            }),
        }
    };
    Ok(Some(Probe {
        handler,
        initial_delay_secs: n(p.initial_delay_seconds, 0, "initialDelaySeconds")?,
        period_secs: n(p.period_seconds, 10, "periodSeconds")?.max(1),
        timeout_secs: n(p.timeout_seconds, 1, "timeoutSeconds")?.max(1),
        success_threshold: n(p.success_threshold, 1, "successThreshold")?.max(1),
        failure_threshold: n(p.failure_threshold, 3, "failureThreshold")?.max(1),
    }))
}

fn hook(
    c: &Container,
    h: Option<&LifecycleHandler>,
    field: &str,
) -> Result<Option<Handler>, PodError> {
    let Some(h) = h else { return Ok(None) };
    if h.sleep.is_some() {
        return Err(PodError::unsupported(
            format!("{field}.sleep"),
            "berth's hooks are exec, httpGet and tcpSocket",
        ));
    }
    let handler = if let Some(e) = &h.exec {
        Handler::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else if let Some(g) = &h.http_get {
        http_get(c, g, &format!("{field}.httpGet"), true)?
    } else if let Some(t) = &h.tcp_socket {
        tcp(c, t, &format!("{field}.tcpSocket"), true)?
    } else {
        return Err(PodError::unsupported(field, "has no handler"));
    };
    Ok(Some(handler))
}
