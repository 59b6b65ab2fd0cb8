//! The pod controller: runs the pods bound to the virtual node as container groups.
//!
//! [`PodController::reconcile`] brings one pod and its group together: creates the group of
//! a new pod (its inputs read from the API server, mapped by [`crate::pod_to_group`], the pod's
//! uid as ClientToken and tag), gives a pod berth cannot run a Failed status once, patches
//! the pod's status from its group when it differs, and on deletion deletes the group and
//! then, once it is gone, the pod. [`PodController::resync`] runs at start: groups whose pod is gone are
//! deleted. The group's events are posted on the pod (`events.rs`). The files of a running
//! pod's configMap, secret, projected and downwardAPI volumes follow their objects and its
//! service-account tokens are refreshed (`refresh.rs`, `tokens.rs`). The loop in `run.rs`
//! feeds it from a watch of the node's pods and a periodic list of berth's groups. berth is reached through [`Groups`]; every error returned is
//! tried again with back-off (a permanent failure is a pod status, not an error).

mod events;
mod groups;
mod objects;
mod refresh;
mod resolve;
mod run;
#[cfg(test)]
mod tests;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_client::response::ContainerGroup;
use berth_core::GroupStatus;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use crate::error::{PodError, FAILED_REASON};
use crate::inputs::ClusterDns;
use crate::status::group_to_pod_status;

pub use groups::{pod_uid, Groups, GroupsError};
pub use run::{CHANGED_WINDOW, FOLLOW_INTERVAL, MAX_BACKOFF, POD_SYNC_WORKERS, SWEEP_INTERVAL};

/// How often a running pod's volumes are rendered again by default (the kubelet's
/// `syncFrequency`): a change of a ConfigMap or Secret reaches the files within about this
/// and the full resync period.
pub const VOLUME_RESYNC: Duration = Duration::from_secs(60);

/// The message of a pod whose group went while the pod was not deleted.
const GROUP_GONE: &str = "the pod's container group was deleted outside the cluster";
/// Tries of one status patch that meets conflicts, each on a freshly read pod.
const PATCH_TRIES: usize = 3;

/// Where the controller runs.
#[derive(Clone, Debug)]
pub struct PodConfig {
    pub node_name: String,
    /// The node's address: the pods' `status.hostIP`.
    pub host_ip: String,
    pub cluster_dns: Option<ClusterDns>,
    /// How often every group of a pod is listed anyway ([`SWEEP_INTERVAL`] by default).
    pub full_resync: Duration,
    /// Most pods reconciled at once ([`POD_SYNC_WORKERS`] by default).
    pub workers: usize,
    /// Least time between two renderings of a running pod's volumes ([`VOLUME_RESYNC`] by
    /// default); a token due to be refreshed renders them at once.
    pub volume_resync: Duration,
}

/// A failed step of a reconcile; each is tried again with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API server: {0}")]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Berth(#[from] GroupsError),
    /// An object the pod references does not exist yet.
    #[error("waiting: {0}")]
    Waiting(PodError),
}

/// What one reconcile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    /// The pod got its Failed status: berth cannot run it.
    Refused,
    StatusPatched,
    Unchanged,
    /// The pod is deleted; its group is being deleted.
    Deleting,
    /// The pod's group is gone and the pod removed from the API server.
    Removed,
}

/// The node's pods as the controller's watch last saw them, shared with the kubelet API's
/// `/pods`.
#[derive(Default)]
pub struct KnownPods(std::sync::RwLock<BTreeMap<String, std::sync::Arc<Pod>>>);

impl KnownPods {
    /// Every pod, in uid order.
    pub fn all(&self) -> Vec<std::sync::Arc<Pod>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn set(&self, uid: &str, pod: &Pod) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_string(), std::sync::Arc::new(pod.clone()));
    }

    pub(crate) fn remove(&self, uid: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

/// The pod controller of one node.
pub struct PodController<G> {
    client: kube::Client,
    groups: G,
    cfg: PodConfig,
    posted: events::Posted,
    known: std::sync::Arc<KnownPods>,
    tokens: tokens::Tokens,
    checked: refresh::Checked,
    objects: objects::Objects,
    /// The deletion grace period last sent to berth for each pod being deleted.
    sent_grace: std::sync::Mutex<BTreeMap<String, Option<u64>>>,
}

fn pod_key(p: &Pod) -> Option<(&str, &str, &str)> {
    let m = &p.metadata;
    Some((
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref()?,
        m.uid.as_deref()?,
    ))
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether merging `new` into the pod's status (as the status patch does) changes it.
fn changes(current: Option<&PodStatus>, new: &PodStatus) -> bool {
    let (Ok(mut merged), Ok(patch)) = (
        serde_json::to_value(current.cloned().unwrap_or_default()),
        serde_json::to_value(new),
    ) else {
        return true;
    };
    let before = merged.clone();
    merge(&mut merged, &patch);
    merged != before
}

/// A JSON merge patch (RFC 7386): objects merge key by key, `null` removes, the rest replaces.
pub(crate) fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Whether berth is deleting the group already (a second delete would only start over).
pub(crate) fn terminating(g: &ContainerGroup) -> bool {
    GroupStatus::parse(&g.status) == Some(GroupStatus::Terminating)
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl<G: Groups> PodController<G> {
    pub fn new(client: kube::Client, groups: G, cfg: PodConfig) -> Self {
        Self {
            client,
            groups,
            cfg,
            posted: events::Posted::default(),
            known: Default::default(),
            tokens: Default::default(),
            checked: Default::default(),
            objects: Default::default(),
            sent_grace: Default::default(),
        }
    }

    pub fn config(&self) -> &PodConfig {
        &self.cfg
    }

    /// The node's pods as the watch sees them, kept up to date while [`Self::run`] runs.
    pub fn known_pods(&self) -> std::sync::Arc<KnownPods> {
        self.known.clone()
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The start of a run: lists the node's pods and berth's groups of pods, deletes the
    /// groups whose pod is gone, and returns the others by pod uid (so that no pod with a
    /// group is created twice).
    pub async fn resync(&self) -> Result<BTreeMap<String, ContainerGroup>, Error> {
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", self.cfg.node_name));
        let pods: Api<Pod> = Api::all(self.client.clone());
        let live: BTreeSet<String> = pods
            .list(&lp)
            .await?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect();
        let mut out = BTreeMap::new();
        for g in self.groups.list().await? {
            let Some(uid) = pod_uid(&g).map(str::to_string) else {
                continue;
            };
            if live.contains(&uid) {
                out.insert(uid, g);
            } else if !terminating(&g) {
                tracing::info!(group = %g.container_group_id, pod_uid = %uid, "deleting the group of a pod that is gone");
                self.groups.delete(&g.container_group_id, None).await?;
            }
        }
        Ok(out)
    }

    /// Brings `pod` and its group (`None` when it has none) together.
    pub async fn reconcile(
        &self,
        pod: &Pod,
        group: Option<&ContainerGroup>,
    ) -> Result<Outcome, Error> {
        let Some((ns, name, uid)) = pod_key(pod) else {
            return Ok(Outcome::Unchanged);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.delete(pod, group).await;
        }
        if let Some(g) = group {
            self.refresh_volumes(pod, g).await?;
            return self.patch_status(pod, g).await;
        }
        if finished(pod) {
            return Ok(Outcome::Unchanged);
        }
        if pod.status.as_ref().is_some_and(|s| s.host_ip.is_some()) {
            // The pod ran here and its group went without the pod being deleted: the pod
            // fails (its controller replaces it), its group is not made again behind it.
            return self.refuse(pod, GROUP_GONE).await;
        }
        if let Err(e) = resolve::check(pod) {
            return self.refuse(pod, &e.to_string()).await;
        }
        let inputs = resolve::resolve(
            &self.client,
            pod,
            &self.cfg.host_ip,
            self.cfg.cluster_dns.as_ref(),
            &self.tokens,
            resolve::Reads::Fresh,
        )
        .await?;
        let params = match crate::pod_to_group(pod, &inputs) {
            Ok(p) => p,
            Err(e) if e.is_permanent() => return self.refuse(pod, &e.to_string()).await,
            Err(e) => return Err(Error::Waiting(e)),
        };
        match self.groups.create(&params).await {
            Ok(id) => {
                self.checked.mark(uid);
                tracing::info!(pod = %format!("{ns}/{name}"), group = %id, "created the pod's group");
                Ok(Outcome::Created(id))
            }
            Err(GroupsError::Refused(m)) => self.refuse(pod, &m).await,
            Err(e) => Err(e.into()),
        }
    }

    /// A deleted pod: its group is deleted (berth stops the containers within the group's
    /// grace period, the pod's terminationGracePeriodSeconds, and keeps the group listed as
    /// Terminating until they are); once the group is gone the pod is removed from the API
    /// server (grace period 0, on the pod's uid), as the kubelet does. A pod deleted again
    /// with a shorter grace period while its group is Terminating has it sent to berth, which
    /// cuts the stop under way short.
    async fn delete(&self, pod: &Pod, group: Option<&ContainerGroup>) -> Result<Outcome, Error> {
        let Some((ns, name, uid)) = pod_key(pod) else {
            return Ok(Outcome::Unchanged);
        };
        if let Some(g) = group {
            let grace = deletion_grace(pod);
            let sent = self
                .sent_grace
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(uid)
                .copied();
            if !terminating(g) || (grace.is_some() && sent != Some(grace)) {
                self.groups.delete(&g.container_group_id, grace).await?;
                self.sent_grace
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(uid.to_string(), grace);
            }
            return Ok(Outcome::Deleting);
        }
        self.sent_grace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods(ns).delete(name, &dp).await {
            Ok(_) => Ok(Outcome::Removed),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(Outcome::Removed),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the pod its Failed status with `message`.
    async fn refuse(&self, pod: &Pod, message: &str) -> Result<Outcome, Error> {
        let status = PodStatus {
            phase: Some("Failed".into()),
            reason: Some(FAILED_REASON.into()),
            message: Some(message.to_string()),
            ..Default::default()
        };
        self.send_status(pod, |_| status.clone()).await?;
        Ok(Outcome::Refused)
    }

    /// Patches the pod's status from its group when they differ, and posts the group's new
    /// events on the pod.
    async fn patch_status(&self, pod: &Pod, g: &ContainerGroup) -> Result<Outcome, Error> {
        let host_ip = self.cfg.host_ip.clone();
        let sent = self
            .send_status(pod, |p| {
                group_to_pod_status(p, g, &host_ip, Timestamp::now()).status
            })
            .await?;
        let update = group_to_pod_status(pod, g, &host_ip, Timestamp::now());
        events::post(&self.client, &self.posted, pod, &update.events).await?;
        Ok(if sent {
            Outcome::StatusPatched
        } else {
            Outcome::Unchanged
        })
    }

    /// Forgets what is kept of a pod that is gone: the events posted on it, its tokens, when
    /// its volumes were rendered, the grace period its deletion sent.
    pub(crate) fn forget_pod(&self, uid: &str) {
        self.posted.forget(uid);
        self.tokens.forget(uid);
        self.checked.forget(uid);
        self.sent_grace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// Patches the status `make` gives for the pod, unless the pod has it already. The patch
    /// carries the pod's resourceVersion: on a conflict the pod is read again and the status
    /// made again from it. Returns whether a patch was sent.
    async fn send_status(
        &self,
        pod: &Pod,
        make: impl Fn(&Pod) -> PodStatus,
    ) -> Result<bool, Error> {
        let Some((ns, name, uid)) = pod_key(pod) else {
            return Ok(false);
        };
        let api = self.pods(ns);
        let mut current = pod.clone();
        let mut tries = 0;
        loop {
            tries += 1;
            let status = make(&current);
            if !changes(current.status.as_ref(), &status) {
                return Ok(false);
            }
            let patch = json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "status": status,
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if api_code(&e) == Some(409) && tries < PATCH_TRIES => {
                    current = api.get(name).await?;
                    if current.metadata.uid.as_deref() != Some(uid) {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The pod's deletion grace period (`kubectl delete --grace-period`, 0 when forced), in
/// seconds: what its containers get between SIGTERM and SIGKILL, as the kubelet gives them.
pub(crate) fn deletion_grace(pod: &Pod) -> Option<u64> {
    pod.metadata
        .deletion_grace_period_seconds
        .map(|g| g.max(0) as u64)
}
