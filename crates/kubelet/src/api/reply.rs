//! The error answers of the kubelet API: `metav1.Status` bodies, which the API server passes
//! on to `kubectl` and `kubectl` prints.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::backend::BackendError;

/// A refused request: its HTTP status, the Status `reason` and the message.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
}

impl From<BackendError> for Refusal {
    fn from(e: BackendError) -> Self {
        match &e {
            BackendError::NotFound(_) => Self::not_found(e.to_string()),
            BackendError::Refused(_) => Self::bad_request(e.to_string()),
            BackendError::Unavailable(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "InternalError", e.to_string())
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Any path the kubelet API does not serve.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Refusal {
    Refusal::not_found(format!("the kubelet API serves no {}", uri.path()))
}
