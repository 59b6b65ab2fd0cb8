//! RPC HMAC-SHA1, SignatureVersion 1.0 (ECI_API.md §4.2): string to sign, the signer and the
//! verifier, for POST (V2 SDK in v2 mode) and GET (legacy SDK) alike.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{check_skew, parse_timestamp, AuthError, RawRequest, Scheme, Verified};
use crate::canon::{pct, sorted_query};

/// `METHOD&%2F&pct(sorted pct(k)=pct(v) joined by &)` over every parameter but `Signature`.
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    string_to_sign_at(method, "/", params)
}

/// The string to sign with the request's own path in place of `/`: the SDKs always send `/`,
/// and a request sent elsewhere then fails to verify instead of slipping through unsigned.
fn string_to_sign_at(method: &str, path: &str, params: &[(String, String)]) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let canonicalized = sorted_query(
        params
            .iter()
            .filter(|(k, _)| k != "Signature")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    format!("{method}&{}&{}", pct(path), pct(&canonicalized))
}

fn mac(secret: &str) -> Hmac<Sha1> {
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha1> as Mac>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC accepts any key length")
}

/// Base64 of HMAC-SHA1(secret + "&", string to sign): the `Signature` parameter's value.
pub fn sign_rpc(method: &str, params: &[(String, String)], secret: &str) -> String {
    let mut m = mac(secret);
    m.update(rpc_string_to_sign(method, params).as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, AuthError> {
    param(params, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AuthError::Missing(name.to_string()))
}

pub(super) fn verify(
    req: &RawRequest,
    params: Vec<(String, String)>,
    secret_for: &dyn Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Result<Verified, AuthError> {
    let signature = required(&params, "Signature")?;
    let method = required(&params, "SignatureMethod")?;
    if method != "HMAC-SHA1" {
        return Err(AuthError::UnsupportedMethod(method.to_string()));
    }
    let version = required(&params, "SignatureVersion")?;
    if version != "1.0" {
        return Err(AuthError::Incomplete(format!(
            "SignatureVersion {version:?} is not 1.0"
        )));
    }
    let access_key_id = required(&params, "AccessKeyId")?;
    let nonce = required(&params, "SignatureNonce")?;
    let timestamp = parse_timestamp(required(&params, "Timestamp")?)?;
    let secret = secret_for(access_key_id)
        .ok_or_else(|| AuthError::UnknownAccessKey(access_key_id.into()))?;
    check_skew(timestamp, now)?;

    let string_to_sign = string_to_sign_at(req.method, req.path, &params);
    let provided = STANDARD.decode(signature.trim()).unwrap_or_default();
    let mut m = mac(&secret);
    m.update(string_to_sign.as_bytes());
    // verify_slice compares in constant time.
    if m.verify_slice(&provided).is_err() {
        return Err(AuthError::Mismatch { string_to_sign });
    }
    Ok(Verified {
        access_key_id: access_key_id.to_string(),
        nonce: nonce.to_string(),
        timestamp,
        scheme: Scheme::RpcHmacSha1,
        action: param(&params, "Action").map(str::to_string),
    })
}
