//! gVisor sandboxes booted ahead of time (`berth serve --gvisor-pool N`), handed to the next
//! gvisor group, so that its start is only the creation of its containers (ADR 0011).
//!
//! A pooled sandbox is a pause container (runtime id `<pool-id>.sandbox`, files in
//! `gvisor-pool/<pool-id>/`) booted in the network namespace wired for its pool id (taken from
//! the namespace pool like a group's: a running sentry cannot change its network), in the
//! cgroup `/berth/<pool-id>` with no CPU or memory limit yet. A group takes one
//! ([`SandboxPool::take`]) by recording its pool id in `groups/<id>/sandbox-id` before
//! anything else changes; from then on the sandbox is the group's, never handed out again,
//! and the group's supervisor moves the namespace, the cgroup and the host name over
//! (`group::pooled`). A group deleted later deletes the sandbox with its files.
//!
//! What nobody claimed is removed (runsc sandbox, cgroups, namespace, files) when berth stops
//! ([`SandboxPool::drain`]) and, after a crash, when it starts again ([`SandboxPool::maintain`]
//! first). A pooled sandbox that died is discarded when a group would take it. The pool is
//! refilled when no group start is in progress, so that boots do not compete with starts.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use berth_core::RuntimeClass;
use berth_runtime::{BundleSpec, Runtime, SandboxRole};
use tokio::sync::Notify;

use crate::files::{error_chain, GroupDirs};
use crate::host::Host;

/// Pool ids start with this; no group id does (`eci-`).
const PREFIX: &str = "gvp-";
/// The file in a group's directory that names the pooled sandbox it took.
const CLAIM_FILE: &str = "sandbox-id";
/// The pids limit of every sandbox's cgroup (the group's own sandboxes have the same).
pub const PIDS_LIMIT: i64 = 4096;
/// How often the sandboxes waiting in a full pool are checked (one that died is replaced).
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The longest pause after failed boots.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether `id` is a pool id.
pub fn is_pool_id(id: &str) -> bool {
    id.strip_prefix(PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 40
            && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    })
}

/// The runtime id of the pause container of the sandbox `pool_id`.
pub fn runsc_id(pool_id: &str) -> String {
    format!("{pool_id}.sandbox")
}

fn new_pool_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{PREFIX}{nanos:x}-{:x}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pooled sandbox a group took, as recorded in its directory.
pub fn claimed_by(dirs: &GroupDirs) -> Option<String> {
    let text = std::fs::read_to_string(dirs.root.join(CLAIM_FILE)).ok()?;
    let id = text.trim();
    is_pool_id(id).then(|| id.to_string())
}

/// Records that the group took the pooled sandbox `pool_id` (written aside and renamed).
fn record_claim(dirs: &GroupDirs, pool_id: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(&dirs.root)?;
    let tmp = dirs.root.join(format!(".{CLAIM_FILE}.tmp"));
    std::fs::write(&tmp, pool_id)?;
    std::fs::rename(&tmp, dirs.root.join(CLAIM_FILE))
}

/// Forgets the group's pooled sandbox (it was removed).
pub fn forget_claim(dirs: &GroupDirs) {
    let _ = std::fs::remove_file(dirs.root.join(CLAIM_FILE));
}

/// The node's pool of booted gVisor sandboxes.
#[derive(Debug)]
pub struct SandboxPool {
    dir: PathBuf,
    size: usize,
    ready: Mutex<VecDeque<String>>,
    wake: Notify,
    claims: AtomicU64,
    /// Held while a sandbox boots and is queued, and by [`SandboxPool::drain`], which sets it:
    /// no boot begins after a drain.
    making: tokio::sync::Mutex<bool>,
}

impl SandboxPool {
    /// A pool of `size` sandboxes with its files under `dir`.
    pub fn new(dir: PathBuf, size: usize) -> Self {
        Self {
            dir,
            size,
            ready: Mutex::default(),
            wake: Notify::new(),
            claims: AtomicU64::new(0),
            making: tokio::sync::Mutex::new(false),
        }
    }

    /// The directory of the sandbox `pool_id` (its bundle and monitor files).
    pub fn dir_of(&self, pool_id: &str) -> PathBuf {
        self.dir.join(pool_id)
    }

    /// Sandboxes ready to be taken.
    pub fn ready(&self) -> usize {
        lock(&self.ready).len()
    }

    /// Hands a booted sandbox to group `gid`: its pool id, recorded in the group's directory
    /// before it is returned. A sandbox that died is discarded; `None` when none is ready.
    pub async fn take(&self, host: &Host, gid: &str, dirs: &GroupDirs) -> Option<String> {
        loop {
            let id = lock(&self.ready).pop_front()?;
            self.claims.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
            let dir = self.dir_of(&id);
            let alive = host
                .runtime_for(RuntimeClass::Gvisor)
                .is_ok_and(|rt| is_alive(rt, &dir));
            if !alive {
                tracing::warn!(pooled = %id, "a pooled gVisor sandbox died; discarding it");
                self.discard(host, &id).await;
                continue;
            }
            if let Err(e) = record_claim(dirs, &id) {
                tracing::warn!(group = %gid, pooled = %id, error = %e, "cannot record the pooled sandbox; discarding it");
                self.discard(host, &id).await;
                return None;
            }
            tracing::debug!(group = %gid, pooled = %id, "took a pooled gVisor sandbox");
            return Some(id);
        }
    }

    /// Keeps the pool full, forever: first removes what a former berth's pool left that no
    /// group claimed, then boots a sandbox whenever one is missing and no start is in
    /// progress (`starting`, the node's count), or at the latest [`MAX_DEFER`] after a take.
    pub async fn maintain(&self, host: &Host, starting: &AtomicUsize) {
        let removed = self.remove_unclaimed(host).await;
        tracing::info!(
            removed,
            size = self.size,
            "released what a former gVisor sandbox pool left; booting a new one"
        );
        let mut failures = 0u32;
        loop {
            if self.ready() >= self.size {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(CHECK_EVERY) => self.discard_dead(host).await,
                }
                continue;
            }
            crate::quiet::until_quiet(&self.claims, starting).await;
            let making = self.making.lock().await;
            if *making {
                return;
            }
            let id = new_pool_id();
            match self.boot(host, &id).await {
                Ok(()) => {
                    lock(&self.ready).push_back(id);
                    failures = 0;
                }
                Err(e) => {
                    tracing::warn!(pooled = %id, error = %e, "cannot boot a pooled gVisor sandbox");
                    self.discard(host, &id).await;
                    failures = failures.saturating_add(1);
                }
            }
            drop(making);
            if failures > 0 {
                let backoff = Duration::from_millis(500)
                    .saturating_mul(1 << failures.min(6))
                    .min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
        }
    }

    /// Discards the waiting sandboxes that died (their pause container's monitor ended).
    async fn discard_dead(&self, host: &Host) {
        let Ok(rt) = host.runtime_for(RuntimeClass::Gvisor) else {
            return;
        };
        let dead: Vec<String> = {
            let mut ready = lock(&self.ready);
            let dead: Vec<String> = ready
                .iter()
                .filter(|id| !is_alive(rt, &self.dir_of(id)))
                .cloned()
                .collect();
            ready.retain(|id| !dead.contains(id));
            dead
        };
        for id in dead {
            tracing::warn!(pooled = %id, "a pooled gVisor sandbox died; discarding it");
            self.discard(host, &id).await;
        }
    }

    /// Boots the sandbox `id`: a namespace wired for it, its pause container in it.
    async fn boot(&self, host: &Host, id: &str) -> Result<(), String> {
        let began = std::time::Instant::now();
        let rt = host
            .runtime_for(RuntimeClass::Gvisor)
            .map_err(|e| e.to_string())?;
        let rootfs = host
            .sandbox_rootfs
            .clone()
            .ok_or("this node has no sandbox root filesystem")?;
        let att = host
            .net
            .attach(id)
            .await
            .map_err(|e| format!("cannot wire a namespace: {}", error_chain(&e)))?;
        let dir = self.dir_of(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let spec = pause_bundle(rootfs, id.to_string(), att.netns, id, None, true);
        let rid = runsc_id(id);
        rt.write_bundle_in(&dir, &spec, Some((&SandboxRole::Sandbox, &rid)))
            .map_err(|e| error_chain(&e))?;
        rt.start_renamable_sandbox(&rid, &dir, &dir.join("pause.log"))
            .await
            .map_err(|e| format!("cannot start the sandbox: {}", error_chain(&e)))?;
        tracing::debug!(
            pooled = %id,
            elapsed_ms = began.elapsed().as_millis() as u64,
            "pooled gVisor sandbox booted"
        );
        Ok(())
    }

    /// Removes everything of the unclaimed sandbox `id`: the sandbox, its cgroups, its
    /// namespace and its files.
    pub async fn discard(&self, host: &Host, id: &str) {
        remove_sandbox(host, id, &self.dir_of(id)).await;
    }

    /// At shutdown: removes every sandbox no group took; none is booted afterwards.
    pub async fn drain(&self, host: &Host) {
        let mut making = self.making.lock().await;
        *making = true;
        lock(&self.ready).clear();
        let removed = self.remove_unclaimed(host).await;
        tracing::info!(removed, "gVisor sandbox pool drained");
    }

    /// Removes the pool's sandboxes on disk (files, namespaces) that no group claimed.
    async fn remove_unclaimed(&self, host: &Host) -> usize {
        let claimed = claims(host);
        let ready: HashSet<String> = lock(&self.ready).iter().cloned().collect();
        let mut ids: HashSet<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.extend(host.net.known());
        ids.retain(|id| is_pool_id(id) && !claimed.contains(id) && !ready.contains(id));
        for id in &ids {
            self.discard(host, id).await;
        }
        ids.len()
    }
}

/// Whether the pause container with files in `dir` runs (its monitor lives, no exit).
fn is_alive(rt: &Runtime, dir: &std::path::Path) -> bool {
    rt.adopt(dir).is_some() && Runtime::read_exit(dir).is_none()
}

/// The pool ids that groups on this node took.
fn claims(host: &Host) -> HashSet<String> {
    std::fs::read_dir(&host.dirs.groups)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().into_string().ok()?;
            claimed_by(&host.dirs.group(&id))
        })
        .collect()
}

/// Deletes the pooled sandbox `id` (files in `dir`): its runsc sandbox, its cgroup if it is
/// still the pool's, its namespace if it is still the pool's, and its files.
pub async fn remove_sandbox(host: &Host, id: &str, dir: &std::path::Path) {
    if let Ok(rt) = host.runtime_for(RuntimeClass::Gvisor) {
        if let Err(e) = rt.delete(&runsc_id(id)).await {
            tracing::warn!(pooled = %id, error = %e, "cannot delete a pooled sandbox");
        }
    }
    if let Err(e) = host.default_runtime().remove_group_cgroup(id).await {
        tracing::warn!(pooled = %id, error = %e, "cannot remove a pooled sandbox's cgroup");
    }
    if host.net.known().iter().any(|k| k == id) {
        if let Err(e) = host.net.teardown(id).await {
            tracing::warn!(pooled = %id, error = %e, "cannot remove a pooled sandbox's namespace");
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(pooled = %id, error = %e, "cannot remove a pooled sandbox's files");
        }
    }
}

/// The pause container's bundle: `hostname`, the namespace at `netns`, the cgroup
/// `/berth/<cgroup_id>`, the pids limit and `memory_bytes`; the CPU quota is set once it has
/// booted (a quota of a fraction of a core doubles the boot). A pooled sandbox's pause process
/// (`named_later`) takes the group's host name when a group takes it, with the capability
/// that needs.
pub fn pause_bundle(
    rootfs: PathBuf,
    hostname: String,
    netns: PathBuf,
    cgroup_id: &str,
    memory_bytes: Option<u64>,
    named_later: bool,
) -> BundleSpec {
    let capability_add = match named_later {
        true => vec![berth_runtime::RENAME_CAPABILITY.to_string()],
        false => Vec::new(),
    };
    BundleSpec {
        rootfs,
        args: berth_runtime::pause_args(named_later),
        env: vec!["PATH=/".to_string()],
        cwd: "/".to_string(),
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        hostname,
        netns: Some(netns),
        cpu: None,
        memory_bytes,
        pids_limit: Some(PIDS_LIMIT),
        cgroup_path: berth_runtime::cgroup::group_cgroup_path(cgroup_id),
        readonly_rootfs: true,
        capability_add,
        capability_drop: Vec::new(),
        sysctls: Vec::new(),
        binds: Vec::new(),
        seccomp: berth_runtime::seccomp::Seccomp::Default,
        user_map: None,
        volumes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_are_no_group_ids_and_are_recognised() {
        let a = new_pool_id();
        let b = new_pool_id();
        assert_ne!(a, b);
        assert!(is_pool_id(&a) && is_pool_id(&b), "{a} {b}");
        assert!(berth_core::GroupId::parse(&a).is_none());
        assert!(!is_pool_id("eci-0123456789abcdefghij"));
        assert!(!is_pool_id("gvp-"));
        assert!(!is_pool_id("gvp-../x"));
        assert_eq!(runsc_id("gvp-1"), "gvp-1.sandbox");
    }

    #[test]
    fn claims_are_recorded_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = crate::files::NodeDirs::new(dir.path()).group("eci-x");
        assert_eq!(claimed_by(&dirs), None);
        record_claim(&dirs, "gvp-12-0").unwrap();
        assert_eq!(claimed_by(&dirs).as_deref(), Some("gvp-12-0"));
        std::fs::write(dirs.root.join(CLAIM_FILE), "../../etc").unwrap();
        assert_eq!(claimed_by(&dirs), None);
        forget_claim(&dirs);
        assert_eq!(claimed_by(&dirs), None);
    }
}
