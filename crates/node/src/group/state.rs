//! What the agent knows of one group while it runs it, shared by the tasks of the group.

use std::sync::{Arc, Mutex};

use berth_core::{ContainerState, ContainerStatus, Event, EventType, GroupId, ObservedGroup};
use chrono::Utc;

use crate::config::Reporter;

/// Observed state of a group plus the events not yet reported.
pub struct GroupState {
    id: GroupId,
    obs: Mutex<ObservedGroup>,
    reporter: Arc<dyn Reporter>,
}

impl GroupState {
    pub fn new(id: GroupId, obs: ObservedGroup, reporter: Arc<dyn Reporter>) -> Arc<Self> {
        Arc::new(Self {
            id,
            obs: Mutex::new(obs),
            reporter,
        })
    }

    pub fn id(&self) -> &GroupId {
        &self.id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ObservedGroup> {
        self.obs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state and reports the result at once.
    pub fn update(&self, f: impl FnOnce(&mut ObservedGroup)) {
        let snapshot = {
            let mut obs = self.lock();
            f(&mut obs);
            let snap = obs.clone();
            obs.events.clear();
            snap
        };
        self.reporter.report(&self.id, snapshot);
    }

    /// The status of one container (init or app).
    pub fn container(&self, init: bool, name: &str) -> Option<ContainerStatus> {
        let obs = self.lock();
        let list = if init {
            &obs.init_containers
        } else {
            &obs.containers
        };
        list.iter().find(|c| c.name == name).cloned()
    }

    pub fn intranet_ip(&self) -> Option<String> {
        self.lock().intranet_ip.clone()
    }

    /// Changes one container's status and adds an event about it, then reports.
    pub fn set_container(
        &self,
        init: bool,
        name: &str,
        event: Option<(EventType, &str, String)>,
        f: impl FnOnce(&mut ContainerStatus),
    ) {
        self.update(|obs| {
            let list = if init {
                &mut obs.init_containers
            } else {
                &mut obs.containers
            };
            if let Some(c) = list.iter_mut().find(|c| c.name == name) {
                f(c);
            }
            if let Some((t, reason, msg)) = event {
                obs.events
                    .push(Event::new(t, reason, msg, Some(name), Utc::now()));
            }
        });
    }

    /// Adds a group-level event and reports.
    pub fn event(&self, t: EventType, reason: &str, msg: String, container: Option<&str>) {
        self.push_event(Event::new(t, reason, msg, container, Utc::now()));
    }

    /// Reports an event made by the caller (one with a measurement).
    pub fn push_event(&self, ev: Event) {
        self.update(|obs| obs.events.push(ev));
    }
}

/// A fresh status for a container that has not started yet.
pub fn waiting(name: &str, detail: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.to_string(),
        current: ContainerState::waiting(detail),
        ..Default::default()
    }
}
