//! Events of a container group (Scheduled, Pulling, Pulled, Created, Started, Killing, BackOff…).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// One event; repeats of the same reason and message for the same object are folded into
/// `count`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
    /// `spec.containers{name}` or the group itself (`None`).
    pub container: Option<String>,
    pub count: u32,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
    /// What the event measured, for the events that carry a measurement: read by the
    /// control plane's metrics, never parsed back out of `message` (the API shows only the
    /// message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<EventDetail>,
}

/// A measurement an event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventDetail {
    /// An image pulled from its registry (not found present): how long it took and how many
    /// bytes came.
    Pull { millis: u64, bytes: u64 },
}

impl Event {
    pub fn new(
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
        container: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_type,
            reason: reason.to_string(),
            message: message.into(),
            container: container.map(str::to_string),
            count: 1,
            first_timestamp: at,
            last_timestamp: at,
            detail: None,
        }
    }

    /// The event with a measurement.
    pub fn with_detail(mut self, detail: EventDetail) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Whether `other` is a repeat of this event.
    pub fn same_as(&self, other: &Event) -> bool {
        self.reason == other.reason
            && self.message == other.message
            && self.container == other.container
    }
}
