//! Running one probe or hook handler against a container — an exec through the runtime, or
//! an HTTP GET or TCP connection from inside the group's network namespace — and stopping a
//! container with its PreStop hook first, within its grace period.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::{ContainerSpec, Handler};
use berth_runtime::ExecRequest;

use super::dial::{self, Netns};
use crate::host::Host;

/// Output of a failed exec quoted in its event.
const QUOTED_OUTPUT: usize = 512;
/// The time the kubelet adds once when a PreStop hook used up the whole grace period.
const GRACE_EXTENSION: Duration = Duration::from_secs(2);

/// Exec handlers of all groups running at once: each is a runtime process on the host's
/// account (tens of milliseconds of CPU before the command runs in the container), so a
/// tenant's exec probes every second cannot take the host's cores.
const EXEC_TURNS: usize = 4;

fn exec_turns() -> &'static tokio::sync::Semaphore {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| tokio::sync::Semaphore::new(EXEC_TURNS))
}

/// One container a handler runs against.
#[derive(Clone)]
pub struct Target {
    pub host: Arc<Host>,
    /// The container's runtime id and directory.
    pub rid: String,
    pub cdir: PathBuf,
    /// The group's network namespace and address, when it has them.
    pub netns: Option<Netns>,
    pub ip: Option<IpAddr>,
    /// The group's runtime class as its files record it.
    class: Result<berth_core::RuntimeClass, String>,
}

impl Target {
    /// The container `name` of group `gid`, with the group's network as the node knows it.
    pub fn of(host: &Arc<Host>, gid: &str, name: &str) -> Self {
        let attachment = host.net.attachment(gid);
        let netns = attachment
            .as_ref()
            .and_then(|a| dial::open_netns(&a.netns).ok());
        Self {
            host: host.clone(),
            rid: crate::files::runtime_id(gid, name),
            cdir: host.dirs.group(gid).container(name),
            netns,
            ip: attachment.map(|a| a.ip),
            class: host
                .dirs
                .group(gid)
                .runtime_class()
                .map_err(|e| e.to_string()),
        }
    }

    /// The runtime that runs the container (its group's class).
    pub fn runtime(&self) -> Result<&berth_runtime::Runtime, crate::NodeError> {
        match &self.class {
            Ok(class) => self.host.runtime_for(*class),
            Err(e) => Err(crate::NodeError::Io(std::io::Error::other(format!(
                "cannot read the group's runtime class: {e}"
            )))),
        }
    }

    /// Runs `h` once; `Err` says why it failed.
    pub async fn run(&self, h: &Handler, timeout: Duration) -> Result<(), String> {
        match h {
            Handler::Exec { command } => {
                // Waiting for a turn does not count against the timeout.
                let _turn = exec_turns().acquire().await.map_err(|e| e.to_string())?;
                let req = ExecRequest {
                    args: command.clone(),
                    ..Default::default()
                };
                let out = self
                    .runtime()
                    .map_err(|e| crate::files::error_chain(&e))?
                    .exec_sync(&self.rid, &self.cdir, &req, timeout)
                    .await
                    .map_err(|e| crate::files::error_chain(&e))?;
                if out.exit_code == 0 {
                    return Ok(());
                }
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let text: String = text.trim().chars().take(QUOTED_OUTPUT).collect();
                Err(format!(
                    "command {:?} exited with code {}{}{}",
                    command,
                    out.exit_code,
                    if text.is_empty() { "" } else { ": " },
                    text
                ))
            }
            Handler::HttpGet {
                host,
                path,
                port,
                scheme,
                headers,
            } => {
                let (netns, addr) = self.address(host.as_deref(), *port)?;
                let req = dial::HttpGet {
                    addr,
                    path,
                    scheme: *scheme,
                    headers,
                };
                match dial::http_get(&netns, &req, timeout).await {
                    Ok(code) if (200..400).contains(&code) => Ok(()),
                    Ok(code) => Err(format!(
                        "HTTP probe failed with statuscode: {code} (GET {}://{addr}{path})",
                        scheme.as_str().to_ascii_lowercase()
                    )),
                    Err(e) => Err(format!(
                        "GET {}://{addr}{path}: {e}",
                        scheme.as_str().to_ascii_lowercase()
                    )),
                }
            }
            Handler::TcpSocket { host, port } => {
                let (netns, addr) = self.address(host.as_deref(), *port)?;
                dial::connect(&netns, addr, timeout)
                    .await
                    .map(drop)
                    .map_err(|e| format!("dial tcp {addr}: {e}"))
            }
        }
    }

    /// The group's namespace and the address to reach in it: the group's own, or a loopback
    /// address (the decoder allows no other host).
    fn address(&self, host: Option<&str>, port: u16) -> Result<(Netns, SocketAddr), String> {
        let netns = self
            .netns
            .clone()
            .ok_or("the group has no network namespace")?;
        let ip = match host {
            None => self.ip.ok_or("the group has no address")?,
            Some(h) => match h.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
            },
        };
        Ok((netns, SocketAddr::new(ip, port)))
    }
}

/// Stops a container as the kubelet does: its PreStop hook (when it has one) and then
/// SIGTERM, SIGKILL at the end of `grace`, which the hook's time counts against (with two
/// seconds more when the hook used it all up). A hook that fails does not hold the stop up;
/// its error is returned for an event.
pub async fn stop(
    target: &Target,
    spec: Option<&ContainerSpec>,
    grace: Duration,
) -> Option<String> {
    let mut grace = grace;
    let mut failed = None;
    if let Some(h) = spec.and_then(|s| s.pre_stop.as_ref()) {
        if !grace.is_zero() {
            let began = Instant::now();
            if let Err(e) = target.run(h, grace).await {
                tracing::info!(container = %target.rid, error = %e, "PreStop hook failed");
                failed = Some(e);
            }
            grace = grace.saturating_sub(began.elapsed());
            if grace.is_zero() {
                grace = GRACE_EXTENSION;
            }
        }
    }
    match target.runtime() {
        Ok(rt) => {
            if let Err(e) = rt.stop(&target.rid, grace).await {
                tracing::debug!(container = %target.rid, error = %e, "stop");
            }
        }
        Err(e) => tracing::warn!(container = %target.rid, error = %e, "cannot stop"),
    }
    failed
}
