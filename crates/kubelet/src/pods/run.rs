//! The controller's loop: a watch of the pods bound to the node (kube's watcher: a list, then
//! a watch with bookmarks, listed again after a 410 Gone), berth's groups followed every
//! [`FOLLOW_INTERVAL`] by reading only those that changed lately (one call while few change,
//! however many groups there are) and the groups being deleted by id, a full list of berth's
//! groups of pods every [`SWEEP_INTERVAL`] (and whenever a follow was missed; it also brings
//! up the running pods whose volumes are due to be rendered again), and a queue of pods to
//! try again, each with its own back-off.
//!
//! Whatever brings a pod up queues it; up to `PodConfig::workers` pods are reconciled at once,
//! one reconcile per pod at a time (a pod brought up again while its reconcile runs is
//! reconciled once more after it, with what is known then). The loop alone owns the state:
//! reconciles get copies of the pod and its group and hand back their outcome.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Duration;

use berth_client::response::ContainerGroup;
use berth_core::GroupStatus;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{pod_uid, Error, Groups, Outcome, PodController};

/// How often the groups that changed lately are read: a group's change reaches its pod within
/// about this.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How far back each follow reads: three follows overlap, so one slow or failed read loses
/// nothing; a gap longer than this makes the next read a full sweep.
pub const CHANGED_WINDOW: Duration = Duration::from_secs(3);
/// How often every group of a pod is listed anyway (groups gone outside the cluster, orphans),
/// unless `PodConfig::full_resync` says otherwise.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Ids per DescribeContainerGroups call (ECI's most).
const IDS_PER_CALL: usize = 20;
/// Longest wait before a failing pod is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The loop's view of the node: pods from the watch, groups from the last list, pods to try
/// again.
#[derive(Default)]
struct State {
    pods: BTreeMap<String, Pod>,
    groups: BTreeMap<String, ContainerGroup>,
    /// Pod uid → (when, the back-off after that).
    retry: BTreeMap<String, (Instant, Duration)>,
    /// The back-off of pods whose retry is under way: the wait after a further failure.
    backoff: BTreeMap<String, Duration>,
    /// Pods seen during a (re-)list, to forget those that went while the watch was down.
    listing: Option<BTreeSet<String>>,
    /// Whether the watch has listed the node's pods once: until then no group is an orphan.
    synced: bool,
    /// When berth's groups were last read in full or followed without a gap.
    followed: Option<Instant>,
    /// Pods waiting for a reconcile, each once (`queued`), in the order they came up: those
    /// that have a group (a status to patch, a deletion) before those whose group is still
    /// to be made, so a burst of new pods does not hold back the status of the running ones.
    known_queue: VecDeque<String>,
    queue: VecDeque<String>,
    queued: BTreeSet<String>,
    /// Pods being reconciled, and those of them brought up again meanwhile.
    running: BTreeSet<String>,
    again: BTreeSet<String>,
}

/// A reconcile under way: the pod's uid and what it came to.
type Reconcile<'a> = Pin<Box<dyn Future<Output = (String, Result<Outcome, Error>)> + Send + 'a>>;

/// Most pods reconciled at once unless `PodConfig::workers` says otherwise (virtual-kubelet's
/// `--pod-sync-workers` default).
pub const POD_SYNC_WORKERS: usize = 10;

impl<G: Groups> PodController<G> {
    /// Runs until `shutdown` turns true: resyncs, then reconciles every pod of the node as
    /// the watch, the group list and the retry queue bring it up.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut st = State::default();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.resync().await {
                Ok(groups) => {
                    st.groups = groups;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "resyncing the node's groups"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let api: Api<Pod> = Api::all(self.client.clone());
        let wc =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.cfg.node_name));
        let mut events = pin!(watcher::watcher(api, wc).default_backoff());
        st.followed = Some(Instant::now());
        let mut sweep = tokio::time::interval(self.cfg.full_resync.max(FOLLOW_INTERVAL));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.tick().await;
        let mut follow = tokio::time::interval(FOLLOW_INTERVAL);
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        follow.tick().await;
        let mut running: FuturesUnordered<Reconcile<'_>> = FuturesUnordered::new();
        while !*shutdown.borrow() {
            self.start_reconciles(&mut st, &mut running);
            let due = st.retry.values().map(|r| r.0).min();
            tokio::select! {
                Some((uid, res)) = running.next(), if !running.is_empty() => {
                    self.finished(&mut st, &uid, res);
                }
                ev = events.next() => match ev {
                    Some(Ok(ev)) => self.on_event(&mut st, ev).await,
                    Some(Err(e)) => tracing::warn!(error = %e, "watching the node's pods"),
                    None => break,
                },
                _ = sweep.tick() => self.sweep(&mut st).await,
                _ = follow.tick() => self.follow(&mut st).await,
                _ = sleep_until(due) => {
                    let now = Instant::now();
                    let ready: Vec<String> = st.retry.iter().filter(|r| r.1 .0 <= now).map(|r| r.0.clone()).collect();
                    for uid in ready {
                        if let Some((_, next)) = st.retry.remove(&uid) {
                            st.backoff.insert(uid.clone(), next);
                        }
                        self.handle(&mut st, &uid);
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn on_event(&self, st: &mut State, ev: Event<Pod>) {
        match ev {
            Event::Init => st.listing = Some(BTreeSet::new()),
            Event::InitApply(p) | Event::Apply(p) => {
                let Some(uid) = p.metadata.uid.clone() else {
                    return;
                };
                if let Some(l) = st.listing.as_mut() {
                    l.insert(uid.clone());
                }
                self.known.set(&uid, &p);
                st.pods.insert(uid.clone(), p);
                self.handle(st, &uid);
            }
            Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid.clone() {
                    // The object as deleted: its deletion grace period (0 when forced).
                    st.pods.insert(uid.clone(), p);
                    self.forget(st, &uid).await;
                }
            }
            Event::InitDone => {
                st.synced = true;
                let seen = st.listing.take().unwrap_or_default();
                let gone: Vec<String> = st
                    .pods
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.forget(st, &uid).await;
                }
            }
        }
    }

    /// A pod that left the API server: its group, if any, goes too.
    async fn forget(&self, st: &mut State, uid: &str) {
        self.known.remove(uid);
        let grace = st.pods.remove(uid).as_ref().and_then(super::deletion_grace);
        st.retry.remove(uid);
        st.backoff.remove(uid);
        self.forget_pod(uid);
        if let Some(g) = st.groups.remove(uid).filter(|g| !super::terminating(g)) {
            if let Err(e) = self.groups.delete(&g.container_group_id, grace).await {
                tracing::warn!(group = %g.container_group_id, error = %e, "deleting the group of a pod that is gone");
                st.groups.insert(uid.to_string(), g);
            }
        }
    }

    /// Reads the groups that changed within [`CHANGED_WINDOW`] and the groups being deleted,
    /// and reconciles the pods whose group changed or went. After a gap longer than the
    /// window (a failed read, a long reconcile), sweeps instead.
    async fn follow(&self, st: &mut State) {
        let started = Instant::now();
        let gap = st
            .followed
            .is_none_or(|t| started.duration_since(t) + FOLLOW_INTERVAL > CHANGED_WINDOW);
        if gap {
            return self.sweep(st).await;
        }
        let changed = match self.groups.changed(CHANGED_WINDOW).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading berth's changed groups");
                return;
            }
        };
        let mut touched = BTreeSet::new();
        for g in changed {
            let Some(uid) = pod_uid(&g).map(str::to_string) else {
                continue;
            };
            // Groups of unknown pods are the sweep's: it alone tells orphans.
            if st.pods.contains_key(&uid) && st.groups.get(&uid) != Some(&g) {
                st.groups.insert(uid.clone(), g);
                touched.insert(uid);
            }
        }
        let deleting: Vec<(String, String)> = st
            .groups
            .iter()
            .filter(|(_, g)| super::terminating(g))
            .map(|(u, g)| (u.clone(), g.container_group_id.clone()))
            .collect();
        for chunk in deleting.chunks(IDS_PER_CALL) {
            let ids: Vec<String> = chunk.iter().map(|c| c.1.clone()).collect();
            let found = match self.groups.get(&ids).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "reading berth's groups being deleted");
                    return;
                }
            };
            for (uid, id) in chunk {
                if !found.iter().any(|g| &g.container_group_id == id) {
                    st.groups.remove(uid);
                    touched.insert(uid.clone());
                }
            }
        }
        st.followed = Some(started);
        for uid in touched {
            if !st.retry.contains_key(&uid) {
                self.handle(st, &uid);
            }
        }
    }

    /// Lists the groups; deletes those whose pod is gone, reconciles the pods whose group
    /// changed.
    async fn sweep(&self, st: &mut State) {
        let started = Instant::now();
        let listed = match self.groups.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing berth's groups");
                return;
            }
        };
        st.followed = Some(started);
        let mut fresh = BTreeMap::new();
        for g in listed {
            if let Some(uid) = pod_uid(&g).map(str::to_string) {
                fresh.insert(uid, g);
            }
        }
        if st.synced && st.listing.is_none() {
            let orphans: Vec<String> = fresh
                .keys()
                .filter(|u| !st.pods.contains_key(*u))
                .cloned()
                .collect();
            for uid in orphans {
                if let Some(g) = fresh.remove(&uid) {
                    st.groups.insert(uid.clone(), g);
                    self.forget(st, &uid).await;
                }
            }
        }
        // Pods whose group changed, and running pods whose volumes are due to be rendered
        // again (see `refresh`).
        let changed: Vec<String> = st
            .pods
            .iter()
            .filter(|(u, p)| {
                !st.retry.contains_key(*u)
                    && (fresh.get(*u) != st.groups.get(*u)
                        || (fresh.get(*u).is_some_and(super::refresh::running)
                            && self.volumes_due(p)))
            })
            .map(|(u, _)| u.clone())
            .collect();
        st.groups = fresh;
        for uid in changed {
            self.handle(st, &uid);
        }
    }

    /// Queues the pod for a reconcile (once more after the one under way, if any).
    fn handle(&self, st: &mut State, uid: &str) {
        if st.running.contains(uid) {
            st.again.insert(uid.to_string());
        } else if st.queued.insert(uid.to_string()) {
            if st.groups.contains_key(uid) {
                st.known_queue.push_back(uid.to_string());
            } else {
                st.queue.push_back(uid.to_string());
            }
        }
    }

    /// Starts queued reconciles while fewer than the workers run.
    fn start_reconciles<'a>(
        &'a self,
        st: &mut State,
        running: &mut FuturesUnordered<Reconcile<'a>>,
    ) {
        while running.len() < self.cfg.workers.max(1) {
            let Some(uid) = st.known_queue.pop_front().or_else(|| st.queue.pop_front()) else {
                return;
            };
            st.queued.remove(&uid);
            let Some(pod) = st.pods.get(&uid).cloned() else {
                st.retry.remove(&uid);
                continue;
            };
            let group = st.groups.get(&uid).cloned();
            st.running.insert(uid.clone());
            running.push(Box::pin(async move {
                let res = self.reconcile(&pod, group.as_ref()).await;
                (uid, res)
            }));
        }
    }

    /// Takes in a reconcile's outcome; schedules the pod again with back-off when it failed.
    fn finished(&self, st: &mut State, uid: &str, res: Result<Outcome, Error>) {
        st.running.remove(uid);
        match res {
            Ok(outcome) => {
                st.retry.remove(uid);
                st.backoff.remove(uid);
                match outcome {
                    Outcome::Removed => {
                        st.groups.remove(uid);
                    }
                    // Until the next list shows it: not deleted again on the next event.
                    Outcome::Deleting => {
                        if let Some(g) = st.groups.get_mut(uid) {
                            g.status = GroupStatus::Terminating.as_str().into();
                        }
                    }
                    _ => {}
                }
            }
            Err(e) => {
                let wait = st
                    .backoff
                    .remove(uid)
                    .or_else(|| st.retry.get(uid).map(|r| r.1))
                    .unwrap_or(FIRST_BACKOFF);
                tracing::warn!(pod_uid = %uid, error = %e, retry_in = ?wait, "reconciling a pod");
                st.retry.insert(
                    uid.to_string(),
                    (Instant::now() + wait, (wait * 2).min(MAX_BACKOFF)),
                );
            }
        }
        if st.again.remove(uid) && !st.retry.contains_key(uid) {
            self.handle(st, uid);
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
