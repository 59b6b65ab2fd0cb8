//! Why a pod does not become a container group.

use k8s_openapi::api::core::v1::PodStatus;

/// The `reason` of the Failed status of a pod berth refused.
pub const FAILED_REASON: &str = "ProviderFailed";

/// A pod that cannot (yet) become a container group. The message names the pod field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// berth cannot run the pod as written: the pod fails with this message, for good.
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },
    /// An object the pod references is not among the inputs (not created yet, or not
    /// readable): the pod waits and the mapping is tried again, as the kubelet does.
    #[error("{field}: {what} not found")]
    Missing { field: String, what: String },
}

impl PodError {
    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(field: impl Into<String>, what: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
            what: what.into(),
        }
    }

    /// Whether the pod fails for good (`Unsupported`) rather than waits (`Missing`).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Unsupported { .. })
    }
}

/// The status a refused pod gets: phase Failed, reason [`FAILED_REASON`], the error as its
/// message.
pub fn failed_status(e: &PodError) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(FAILED_REASON.into()),
        message: Some(e.to_string()),
        ..Default::default()
    }
}
