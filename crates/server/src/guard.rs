//! What keeps every answer of the server ECI-shaped: a panic still reachable in a handler
//! becomes a 500 `InternalError` JSON body with a request id (the panic is logged with its
//! backtrace), and an error answered by the framework or by the exec and log URLs in plain
//! text (a body over the size limit, an unknown path, a refused token) is rewritten as the
//! JSON error body of ECI with the same status and message.

use std::any::Any;
use std::backtrace::Backtrace;
use std::sync::Once;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_eci::ApiError;

/// Most bytes of a plain-text error body kept as the message.
const MAX_MESSAGE: usize = 4096;

/// Logs every panic of the process with its backtrace (once per process), then lets the
/// previous hook run.
pub(crate) fn install_panic_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!(
                panic = %info,
                backtrace = %Backtrace::force_capture(),
                "panic"
            );
            previous(info);
        }));
    });
}

/// The answer to a request whose handler panicked.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    let rid = crate::request_id();
    tracing::error!(request_id = %rid, panic = %what, "a request handler panicked");
    let e = ApiError::internal("the handler failed");
    eci_response(&e, &rid)
}

/// `e` as ECI answers it, with `rid` in its body and header.
pub(crate) fn eci_response(e: &ApiError, rid: &str) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, e.to_body(rid, "").to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-acs-request-id", v);
    }
    resp
}

/// The ECI code of an error the framework or a stream URL answered with `status`.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "UnsupportedHTTPMethod",
        413 => "InvalidParameter.LengthExceeded",
        429 => "Throttling",
        400..=499 => "InvalidParameter",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// Rewrites an error answered in anything but JSON as ECI's JSON error body.
pub(crate) async fn eci_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let rid = parts
        .headers
        .get("x-acs-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(crate::request_id);
    let mut out = eci_response(
        &ApiError::new(status.as_u16(), code_of(status), message),
        &rid,
    );
    for (k, v) in &parts.headers {
        if k != "content-type" && k != "content-length" && !out.headers().contains_key(k) {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
