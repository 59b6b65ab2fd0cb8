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
    #[serde(default)]
    pub init_containers: Vec<ContainerStatus>,
    #[serde(default)]
    pub containers: Vec<ContainerStatus>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub client_token: Option<String>,
    /// Bumped by RestartContainerGroup so the node agent restarts every container.
    #[serde(default)]
    pub restart_generation: u64,
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
}

impl GroupRecord {
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
