//! A container group as the control plane keeps it: the spec plus what was observed of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ContainerStatus, Event, GroupId, GroupSpec, GroupStatus};

/// Everything known of one container group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    /// The AccessKeyId's account that owns the group.
    pub account: String,
    pub spec: GroupSpec,
    pub status: GroupStatus,
    #[serde(default)]
    pub intranet_ip: Option<String>,
    pub creation_time: DateTime<Utc>,
    #[serde(default)]
    pub succeeded_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failed_time: Option<DateTime<Utc>>,
    /// When a preemptible group was reclaimed (`Expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_time: Option<DateTime<Utc>>,
    /// `Scheduling` and waiting for room on the node: not handed to the node yet. Records
    /// written before capacity was accounted have none: they were placed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting: bool,
    /// The node the group is placed on, in a cluster (docs/CLUSTER.md): the id of a node that
    /// joined the control plane. `None` on a single machine, whose in-process node runs every
    /// group, and in a cluster until the group is placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default)]
    pub init_containers: Vec<ContainerStatus>,
    #[serde(default)]
    pub containers: Vec<ContainerStatus>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub client_token: Option<String>,
    /// Bumped by RestartContainerGroup (the node agent restarts every container) and by
    /// UpdateContainerGroup (it recreates the containers whose spec changed).
    #[serde(default)]
    pub restart_generation: u64,
    /// The ClientTokens of the latest restarts and updates, with what each asked for: a
    /// repeated request is answered without being done twice.
    #[serde(default)]
    pub change_tokens: Vec<ChangeToken>,
}

/// A ClientToken a RestartContainerGroup or UpdateContainerGroup was made with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeToken {
    pub token: String,
    /// The action and its parameters, as the control plane encodes them.
    pub request: String,
}

/// How many [`ChangeToken`]s a group keeps.
pub const MAX_CHANGE_TOKENS: usize = 16;

/// What a ClientToken of a change says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSeen {
    /// Not used for this group yet.
    New,
    /// Used for this very request: it was done.
    Same,
    /// Used for another request.
    Other,
}

/// What a node agent reports of a group it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedGroup {
    pub intranet_ip: Option<String>,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// Set when the group cannot run at all (e.g. its network could not be set up).
    pub failed: Option<String>,
    /// New events since the last report.
    pub events: Vec<Event>,
    /// The record's `restart_generation` the reporting run started from: a report of a run
    /// that a restart or an update replaced does not end its `Restarting` or `Updating`.
    #[serde(default)]
    pub generation: u64,
}

impl GroupRecord {
    /// A new group of `account` running `spec`: `Scheduling` since `now`, nothing else known
    /// yet.
    pub fn new(
        id: GroupId,
        account: impl Into<String>,
        spec: GroupSpec,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            node: None,
            id,
            account: account.into(),
            spec,
            status: GroupStatus::Scheduling,
            intranet_ip: None,
            creation_time: now,
            succeeded_time: None,
            failed_time: None,
            expired_time: None,
            waiting: false,
            init_containers: Vec::new(),
            containers: Vec::new(),
            events: Vec::new(),
            client_token: None,
            restart_generation: 0,
            change_tokens: Vec::new(),
        }
    }

    /// Whether the group saw `token` with `request` before.
    pub fn change_token(&self, token: &str, request: &str) -> TokenSeen {
        match self.change_tokens.iter().find(|t| t.token == token) {
            None => TokenSeen::New,
            Some(t) if t.request == request => TokenSeen::Same,
            Some(_) => TokenSeen::Other,
        }
    }

    /// Remembers a change's token, forgetting the oldest past [`MAX_CHANGE_TOKENS`].
    pub fn push_change_token(&mut self, token: &str, request: &str) {
        self.change_tokens.push(ChangeToken {
            token: token.to_string(),
            request: request.to_string(),
        });
        if self.change_tokens.len() > MAX_CHANGE_TOKENS {
            self.change_tokens.remove(0);
        }
    }

    /// Appends an event, folding it into the last one if it repeats it.
    pub fn push_event(&mut self, ev: Event) {
        if let Some(last) = self.events.iter_mut().rev().find(|e| e.same_as(&ev)) {
            last.count += ev.count;
            last.last_timestamp = ev.last_timestamp;
            return;
        }
        self.events.push(ev);
        const MAX_EVENTS: usize = 200;
        if self.events.len() > MAX_EVENTS {
            let excess = self.events.len() - MAX_EVENTS;
            self.events.drain(..excess);
        }
    }
}
