//! DescribeContainerGroupEvents: Kubernetes-like events per group, with the SDK's odd keys
//! (`uuid`, `involvedObject`).

use berth_core::GroupRecord;
use serde::{Deserialize, Serialize};

use super::{group_uuid, time};

/// The component berth's events are reported by (ECI's name for its own events).
pub const EVENT_COMPONENT: &str = "EciService";

/// DescribeContainerGroupEvents (no `NextToken` in the SDK model).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeContainerGroupEventsResponse {
    pub request_id: String,
    pub total_count: u64,
    pub data: Vec<EventsData>,
}

/// The events of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventsData {
    pub container_group_id: String,
    pub name: String,
    pub namespace: String,
    pub annotations: String,
    #[serde(rename = "uuid")]
    pub uuid: String,
    pub events: Vec<K8sEvent>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventMetadata {
    pub name: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventSource {
    pub component: String,
    pub host: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InvolvedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct K8sEvent {
    pub count: u32,
    #[serde(rename = "Type")]
    pub event_type: String,
    pub reason: String,
    pub message: String,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub metadata: EventMetadata,
    pub source: EventSource,
    pub reporting_component: String,
    pub reporting_instance: String,
    #[serde(rename = "involvedObject")]
    pub involved_object: InvolvedObject,
}

impl EventsData {
    /// The events of a group, oldest first; `limit` keeps the newest ones.
    pub fn from_record(r: &GroupRecord, limit: usize) -> Self {
        let id = r.id.to_string();
        let uuid = group_uuid(&id);
        let skip = r.events.len().saturating_sub(limit);
        let events = r
            .events
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, e)| K8sEvent {
                count: e.count,
                event_type: e.event_type.as_str().to_string(),
                reason: e.reason.clone(),
                message: e.message.clone(),
                first_timestamp: time(e.first_timestamp),
                last_timestamp: time(e.last_timestamp),
                metadata: EventMetadata {
                    name: format!("{id}.{}", i + 1),
                    namespace: String::new(),
                },
                source: EventSource {
                    component: EVENT_COMPONENT.to_string(),
                    host: String::new(),
                },
                reporting_component: EVENT_COMPONENT.to_string(),
                reporting_instance: String::new(),
                involved_object: InvolvedObject {
                    api_version: "v1".to_string(),
                    kind: "Pod".to_string(),
                    name: r.spec.name.clone(),
                    namespace: String::new(),
                    uid: uuid.clone(),
                },
            })
            .collect();
        Self {
            container_group_id: id,
            name: r.spec.name.clone(),
            namespace: String::new(),
            annotations: String::new(),
            uuid,
            events,
        }
    }
}
