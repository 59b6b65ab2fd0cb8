//! Keeps the files of a running pod's configMap, secret, projected and downwardAPI volumes
//! true, as the kubelet does: the pod's references are read again (at most every
//! `PodConfig::volume_resync`, and whenever one of its service-account tokens is due to be
//! refreshed; an object read for another pod within that period is not read again,
//! `objects.rs`), its volumes rendered again, and those whose files changed sent to berth in one
//! UpdateContainerGroup. berth writes them in place under the running containers (the
//! kubelet's AtomicWriter layout); `subPath` mounts keep what they started with, as with the
//! kubelet. An object that went or no longer renders leaves the files as they are. The
//! tokens a group holds already (after a restart of the virtual kubelet) are kept until
//! they are due by their own claims.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use berth_client::response::{ContainerGroup, Volume as GroupVolume};
use berth_core::{GroupStatus, Volume, VolumeSource};
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::{resolve, Error, Groups, GroupsError, PodController};

/// When each pod's volumes were last rendered.
#[derive(Default)]
pub(crate) struct Checked(Mutex<HashMap<String, Instant>>);

impl Checked {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn mark(&self, uid: &str) {
        self.map().insert(uid.to_string(), Instant::now());
    }

    pub(crate) fn forget(&self, uid: &str) {
        self.map().remove(uid);
    }

    fn last(&self, uid: &str) -> Option<Instant> {
        self.map().get(uid).copied()
    }
}

/// Whether the pod has volumes whose files come from objects or from the pod itself.
fn has_file_volumes(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.projected.is_some()
                || v.downward_api.is_some()
        })
}

/// Whether berth runs the group: an update of a group still being set up would interrupt
/// that, one of a group that finished or is being deleted or updated would fail or wait.
pub(crate) fn running(g: &ContainerGroup) -> bool {
    GroupStatus::parse(&g.status) == Some(GroupStatus::Running)
}

/// The files of a group's ConfigFile volume, as sets of (path, base64 content).
fn files_of(v: &GroupVolume) -> BTreeSet<(&str, &str)> {
    v.config_file_volume_config_file_to_paths
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect()
}

/// A relative path as the mapping writes it: no empty or `.` parts.
fn normal(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The token the group holds for the pod's projected source `volume`/`path`, if any.
fn held_token(g: &ContainerGroup, volume: &str, path: &str) -> Option<String> {
    use base64::Engine;
    let v = g
        .volumes
        .iter()
        .find(|v| v.name == volume && v.volume_type == "ConfigFileVolume")?;
    let path = normal(path);
    let f = v
        .config_file_volume_config_file_to_paths
        .iter()
        .find(|f| normal(&f.path) == path)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&f.content)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The rendered ConfigFile volumes whose files differ from the group's volume of their name
/// (a volume the group does not have as a ConfigFile volume is left out: the pod's volumes
/// cannot change).
fn changed_volumes(rendered: Vec<Volume>, group: &ContainerGroup) -> Vec<Volume> {
    rendered
        .into_iter()
        .filter(|v| {
            let VolumeSource::ConfigFile { files, .. } = &v.source else {
                return false;
            };
            let Some(old) = group
                .volumes
                .iter()
                .find(|o| o.name == v.name && o.volume_type == "ConfigFileVolume")
            else {
                return false;
            };
            let new: BTreeSet<(&str, &str)> = files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_str()))
                .collect();
            new != files_of(old)
        })
        .collect()
}

impl<G: Groups> PodController<G> {
    /// Whether the pod's volumes are due to be rendered again: a token of it is due, or
    /// they were last rendered `volume_resync` ago.
    pub(crate) fn volumes_due(&self, pod: &Pod) -> bool {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return false;
        };
        if !has_file_volumes(pod) {
            return false;
        }
        self.tokens.due(uid)
            || self
                .checked
                .last(uid)
                .is_none_or(|t| t.elapsed() >= self.cfg.volume_resync)
    }

    /// Holds the tokens the group has for the pod's projected sources that none is held for
    /// (after a restart), each until it is due by its own claims.
    fn take_up_tokens(&self, pod: &Pod, g: &ContainerGroup) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                let Some(t) = &s.service_account_token else {
                    continue;
                };
                let key = format!("{}/{}", v.name, t.path);
                if self.tokens.has(uid, &key) {
                    continue;
                }
                let Some(token) = held_token(g, &v.name, &t.path) else {
                    continue;
                };
                if let Some(keep) = super::tokens::keep_held(&token, now) {
                    self.tokens.put(uid, &key, token, keep);
                }
            }
        }
    }

    /// Renders the pod's volumes again when due and sends berth those whose files changed.
    /// Returns whether an update was sent. An API server error is returned (tried again); a
    /// pod that no longer renders, or an update berth refuses, keeps its files until the
    /// next time.
    pub(crate) async fn refresh_volumes(
        &self,
        pod: &Pod,
        g: &ContainerGroup,
    ) -> Result<bool, Error> {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Ok(false);
        };
        if !running(g) {
            return Ok(false);
        }
        self.take_up_tokens(pod, g);
        if !self.volumes_due(pod) {
            return Ok(false);
        }
        let inputs = resolve::resolve(
            &self.client,
            pod,
            &self.cfg.host_ip,
            self.cfg.cluster_dns.as_ref(),
            &self.tokens,
            resolve::Reads::Kept(&self.objects, self.cfg.volume_resync),
        )
        .await?;
        self.checked.mark(uid);
        let params = match crate::pod_to_group(pod, &inputs) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(pod_uid = %uid, error = %e, "the pod's volumes cannot be rendered again; their files stay");
                return Ok(false);
            }
        };
        let changed = changed_volumes(params.volumes, g);
        if changed.is_empty() {
            return Ok(false);
        }
        match self
            .groups
            .update_volumes(&g.container_group_id, &changed)
            .await
        {
            Ok(()) => {
                tracing::info!(pod_uid = %uid, group = %g.container_group_id, volumes = changed.len(), "updated the files of the pod's volumes");
                Ok(true)
            }
            Err(GroupsError::Refused(m)) => {
                tracing::warn!(pod_uid = %uid, error = %m, "berth refused the new files of the pod's volumes");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}
