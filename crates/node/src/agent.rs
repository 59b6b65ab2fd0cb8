//! [`Agent`]: the node agent's entry points — apply a group record, remove a group, read a
//! container's log — and the bookkeeping of the groups it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::{GroupId, GroupRecord, GroupStatus, ObservedGroup};
use berth_image::ImageStore;
use berth_net::{NetConfig, Network};
use berth_runtime::seccomp::Seccomp;
use berth_runtime::{logs, Runtime, RuntimeConfig};
use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::container::runtime_id;
use crate::files::GroupDirs;
use crate::group::{run_group, Start};
use crate::state::LogSelector;

/// Where the node's observations go (the control plane).
pub trait Reporter: Send + Sync {
    fn report(&self, id: &GroupId, obs: ObservedGroup);
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("image store")]
    Image(#[from] berth_image::ImageError),
    #[error("container runtime")]
    Runtime(#[from] berth_runtime::RuntimeError),
    #[error("network")]
    Net(#[from] berth_net::NetError),
    #[error("temporary storage")]
    Storage(#[from] berth_storage::StorageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("user namespaces")]
    Userns(#[from] crate::userns::UsernsError),
    #[error("user namespaces (--userns) need crun: berth runs the containers' user namespaces and id-mapped root filesystems only with crun, and has not been validated with this runtime")]
    UsernsRuntime,
    #[error("no log of container {0}")]
    NoLog(String),
}

/// Where the node finds the seccomp confinement of an account's containers.
pub trait SeccompProfiles: Send + Sync {
    /// Asked at every start of a group; an error falls back to the built-in profile.
    fn for_account(&self, account: &str) -> Result<Seccomp, String>;
}

/// The built-in profile for every account.
pub struct BuiltinSeccomp;

impl SeccompProfiles for BuiltinSeccomp {
    fn for_account(&self, _account: &str) -> Result<Seccomp, String> {
        Ok(Seccomp::Default)
    }
}

/// How the node agent is set up.
pub struct NodeConfig {
    /// The node's own directory (groups, images).
    pub root: PathBuf,
    pub runtime: RuntimeConfig,
    pub net: NetConfig,
    /// Sized temporary storage per group; `None` leaves writable layers unsized on the
    /// node's own filesystem.
    pub storage: Option<berth_storage::StorageConfig>,
    /// Hand crun compiled seccomp programs (see `Runtime::with_seccomp_precompile`).
    pub seccomp_precompile: bool,
    pub seccomp: Arc<dyn SeccompProfiles>,
    /// A user namespace per group (`berth serve --userns`).
    pub userns: Option<crate::userns::UsernsConfig>,
    /// The host paths groups may mount (`berth serve --host-path-prefix`), checked again
    /// when a group's volumes are made.
    pub host_paths: berth_core::VolumePolicy,
}

struct Running {
    generation: u64,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Spare group directories kept made (see the `spare` module): enough for a burst of starts,
/// ~10 empty inodes each.
const SPARE_SLOTS: usize = 128;

pub(crate) struct Inner {
    pub images: ImageStore,
    pub runtime: Runtime,
    pub net: Network,
    pub dirs: crate::files::NodeDirs,
    pub storage: Option<Arc<berth_storage::Storage>>,
    pub reporter: Arc<dyn Reporter>,
    pub seccomp: Arc<dyn SeccompProfiles>,
    pub metrics: crate::observe::MetricRings,
    /// Disk directories of groups made ahead of time.
    pub spares: crate::spare::Spares,
    /// The groups' user id ranges, when groups run in user namespaces.
    pub userns: Option<crate::userns::UserNamespaces>,
    /// The host path prefixes groups may mount.
    pub host_paths: berth_core::VolumePolicy,
    running: Mutex<HashMap<GroupId, Running>>,
    /// The tasks that keep the namespace pool and the spare directories full.
    pool_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Group starts in progress: the pools are refilled only when there are none.
    starting: Arc<AtomicUsize>,
}

/// Counts one start in progress for as long as it lives.
pub(crate) struct Starting(Arc<AtomicUsize>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    /// Marks a start in progress until the returned guard is dropped.
    pub(crate) fn starting(&self) -> Starting {
        self.starting.fetch_add(1, Ordering::Relaxed);
        Starting(self.starting.clone())
    }
}

/// The node agent of this host.
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<Inner>,
}

impl Agent {
    pub fn new(cfg: NodeConfig, reporter: Arc<dyn Reporter>) -> Result<Self, NodeError> {
        let storage = match &cfg.storage {
            Some(sc) => Some(Arc::new(berth_storage::Storage::open(sc)?)),
            None => None,
        };
        let mut dirs = crate::files::NodeDirs::new(&cfg.root);
        if let Some(st) = &storage {
            dirs = dirs.with_storage(st.root().to_path_buf());
        }
        for d in [&dirs.rw, &dirs.logs] {
            std::fs::create_dir_all(d)?;
        }
        match crate::files::mount_run_tmpfs(&dirs.groups) {
            Ok(true) => {
                tracing::info!(dir = %dirs.groups.display(), "groups' run-time files are on a tmpfs")
            }
            Ok(false) => {
                tracing::info!(dir = %dirs.groups.display(), "groups' run-time files stay where they are")
            }
            Err(e) => {
                tracing::warn!(dir = %dirs.groups.display(), error = %e, "cannot mount a tmpfs for the groups' run-time files; they stay on disk")
            }
        }
        let spares = crate::spare::Spares::open(&dirs, storage.clone(), SPARE_SLOTS)?;
        let images = ImageStore::open(cfg.root.join("images"))?;
        let runtime = Runtime::new(cfg.runtime)?.with_seccomp_precompile(cfg.seccomp_precompile);
        let net = Network::new(cfg.net)?;
        if cfg.userns.is_some() && runtime.kind() != berth_runtime::RuntimeKind::Crun {
            return Err(NodeError::UsernsRuntime);
        }
        let userns = match cfg.userns {
            Some(u) => {
                let state_dir = cfg.root.parent().unwrap_or(&cfg.root);
                for d in [&dirs.groups, &dirs.rw] {
                    crate::userns::open_search_path(d, state_dir)?;
                }
                Some(crate::userns::UserNamespaces::open(
                    &cfg.root.join("userns"),
                    u,
                )?)
            }
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                images,
                runtime,
                net,
                dirs,
                storage,
                reporter,
                seccomp: cfg.seccomp,
                metrics: crate::observe::MetricRings::default(),
                spares,
                userns,
                host_paths: cfg.host_paths,
                running: Mutex::new(HashMap::new()),
                pool_tasks: Mutex::new(Vec::new()),
                starting: Arc::new(AtomicUsize::new(0)),
            }),
        })
    }

    /// Starts the tasks that keep the network namespace pool full (it first removes what a
    /// former berth's pool left) and the spare group directories made.
    pub fn start_netns_pool(&self) {
        let net = self.inner.clone();
        let spares = self.inner.clone();
        let admitter = self.inner.clone();
        let tasks = vec![
            tokio::spawn(async move { net.net.maintain_pool_around(&net.starting).await }),
            tokio::spawn(async move { spares.spares.maintain(&spares.starting).await }),
            tokio::spawn(async move { admitter.net.admit_queued(&admitter.starting).await }),
        ];
        let old = std::mem::replace(&mut *self.pool_tasks(), tasks);
        for task in old {
            task.abort();
        }
    }

    fn pool_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner
            .pool_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The groups this agent runs now.
    pub(crate) fn group_ids(&self) -> Vec<GroupId> {
        self.running().keys().cloned().collect()
    }

    /// Converges to `rec`: starts a new group, re-adopts one found after a restart of berth,
    /// restarts every container when its restart generation moved on, or stops the containers
    /// of a group whose record is finished (its deadline passed) and returns once they are.
    /// Returns at once otherwise.
    pub async fn apply(&self, rec: GroupRecord) {
        let prev = {
            let mut running = self.running();
            match running.get(&rec.id) {
                Some(_) if rec.status.is_final() => running.remove(&rec.id),
                Some(r) if r.generation == rec.restart_generation => return,
                Some(_) => running.remove(&rec.id),
                None => None,
            }
        };
        // An update recreates only what changed (see `revision`), unless the init containers
        // changed: then the whole group runs again, as after a restart.
        let updating = rec.status == GroupStatus::Updating;
        let restarted = rec.status == GroupStatus::Restarting
            || (prev.is_some() && !updating)
            || (updating
                && crate::revision::init_changed(
                    &self.inner.dirs.group(rec.id.as_str()),
                    &rec.spec,
                ));
        if let Some(prev) = prev {
            prev.cancel.cancel();
            let _ = prev.task.await;
        }
        if restarted {
            self.stop_containers(
                &rec,
                Duration::from_secs(rec.spec.termination_grace_period_secs),
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
        let id = rec.id.clone();
        let task = tokio::spawn(run_group(self.inner.clone(), rec, how, cancel.clone()));
        self.running().insert(
            id,
            Running {
                generation,
                cancel,
                task,
            },
        );
    }

    async fn stop_containers(&self, rec: &GroupRecord, grace: Duration) {
        let gid = rec.id.to_string();
        let stops = rec.spec.all_containers().map(|c| {
            let rid = runtime_id(&gid, &c.name);
            let rt = &self.inner.runtime;
            let target = crate::handler::Target::of(&self.inner, &gid, &c.name);
            async move {
                crate::handler::stop(&target, Some(c), grace).await;
                if let Err(e) = rt.delete(&rid).await {
                    tracing::warn!(container = %rid, error = %e, "cannot delete container");
                }
            }
        });
        join_all(stops).await;
    }

    /// Stops the group's containers and releases everything of it on this host.
    pub async fn remove(
        &self,
        id: &GroupId,
        spec: Option<&berth_core::GroupSpec>,
        grace: Duration,
    ) -> Result<(), NodeError> {
        let prev = self.running().remove(id);
        self.inner.metrics.forget(id);
        if let Some(prev) = prev {
            prev.cancel.cancel();
            let _ = prev.task.await;
        }
        let gid = id.to_string();
        let began = std::time::Instant::now();
        let dirs = self.inner.dirs.group(&gid);
        let names = container_names(&dirs, spec);
        let stops = names.iter().map(|name| {
            let rid = runtime_id(&gid, name);
            let rt = &self.inner.runtime;
            let target = crate::handler::Target::of(&self.inner, &gid, name);
            let container = spec.and_then(|s| s.containers.iter().find(|c| &c.name == name));
            async move {
                crate::handler::stop(&target, container, grace).await;
                rt.delete(&rid).await
            }
        });
        for res in join_all(stops).await {
            res?;
        }
        let stopped = began.elapsed();
        for name in &names {
            berth_image::unmount_rootfs(&dirs.container(name))?;
        }
        crate::volumes::release(&dirs)?;
        let unmounted = began.elapsed();
        self.inner.net.teardown(&gid).await?;
        let net = began.elapsed();
        self.inner.images.unpin_deferred(&format!("group:{gid}"));
        self.inner.runtime.remove_group_cgroup(&gid).await?;
        let cgroup = began.elapsed();
        if let Some(storage) = &self.inner.storage {
            if dirs.rw.starts_with(storage.root()) {
                storage.remove(&gid)?;
            }
        }
        let storage = began.elapsed();
        dirs.remove_all()?;
        if let Some(userns) = &self.inner.userns {
            userns.release(&gid)?;
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

    /// Log text of a container: its current (latest) run or the one before.
    pub fn read_log(
        &self,
        id: &GroupId,
        container: &str,
        which: LogSelector,
        q: &logs::LogQuery,
    ) -> Result<String, NodeError> {
        let dirs = self.inner.dirs.group(id.as_str());
        let mut runs: Vec<u32> = std::fs::read_dir(dirs.logs(container))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        runs.sort_unstable();
        let run = match which {
            LogSelector::Current => runs.last(),
            LogSelector::Previous => runs.len().checked_sub(2).and_then(|i| runs.get(i)),
            LogSelector::Run(n) => runs.iter().find(|r| **r == n),
        };
        let Some(run) = run else {
            return Err(NodeError::NoLog(container.to_string()));
        };
        match logs::read(&dirs.log_file(container, *run), q) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(NodeError::NoLog(container.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Called when berth stops: containers keep running; host state that only berth itself
    /// holds (the namespace pool, and the namespace directory's mount and the subnet's
    /// masquerade rule when no group needs them) is released.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.pool_tasks());
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.net.drain_pool().await;
        if let Err(e) = self.inner.images.flush_pins() {
            tracing::warn!(error = %e, "cannot write the image pins");
        }
        if let Err(e) = crate::files::release_run_tmpfs(&self.inner.dirs.groups) {
            tracing::warn!(error = %e, "cannot release the groups' tmpfs");
        }
        if let Some(storage) = &self.inner.storage {
            // The spare subvolumes go, so that the storage is unmounted when no group has
            // any left in it.
            self.inner.spares.drain();
            if let Err(e) = storage.unmount_if_empty() {
                tracing::warn!(error = %e, "cannot unmount the temporary storage");
            }
        }
        if let Err(e) = self.inner.net.release() {
            tracing::warn!(error = %e, "cannot release the namespace directory");
        }
    }

    /// Removes what groups unknown to the control plane left on this host (after a crash
    /// between releasing a group and forgetting it).
    pub async fn collect_garbage(&self, known: &[GroupId]) {
        let known: std::collections::HashSet<&str> = known.iter().map(|g| g.as_str()).collect();
        let mut orphans: Vec<String> = self
            .inner
            .net
            .known()
            .into_iter()
            .filter(|g| !known.contains(g.as_str()))
            .collect();
        let userns = self.inner.userns.as_ref().map(|u| u.groups());
        for name in self
            .inner
            .dirs
            .ids()
            .into_iter()
            .chain(userns.into_iter().flatten())
        {
            if !known.contains(name.as_str()) && !orphans.contains(&name) {
                orphans.push(name);
            }
        }
        for gid in orphans {
            let Some(id) = GroupId::parse(&gid) else {
                continue;
            };
            tracing::info!(group = %gid, "removing leftovers of an unknown group");
            if let Err(e) = self.remove(&id, None, Duration::from_secs(0)).await {
                tracing::warn!(group = %gid, error = %e, "cannot remove leftovers");
            }
        }
        // Group pins are written a moment after they change, so a crash can leave the pin
        // of a group that was deleted just before it.
        for owner in self.inner.images.pins().into_keys() {
            let Some(gid) = owner.strip_prefix("group:") else {
                continue;
            };
            if !known.contains(gid) {
                tracing::info!(group = %gid, "releasing the image pins of an unknown group");
                self.inner.images.unpin_deferred(&owner);
            }
        }
    }
}

/// Containers of a group: from its spec, else from what exists on disk.
fn container_names(dirs: &GroupDirs, spec: Option<&berth_core::GroupSpec>) -> Vec<String> {
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
