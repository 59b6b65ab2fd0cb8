//! One container on the node: its bundle from spec and image, one run (start → exit), and
//! the restart loop under the group's restart policy.

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::{
    backoff_delay, should_restart, ContainerSpec, ContainerState, EventType, GroupSpec,
    BACKOFF_RESET_AFTER,
};
use berth_image::Image;
use berth_runtime::{BundleSpec, ExitStatus};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

mod probe;

use crate::files::{runtime_id, GroupDirs};
use crate::group::state::GroupState;
use crate::host::Host;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PIDS_LIMIT: i64 = 4096;
/// Lines of a failed container's log quoted in its event.
const FAILED_LOG_LINES: usize = 10;

/// Everything needed to run one container of a group.
pub struct ContainerCtx {
    pub host: Arc<Host>,
    pub group: Arc<GroupSpec>,
    pub gid: String,
    /// The account that owns the group: its containers may share monitor processes with
    /// the account's other containers, never with another account's (ADR 0018).
    pub account: Arc<str>,
    pub dirs: GroupDirs,
    pub spec: ContainerSpec,
    pub image: Image,
    pub init: bool,
    pub state: Arc<GroupState>,
    pub netns: Option<PathBuf>,
    /// The group's user namespace (`--userns`).
    pub userns: Option<crate::userns::GroupUserns>,
    /// The account's seccomp profile.
    pub seccomp: berth_runtime::seccomp::Seccomp,
    /// The runtime sandbox the group's containers share (gvisor class).
    pub shared: Option<Arc<crate::group::shared::SharedSandbox>>,
    pub cancel: CancellationToken,
}

/// Whether the group's only container runs in the group's own cgroup, `/berth/<group>`: a
/// runc group of one container and no init containers. Every other container has a cgroup
/// below the group's, `/berth/<group>/<container>`. One cgroup a hierarchy instead of two
/// saves the kernel a memory cgroup a group, its largest per-group object (~165 KiB here:
/// docs/ARCHITECTURE.md, "With 1,000 groups running"). The group's cgroup carries no limit of
/// its own under runc, so the container's limits are the group's either way.
pub fn owns_group_cgroup(group: &GroupSpec) -> bool {
    group.runtime_class() == berth_core::RuntimeClass::Runc
        && group.containers.len() == 1
        && group.init_containers.is_empty()
}

/// The cgroup (`linux.cgroupsPath`) of container `name` of group `gid`.
pub fn cgroup_path(gid: &str, group: &GroupSpec, name: &str) -> String {
    match owns_group_cgroup(group) {
        true => berth_runtime::cgroup::group_cgroup_path(gid),
        false => berth_runtime::cgroup::container_cgroup_path(gid, name),
    }
}

/// A container found at re-adoption: still running, or exited while berth was down.
pub enum Adopted {
    Running(berth_runtime::Started),
    Exited(ExitStatus),
}

/// How a run ended.
pub enum RunEnd {
    Exited(ExitStatus),
    Cancelled,
    /// The runtime refused to start the container (its command, its spec): an exit of the
    /// container as far as the restart policy goes, as Kubernetes' StartError.
    StartFailed(String),
    /// berth's own machinery failed before the container's process could be started (the
    /// root filesystem mount, the bundle, the monitor): retried under every policy.
    SetupFailed(String),
}

impl ContainerCtx {
    pub fn runtime_id(&self) -> String {
        runtime_id(&self.gid, &self.spec.name)
    }

    /// The OCI process of the container, Kubernetes' rules for command and args. Fails when
    /// the image's `User` does not resolve (the container cannot start, as with podman).
    fn bundle(&self, rootfs: PathBuf) -> Result<BundleSpec, String> {
        let cfg = &self.image.config;
        let mut args: Vec<String> = if !self.spec.command.is_empty() {
            self.spec
                .command
                .iter()
                .chain(self.spec.args.iter())
                .cloned()
                .collect()
        } else if !self.spec.args.is_empty() {
            cfg.entrypoint
                .iter()
                .chain(self.spec.args.iter())
                .cloned()
                .collect()
        } else {
            cfg.entrypoint
                .iter()
                .chain(cfg.cmd.iter())
                .cloned()
                .collect()
        };
        if args.is_empty() {
            args.push("sh".into());
        }
        let mut env: Vec<String> = cfg.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        let hostname = self.hostname();
        set_env(&mut env, "HOSTNAME", &hostname);
        for e in &self.spec.env {
            let value = match e.field_path.as_deref() {
                // Checked by the API against `berth_core::spec::FIELD_PATHS`.
                Some("status.podIP" | "status.podIPs") => {
                    self.state.intranet_ip().unwrap_or_default()
                }
                Some("metadata.name") => self.group.name.clone(),
                Some("metadata.uid") => self.gid.clone(),
                _ => e.value.clone(),
            };
            set_env(&mut env, &e.key, &value);
        }
        let (uid, gid) = self.user(&rootfs)?;
        let cpu = self.spec.cpu.unwrap_or(self.group.cpu);
        let memory = self.spec.memory.unwrap_or(self.group.memory);
        let etc = self.dirs.etc();
        let volumes = crate::group::volumes::binds(
            &self.dirs,
            &self.group,
            &self.spec,
            &self.dirs.container(&self.spec.name),
            crate::group::volumes::owner(self.userns.as_ref().map(|u| u.map), self.group.fs_group),
        )?;
        Ok(BundleSpec {
            rootfs,
            args,
            env,
            cwd: self
                .spec
                .working_dir
                .clone()
                .or_else(|| cfg.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            uid,
            gid,
            // Kubernetes' fsGroup: a supplementary group of every container's processes.
            additional_gids: self.group.fs_group.into_iter().collect(),
            hostname,
            netns: self.netns.clone(),
            cpu: Some(cpu),
            memory_bytes: Some((memory * GIB) as u64),
            pids_limit: Some(PIDS_LIMIT),
            cgroup_path: cgroup_path(&self.gid, &self.group, &self.spec.name),
            readonly_rootfs: self.spec.read_only_root_filesystem,
            capability_add: self.spec.capability_add.clone(),
            capability_drop: self.spec.capability_drop.clone(),
            sysctls: self
                .group
                .sysctls
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            binds: vec![
                (etc.join("hosts"), "/etc/hosts".into(), false),
                (etc.join("hostname"), "/etc/hostname".into(), false),
                (etc.join("resolv.conf"), "/etc/resolv.conf".into(), false),
            ],
            seccomp: self.seccomp.clone(),
            user_map: self.userns.as_ref().map(|u| berth_runtime::UserMap {
                host: u.map.host,
                count: u.map.count,
            }),
            volumes,
        })
    }

    fn hostname(&self) -> String {
        self.group
            .host_name
            .clone()
            .unwrap_or_else(|| self.group.name.clone())
    }

    /// uid and gid: the security context's, else the image's `User` (numeric or a name from
    /// the image's /etc/passwd), else root. Root is refused under `RunAsNonRoot`.
    fn user(&self, rootfs: &std::path::Path) -> Result<(u32, u32), String> {
        let image_user = self.image.config.user.clone().unwrap_or_default();
        // A uid from the security context needs no name from the image.
        let image_user = match (self.spec.run_as_user, self.spec.run_as_group) {
            (Some(_), Some(_)) => String::new(),
            _ => image_user,
        };
        let (mut uid, mut gid) = crate::group::user::resolve(&image_user, rootfs)?;
        if let Some(u) = self.spec.run_as_user {
            uid = u;
        }
        if let Some(g) = self.spec.run_as_group {
            gid = g;
        }
        if self.spec.run_as_non_root && uid == 0 {
            // As the kubelet: refused before the runtime is asked.
            return Err("container has runAsNonRoot and image will run as root".into());
        }
        Ok((uid, gid))
    }

    /// The runtime of the group's class.
    pub fn runtime(&self) -> Result<&berth_runtime::Runtime, crate::NodeError> {
        self.host.runtime_for(self.group.runtime_class())
    }

    /// Starts the container once and waits for it to exit (or for cancellation).
    pub async fn run_once(&self, run: u32) -> RunEnd {
        // The start boxed, so that none of its state (the bundle, paths, the runtime's
        // start) stays with the task while the container runs: 1,000 idle groups.
        match Box::pin(self.start(run)).await {
            Ok(started) => self.wait(started, true).await,
            Err(end) => end,
        }
    }

    /// The start of [`ContainerCtx::run_once`]: the container running, or how it ended.
    async fn start(&self, run: u32) -> Result<berth_runtime::Started, RunEnd> {
        let rt = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => return Err(RunEnd::StartFailed(e.to_string())),
        };
        let id = self.runtime_id();
        let began = std::time::Instant::now();
        let starting = self.host.starting();
        let cdir = self.dirs.container(&self.spec.name);
        let ran_before = cdir.join("config.json").exists();
        if ran_before {
            // A former run of this container may still be known to the runtime.
            let _ = rt.delete(&id).await;
        }
        let prepared = (|| -> Result<PathBuf, String> {
            crate::spare::take_container_skeleton(&self.dirs, &self.spec.name);
            std::fs::create_dir_all(&cdir).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(self.dirs.logs(&self.spec.name)).map_err(|e| e.to_string())?;
            if ran_before {
                // A fresh overlay for every run, over the same writable layer.
                let _ = std::fs::remove_file(cdir.join("exit.json"));
                let _ = berth_image::unmount_rootfs(&cdir);
            }
            let rw = self.dirs.container_rw(&self.spec.name);
            let mapped = self.userns.as_ref().map(|u| (&*u.ns, u.map));
            berth_image::mount_rootfs_mapped(&self.image, &cdir, &rw, mapped).map_err(|e| {
                format!(
                    "cannot mount the root filesystem: {}",
                    crate::files::error_chain(&e)
                )
            })
        })();
        let rootfs = match prepared {
            Ok(r) => r,
            Err(e) => return Err(RunEnd::SetupFailed(e)),
        };
        let bundle = match self.bundle(rootfs) {
            Ok(b) => b,
            Err(e) => return Err(RunEnd::StartFailed(e)),
        };
        let role = match &self.shared {
            Some(shared) => {
                if let Err(e) = shared.ensure().await {
                    return Err(RunEnd::SetupFailed(e));
                }
                Some(shared.role())
            }
            None => None,
        };
        let written = match &role {
            Some(role) => rt.write_bundle_in(&cdir, &bundle, Some((role, &id))),
            None => rt.write_bundle(&cdir, &bundle),
        };
        if let Err(e) = written {
            return Err(RunEnd::SetupFailed(crate::files::error_chain(&e)));
        }
        let revision = crate::group::revision::Revision::of(&self.group, &self.spec, self.init);
        if let Err(e) = revision.write(&cdir) {
            return Err(RunEnd::SetupFailed(format!(
                "cannot record the container's revision: {e}"
            )));
        }
        self.state.event(
            EventType::Normal,
            "Created",
            format!("Created container {}", self.spec.name),
            Some(&self.spec.name),
        );
        tracing::debug!(
            container = %id,
            elapsed_us = began.elapsed().as_micros() as u64,
            "root filesystem mounted and bundle written"
        );
        let log = self.dirs.log_file(&self.spec.name, run);
        if run >= 2 {
            let _ = std::fs::remove_file(self.dirs.log_file(&self.spec.name, run - 2));
        }
        let started = match rt.start_sharing(&id, &cdir, &log, &self.account).await {
            Ok(s) => s,
            Err(e @ berth_runtime::RuntimeError::StartFailed { .. }) => {
                return Err(RunEnd::StartFailed(crate::files::error_chain(&e)))
            }
            Err(e) => return Err(RunEnd::SetupFailed(crate::files::error_chain(&e))),
        };
        drop(starting);
        let at = started.started_at;
        self.state.set_container(
            self.init,
            &self.spec.name,
            Some((
                EventType::Normal,
                "Started",
                format!("Started container {}", self.spec.name),
            )),
            |c| c.current = ContainerState::running(at),
        );
        Ok(started)
    }

    /// Records an adopted container as running when the record does not say so yet: berth
    /// stopped after its monitor was spawned and before the start was recorded.
    fn note_adopted(&self, status: &berth_core::ContainerStatus, started: &berth_runtime::Started) {
        let at = started.started_at;
        let recorded = status.current.state == berth_core::StateKind::Running
            && status.current.start_time == Some(at);
        if recorded {
            return;
        }
        self.state.set_container(
            self.init,
            &self.spec.name,
            Some((
                EventType::Normal,
                "Started",
                format!("Started container {}", self.spec.name),
            )),
            |c| c.current = ContainerState::running(at),
        );
    }

    /// Waits for a started (or adopted) container to exit, its probes and hooks beside it
    /// (`fresh`: berth started it now).
    pub async fn wait(&self, started: berth_runtime::Started, fresh: bool) -> RunEnd {
        let cdir = self.dirs.container(&self.spec.name);
        let cancel = &self.cancel;
        let probes = probe::watch(self, started.started_at, fresh);
        tokio::select! {
            never = probes => match never {},
            res = async { self.runtime()?.wait(&started, &cdir).await.map_err(crate::NodeError::from) } => match res {
                Ok(exit) => RunEnd::Exited(exit),
                Err(e) => RunEnd::StartFailed(format!("lost the container: {}", crate::files::error_chain(&e))),
            },
            _ = cancel.cancelled() => RunEnd::Cancelled,
        }
    }

    /// Records an exit as the container's current state (the former one becomes previous).
    pub fn record_exit(&self, exit: &ExitStatus) {
        let state = ContainerState::terminated(
            exit.exit_code,
            exit.signal,
            exit.oom_killed,
            Some(exit.started_at),
            exit.finished_at,
        );
        let (t, reason) = if exit.oom_killed {
            (EventType::Warning, "OOMKilling")
        } else if exit.exit_code == 0 {
            (EventType::Normal, "Completed")
        } else {
            (EventType::Warning, "Failed")
        };
        let mut msg = format!(
            "Container {} exited with code {}",
            self.spec.name, exit.exit_code
        );
        if let Some(sig) = exit.signal {
            msg.push_str(&format!(" (signal {sig})"));
        }
        if exit.oom_killed {
            msg.push_str(": OOMKilled, the memory limit was reached");
        }
        if exit.exit_code != 0 {
            let tail = crate::files::latest_log(&self.dirs, &self.spec.name)
                .map(|p| berth_runtime::logs::last_lines(&p, FAILED_LOG_LINES))
                .unwrap_or_default();
            if !tail.is_empty() {
                msg.push_str("; last log lines:\n");
                msg.push_str(&tail);
            }
        }
        self.state
            .set_container(self.init, &self.spec.name, Some((t, reason, msg)), |c| {
                c.current = state;
                c.ready = false;
            });
    }

    /// Runs the container until it completes for good (init containers: until exit 0) under
    /// the restart policy. Returns the last exit code, or `None` when cancelled.
    pub async fn supervise(&self, adopted: Option<Adopted>) -> Option<i32> {
        let cancel = &self.cancel;
        let mut first = adopted;
        let mut setup_failures = 0u32;
        loop {
            let status = self
                .state
                .container(self.init, &self.spec.name)
                .unwrap_or_default();
            let end = match first.take() {
                Some(Adopted::Running(started)) => {
                    self.note_adopted(&status, &started);
                    self.wait(started, false).await
                }
                Some(Adopted::Exited(exit)) => RunEnd::Exited(exit),
                None => self.run_once(status.restart_count).await,
            };
            let exit = match end {
                RunEnd::Cancelled => return None,
                RunEnd::Exited(exit) => exit,
                RunEnd::SetupFailed(msg) => {
                    let delay = berth_core::setup_backoff(setup_failures);
                    setup_failures = setup_failures.saturating_add(1);
                    tracing::warn!(group = %self.gid, container = %self.spec.name, error = %msg, retry_in_s = delay.as_secs(), "container setup failed");
                    self.state.set_container(
                        self.init,
                        &self.spec.name,
                        Some((
                            EventType::Warning,
                            "Failed",
                            format!("Error: {msg}; retrying in {}s", delay.as_secs()),
                        )),
                        |c| {
                            c.current = ContainerState::waiting("CreateContainerError");
                            c.current.reason = Some("CreateContainerError".into());
                            c.current.message = Some(msg.clone());
                        },
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return None,
                    }
                    // A monitor of the failed attempt may have got the container running.
                    first = match self.runtime() {
                        Ok(rt) => {
                            Box::pin(rt.adopt_starting(&self.dirs.container(&self.spec.name)))
                                .await
                                .map(Adopted::Running)
                        }
                        Err(_) => None,
                    };
                    continue;
                }
                RunEnd::StartFailed(msg) => {
                    tracing::warn!(group = %self.gid, container = %self.spec.name, error = %msg, "container did not start");
                    let now = Utc::now();
                    let exit = ExitStatus {
                        exit_code: 128,
                        signal: None,
                        oom_killed: false,
                        started_at: now,
                        finished_at: now,
                    };
                    self.state.set_container(
                        self.init,
                        &self.spec.name,
                        Some((EventType::Warning, "Failed", format!("Error: {msg}"))),
                        |c| {
                            c.current = ContainerState::terminated(128, None, false, None, now);
                            c.current.reason = Some("StartError".into());
                            c.current.message = Some(msg.clone());
                        },
                    );
                    exit
                }
            };
            if let Ok(rt) = self.runtime() {
                let _ = Box::pin(rt.delete(&self.runtime_id())).await;
            }
            if !matches!(self.state.container(self.init, &self.spec.name), Some(c) if c.current.finish_time.is_some())
            {
                self.record_exit(&exit);
            }
            let restart = if self.init {
                exit.exit_code != 0 && should_restart(self.group.restart_policy, exit.exit_code)
            } else {
                should_restart(self.group.restart_policy, exit.exit_code)
            };
            if !restart {
                return Some(exit.exit_code);
            }
            let ran = (exit.finished_at - exit.started_at)
                .to_std()
                .unwrap_or_default();
            let mut streak = 0;
            self.state
                .set_container(self.init, &self.spec.name, None, |c| {
                    if ran >= BACKOFF_RESET_AFTER {
                        c.crash_streak = 0;
                    }
                    streak = c.crash_streak;
                    c.crash_streak = c.crash_streak.saturating_add(1);
                });
            let delay = backoff_delay(streak);
            self.state.set_container(
                self.init,
                &self.spec.name,
                Some((
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off {}s restarting failed container {}",
                        delay.as_secs(),
                        self.spec.name
                    ),
                )),
                |c| c.current.detail_status = Some("CrashLoopBackOff".into()),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return None,
            }
            self.state
                .set_container(self.init, &self.spec.name, None, |c| {
                    c.previous = Some(c.current.clone());
                    c.restart_count += 1;
                    c.current = ContainerState::waiting("ContainerCreating");
                });
        }
    }
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix));
    env.push(format!("{key}={value}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_replaced_by_key() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A", "2");
        assert_eq!(env, vec!["PATH=/bin".to_string(), "A=2".to_string()]);
    }
}
