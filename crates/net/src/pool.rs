//! Network namespaces wired ahead of time.
//!
//! CNI ADD — a veth pair, an address, a route, a dozen netlink requests (`veth`) — is one of
//! the slower steps of a group's start. The pool keeps `pool_size` namespaces wired under names `warm-…`; a
//! starting group takes one over ([`Network::attach`]): the namespace is pinned under the
//! group's name and the cached result is renamed to the group, which costs a bind mount and
//! two renames instead of the ADD. [`Network::maintain_pool`] wires replacements in the
//! background. The CNI container id stays the pool name (kept in the record), so DEL
//! releases exactly what ADD reserved.
//!
//! A pool namespace is held by a descriptor of this process, not by a mount: every mount
//! on the host is copied by each container start (the OCI runtime's mount namespace, then
//! pivot_root's detach of the old root), and 128 idle pins there cost ~3 ms per start. The
//! ADD (and the plugins, for a list not berth's own) reaches a held namespace at
//! `/proc/<pid>/fd/<n>`. When berth ends, the pool's namespaces end with it and the kernel
//! removes their veth pairs; the next start releases the addresses their records still
//! reserve ([`Network::maintain_pool`]) and wires a new pool.
//!
//! Every step of a takeover leaves a state that the next start sorts out after a crash: the
//! group's pin is made first (a pin without a record is dropped by [`Network::attach`]),
//! then the record changes owner in one rename (from then on the namespace is the group's),
//! and address reservations that no record claims are released.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use crate::cache;
use crate::config;
use crate::error::NetError;
use crate::netns;
use crate::network::{validate_id, Network};
use crate::result::Attachment;

/// Names of the pool's namespaces start with this.
const WARM_PREFIX: &str = "warm-";
/// The longest pause after failed attempts to wire a pool namespace.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long no group must have taken a namespace before the pool is refilled: the ADDs
/// would compete with the starting groups for the CPU.
const QUIET: Duration = Duration::from_millis(100);
/// The longest a refill waits for the CPU to calm down.
const MAX_DEFER: Duration = Duration::from_secs(3);

/// The pool's bookkeeping: names ready to be taken, and the descriptors that hold the
/// namespaces (records and address reservations are on disk like any group's).
#[derive(Debug, Default)]
pub(crate) struct Pool {
    ready: Mutex<VecDeque<String>>,
    held: Mutex<HashMap<String, OwnedFd>>,
    broken: Mutex<Vec<String>>,
    wake: Notify,
    claims: AtomicU64,
}

/// Whether `id` names a pool namespace.
pub(crate) fn is_warm(id: &str) -> bool {
    id.starts_with(WARM_PREFIX)
}

fn new_warm_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{WARM_PREFIX}{nanos:x}-{seq}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Network {
    /// The group's wiring: what it already has, else a pool namespace taken over, else a
    /// namespace set up now. A cached result whose namespace is gone (after a host reboot)
    /// is torn down and replaced.
    pub async fn attach(&self, id: &str) -> Result<Attachment, NetError> {
        validate_id(id)?;
        if is_warm(id) {
            return Err(NetError::InvalidId {
                id: id.to_owned(),
                reason: "names starting with `warm-` belong to the namespace pool",
            });
        }
        match cache::read(&self.cfg.state_dir, id) {
            Some(rec) => match self.live_netns(id, &rec.attachment.netns) {
                Some(path) => {
                    let mut att = rec.attachment;
                    att.netns = path;
                    return Ok(att);
                }
                None => self.teardown(id).await?,
            },
            // A pin without a record (a takeover that did not finish), or a setup whose
            // ADD was cut short: DEL before ADD, so the address it reserved is released.
            None if self.interrupted(id) => {
                tracing::info!(id, "undoing a network setup that did not finish");
                self.teardown(id).await?
            }
            None => {}
        }
        if let Some(att) = self.claim(id) {
            return Ok(att);
        }
        self.setup(id).await
    }

    /// Pool namespaces ready to be taken over.
    pub fn pool_ready(&self) -> usize {
        lock(&self.pool.ready).len()
    }

    fn claim(&self, id: &str) -> Option<Attachment> {
        loop {
            let warm = lock(&self.pool.ready).pop_front()?;
            self.pool.claims.fetch_add(1, Ordering::Relaxed);
            self.pool.wake.notify_one();
            match self.take_over(&warm, id) {
                Ok(att) => {
                    tracing::debug!(id, pooled = %warm, ip = %att.ip, "took over a pooled namespace");
                    return Some(att);
                }
                Err(e) => {
                    tracing::warn!(id, pooled = %warm, error = %e, "pooled namespace unusable");
                    lock(&self.pool.broken).push(warm);
                }
            }
        }
    }

    fn take_over(&self, warm: &str, id: &str) -> Result<Attachment, NetError> {
        let state = &self.cfg.state_dir;
        let unusable = || NetError::NoAddress {
            id: warm.to_owned(),
        };
        let fd = lock(&self.pool.held).remove(warm).ok_or_else(unusable)?;
        let give_back = |fd| {
            lock(&self.pool.held).insert(warm.to_owned(), fd);
        };
        let Some(mut rec) = cache::read(state, warm) else {
            give_back(fd);
            return Err(unusable());
        };
        let old = rec.attachment.netns.clone();
        let path = self.netns_path(id);
        if let Err(e) = netns::bind(&netns::held_path(&fd), &path) {
            give_back(fd);
            return Err(e);
        }
        if let Err(e) = cache::rename(state, warm, id) {
            let _ = netns::remove(&path);
            give_back(fd);
            return Err(e);
        }
        // From here on the namespace is the group's, pinned at `path`; the descriptor goes.
        drop(fd);
        rec.attachment.netns = path.clone();
        rename_sandbox(&mut rec.result, &old, &path);
        if let Err(e) = cache::write(state, id, &rec) {
            // The record still names the descriptor's path; attach and teardown find the
            // group's pin by its name.
            tracing::warn!(id, error = %e, "cannot rewrite the taken-over network record");
        }
        Ok(rec.attachment)
    }

    /// Wires a pool namespace held by a descriptor; undoes everything on failure.
    async fn setup_warm(&self, id: &str) -> Result<(), NetError> {
        let fd = netns::create_held().await?;
        let path = netns::held_path(&fd);
        lock(&self.pool.held).insert(id.to_owned(), fd);
        if let Err(err) = self.wire(id, &path).await {
            tracing::warn!(id, error = %err, "wiring a pool namespace failed, undoing it");
            if let Err(undo) = self.teardown(id).await {
                tracing::warn!(id, error = %undo, "undoing a failed pool namespace failed");
            }
            lock(&self.pool.held).remove(id);
            return Err(err);
        }
        Ok(())
    }

    /// Where the namespace recorded for `id` can be reached now: its pin in the namespace
    /// directory, or the pool's descriptor for it. A recorded `/proc/<pid>/fd/<n>` path is
    /// never trusted by itself: after a restart it may name some other namespace.
    pub(crate) fn live_netns(&self, id: &str, recorded: &Path) -> Option<PathBuf> {
        if recorded.starts_with(&self.cfg.netns_dir) && netns::is_pinned(recorded) {
            return Some(recorded.to_owned());
        }
        if let Some(fd) = lock(&self.pool.held).get(id) {
            return Some(netns::held_path(fd));
        }
        let own = self.netns_path(id);
        netns::is_pinned(&own).then_some(own)
    }

    /// Forgets the descriptor of a pool namespace (it is torn down).
    pub(crate) fn drop_held(&self, id: &str) {
        lock(&self.pool.held).remove(id);
    }

    /// Keeps the pool full, forever: first removes what a former berth's pool left (its
    /// namespaces ended with it), then wires a replacement whenever one is taken.
    pub async fn maintain_pool(&self) {
        self.maintain_pool_around(&AtomicUsize::new(0)).await
    }

    /// [`Network::maintain_pool`], refilling only while `starting` (the caller's count of
    /// group starts in progress) is zero, or at the latest [`MAX_DEFER`] after a takeover.
    pub async fn maintain_pool_around(&self, starting: &AtomicUsize) {
        self.restore_pool().await;
        let mut failures = 0u32;
        loop {
            let broken = std::mem::take(&mut *lock(&self.pool.broken));
            for id in broken {
                if let Err(e) = self.teardown(&id).await {
                    tracing::warn!(id, error = %e, "cannot remove a broken pool namespace");
                }
            }
            if self.pool_ready() < self.cfg.pool_size {
                let id = new_warm_id();
                match self.setup_warm(&id).await {
                    Ok(()) => {
                        lock(&self.pool.ready).push_back(id);
                        failures = 0;
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let pause = Duration::from_millis(100)
                            .saturating_mul(1 << failures.min(9))
                            .min(MAX_BACKOFF);
                        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "cannot wire a pool namespace");
                        tokio::time::sleep(pause).await;
                    }
                }
                continue;
            }
            self.pool.wake.notified().await;
            self.wait_until_quiet(starting).await;
        }
    }

    /// Waits until no group took a namespace for [`QUIET`], no start is in progress and no
    /// more processes are runnable than there are CPUs (a burst of starts is over), but at
    /// most [`MAX_DEFER`].
    async fn wait_until_quiet(&self, starting: &AtomicUsize) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let began = tokio::time::Instant::now();
        loop {
            let seen = self.pool.claims.load(Ordering::Relaxed);
            tokio::time::sleep(QUIET).await;
            let calm = self.pool.claims.load(Ordering::Relaxed) == seen
                && starting.load(Ordering::Relaxed) == 0
                && runnable().is_none_or(|n| n <= cpus);
            if calm || began.elapsed() >= MAX_DEFER {
                return;
            }
        }
    }

    /// Tears down every pool namespace (at shutdown, so berth leaves nothing behind).
    pub async fn drain_pool(&self) {
        let mut ids: Vec<String> = lock(&self.pool.ready).drain(..).collect();
        ids.append(&mut lock(&self.pool.broken));
        for id in self.warm_on_disk() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let removals = ids.iter().map(|id| self.remove_warm(id));
        futures_util::future::join_all(removals).await;
        self.release_orphan_reservations();
    }

    async fn restore_pool(&self) {
        let mut removed = 0usize;
        for id in self.warm_on_disk() {
            if lock(&self.pool.held).contains_key(&id) {
                continue;
            }
            self.remove_warm(&id).await;
            removed += 1;
        }
        self.release_orphan_reservations();
        tracing::info!(
            removed,
            size = self.cfg.pool_size,
            "released what a former namespace pool left; wiring a new one"
        );
    }

    /// A pool namespace with a record is torn down; a bare pin (its record went to a group)
    /// is only unpinned.
    async fn remove_warm(&self, id: &str) {
        let res = if cache::read(&self.cfg.state_dir, id).is_some() {
            self.teardown(id).await
        } else {
            netns::remove(&self.netns_path(id))
        };
        if let Err(e) = res {
            tracing::warn!(id, error = %e, "cannot remove a pool namespace");
        }
    }

    fn warm_on_disk(&self) -> Vec<String> {
        let mut ids: Vec<String> = cache::ids(&self.cfg.state_dir);
        if let Ok(entries) = std::fs::read_dir(&self.cfg.netns_dir) {
            ids.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
        ids.retain(|id| is_warm(id) && validate_id(id).is_ok());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Releases address reservations that nothing holds: made for pool names that no record
    /// holds (a pool namespace whose setup was cut short by a crash or a shutdown), or for a
    /// group with neither a record nor an unfinished setup to undo. berth's own
    /// reservations and those `host-local` keeps for groups an earlier berth wired.
    fn release_orphan_reservations(&self) {
        self.addresses.rescan();
        let held: std::collections::HashSet<String> = cache::ids(&self.cfg.state_dir)
            .iter()
            .filter_map(|id| cache::read(&self.cfg.state_dir, id))
            .map(|rec| rec.container_id)
            .collect();
        // A group's reservation is looked at only after its file was read: a setup in
        // progress writes its intent before its ADD reserves anything.
        let orphan = |owner: &str| {
            !held.contains(owner)
                && (is_warm(owner)
                    || (validate_id(owner).is_ok()
                        && cache::read(&self.cfg.state_dir, owner).is_none()
                        && !self.interrupted(owner)))
        };
        for (owner, ip) in self.addresses.owners() {
            if orphan(&owner) {
                tracing::info!(owner, %ip, "releasing an orphaned address reservation");
                if let Err(e) = self.addresses.release(&owner) {
                    tracing::warn!(owner, error = %e, "cannot release an orphaned address");
                }
            }
        }
        let dir = config::ipam_dir(&self.cfg.state_dir).join(&self.cfg.network_name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // host-local keeps one file per address, named by it, beside its own files
            // (`lock`, `last_reserved_ip.0`).
            let is_address = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok());
            if !is_address {
                continue;
            }
            let Some(owner) = reservation_owner(&path) else {
                continue;
            };
            if orphan(&owner) {
                tracing::info!(owner, file = %path.display(), "releasing an orphaned host-local reservation");
                let _ = std::fs::remove_file(&path);
                let _ = self.addresses.release(&owner);
            }
        }
    }
}

/// Processes runnable right now (the fourth field of /proc/loadavg, `running/total`), this
/// process's own thread included.
fn runnable() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_runnable(&text)
}

fn parse_runnable(loadavg: &str) -> Option<usize> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The container id in a host-local reservation file (`<id>\r\n<ifname>`).
fn reservation_owner(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.lines().next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// Points the result's interfaces that were in the namespace at `old` to `new`.
pub(crate) fn rename_sandbox(result: &mut Value, old: &Path, new: &Path) {
    let (Some(old), Some(new)) = (old.to_str(), new.to_str()) else {
        return;
    };
    if let Some(ifaces) = result.get_mut("interfaces").and_then(Value::as_array_mut) {
        for iface in ifaces {
            if iface.get("sandbox").and_then(Value::as_str) == Some(old) {
                iface["sandbox"] = Value::String(new.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_ids_are_valid_and_distinct() {
        let a = new_warm_id();
        let b = new_warm_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(is_warm(id));
            assert!(validate_id(id).is_ok(), "{id}");
        }
        assert!(!is_warm("eci-abc"));
    }

    #[test]
    fn sandbox_paths_follow_the_namespace() {
        let mut result = serde_json::json!({
            "interfaces": [
                {"name": "berth0"},
                {"name": "veth1"},
                {"name": "eth0", "sandbox": "/n/warm-1"},
            ]
        });
        rename_sandbox(&mut result, Path::new("/n/warm-1"), Path::new("/n/eci-1"));
        assert_eq!(result["interfaces"][2]["sandbox"], "/n/eci-1");
        assert!(result["interfaces"][0].get("sandbox").is_none());
    }

    #[test]
    fn runnable_processes_are_read_from_loadavg() {
        assert_eq!(parse_runnable("0.52 0.58 0.59 3/467 12345\n"), Some(3));
        assert_eq!(parse_runnable("garbage"), None);
        assert!(runnable().is_some());
    }

    #[test]
    fn reservation_files_name_their_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("10.0.0.2");
        std::fs::write(&file, "warm-1\r\neth0").expect("write");
        assert_eq!(reservation_owner(&file).as_deref(), Some("warm-1"));
        std::fs::write(&file, "").expect("write");
        assert_eq!(reservation_owner(&file), None);
    }
}
