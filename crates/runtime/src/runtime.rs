//! The runtime driver the node agent uses: write bundles, start containers under monitors,
//! re-adopt them after a restart, wait for their exits, stop and delete them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::seccomp::FilterCache;
use crate::bundle::{self, BundleSpec};
use crate::cgroup::CgroupLayout;
use crate::error::{check_id, RuntimeError};
use crate::files::{self, ExitStatus, MonitorConfig, Started};
use crate::logs::LogRotation;
use crate::oci::{is_not_found, OciCommand, RuntimeKind};
use crate::pidfd::ProcWatch;
use crate::sandbox::SandboxRole;
use crate::spawn;

/// How long a container may take to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a monitor found at re-adoption may take to report its container running.
const MONITOR_REPORT_WAIT: Duration = Duration::from_secs(15);
/// The key the zygote gets for `share`: `share` itself when it fits a request (1 to 256
/// bytes without NUL), else a digest of it.
fn share_key(share: &str) -> String {
    use std::hash::{Hash, Hasher};
    let fits =
        !share.is_empty() && share.len() <= crate::monitor::MAX_SHARE_KEY && !share.contains('\0');
    if fits {
        return share.to_owned();
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    share.hash(&mut h);
    format!("#{:016x}", h.finish())
}

/// How often a wait for a container's end also looks for its exit record and its monitor.
const WAIT_RECHECK: Duration = Duration::from_secs(5);
/// How long a monitor may take to record a container's exit after its init ended: its
/// output drain (2 s) and slack.
const EXIT_RECORD_WAIT: Duration = Duration::from_secs(10);
/// How long a monitor that was being spawned may take to write its pid file.
const SPAWN_WAIT: Duration = Duration::from_secs(1);

/// How berth runs containers on this host.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The OCI runtime: crun (default) or runc.
    pub binary: PathBuf,
    /// The runtime's state directory, passed as `--root`.
    pub state_root: PathBuf,
    pub layout: CgroupLayout,
    /// The executable that runs monitors (the berth binary).
    pub monitor_exe: PathBuf,
    /// Arguments before the container directory, e.g. `["monitor"]`.
    pub monitor_args: Vec<String>,
    /// Global flags given to every run of the runtime, after `--root` (runsc's
    /// `--platform=`, `--network=host`, ...).
    pub global_args: Vec<String>,
}

/// The OCI runtime driver.
#[derive(Debug)]
pub struct Runtime {
    cfg: RuntimeConfig,
    kind: RuntimeKind,
    version: String,
    oci: OciCommand,
    log_rotation: Option<LogRotation>,
    /// Seccomp programs compiled for crun's `run.oci.seccomp_bpf_data`; `None`: crun compiles
    /// the bundle's `linux.seccomp` itself (and runc always does).
    filters: Option<FilterCache>,
    /// The cgroup of each container [`Runtime::stop`] looked at, for its
    /// [`Runtime::delete`]: one run of the runtime's `state` less per removal.
    stopped_cgroups: std::sync::Mutex<std::collections::HashMap<String, Option<String>>>,
    /// The empty, read-only directory bound over masked directories (crun only), and which
    /// of [`bundle::MASKED_PATHS`] are directories on this host (looked up once).
    masked_dir: Option<(PathBuf, Vec<&'static str>)>,
    /// `/sys/fs/cgroup` as binds over a skeleton instead of a tmpfs of each container's (crun
    /// on a v1 host).
    cgroupfs: Option<bundle::cgroupfs::CgroupFs>,
}

/// An empty directory only root may change, under the runtime's state root; its name is no
/// container id (ids start with a letter or digit).
fn empty_dir(state_root: &Path) -> Result<PathBuf, RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_root.join(".masked");
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| RuntimeError::io("make read-only", &dir, e))?;
    Ok(dir)
}

/// A filter cache holding the program of the built-in profile for the default capabilities,
/// so that the first container does not wait for its compilation.
fn warm_filters() -> FilterCache {
    let cache = FilterCache::default();
    let warmed = bundle::capabilities(&[], &[]).and_then(|caps| {
        let section =
            crate::seccomp::Profile::builtin().resolve(&caps, &crate::seccomp::Host::detect());
        cache.program(&section)
    });
    if let Err(e) = warmed {
        tracing::warn!(error = %e, "cannot compile the built-in seccomp profile ahead of time");
    }
    cache
}

/// The annotation from which crun takes a compiled seccomp program (base64), skipping its own
/// compilation of `linux.seccomp`.
pub const SECCOMP_BPF_ANNOTATION: &str = "run.oci.seccomp_bpf_data";

impl Runtime {
    /// Checks the runtime binary and the monitor executable, creates the state root, and
    /// decides how the runtime is run on this cgroup layout (logged).
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        let (kind, version) = RuntimeKind::detect(&cfg.binary)?;
        std::fs::metadata(&cfg.monitor_exe)
            .map_err(|e| RuntimeError::io("find the monitor executable", &cfg.monitor_exe, e))?;
        let state_root = spawn::absolute(&cfg.state_root)?;
        std::fs::create_dir_all(&state_root)
            .map_err(|e| RuntimeError::io("create", &state_root, e))?;
        let hide_unified = match (kind, cfg.layout.unified_to_hide()) {
            (RuntimeKind::Crun, Some(unified)) => Some(unified.to_path_buf()),
            _ => None,
        };
        match &hide_unified {
            Some(u) => tracing::info!(
                layout = %cfg.layout.describe(),
                runtime = %version,
                "OCI runtime {} runs in a private mount namespace without {}",
                cfg.binary.display(),
                u.display()
            ),
            None => tracing::info!(
                layout = %cfg.layout.describe(),
                runtime = %version,
                "OCI runtime {} sees every cgroup mount of the host",
                cfg.binary.display()
            ),
        }
        if kind == RuntimeKind::Crun {
            tracing::info!(
                "crun runs from a read-only bind of its executable in a private mount \
                 namespace, so it need not copy itself before each command"
            );
        }
        // crun skips copying itself before each command when run from a read-only binary.
        let pin_binary = kind == RuntimeKind::Crun;
        let oci = OciCommand {
            binary: cfg.binary.clone(),
            root: state_root,
            hide_unified,
            pin_binary,
            global_args: cfg.global_args.clone(),
        };
        let filters = (kind == RuntimeKind::Crun).then(warm_filters);
        // runc refuses any mount inside /proc; runsc masks in its own kernel, where each bind
        // is a gofer round trip.
        let masked_dir = match kind {
            RuntimeKind::Crun => Some((
                empty_dir(&oci.root)?,
                bundle::MASKED_PATHS
                    .iter()
                    .copied()
                    .filter(|p| Path::new(p).is_dir())
                    .collect(),
            )),
            RuntimeKind::Runc | RuntimeKind::Runsc | RuntimeKind::Other => None,
        };
        let cgroupfs = match (&kind, &cfg.layout) {
            (RuntimeKind::Crun, CgroupLayout::V1 { root } | CgroupLayout::Hybrid { root, .. }) => {
                Some(bundle::cgroupfs::CgroupFs::prepare(&oci.root, root)?)
            }
            _ => None,
        };
        Ok(Self {
            cfg,
            kind,
            version,
            oci,
            log_rotation: Some(LogRotation::default()),
            filters,
            stopped_cgroups: Default::default(),
            masked_dir,
            cgroupfs,
        })
    }

    /// Whether berth hands crun a compiled seccomp program (the default with crun) or lets
    /// the runtime compile the profile at every start (runc always does).
    pub fn with_seccomp_precompile(mut self, on: bool) -> Self {
        self.filters = match (on && self.kind == RuntimeKind::Crun, self.filters.take()) {
            (true, Some(f)) => Some(f),
            (true, None) => Some(warm_filters()),
            (false, _) => None,
        };
        self
    }

    pub fn seccomp_precompiled(&self) -> bool {
        self.filters.is_some()
    }

    /// Sets how the logs of containers started from now on are rotated (`None`: never).
    /// The default is [`LogRotation::default`].
    pub fn with_log_rotation(mut self, rotation: Option<LogRotation>) -> Self {
        self.log_rotation = rotation;
        self
    }

    pub fn log_rotation(&self) -> Option<LogRotation> {
        self.log_rotation
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// The first line of the runtime's `--version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Removes the lock files the runtime left in its state directory for the containers of
    /// group `gid` (names starting `<gid>-`, `<gid>.` or `<gid>_`, ending `.lock`) whose
    /// container has no state file any more: runsc makes a container's lock file before it
    /// looks at its state, so a call that raced the container's deletion (a sample, a kill)
    /// leaves one behind.
    pub async fn sweep_stale_locks(&self, gid: &str) {
        let root = self.oci().root.clone();
        let gid = gid.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&root) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let ours = name.starts_with(&format!("{gid}-"))
                    || name.starts_with(&format!("{gid}."))
                    || name.starts_with(&format!("{gid}_"));
                let Some(stem) = name.strip_suffix(".lock") else {
                    continue;
                };
                if !ours || root.join(format!("{stem}.state")).exists() {
                    continue;
                }
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        })
        .await;
    }

    pub(crate) fn oci(&self) -> &OciCommand {
        &self.oci
    }

    /// Whether runtime invocations hide the cgroup2 mount (crun on a hybrid host).
    pub fn hides_unified(&self) -> bool {
        self.oci.hide_unified.is_some()
    }

    /// Writes `container_dir/config.json`; the directory is the bundle.
    pub fn write_bundle(
        &self,
        container_dir: &Path,
        spec: &BundleSpec,
    ) -> Result<(), RuntimeError> {
        self.write_bundle_in(container_dir, spec, None)
    }

    /// [`Runtime::write_bundle`] for a container that boots or joins a sandbox shared by
    /// several containers (`role`, runsc): the bundle carries the CRI annotations runsc reads.
    /// `own_id` is the id the container will be started with.
    pub fn write_bundle_in(
        &self,
        container_dir: &Path,
        spec: &BundleSpec,
        role: Option<(&SandboxRole, &str)>,
    ) -> Result<(), RuntimeError> {
        let mut oci_spec = bundle::build_spec(spec, &self.cfg.layout)?;
        if let Some((empty, dirs)) = &self.masked_dir {
            bundle::mounts::bind_masked_dirs(&mut oci_spec, empty, |p| dirs.contains(&p))?;
        }
        if let Some(cgroupfs) = &self.cgroupfs {
            cgroupfs.apply(&mut oci_spec)?;
        }
        self.attach_seccomp_program(&mut oci_spec);
        if let Some((role, own_id)) = role {
            check_id(own_id)?;
            let mut annotations = oci_spec.annotations().clone().unwrap_or_default();
            annotations.extend(role.annotations(own_id));
            oci_spec.set_annotations(Some(annotations));
        }
        std::fs::create_dir_all(container_dir)
            .map_err(|e| RuntimeError::io("create", container_dir, e))?;
        bundle::write_config(container_dir, &oci_spec)
    }

    /// Puts the compiled program of the spec's seccomp section in its place for crun, which
    /// then loads it (and keeps it for every exec, `seccomp.bpf` in its state directory)
    /// without reading the section: the section leaves the bundle, a third of its bytes on
    /// the groups' tmpfs. A profile that cannot be compiled is left to crun.
    fn attach_seccomp_program(&self, spec: &mut oci_spec::runtime::Spec) {
        let Some(filters) = &self.filters else { return };
        let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) else {
            return;
        };
        match filters.program(&seccomp) {
            Ok(program) => {
                let mut annotations = spec.annotations().clone().unwrap_or_default();
                annotations.insert(SECCOMP_BPF_ANNOTATION.to_string(), program.to_string());
                spec.set_annotations(Some(annotations));
                if let Some(linux) = spec.linux_mut() {
                    linux.set_seccomp(None);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "crun compiles this container's seccomp profile itself")
            }
        }
    }

    /// Starts the container under a new monitor; returns once the container's process runs,
    /// or fails with the runtime's stderr in the error. A container of the same id must have
    /// been deleted first.
    pub async fn start(
        &self,
        id: &str,
        container_dir: &Path,
        log_path: &Path,
    ) -> Result<Started, RuntimeError> {
        self.start_with(id, container_dir, log_path, None, "").await
    }

    /// [`Runtime::start`] under a monitor that the containers started with the same `share`
    /// key may share (up to 16 over its life, ADR 0018): one process, its page tables and
    /// kernel stack, for many containers instead of one each. A defect that ended that
    /// monitor would leave all of them without their logs and exit records, so give one key
    /// to containers of one owner only. A container whose end its runtime reports (in a
    /// shared sandbox) still gets a monitor of its own.
    pub async fn start_sharing(
        &self,
        id: &str,
        container_dir: &Path,
        log_path: &Path,
        share: &str,
    ) -> Result<Started, RuntimeError> {
        let share = share_key(share);
        self.start_with(id, container_dir, log_path, None, &share)
            .await
    }

    /// [`Runtime::start`] of a sandbox's pause container that takes its host name later
    /// ([`crate::sandbox::pause_args`] with `named_later`): its standard input is a FIFO in
    /// its directory, through which [`Runtime::set_sandbox_hostname`] names it.
    pub async fn start_renamable_sandbox(
        &self,
        id: &str,
        container_dir: &Path,
        log_path: &Path,
    ) -> Result<Started, RuntimeError> {
        let fifo = crate::sandbox::make_name_fifo(container_dir)?;
        self.start_with(id, container_dir, log_path, Some(fifo), "")
            .await
    }

    async fn start_with(
        &self,
        id: &str,
        container_dir: &Path,
        log_path: &Path,
        stdin_fifo: Option<PathBuf>,
        share: &str,
    ) -> Result<Started, RuntimeError> {
        check_id(id)?;
        let began = Instant::now();
        let dir = std::fs::canonicalize(container_dir)
            .map_err(|e| RuntimeError::io("open", container_dir, e))?;
        let log_path = spawn::absolute(log_path)?;
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| RuntimeError::io("create", parent, e))?;
        }
        if let Some(pid) = files::supervising_monitor(&dir) {
            return Err(RuntimeError::Busy { dir, pid });
        }
        let config = bundle::started::read(&dir);
        if let Some(config) = &config {
            bundle::started::check_runnable(config, &dir)?;
        }
        // A container in a shared sandbox has no process of its own on the host: its runtime
        // reports its exit, and the sandbox's cgroup (its parent's) any OOM kill.
        let wait_by_runtime =
            crate::sandbox::is_subcontainer(config.as_ref().and_then(|c| c.get("annotations")));
        let oom_cgroup = config
            .as_ref()
            .and_then(cgroup_path_in)
            .map(|p| match wait_by_runtime {
                true => parent_cgroup(&p),
                false => p,
            });
        let oom_file = oom_cgroup.map(|p| self.cfg.layout.oom_file(&p));
        // The end of a container in a sandbox comes from its monitor's exit (`wait`), and the
        // name FIFO is read by one pause process: both keep a monitor of their own.
        let share = match wait_by_runtime || stdin_fifo.is_some() {
            true => String::new(),
            false => share.to_owned(),
        };
        files::clear_run_files(&dir)?;
        let conf = MonitorConfig {
            id: id.to_string(),
            runtime: self.oci.binary.clone(),
            state_root: self.oci.root.clone(),
            log_path,
            hide_unified: self.oci.hide_unified.clone(),
            pin_binary: self.oci.pin_binary,
            global_args: self.oci.global_args.clone(),
            oom_file,
            log_rotation: self.log_rotation,
            wait_by_runtime,
            stdin_fifo,
        };
        files::write_json(&dir.join(files::MONITOR_CONFIG), &conf)?;
        let exe = self.cfg.monitor_exe.clone();
        let args = self.cfg.monitor_args.clone();
        let owned_id = id.to_string();
        let started = tokio::task::spawn_blocking(move || {
            let started = spawn::spawn_monitor(&exe, &args, &dir, &owned_id, &share)?;
            // The runtime keeps the program now; the bundle's copy would only hold memory.
            if let Some(config) = config {
                if let Err(e) = bundle::started::release_program(&dir, config) {
                    tracing::warn!(id = owned_id, error = %e, "cannot take the seccomp program out of the bundle");
                }
            }
            Ok::<_, RuntimeError>(started)
        })
        .await
                .map_err(|e| RuntimeError::StartFailed {
                    id: id.to_string(),
                    message: format!("the task that spawns the monitor failed: {e}"),
                })??;
        tracing::debug!(
            id,
            pid = started.pid,
            monitor_pid = started.monitor_pid,
            elapsed_ms = began.elapsed().as_millis() as u64,
            "container started"
        );
        Ok(started)
    }

    /// Re-attaches to a container started earlier (e.g. before berth restarted): `Some` while
    /// its monitor lives and has not recorded its exit.
    pub fn adopt(&self, container_dir: &Path) -> Option<Started> {
        let monitor = files::supervising_monitor(container_dir)?;
        let started: Started = files::read_json(&container_dir.join(files::STARTED))?;
        (started.monitor_pid == monitor).then_some(started)
    }

    /// [`Runtime::adopt`], also for a start that a crash of berth cut short: a monitor that
    /// was spawned but has not reported yet is given time to get its container running
    /// (`None` once it has exited, or when it does not report in time).
    pub async fn adopt_starting(&self, container_dir: &Path) -> Option<Started> {
        let began = Instant::now();
        loop {
            if let Some(started) = self.adopt(container_dir) {
                return Some(started);
            }
            let waited = began.elapsed();
            let starting = if files::supervising_monitor(container_dir).is_some() {
                waited < MONITOR_REPORT_WAIT
            } else {
                // `monitor.json` is written just before the spawn, `monitor.pid` by the
                // monitor first thing: a spawn in flight has the one without the other.
                waited < SPAWN_WAIT
                    && container_dir.join(files::MONITOR_CONFIG).exists()
                    && !container_dir.join(files::MONITOR_PID).exists()
                    && !container_dir.join(files::STARTED).exists()
            };
            if !starting {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resolves when the monitor of the container has recorded its exit.
    ///
    /// A monitor may serve other containers too (ADR 0018), so its end is not the
    /// container's: this watches the container's init with a pidfd (one descriptor while it
    /// waits, as before), then reads the record the monitor writes once the output is
    /// drained. Every [`WAIT_RECHECK`] it also looks for the record and for the monitor, so
    /// that an init's pid taken by another process after the init ended, or a monitor that
    /// died, ends the wait all the same. A container whose end its runtime reports (in a
    /// shared sandbox) has a monitor of its own, which is watched instead.
    pub async fn wait(
        &self,
        started: &Started,
        container_dir: &Path,
    ) -> Result<ExitStatus, RuntimeError> {
        let lost = || RuntimeError::MonitorLost {
            dir: container_dir.to_path_buf(),
        };
        let watch_error = |e| RuntimeError::io("watch the container of", container_dir, e);
        // The pid must still be the monitor's, not a recycled one.
        let monitor_lives = || files::live_monitor(container_dir) == Some(started.monitor_pid);
        if let Some(exit) = Self::read_exit(container_dir) {
            return Ok(exit);
        }
        if !monitor_lives() {
            return Self::read_exit(container_dir).ok_or_else(lost);
        }
        let ended_by_runtime =
            files::read_json::<MonitorConfig>(&container_dir.join(files::MONITOR_CONFIG))
                .is_some_and(|c| c.wait_by_runtime);
        let watched = match ended_by_runtime {
            true => started.monitor_pid,
            false => started.pid,
        };
        if let Some(watch) = ProcWatch::new(watched).map_err(watch_error)? {
            let exited = watch.exited();
            tokio::pin!(exited);
            loop {
                tokio::select! {
                    r = &mut exited => {
                        r.map_err(watch_error)?;
                        break;
                    }
                    _ = tokio::time::sleep(WAIT_RECHECK) => {
                        if Self::read_exit(container_dir).is_some() || !monitor_lives() {
                            break;
                        }
                    }
                }
            }
        }
        // The monitor writes the record once the output is drained: mostly within a
        // millisecond or two of the init's end, at most a few seconds after it.
        let began = Instant::now();
        loop {
            if let Some(exit) = Self::read_exit(container_dir) {
                return Ok(exit);
            }
            let waited = began.elapsed();
            if !monitor_lives() || waited >= EXIT_RECORD_WAIT {
                return Self::read_exit(container_dir).ok_or_else(lost);
            }
            let pause = match waited < Duration::from_millis(50) {
                true => Duration::from_millis(1),
                false => Duration::from_millis(10),
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// The exit status the monitor recorded, if the container has exited.
    pub fn read_exit(container_dir: &Path) -> Option<ExitStatus> {
        files::read_json(&container_dir.join(files::EXIT))
    }

    /// Sends SIGTERM through the runtime, waits up to `grace` for the container to exit, then
    /// sends SIGKILL. A container that is unknown or already stopped is fine.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        check_id(id)?;
        let Some(state) = self.oci.state(id).await? else {
            return Ok(());
        };
        self.stopped_cgroups()
            .insert(id.to_owned(), cgroup_path_of(&state.bundle));
        if state.status == "stopped" {
            return Ok(());
        }
        if crate::sandbox::is_subcontainer(state.annotations.as_ref()) {
            return self.stop_in_sandbox(id, grace).await;
        }
        let watch = ProcWatch::new(state.pid)
            .map_err(|e| RuntimeError::io("watch the init of", PathBuf::from(id), e))?;
        let Some(watch) = watch else {
            return Ok(());
        };
        if !self.signal(id, &watch, libc::SIGTERM, "TERM").await? {
            return Ok(());
        }
        if tokio::time::timeout(grace, watch.exited()).await.is_ok() {
            return Ok(());
        }
        tracing::info!(
            id,
            grace_s = grace.as_secs(),
            "container ignored SIGTERM, killing it"
        );
        self.signal(id, &watch, libc::SIGKILL, "KILL").await?;
        match tokio::time::timeout(KILL_WAIT, watch.exited()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(RuntimeError::Timeout {
                what: format!("the exit of container {id} after SIGKILL"),
                secs: KILL_WAIT.as_secs(),
            }),
        }
    }

    /// Signals a container's init. crun's and runc's `kill` (without `--all`) send the signal
    /// to the init process, which berth watches by pidfd already: sent through that pidfd,
    /// without a run of the runtime. Other runtimes (runsc's init is the sandbox, which
    /// relays the signal inside) get their own `kill`. `false`: it had ended.
    async fn signal(
        &self,
        id: &str,
        watch: &ProcWatch,
        signal: i32,
        name: &str,
    ) -> Result<bool, RuntimeError> {
        match self.kind {
            RuntimeKind::Crun | RuntimeKind::Runc => watch
                .signal(signal)
                .map_err(|e| RuntimeError::io("signal the init of", PathBuf::from(id), e)),
            RuntimeKind::Runsc | RuntimeKind::Other => self.oci.kill(id, name).await,
        }
    }

    fn stopped_cgroups(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Option<String>>> {
        self.stopped_cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// [`Runtime::stop`] of a container in a shared sandbox: the pid runsc reports is the
    /// sandbox's, so the end of the container is awaited with `runsc wait`.
    async fn stop_in_sandbox(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        if !self.oci.kill(id, "TERM").await? {
            return Ok(());
        }
        let wait = ["wait", id];
        if let Ok(out) = tokio::time::timeout(grace, self.oci.output(&wait)).await {
            out?;
            return Ok(());
        }
        tracing::info!(
            id,
            grace_s = grace.as_secs(),
            "container ignored SIGTERM, killing it"
        );
        self.oci.kill(id, "KILL").await?;
        match tokio::time::timeout(KILL_WAIT, self.oci.output(&wait)).await {
            Ok(out) => out.map(|_| ()),
            Err(_) => Err(RuntimeError::Timeout {
                what: format!("the exit of container {id} after SIGKILL"),
                secs: KILL_WAIT.as_secs(),
            }),
        }
    }

    /// SIGKILL to the container now (a stop whose grace period was cut short); a container
    /// that is not running any more is no error.
    pub async fn kill(&self, id: &str) -> Result<(), RuntimeError> {
        check_id(id)?;
        self.oci.kill(id, "KILL").await.map(|_| ())
    }

    /// `delete --force`: kills what still runs and removes the container and its cgroups (in
    /// every v1 hierarchy). Deleting an unknown container is fine.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        check_id(id)?;
        let known = self.stopped_cgroups().remove(id);
        let cgroup = match known {
            Some(cgroup) => cgroup,
            None => match self.oci.state(id).await? {
                Some(state) => cgroup_path_of(&state.bundle),
                None => None,
            },
        };
        // Outside a private mount namespace (no fork of berth, no copy of the mount table):
        // what crun's delete does to cgroups berth does again below, in every hierarchy.
        let args = ["delete", "--force", id];
        let out = self.oci.output_outside(&args).await?;
        if !out.status.success() && !is_not_found(&out.stderr) {
            return Err(self.oci.failure(&args, &out));
        }
        if let Some(path) = cgroup {
            let layout = self.cfg.layout.clone();
            tokio::task::spawn_blocking(move || layout.remove_cgroup(&path))
                .await
                .map_err(|e| {
                    RuntimeError::io("remove the cgroup of", id, std::io::Error::other(e))
                })??;
        }
        Ok(())
    }
}

impl Runtime {
    /// The figures of a container in a shared sandbox (runsc), from the sandbox's own
    /// accounting: its cgroup on the host holds no process. Blocking (runs the runtime,
    /// bounded in time).
    pub fn sandboxed_stats(&self, id: &str) -> Result<crate::ContainerStats, RuntimeError> {
        check_id(id)?;
        crate::stats::sandboxed::read(&self.oci, id)
    }

    /// Removes what is left of a group's cgroup parent (see
    /// [`group_cgroup_path`](crate::cgroup::group_cgroup_path)) in every hierarchy, once its
    /// containers are deleted; a group id that is not one path component is refused.
    pub async fn remove_group_cgroup(&self, group: &str) -> Result<(), RuntimeError> {
        check_id(group)?;
        let path = crate::cgroup::group_cgroup_path(group);
        let layout = self.cfg.layout.clone();
        tokio::task::spawn_blocking(move || layout.remove_cgroup(&path))
            .await
            .map_err(|e| {
                RuntimeError::io("remove the cgroup of", group, std::io::Error::other(e))
            })?
    }
}

/// The parent of a cgroup path (`/berth/g/c` -> `/berth/g`).
fn parent_cgroup(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_string(),
        _ => path.to_string(),
    }
}

/// `linux.cgroupsPath` of the bundle in `dir`.
fn cgroup_path_of(dir: &Path) -> Option<String> {
    cgroup_path_in(&files::read_json(&dir.join("config.json"))?)
}

/// `linux.cgroupsPath` of a bundle's configuration.
fn cgroup_path_in(config: &serde_json::Value) -> Option<String> {
    config
        .pointer("/linux/cgroupsPath")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_keys_fit_the_zygote_request() {
        assert_eq!(share_key("acct-1"), "acct-1");
        let long = "a".repeat(crate::monitor::MAX_SHARE_KEY + 1);
        for odd in [long.as_str(), "with\0nul", ""] {
            let key = share_key(odd);
            assert!(key.starts_with('#') && key.len() == 17, "{key}");
            assert_eq!(share_key(odd), key, "the same key every time");
        }
        assert_ne!(share_key(&long), share_key("with\0nul"));
    }
}
