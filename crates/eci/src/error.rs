//! ECI error responses (ECI_API.md §6): the HTTP status, `Code` and `Message` of a refused
//! request, and the JSON body that carries them.
//!
//! Every message contains a colon: the legacy SDK splits `SignatureDoesNotMatch` messages on
//! `:` and crashes when there is none, and the other codes follow the same shape.
//!
//! Choices where ECI's documentation leaves room:
//! * a group, container or region that does not exist is 404 `InvalidParameter.NotFound`
//!   (the ECI public code), with the kind of thing and its id in the message;
//! * an unknown action or version is 404 `InvalidApi.NotFound`, as the gateway answers it;
//! * `Recommend` is always empty: berth has no troubleshooting site to point at.

use serde_json::json;

/// A refused request: status, code and message, as the SDKs read them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// Any error; a colon is added to `message` if it has none.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if !message.contains(':') {
            message = format!("{message}: {code}");
        }
        Self {
            status,
            code: code.to_string(),
            message,
        }
    }

    /// 400 `MissingParameter`.
    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!("The input parameter that is mandatory for processing this request is not supplied: {name}"),
        )
    }

    /// 400 `InvalidParameter`; `why` continues a sentence that starts with the parameter's
    /// name, e.g. `invalid_parameter("Container.1.Cpu", "must be a positive number")`.
    pub fn invalid_parameter(name: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            "InvalidParameter",
            format!("The specified parameter is invalid: {name} {why}"),
        )
    }

    /// 400 `InvalidParameter.LengthExceeded`.
    pub fn length_exceeded(name: &str, max: usize) -> Self {
        Self::new(
            400,
            "InvalidParameter.LengthExceeded",
            format!(
                "The specified parameter exceeds its maximum length: {name} allows at most {max}"
            ),
        )
    }

    /// 400 `InvalidParameter.ValueExceeded`.
    pub fn value_exceeded(name: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            "InvalidParameter.ValueExceeded",
            format!("The specified parameter exceeds its allowed range: {name} {why}"),
        )
    }

    /// 404 `InvalidParameter.NotFound` for a thing of kind `what` (e.g. "container group").
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            404,
            "InvalidParameter.NotFound",
            format!("The specified {what} does not exist: {id}"),
        )
    }

    /// 404 for a container group id that names no group of the caller.
    pub fn container_group_not_found(id: &str) -> Self {
        Self::not_found("container group", id)
    }

    /// 400 `IncorrectStatus`: the group's status does not allow the operation.
    pub fn incorrect_status(what: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            "IncorrectStatus",
            format!("The current status of the resource does not support this operation: {what}"),
        )
    }

    /// 404 `InvalidApi.NotFound`: no such action (names are case-sensitive).
    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            404,
            "InvalidApi.NotFound",
            format!("Specified api is not found, please check your url and method: {action}"),
        )
    }

    /// 404 `InvalidApi.NotFound` for a version other than 2018-08-08.
    pub fn unsupported_version(version: &str) -> Self {
        Self::new(
            404,
            "InvalidApi.NotFound",
            format!("Specified api is not found, only version 2018-08-08 is served: {version}"),
        )
    }

    /// 400 `SignatureNonceUsed`: the nonce was seen within the replay window.
    pub fn signature_nonce_used(nonce: &str) -> Self {
        Self::new(
            400,
            "SignatureNonceUsed",
            format!("Specified signature nonce was used already: {nonce}"),
        )
    }

    /// 400 `IdempotentParameterMismatch`: a ClientToken reused with other parameters.
    pub fn idempotent_parameter_mismatch(token: &str) -> Self {
        Self::new(
            400,
            "IdempotentParameterMismatch",
            format!("The request uses the same client token as a previous, but non-identical request: {token}"),
        )
    }

    /// 403 `LastTokenProcessing`: the request with the same ClientToken is still running.
    pub fn last_token_processing(token: &str) -> Self {
        Self::new(
            403,
            "LastTokenProcessing",
            format!(
                "The last request with the same client token is still being processed: {token}"
            ),
        )
    }

    /// 409 `OperationConflict`.
    pub fn operation_conflict(what: impl std::fmt::Display) -> Self {
        Self::new(
            409,
            "OperationConflict",
            format!("The operation conflicts with a previous request: {what}"),
        )
    }

    /// 400 `DryRunOperation`: a `DryRun=true` request that passed every check.
    pub fn dry_run_operation() -> Self {
        Self::new(
            400,
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set: nothing was created",
        )
    }

    /// 403 `Forbidden.AccessKeyDisabled`.
    pub fn access_key_disabled(access_key_id: &str) -> Self {
        Self::new(
            403,
            "Forbidden.AccessKeyDisabled",
            format!("The specified access key is disabled: {access_key_id}"),
        )
    }

    /// 400 `Throttling.User`.
    pub fn throttling() -> Self {
        Self::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control: retry later",
        )
    }

    /// 500 `InternalError`; `detail` should say which step failed, without secrets.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("The request processing has failed due to some unknown error: {detail}"),
        )
    }

    /// 503 `ServiceUnavailable`.
    pub fn service_unavailable(detail: impl std::fmt::Display) -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            format!("The request has failed due to a temporary failure of the server: {detail}"),
        )
    }

    /// The JSON error body: `{RequestId, HostId, Code, Message, Recommend}`.
    pub fn to_body(&self, request_id: &str, host_id: &str) -> serde_json::Value {
        json!({
            "RequestId": request_id,
            "HostId": host_id,
            "Code": self.code,
            "Message": self.message,
            "Recommend": "",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_always_have_a_colon() {
        let all = [
            ApiError::missing_parameter("ContainerGroupName"),
            ApiError::invalid_parameter("Container.1.Cpu", "must be positive"),
            ApiError::length_exceeded("ClientToken", 64),
            ApiError::value_exceeded("Limit", "must be at most 20"),
            ApiError::container_group_not_found("eci-x"),
            ApiError::incorrect_status("Succeeded"),
            ApiError::invalid_action("Nope"),
            ApiError::unsupported_version("2019-01-01"),
            ApiError::signature_nonce_used("n"),
            ApiError::idempotent_parameter_mismatch("t"),
            ApiError::last_token_processing("t"),
            ApiError::operation_conflict("x"),
            ApiError::dry_run_operation(),
            ApiError::access_key_disabled("ak"),
            ApiError::throttling(),
            ApiError::internal("store"),
            ApiError::service_unavailable("draining"),
            ApiError::new(400, "X", "no colon here"),
        ];
        for e in all {
            assert!(e.message.contains(':'), "{e:?}");
            assert!((400..600).contains(&e.status));
        }
    }

    #[test]
    fn body_shape() {
        let e = ApiError::invalid_parameter("Container.1.Cpu", "must be positive");
        let b = e.to_body("req-1", "127.0.0.1:8080");
        assert_eq!(b["RequestId"], "req-1");
        assert_eq!(b["HostId"], "127.0.0.1:8080");
        assert_eq!(b["Code"], "InvalidParameter");
        assert_eq!(
            b["Message"],
            "The specified parameter is invalid: Container.1.Cpu must be positive"
        );
        assert_eq!(b["Recommend"], "");
        assert_eq!(ApiError::invalid_action("X").status, 404);
    }
}
