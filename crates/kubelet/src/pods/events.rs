//! Posts a group's events on its pod (made by [`crate::group_to_pod_status`], named
//! `POD.EVENT`): each is created, or replaced when its count changed. What was posted is
//! remembered per pod, so an unchanged event costs no request; after a restart an event that
//! exists already (409) is read and replaced.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};

use super::api_code;

/// Most events remembered for one pod.
const MAX_EVENTS_PER_POD: usize = 256;

/// Pod uid → event name → the count posted.
#[derive(Default)]
pub(super) struct Posted(Mutex<BTreeMap<String, BTreeMap<String, i32>>>);

impl Posted {
    fn get(&self, uid: &str, name: &str) -> Option<i32> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(uid).and_then(|e| e.get(name)).copied()
    }

    fn set(&self, uid: &str, name: &str, count: i32) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(uid.to_string()).or_default();
        if e.len() < MAX_EVENTS_PER_POD || e.contains_key(name) {
            e.insert(name.to_string(), count);
        }
    }

    /// Forgets a pod that is gone.
    pub(super) fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }
}

/// Posts the `events` of `pod` that are new or whose count changed.
pub(super) async fn post(
    client: &kube::Client,
    posted: &Posted,
    pod: &Pod,
    events: &[Event],
) -> Result<(), kube::Error> {
    let (Some(uid), ns) = (
        pod.metadata.uid.as_deref(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    ) else {
        return Ok(());
    };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    for e in events {
        let (Some(name), count) = (e.metadata.name.as_deref(), e.count.unwrap_or(1)) else {
            continue;
        };
        if posted.get(uid, name) == Some(count) {
            continue;
        }
        match api.create(&PostParams::default(), e).await {
            Ok(_) => {}
            Err(err) if api_code(&err) == Some(409) => {
                let current = api.get(name).await?;
                let mut next = e.clone();
                next.metadata.resource_version = current.metadata.resource_version;
                api.replace(name, &PostParams::default(), &next).await?;
            }
            Err(err) => return Err(err),
        }
        posted.set(uid, name, count);
    }
    Ok(())
}
