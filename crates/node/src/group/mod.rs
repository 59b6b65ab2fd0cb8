//! One group on this node. Its [`Supervisor`] owns the group's task — which sets up the
//! group's sandbox (network, temporary storage, volumes, `/etc` files, user namespace) and
//! images and then runs its containers, each piece a module below — and, when the group
//! goes, the release of everything of it on the host.

mod cache;
mod container;
mod dial;
mod dial_tls;
mod etc;
mod handler;
mod images;
mod kill_by;
mod pooled;
mod ports;
mod revision;
mod run;
mod sandbox;
mod seccomp;
mod shared;
mod state;
mod user;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus};
use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::NodeError;
use crate::files::{runtime_id, GroupDirs};
use crate::host::Host;
use run::Start;

pub(crate) use kill_by::{brought_forward, KillBy};

/// The running task of a group.
struct Task {
    /// The restart generation it runs.
    generation: u64,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// The supervisor of one group on this node.
pub(crate) struct Supervisor {
    host: Arc<Host>,
    id: GroupId,
    dirs: GroupDirs,
    task: Option<Task>,
    /// Set once the group was released: nothing of it starts again.
    removed: bool,
}

impl Supervisor {
    pub fn new(host: Arc<Host>, id: GroupId) -> Self {
        let dirs = host.dirs.group(id.as_str());
        Self {
            host,
            id,
            dirs,
            task: None,
            removed: false,
        }
    }

    /// Whether the group's task runs.
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Converges to `rec`: starts a new group, re-adopts one found after a restart of berth,
    /// restarts every container when its restart generation moved on, recreates what an
    /// update changed, or stops the containers of a group whose record is finished (its
    /// deadline passed) and returns once they are. Returns at once otherwise.
    pub async fn apply(&mut self, rec: GroupRecord) {
        if self.removed {
            return;
        }
        if let Some(t) = &self.task {
            if !rec.status.is_final() && t.generation == rec.restart_generation {
                return;
            }
        }
        // An update recreates only what changed (see `revision`), unless the init containers
        // changed: then the whole group runs again, as after a restart.
        let updating = rec.status == GroupStatus::Updating;
        let restarted = rec.status == GroupStatus::Restarting
            || (self.task.is_some() && !updating)
            || (updating && revision::init_changed(&self.dirs, &rec.spec));
        self.stop_task().await;
        if restarted {
            let _ = self
                .stop_containers(
                    rec.spec.all_containers().map(|c| c.name.clone()).collect(),
                    Some(&rec.spec),
                    Duration::from_secs(rec.spec.termination_grace_period_secs),
                    None,
                )
                .await;
        }
        if rec.status.is_final() {
            // Nothing runs any more; its resources stay until the group is deleted.
            return;
        }
        let how = if restarted {
            Start::Restart
        } else if rec.status == GroupStatus::Scheduling {
            Start::New
        } else {
            Start::Resume
        };
        let cancel = CancellationToken::new();
        let generation = rec.restart_generation;
        let handle = tokio::spawn(run::run_group(self.host.clone(), rec, how, cancel.clone()));
        self.task = Some(Task {
            generation,
            cancel,
            handle,
        });
    }

    /// Cancels the group's task and waits until it has ended.
    async fn stop_task(&mut self) {
        if let Some(t) = self.task.take() {
            t.cancel.cancel();
            let _ = t.handle.await;
        }
    }

    /// Stops the named containers (PreStop, SIGTERM, the grace, SIGKILL) and deletes them
    /// from the runtime, all at once; `kill_by`, when brought forward before the grace
    /// ends, kills them then. The first runtime error is returned; every container is tried.
    async fn stop_containers(
        &self,
        names: Vec<String>,
        spec: Option<&GroupSpec>,
        grace: Duration,
        kill_by: Option<KillBy>,
    ) -> Result<(), NodeError> {
        let gid = self.id.as_str();
        // The kill time the removal began with: only a later, sooner one cuts the stop
        // (which keeps its own timing, PreStop's extension included, otherwise).
        let began_with = kill_by.as_ref().map(|b| *b.borrow());
        // Brought forward before the stop began (while the removal waited for the group).
        let grace = began_with.map_or(grace, |at| {
            grace.min(at.saturating_duration_since(tokio::time::Instant::now()))
        });
        let stops = names.iter().map(|name| {
            let rid = runtime_id(gid, name);
            let target = handler::Target::of(&self.host, gid, name);
            let container = spec.and_then(|s| s.all_containers().find(|c| &c.name == name));
            let kill_by = kill_by.clone();
            async move {
                let stop = handler::stop(&target, container, grace);
                match kill_by {
                    None => {
                        stop.await;
                    }
                    Some(by) => {
                        let deadline = began_with.unwrap_or_else(|| *by.borrow());
                        tokio::pin!(stop);
                        tokio::select! {
                            _ = &mut stop => {}
                            () = brought_forward(by, deadline) => {
                                tracing::info!(container = %rid, "the grace period was shortened, killing it");
                                if let Err(e) = target.runtime()?.kill(&rid).await {
                                    tracing::warn!(container = %rid, error = %e, "cannot kill container");
                                }
                                stop.await;
                            }
                        }
                    }
                }
                let rt = target.runtime()?;
                rt.delete(&rid)
                    .await
                    .map_err(NodeError::from)
                    .inspect_err(|e| {
                        tracing::warn!(container = %rid, error = %e, "cannot delete container");
                    })
            }
        });
        let mut first = Ok(());
        for res in join_all(stops).await {
            if let (Err(e), true) = (res, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }

    /// Stops the group's containers and releases everything of it on this host: root
    /// filesystems, volumes, network, image pins, cgroups, temporary storage, files and user
    /// id range. `spec` is `None` for the leftovers of a group the control plane forgot.
    pub async fn remove(
        &mut self,
        spec: Option<&GroupSpec>,
        grace: Duration,
        kill_by: KillBy,
    ) -> Result<(), NodeError> {
        self.removed = true;
        self.stop_task().await;
        let gid = self.id.as_str();
        let dirs = &self.dirs;
        let began = std::time::Instant::now();
        let names = container_names(dirs, spec);
        self.stop_containers(names.clone(), spec, grace, Some(kill_by))
            .await?;
        // After its containers: the gvisor class's sandbox, and what runsc calls that raced
        // the deletions left of it.
        shared::remove(&self.host, gid, dirs).await;
        if let Ok(rt) = self.host.runtime_for(berth_core::RuntimeClass::Gvisor) {
            rt.sweep_stale_locks(gid).await;
        }
        let stopped = began.elapsed();
        for name in &names {
            berth_image::unmount_rootfs(&dirs.container(name))?;
        }
        volumes::release(dirs)?;
        let unmounted = began.elapsed();
        self.host.net.teardown(gid).await?;
        let net = began.elapsed();
        self.host.images.unpin_deferred(&format!("group:{gid}"));
        self.host.default_runtime().remove_group_cgroup(gid).await?;
        let cgroup = began.elapsed();
        if let Some(storage) = &self.host.storage {
            if dirs.rw.starts_with(storage.root()) {
                storage.remove(gid)?;
            }
        }
        let storage = began.elapsed();
        dirs.remove_all()?;
        if let Some(userns) = &self.host.userns {
            userns.release(gid)?;
        }
        tracing::debug!(
            group = %gid,
            stop_us = stopped.as_micros() as u64,
            unmount_us = (unmounted - stopped).as_micros() as u64,
            net_us = (net - unmounted).as_micros() as u64,
            cgroup_us = (cgroup - net).as_micros() as u64,
            storage_us = (storage - cgroup).as_micros() as u64,
            files_us = (began.elapsed() - storage).as_micros() as u64,
            "group removed"
        );
        Ok(())
    }
}

/// Containers of a group: from its spec, else from what exists on disk.
fn container_names(dirs: &GroupDirs, spec: Option<&GroupSpec>) -> Vec<String> {
    // The spec's and those on disk: an update may have dropped a container from the spec
    // that still runs until the group's task has removed it.
    let mut names: Vec<String> = std::fs::read_dir(dirs.root.join("containers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    for c in spec.into_iter().flat_map(|s| s.all_containers()) {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    names
}

/// How long a port forward's connection may take to be made.
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TCP connection to `port` on 127.0.0.1 inside group `gid`'s network namespace (a port
/// forward): the group's own loopback, never an address of the host's network.
pub(crate) async fn dial_loopback(
    host: &Host,
    gid: &str,
    port: u16,
) -> std::io::Result<tokio::net::TcpStream> {
    let a = host.net.attachment(gid).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the group has no network namespace",
        )
    })?;
    let netns = dial::open_netns(&a.netns)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    dial::open(&netns, addr, DIAL_TIMEOUT)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("dial tcp {addr}: {e}")))
}
