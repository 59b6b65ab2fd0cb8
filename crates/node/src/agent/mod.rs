//! [`Agent`]: the node agent's entry points — apply a group record, remove a group, shut
//! down, collect what unknown groups left — over one [`Supervisor`] per group it runs. Its
//! other faces are the image caches ([`cache`]) and exec, logs and metrics ([`observe`]).

mod cache;
mod observe;
mod removals;

pub use observe::DEFAULT_INTERVAL;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::{GroupId, GroupRecord};
use berth_runtime::logs;
use tokio::task::JoinHandle;

use crate::config::{NodeConfig, NodeError, Reporter};
use crate::files::{log_runs, LogSelector};
use crate::group::Supervisor;
use crate::host::Host;
use crate::metrics::MetricRings;

/// A group's supervisor; locked while it converges or releases the group, so that the
/// applications and the removal of one group never overlap.
type Slot = Arc<tokio::sync::Mutex<Supervisor>>;

/// The node agent of this host.
#[derive(Clone)]
pub struct Agent {
    host: Arc<Host>,
    /// The groups whose task runs (or is about to).
    groups: Arc<Mutex<HashMap<GroupId, Slot>>>,
    metrics: Arc<MetricRings>,
    /// The tasks that keep the namespace pool and the spare directories full.
    pool_tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The removals under way and when their containers are killed.
    removals: Arc<removals::Removals>,
    /// Runs removed by a control plane that applies records from a watch (`fence`): a record
    /// of such a run (or an older one) is not applied again.
    fenced: Arc<Mutex<HashMap<GroupId, u64>>>,
}

/// The most fenced runs remembered; past it the memory starts over (a record of a fenced run
/// reaching the node that late is then not stopped by the fence, only by the control plane).
const MAX_FENCED: usize = 65_536;

impl Agent {
    pub fn new(cfg: NodeConfig, reporter: Arc<dyn Reporter>) -> Result<Self, NodeError> {
        Ok(Self {
            host: Arc::new(Host::open(cfg, reporter)?),
            groups: Arc::default(),
            metrics: Arc::default(),
            pool_tasks: Arc::default(),
            removals: Arc::default(),
            fenced: Arc::default(),
        })
    }

    /// Starts the tasks that keep the network namespace pool full (it first removes what a
    /// former berth's pool left) and the spare group directories made.
    pub fn start_netns_pool(&self) {
        let tasks = self.host.spawn_pools();
        let old = std::mem::replace(&mut *lock(&self.pool_tasks), tasks);
        for task in old {
            task.abort();
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Slot>> {
        lock(&self.groups)
    }

    /// The groups this agent runs now.
    pub(crate) fn group_ids(&self) -> Vec<GroupId> {
        self.groups().keys().cloned().collect()
    }

    /// Marks the run `generation` of a group (and those before it) removed: no record of it
    /// is applied again. A node of a cluster gets records from its watch while removals come
    /// as calls of their own; a record on its way when the removal came must not bring the
    /// group back.
    pub fn fence(&self, id: &GroupId, generation: u64) {
        let mut fenced = lock(&self.fenced);
        if fenced.len() >= MAX_FENCED {
            fenced.clear();
        }
        let g = fenced.entry(id.clone()).or_insert(generation);
        *g = (*g).max(generation);
    }

    /// Whether `rec` is of a fenced run (a newer run lifts the fence).
    fn fenced(&self, rec: &GroupRecord) -> bool {
        let mut fenced = lock(&self.fenced);
        match fenced.get(&rec.id) {
            Some(&g) if rec.restart_generation <= g => true,
            Some(_) => {
                fenced.remove(&rec.id);
                false
            }
            None => false,
        }
    }

    /// Converges to `rec` (see [`Supervisor::apply`]): returns at once unless the
    /// containers of a group must be stopped first. A group being removed, or a run that was
    /// fenced, is left alone.
    pub async fn apply(&self, rec: GroupRecord) {
        let id = rec.id.clone();
        let slot = {
            let mut groups = self.groups();
            // Checked under the groups' lock, which a removal takes after its claim: either
            // this sees the claim, or the removal finds the slot made here and removes it.
            if self.removals.is_claimed(&id) || self.fenced(&rec) {
                tracing::debug!(group = %id, generation = rec.restart_generation, "not applied: the group's run was removed");
                return;
            }
            groups
                .entry(id.clone())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(Supervisor::new(
                        self.host.clone(),
                        id.clone(),
                    )))
                })
                .clone()
        };
        let mut sup = slot.lock().await;
        sup.apply(rec).await;
        if !sup.is_running() {
            // A finished group: nothing of it runs until it is removed.
            let mut groups = self.groups();
            if groups.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                groups.remove(&id);
            }
        }
    }

    /// Stops the group's containers and releases everything of it on this host. While a
    /// removal of the group is under way, a second one only brings the kill of its
    /// containers forward to `grace` from now, when that is sooner, and returns at once.
    pub async fn remove(
        &self,
        id: &GroupId,
        spec: Option<&berth_core::GroupSpec>,
        grace: Duration,
    ) -> Result<(), NodeError> {
        match self.removals.claim(id, grace) {
            removals::Claim::Remove(by) => self.remove_claimed(id, spec, grace, by).await,
            removals::Claim::Joined(_) => {
                tracing::info!(group = %id, grace_s = grace.as_secs(), "a removal under way gets a grace period of its own");
                Ok(())
            }
        }
    }

    /// As [`Agent::remove`], but returns only once the group is removed: a removal under way
    /// is brought forward and waited for, then done again (nothing is left to do when it
    /// succeeded; its error comes back when it failed). A control plane of several replicas
    /// may ask for one group's removal through each of them.
    pub async fn remove_fully(
        &self,
        id: &GroupId,
        spec: Option<&berth_core::GroupSpec>,
        grace: Duration,
    ) -> Result<(), NodeError> {
        loop {
            match self.removals.claim(id, grace) {
                removals::Claim::Remove(by) => {
                    return self.remove_claimed(id, spec, grace, by).await
                }
                removals::Claim::Joined(mut under_way) => {
                    tracing::info!(group = %id, grace_s = grace.as_secs(), "waiting for the removal under way");
                    while under_way.changed().await.is_ok() {}
                }
            }
        }
    }

    async fn remove_claimed(
        &self,
        id: &GroupId,
        spec: Option<&berth_core::GroupSpec>,
        grace: Duration,
        kill_by: crate::group::KillBy,
    ) -> Result<(), NodeError> {
        // Ends the claim however this ends, a caller that gives up on it included: a
        // claim left behind would make every later removal of the group wait for it.
        struct Finish<'a>(&'a removals::Removals, &'a GroupId);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                self.0.finish(self.1);
            }
        }
        let _finish = Finish(&self.removals, id);
        let slot = self.groups().remove(id);
        self.metrics.forget(id);
        match slot {
            Some(slot) => slot.lock().await.remove(spec, grace, kill_by).await,
            None => {
                Supervisor::new(self.host.clone(), id.clone())
                    .remove(spec, grace, kill_by)
                    .await
            }
        }
    }

    /// Log text of a container: its current (latest) run or the one before.
    pub fn read_log(
        &self,
        id: &GroupId,
        container: &str,
        which: LogSelector,
        q: &logs::LogQuery,
    ) -> Result<String, NodeError> {
        let dirs = self.host.dirs.group(id.as_str());
        let runs = log_runs(&dirs, container);
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

    /// The mount point of the groups' temporary storage, when it is sized.
    pub fn storage_root(&self) -> Option<std::path::PathBuf> {
        self.host.storage.as_ref().map(|s| s.root().to_path_buf())
    }

    /// The references of the images the node stores, most recently used first, at most `n`.
    pub fn recent_images(&self, n: usize) -> Vec<String> {
        match self.host.images.list() {
            Ok(list) => list.into_iter().take(n).map(|i| i.reference).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stored images");
                Vec::new()
            }
        }
    }

    /// The runtime classes this node runs (what `berth serve` detected at start).
    pub fn runtime_classes(&self) -> Vec<crate::ClassSupport> {
        self.host.classes()
    }

    /// Called when berth stops: containers keep running; host state that only berth itself
    /// holds (the namespace pool, and the namespace directory's mount and the subnet's
    /// masquerade rule when no group needs them) is released.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *lock(&self.pool_tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.host.release().await;
    }

    /// Removes what groups unknown to the control plane left on this host (after a crash
    /// between releasing a group and forgetting it).
    pub async fn collect_garbage(&self, known: &[GroupId]) {
        let known: std::collections::HashSet<&str> = known.iter().map(|g| g.as_str()).collect();
        let mut orphans: Vec<String> = self
            .host
            .net
            .known()
            .into_iter()
            .filter(|g| !known.contains(g.as_str()))
            .collect();
        let userns = self.host.userns.as_ref().map(|u| u.groups());
        for name in self
            .host
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
        for owner in self.host.images.pins().into_keys() {
            let Some(gid) = owner.strip_prefix("group:") else {
                continue;
            };
            if !known.contains(gid) {
                tracing::info!(group = %gid, "releasing the image pins of an unknown group");
                self.host.images.unpin_deferred(&owner);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
