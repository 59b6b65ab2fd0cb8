//! The runtime sandbox a group's containers share under the gvisor class: one gVisor sandbox
//! (one sentry) per group, booted by a pause container and joined by every init and app
//! container, as a pod's containers share one under containerd's runsc shim.
//!
//! The sandbox's root container runs `/pause` from the shared read-only root filesystem
//! ([`Host::sandbox_rootfs`]) in the group's network namespace, in the group's cgroup
//! (`/berth/<group>`) with the group's CPU, memory and pids limits: the whole sandbox (sentry,
//! gofers) is bounded by them (the CPU quota from the end of its boot, before any container
//! of the group is created in it). Its monitor keeps it across restarts of berth like any
//! container's; its files are in `groups/<id>/sandbox`. A group that took a sandbox from the
//! node's pool (`pooled`, `crate::gvisor_pool`) uses that one instead: its runtime id is the
//! pool's (`<pool-id>.sandbox`), its files stay in the pool's directory, and the group's
//! directory names it (`sandbox-id`).

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::{GroupSpec, RuntimeClass};
use berth_runtime::{BundleSpec, SandboxRole};

use crate::files::{error_chain, GroupDirs};
use crate::gvisor_pool::{claimed_by, pause_bundle, runsc_id};
use crate::host::Host;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The sandbox of one gvisor group.
pub struct SharedSandbox {
    host: Arc<Host>,
    gid: String,
    dirs: GroupDirs,
    group: Arc<GroupSpec>,
    netns: PathBuf,
    /// The pooled sandbox the group took, if it runs in one (forgotten once it is removed).
    pooled: std::sync::Mutex<Option<String>>,
    /// Containers that start at once ask for the sandbox one at a time.
    lock: tokio::sync::Mutex<()>,
}

/// The runtime id of a group's sandbox container: a `.` never appears in a container's
/// name, so it is no container's id (`<group>-<name>`).
pub fn sandbox_id(gid: &str) -> String {
    format!("{gid}.sandbox")
}

/// The sandbox container's directory (its bundle and monitor files).
fn sandbox_dir(dirs: &GroupDirs) -> PathBuf {
    dirs.root.join("sandbox")
}

impl SharedSandbox {
    /// The shared sandbox of a group whose class has one (gvisor), else `None`.
    pub fn of(
        host: &Arc<Host>,
        gid: &str,
        dirs: &GroupDirs,
        group: &Arc<GroupSpec>,
        netns: PathBuf,
    ) -> Option<Arc<Self>> {
        (group.runtime_class() == RuntimeClass::Gvisor).then(|| {
            Arc::new(Self {
                host: host.clone(),
                gid: gid.to_string(),
                dirs: dirs.clone(),
                group: group.clone(),
                netns,
                pooled: std::sync::Mutex::new(claimed_by(dirs)),
                lock: tokio::sync::Mutex::new(()),
            })
        })
    }

    fn pooled(&self) -> Option<String> {
        self.pooled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The runtime id of the group's sandbox and the directory of its files.
    fn identity(&self) -> (String, PathBuf) {
        identity(&self.host, &self.gid, &self.dirs, self.pooled())
    }

    /// What a container of the group is to runsc: created in this sandbox.
    pub fn role(&self) -> SandboxRole {
        SandboxRole::Container {
            sandbox_id: self.identity().0,
        }
    }

    /// Makes sure the sandbox runs: adopts the one a monitor holds (after a restart of berth
    /// too), else removes what is left of a former one and boots a new one.
    pub async fn ensure(&self) -> Result<(), String> {
        let _one = self.lock.lock().await;
        let rt = self
            .host
            .runtime_for(RuntimeClass::Gvisor)
            .map_err(|e| e.to_string())?;
        let (_, dir) = self.identity();
        if rt.adopt_starting(&dir).await.is_some() {
            return self.limit_cpu(rt);
        }
        if let Some(pool_id) = self.pooled() {
            // The pooled sandbox died (or its take-over failed): the group boots its own.
            tracing::info!(group = %self.gid, pooled = %pool_id, "the group's pooled sandbox is gone; booting one of its own");
            super::pooled::release(&self.host, &self.dirs, &pool_id, dir).await;
            *self.pooled.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let (id, dir) = (sandbox_id(&self.gid), sandbox_dir(&self.dirs));
        if dir.join("config.json").exists() {
            // A sandbox that died takes its containers with it; runsc still knows them.
            rt.delete(&id)
                .await
                .map_err(|e| format!("cannot remove the group's former sandbox: {e}"))?;
        }
        let rootfs = self
            .host
            .sandbox_rootfs
            .clone()
            .ok_or("this node has no sandbox root filesystem")?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let spec = self.bundle(rootfs);
        rt.write_bundle_in(&dir, &spec, Some((&SandboxRole::Sandbox, &id)))
            .map_err(|e| error_chain(&e))?;
        let began = std::time::Instant::now();
        rt.start(&id, &dir, &dir.join("pause.log"))
            .await
            .map_err(|e| format!("cannot start the group's sandbox: {}", error_chain(&e)))?;
        tracing::debug!(
            group = %self.gid,
            elapsed_ms = began.elapsed().as_millis() as u64,
            "gVisor sandbox started"
        );
        self.limit_cpu(rt)
    }

    /// Gives the sandbox's cgroup the group's CPU quota. The sandbox boots without it: its
    /// boot is the node's work, not the group's (under a quota of a fraction of a core it
    /// takes twice as long), and no process of the group runs in it before this.
    fn limit_cpu(&self, rt: &berth_runtime::Runtime) -> Result<(), String> {
        let path = berth_runtime::cgroup::group_cgroup_path(&self.gid);
        rt.config()
            .layout
            .set_cpu_limit(&path, self.group.cpu)
            .map_err(|e| format!("cannot limit the CPU of the group's sandbox: {e}"))
    }

    /// The pause container: the group's limits, its network namespace and host name (its
    /// CPU quota is set once it has booted, `limit_cpu`).
    fn bundle(&self, rootfs: PathBuf) -> BundleSpec {
        let hostname = self
            .group
            .host_name
            .clone()
            .unwrap_or_else(|| self.group.name.clone());
        pause_bundle(
            rootfs,
            hostname,
            self.netns.clone(),
            &self.gid,
            Some((self.group.memory * GIB) as u64),
            false,
        )
    }

    /// Stops the sandbox once the group's containers are done for good.
    pub async fn shut_down(&self) {
        let _one = self.lock.lock().await;
        remove(&self.host, &self.gid, &self.dirs).await;
    }
}

/// Deletes the group's sandbox container (and with it the sentry and what runs in it), if
/// it has one; its containers are deleted first by the caller.
pub async fn remove(host: &Host, gid: &str, dirs: &GroupDirs) {
    if let Some(pool_id) = claimed_by(dirs) {
        let (_, dir) = identity(host, gid, dirs, Some(pool_id.clone()));
        super::pooled::release(host, dirs, &pool_id, dir).await;
    }
    if !sandbox_dir(dirs).exists() {
        return;
    }
    let Ok(rt) = host.runtime_for(RuntimeClass::Gvisor) else {
        return;
    };
    if let Err(e) = rt.delete(&sandbox_id(gid)).await {
        tracing::warn!(group = %gid, error = %e, "cannot delete the group's sandbox");
    }
}

/// The runtime id and files' directory of the group's sandbox: the pooled one it took
/// (`pooled`), else its own.
fn identity(host: &Host, gid: &str, dirs: &GroupDirs, pooled: Option<String>) -> (String, PathBuf) {
    match (pooled, &host.sandbox_pool) {
        (Some(id), Some(pool)) => (runsc_id(&id), pool.dir_of(&id)),
        _ => (sandbox_id(gid), sandbox_dir(dirs)),
    }
}
