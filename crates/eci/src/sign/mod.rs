//! Request signatures (ECI_API.md §2.1, §4): server-side verification of the three client
//! behaviours (ACS3-HMAC-SHA256 in `Authorization`; RPC HMAC-SHA1 1.0 in the `Signature` query
//! parameter over POST or GET) and the client-side signers, built on the same canonical forms.
//!
//! Nonce replay is not checked here (that needs state): [`verify`] returns the nonce for the
//! caller to check.

mod acs3;
mod rpc;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::canon::{self, DecodeError};
use crate::error::ApiError;

pub use acs3::{acs3_string_to_sign, canonical_headers, content_sha256, sign_acs3, ACS3_ALGORITHM};
pub use rpc::{rpc_string_to_sign, sign_rpc};

/// Largest accepted distance between a request's timestamp and the server clock, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The parts of an HTTP request that signatures cover, as received.
#[derive(Clone, Copy, Debug)]
pub struct RawRequest<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// The path as received (`/` for ECI); an empty path counts as `/`.
    pub path: &'a str,
    /// The query string as received, without the `?`, not decoded.
    pub raw_query: &'a str,
    /// Header names as received (any case) and their values.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> RawRequest<'a> {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name, in the order received.
    pub fn header_values(&self, name: &str) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The query and, for a form-urlencoded body, the body's parameters, decoded.
    pub fn form_params(&self) -> Result<Vec<(String, String)>, DecodeError> {
        let mut params = canon::form_decode(self.raw_query)?;
        let is_form = self.header("content-type").is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if is_form && !self.body.is_empty() {
            let body = std::str::from_utf8(self.body).map_err(|_| DecodeError {
                piece: String::from_utf8_lossy(self.body).into_owned(),
            })?;
            params.extend(canon::form_decode(body)?);
        }
        Ok(params)
    }
}

/// The signature scheme a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: ACS3-HMAC-SHA256 …` (V2 SDK default).
    Acs3HmacSha256,
    /// `Signature=` query parameter, HMAC-SHA1, SignatureVersion 1.0 (V2 SDK in v2 mode, legacy SDK).
    RpcHmacSha1,
}

/// What a valid signature establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// `x-acs-signature-nonce` or `SignatureNonce`; the caller checks it for replay.
    pub nonce: String,
    /// `x-acs-date` or `Timestamp`.
    pub timestamp: DateTime<Utc>,
    pub scheme: Scheme,
    /// The action the signature covers: the signed `x-acs-action` header (ACS3) or the `Action`
    /// query parameter (RPC); `None` when the signature covers none.
    pub action: Option<String>,
}

/// Why a request's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request carries no {0}")]
    Missing(String),
    #[error("the signature is not well formed: {0}")]
    Incomplete(String),
    #[error("signature method {0:?} is not supported")]
    UnsupportedMethod(String),
    #[error("timestamp {0:?} is not of the form YYYY-MM-DDThh:mm:ssZ")]
    TimestampFormat(String),
    #[error("timestamp {timestamp} is more than 15 minutes away from the server clock ({now})")]
    Expired {
        timestamp: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("access key id {0:?} is not known")]
    UnknownAccessKey(String),
    #[error("x-acs-content-sha256 does not match the SHA-256 of the body")]
    ContentHash,
    #[error("the signature does not match")]
    Mismatch { string_to_sign: String },
    #[error("the query cannot be decoded")]
    Query(#[source] DecodeError),
}

impl AuthError {
    /// The ECI error the client sees.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::Missing(what) => ApiError::missing_parameter(what),
            Self::Incomplete(why) => ApiError::new(
                400,
                "IncompleteSignature",
                format!("The request signature does not conform to Aliyun standards: {why}"),
            ),
            Self::UnsupportedMethod(m) => ApiError::new(
                400,
                "InvalidSignatureMethod",
                format!("Specified signature method is not supported: {m}"),
            ),
            Self::TimestampFormat(ts) => ApiError::new(
                400,
                "InvalidTimeStamp.Format",
                format!("Specified time stamp or date value is not well formatted: {ts}"),
            ),
            Self::Expired { timestamp, .. } => ApiError::new(
                400,
                "InvalidTimeStamp.Expired",
                format!(
                    "Specified time stamp or date value is expired: {}",
                    timestamp.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            ),
            Self::UnknownAccessKey(ak) => ApiError::new(
                404,
                "InvalidAccessKeyId.NotFound",
                format!("Specified access key is not found: {ak}"),
            ),
            Self::ContentHash => ApiError::new(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation: x-acs-content-sha256 is not the SHA-256 of the body",
            ),
            // The legacy SDK compares the text after the first ':' with its own string to sign.
            Self::Mismatch { string_to_sign } => ApiError::new(
                400,
                "SignatureDoesNotMatch",
                format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"),
            ),
            Self::Query(e) => ApiError::invalid_parameter("the query string", e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        e.to_api_error()
    }
}

/// Verifies a request's signature with the secret `secret_for` gives for its AccessKeyId, and
/// its timestamp against `now`. The scheme is chosen by an `Authorization` header, else by a
/// `Signature` parameter.
pub fn verify(
    req: &RawRequest,
    secret_for: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Result<Verified, AuthError> {
    if let Some(auth) = req.header("authorization") {
        let auth = auth.trim();
        return match auth.split_once(' ') {
            Some((ACS3_ALGORITHM, rest)) => acs3::verify(req, rest, &secret_for, now),
            _ => Err(AuthError::UnsupportedMethod(
                auth.split(' ').next().unwrap_or_default().to_string(),
            )),
        };
    }
    let params = req.form_params().map_err(AuthError::Query)?;
    if params.iter().any(|(k, _)| k == "Signature") {
        return rpc::verify(req, params, &secret_for, now);
    }
    Err(AuthError::Missing("Signature".to_string()))
}

/// Parses `2024-01-01T00:00:00Z` (the SDKs' form), or any RFC 3339 time.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, AuthError> {
    let s = s.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ") {
        return Ok(t.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| AuthError::TimestampFormat(s.to_string()))
}

fn check_skew(timestamp: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), AuthError> {
    if (now - timestamp).num_seconds().abs() > MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::Expired { timestamp, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
