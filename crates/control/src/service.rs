//! [`Control`]: create, describe, restart, delete and log reading of container groups, and
//! the folding of node reports into group records.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_core::{
    derive_group_status, Event, EventType, GroupId, GroupRecord, GroupSpec, GroupStatus,
    ObservedGroup,
};
use berth_store::{GroupFilter, Page, Store, StoreError};
use chrono::Utc;
use rand::RngCore;

use crate::{LogRequest, NodeClient, NodeError};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the container group {0} does not exist")]
    NotFound(String),
    #[error("the container group {id} is {status}; this operation needs it to be {needs}")]
    IncorrectStatus {
        id: String,
        status: &'static str,
        needs: &'static str,
    },
    #[error("the ClientToken was used before with different parameters")]
    TokenMismatch,
    #[error("no container named {0} in the group")]
    NoSuchContainer(String),
    #[error("{0}")]
    Node(String),
    #[error("state store")]
    Store(#[from] StoreError),
}

/// The control plane of one berth installation.
pub struct Control {
    store: Arc<dyn Store>,
    node: OnceLock<Arc<dyn NodeClient>>,
    region: String,
}

impl Control {
    pub fn new(store: Arc<dyn Store>, region: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            store,
            node: OnceLock::new(),
            region: region.into(),
        })
    }

    /// Connects the node agent; done once at start.
    pub fn attach_node(&self, node: Arc<dyn NodeClient>) {
        let _ = self.node.set(node);
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn node(&self) -> Result<&Arc<dyn NodeClient>, ControlError> {
        self.node
            .get()
            .ok_or_else(|| ControlError::Node("no node agent is attached".into()))
    }

    /// Records a new group as Scheduling, places it and returns its id at once.
    pub async fn create(
        &self,
        account: &str,
        mut spec: GroupSpec,
        client_token: Option<String>,
    ) -> Result<GroupId, ControlError> {
        if let Some(tok) = &client_token {
            if let Some(prev) = self.store.find_by_client_token(account, tok)? {
                spec.region_id.clone_from(&prev.spec.region_id);
                return if prev.spec == spec {
                    Ok(prev.id)
                } else {
                    Err(ControlError::TokenMismatch)
                };
            }
        }
        if spec.region_id.is_empty() {
            spec.region_id = self.region.clone();
        }
        let now = Utc::now();
        let mut bytes = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = GroupId::from_random(bytes);
        let mut rec = GroupRecord {
            id: id.clone(),
            account: account.to_string(),
            spec,
            status: GroupStatus::Scheduling,
            intranet_ip: None,
            creation_time: now,
            succeeded_time: None,
            failed_time: None,
            init_containers: vec![],
            containers: vec![],
            events: vec![],
            client_token,
            restart_generation: 0,
        };
        rec.push_event(Event::new(
            EventType::Normal,
            "Scheduled",
            format!("Successfully assigned {} to node local", id),
            None,
            now,
        ));
        self.store.insert_group(&rec)?;
        self.node()?.apply(rec).await;
        Ok(id)
    }

    pub fn get(&self, account: &str, id: &GroupId) -> Result<GroupRecord, ControlError> {
        self.store
            .get_group(Some(account), id)?
            .ok_or_else(|| ControlError::NotFound(id.to_string()))
    }

    pub fn list(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, ControlError> {
        Ok(self.store.list_groups(account, filter, limit, token)?)
    }

    /// Marks the group Terminating and removes it in the background: containers are stopped
    /// with the group's grace period, then the record goes.
    pub async fn delete(self: &Arc<Self>, account: &str, id: &GroupId) -> Result<(), ControlError> {
        self.get(account, id)?;
        let rec = self.store.modify_group(id, &mut |r| {
            if r.status != GroupStatus::Terminating {
                r.push_event(Event::new(
                    EventType::Normal,
                    "Killing",
                    "Deleting the container group",
                    None,
                    Utc::now(),
                ));
            }
            r.status = GroupStatus::Terminating;
        })?;
        self.spawn_removal(rec);
        Ok(())
    }

    fn spawn_removal(self: &Arc<Self>, rec: GroupRecord) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let grace = Duration::from_secs(rec.spec.termination_grace_period_secs);
            let Ok(node) = this.node() else { return };
            match node.remove(&rec.id, grace).await {
                Ok(()) => {
                    if let Err(e) = this.store.delete_group(&rec.id) {
                        tracing::error!(group = %rec.id, error = %e, "cannot delete the record of a removed group");
                    }
                    tracing::info!(group = %rec.id, "container group deleted");
                }
                Err(e) => {
                    tracing::error!(group = %rec.id, error = %e, "removing container group failed")
                }
            }
        });
    }

    /// Restarts every container of a Pending or Running group.
    pub async fn restart(&self, account: &str, id: &GroupId) -> Result<(), ControlError> {
        let rec = self.get(account, id)?;
        if !matches!(rec.status, GroupStatus::Pending | GroupStatus::Running) {
            return Err(ControlError::IncorrectStatus {
                id: id.to_string(),
                status: rec.status.as_str(),
                needs: "Pending or Running",
            });
        }
        let rec = self.store.modify_group(id, &mut |r| {
            r.status = GroupStatus::Restarting;
            r.restart_generation += 1;
            r.push_event(Event::new(
                EventType::Normal,
                "Restarting",
                "Restarting the container group",
                None,
                Utc::now(),
            ));
        })?;
        self.node()?.apply(rec).await;
        Ok(())
    }

    /// Log text of one container.
    pub async fn logs(
        &self,
        account: &str,
        id: &GroupId,
        req: &LogRequest,
    ) -> Result<String, ControlError> {
        let rec = self.get(account, id)?;
        if !rec.spec.all_containers().any(|c| c.name == req.container) {
            return Err(ControlError::NoSuchContainer(req.container.clone()));
        }
        match self.node()?.read_log(id, req).await {
            Ok(s) => Ok(s),
            Err(NodeError::NotFound(_)) => Ok(String::new()),
            Err(NodeError::Failed(m)) => Err(ControlError::Node(m)),
        }
    }

    /// Folds a node's report into the group's record.
    pub fn report(&self, id: &GroupId, obs: ObservedGroup) {
        let res = self.store.modify_group(id, &mut |r| apply_report(r, &obs));
        match res {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::error!(group = %id, error = %e, "cannot record the status of a group")
            }
        }
    }

    /// Hands every recorded group to the node agent again (at start), finishing deletions that
    /// a crash interrupted.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ControlError> {
        let groups = self.store.all_groups()?;
        let n = groups.len();
        for rec in groups {
            if rec.status == GroupStatus::Terminating {
                self.spawn_removal(rec);
            } else {
                self.node()?.apply(rec).await;
            }
        }
        Ok(n)
    }
}

/// The record after a node report: container states, address, events, derived status.
pub fn apply_report(r: &mut GroupRecord, obs: &ObservedGroup) {
    let now = Utc::now();
    if obs.intranet_ip.is_some() {
        r.intranet_ip.clone_from(&obs.intranet_ip);
    }
    r.init_containers.clone_from(&obs.init_containers);
    r.containers.clone_from(&obs.containers);
    for ev in &obs.events {
        r.push_event(ev.clone());
    }
    if r.status == GroupStatus::Terminating {
        return;
    }
    let next = if obs.failed.is_some() {
        GroupStatus::Failed
    } else if r.status == GroupStatus::Restarting
        && obs
            .containers
            .iter()
            .all(|c| c.current.state == berth_core::StateKind::Waiting)
    {
        GroupStatus::Restarting
    } else {
        derive_group_status(&r.init_containers, &r.containers, r.spec.restart_policy)
    };
    if next != r.status {
        match next {
            GroupStatus::Succeeded => r.succeeded_time = Some(now),
            GroupStatus::Failed => r.failed_time = Some(now),
            _ => {}
        }
        r.status = next;
    }
}
