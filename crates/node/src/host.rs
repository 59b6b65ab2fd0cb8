//! [`Host`]: the node-wide services every group's supervisor draws on — the image store,
//! the container runtime, the network, the node's directories and temporary storage, the
//! pools of spare directories and user id ranges — and the count of starts in progress that
//! the pools yield to. It knows nothing of any one group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_image::ImageStore;
use berth_net::Network;
use berth_runtime::Runtime;
use tokio::task::JoinHandle;

use berth_core::RuntimeClass;
use berth_runtime::{GvisorPlatform, RuntimeConfig};

use crate::config::{GvisorConfig, NodeConfig, NodeError, Reporter, SeccompProfiles};
use crate::files::{GroupDirs, NodeDirs};

/// Spare group directories kept made (see the `spare` module): enough for a burst of starts,
/// ~10 empty inodes each.
const SPARE_SLOTS: usize = 128;

pub(crate) struct Host {
    pub images: ImageStore,
    /// The runtime of the `runc` class; a group's containers use [`Host::runtime_for`].
    runtime: Runtime,
    /// runsc, for the `gvisor` class.
    gvisor: Option<Runtime>,
    /// The root filesystem of the gvisor groups' sandbox (pause) containers.
    pub sandbox_rootfs: Option<std::path::PathBuf>,
    /// gVisor sandboxes booted ahead of time (with the gvisor class; of size 0 it only
    /// removes what a former pool left).
    pub sandbox_pool: Option<crate::gvisor_pool::SandboxPool>,
    pub net: Network,
    pub dirs: NodeDirs,
    pub storage: Option<Arc<berth_storage::Storage>>,
    pub reporter: Arc<dyn Reporter>,
    pub seccomp: Arc<dyn SeccompProfiles>,
    /// Where image caches the node lacks come from; one is made at a time.
    pub caches: Arc<dyn crate::cache_source::CacheSource>,
    pub cache_making: tokio::sync::Mutex<()>,
    /// Disk directories of groups made ahead of time.
    pub spares: crate::spare::Spares,
    /// The groups' user id ranges, when groups run in user namespaces.
    pub userns: Option<crate::userns::UserNamespaces>,
    /// The host path prefixes groups may mount.
    pub host_paths: berth_core::VolumePolicy,
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

impl Host {
    pub fn open(cfg: NodeConfig, reporter: Arc<dyn Reporter>) -> Result<Self, NodeError> {
        let storage = match &cfg.storage {
            Some(sc) => Some(Arc::new(berth_storage::Storage::open(sc)?)),
            None => None,
        };
        let mut dirs = NodeDirs::new(&cfg.root);
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
        let gvisor = match &cfg.gvisor {
            // Groups' user namespaces and id-mapped layers are made for crun alone.
            Some(_) if cfg.userns.is_some() => {
                tracing::warn!(
                    "--userns runs groups under crun only: this node runs no gvisor runtime class"
                );
                None
            }
            Some(g) => Some(open_gvisor(&cfg.runtime, g)?),
            None => None,
        };
        let sandbox_rootfs = match &gvisor {
            Some(_) => Some(berth_runtime::install_pause_rootfs(
                &cfg.root.join("gvisor-sandbox"),
            )?),
            None => None,
        };
        let sandbox_pool = match (&gvisor, &cfg.gvisor) {
            (Some(_), Some(g)) => Some(crate::gvisor_pool::SandboxPool::new(
                cfg.root.join("gvisor-pool"),
                g.pool,
            )),
            _ => None,
        };
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
            images,
            runtime,
            gvisor,
            sandbox_rootfs,
            sandbox_pool,
            net,
            dirs,
            storage,
            reporter,
            seccomp: cfg.seccomp,
            caches: cfg.caches,
            cache_making: tokio::sync::Mutex::new(()),
            spares,
            userns,
            host_paths: cfg.host_paths,
            starting: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The one place that turns a runtime class into the runtime that runs it; a new class
    /// (a microVM) plugs in here.
    pub fn runtime_for(&self, class: RuntimeClass) -> Result<&Runtime, NodeError> {
        match class {
            RuntimeClass::Runc => Ok(&self.runtime),
            RuntimeClass::Gvisor => self
                .gvisor
                .as_ref()
                .ok_or(NodeError::RuntimeClassUnsupported(
                    class,
                    "berth serve found no runsc (--gvisor-runtime)",
                )),
        }
    }

    /// The runtime of the group in `dirs`, from the class it recorded when it started.
    pub fn runtime_of(&self, dirs: &GroupDirs) -> Result<&Runtime, NodeError> {
        self.runtime_for(dirs.runtime_class()?)
    }

    /// The runtime of the `runc` class, for what is not any one group's (cgroup layout).
    pub fn default_runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The runtime classes this node runs, with the runtime of each.
    pub fn classes(&self) -> Vec<ClassSupport> {
        let mut out = vec![ClassSupport::of(RuntimeClass::Runc, &self.runtime)];
        if let Some(g) = &self.gvisor {
            out.push(ClassSupport::of(RuntimeClass::Gvisor, g));
        }
        out
    }

    /// Marks a start in progress until the returned guard is dropped.
    pub fn starting(&self) -> Starting {
        self.starting.fetch_add(1, Ordering::Relaxed);
        Starting(self.starting.clone())
    }

    /// Starts the tasks that keep the network namespace pool full (it first removes what a
    /// former berth's pool left), the spare group directories made and the admissions to
    /// accounts' networks going.
    pub fn spawn_pools(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let (net, spares, admitter) = (self.clone(), self.clone(), self.clone());
        let mut tasks = vec![
            tokio::spawn(async move { net.net.maintain_pool_around(&net.starting).await }),
            tokio::spawn(async move { spares.spares.maintain(&spares.starting).await }),
            tokio::spawn(async move { admitter.net.admit_queued(&admitter.starting).await }),
        ];
        if self.sandbox_pool.is_some() {
            let host = self.clone();
            tasks.push(tokio::spawn(async move {
                if let Some(pool) = &host.sandbox_pool {
                    pool.maintain(&host, &host.starting).await;
                }
            }));
        }
        tasks
    }

    /// Releases what only berth itself holds (its pools were stopped before): the namespace
    /// pool, the image pins' pending write, the groups' tmpfs, the spare subvolumes (so that
    /// the storage is unmounted when no group has any left in it), and the namespace
    /// directory's mount and the subnet's masquerade rule when no group needs them.
    pub async fn release(&self) {
        // Before the namespace pool: the sandboxes' namespaces are torn down with them.
        if let Some(pool) = &self.sandbox_pool {
            pool.drain(self).await;
        }
        self.net.drain_pool().await;
        if let Err(e) = self.images.flush_pins() {
            tracing::warn!(error = %e, "cannot write the image pins");
        }
        if let Err(e) = crate::files::release_run_tmpfs(&self.dirs.groups) {
            tracing::warn!(error = %e, "cannot release the groups' tmpfs");
        }
        if let Some(storage) = &self.storage {
            self.spares.drain();
            if let Err(e) = storage.unmount_if_empty() {
                tracing::warn!(error = %e, "cannot unmount the temporary storage");
            }
        }
        if let Err(e) = self.net.release() {
            tracing::warn!(error = %e, "cannot release the namespace directory");
        }
    }
}

/// A runtime class the node runs, as reported to the operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClassSupport {
    pub class: RuntimeClass,
    /// The runtime's `--version` line.
    pub runtime: String,
    /// gVisor's platform (`gvisor` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl ClassSupport {
    fn of(class: RuntimeClass, rt: &Runtime) -> Self {
        let platform = rt
            .config()
            .global_args
            .iter()
            .find_map(|a| a.strip_prefix("--platform="))
            .map(str::to_string);
        Self {
            class,
            runtime: rt.version().to_string(),
            platform,
        }
    }
}

/// runsc for the `gvisor` class: the runc class's configuration with runsc, its own state
/// root beside the other runtime's, and the platform given or detected (logged).
fn open_gvisor(base: &RuntimeConfig, g: &GvisorConfig) -> Result<Runtime, NodeError> {
    let platform = match g.platform {
        Some(p) => p,
        None => GvisorPlatform::detect(&g.binary),
    };
    let mut state_root = base.state_root.clone().into_os_string();
    state_root.push("-runsc");
    let rt = Runtime::new(RuntimeConfig {
        binary: g.binary.clone(),
        state_root: state_root.into(),
        global_args: berth_runtime::runsc_global_args(platform),
        ..base.clone()
    })?;
    if rt.kind() != berth_runtime::RuntimeKind::Runsc {
        return Err(NodeError::NotRunsc(
            g.binary.clone(),
            rt.version().to_string(),
        ));
    }
    tracing::info!(
        runtime = %rt.version(),
        platform = %platform,
        chosen = if g.platform.is_some() { "given" } else { "detected" },
        "the gvisor runtime class runs on runsc"
    );
    Ok(rt)
}
