//! ACS3-HMAC-SHA256 (ECI_API.md §4.1): canonical request, string to sign, the client signer and
//! the server verifier.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{check_skew, parse_timestamp, AuthError, RawRequest, Scheme, Verified};
use crate::canon;

/// The algorithm name that starts the `Authorization` value and the string to sign.
pub const ACS3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Headers the verifier insists are signed when present: they carry the replay protection and
/// the operation.
const MUST_SIGN: &[&str] = &["x-acs-date", "x-acs-signature-nonce"];
const MUST_SIGN_IF_PRESENT: &[&str] = &["x-acs-action", "x-acs-version"];

/// Lower-case hex SHA-256 of a body, as sent in `x-acs-content-sha256`.
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `name:value\n` for each header, names lower-cased and sorted, values trimmed, repeated names'
/// values sorted and joined with `,`; returns that block and the `SignedHeaders` list.
pub fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let mut block = String::new();
    for name in &names {
        let mut values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        values.sort();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    (block, names.join(";"))
}

fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}")
}

/// `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
pub fn acs3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ACS3_ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length")
}

/// Signs a request the way the official SDK does and returns the `Authorization` value.
///
/// `headers` are every header to sign (at least `host`, `x-acs-action`, `x-acs-version`,
/// `x-acs-date`, `x-acs-signature-nonce`, `x-acs-content-sha256`); `query` the decoded query
/// parameters.
pub fn sign_acs3(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    access_key_id: &str,
    secret: &str,
) -> String {
    let (block, signed) = canonical_headers(headers);
    let cq = canon::sorted_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let cr = canonical_request(method, path, &cq, &block, &signed, &content_sha256(body));
    let mut m = mac(secret);
    m.update(acs3_string_to_sign(&cr).as_bytes());
    let sig = hex::encode(m.finalize().into_bytes());
    format!("{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={sig}")
}

struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Parses `Credential=…,SignedHeaders=…,Signature=…` (what follows the algorithm name).
fn parse_authorization<'a>(rest: &'a str) -> Result<Authorization<'a>, AuthError> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(AuthError::Incomplete(format!(
                "Authorization part {part:?} has no '='"
            )));
        };
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let need = |v: Option<&'a str>, name: &str| {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| AuthError::Incomplete(format!("Authorization has no {name}")))
    };
    Ok(Authorization {
        credential: need(credential, "Credential")?,
        signed_headers: need(signed_headers, "SignedHeaders")?,
        signature: need(signature, "Signature")?,
    })
}

pub(super) fn verify(
    req: &RawRequest,
    auth_rest: &str,
    secret_for: &dyn Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Result<Verified, AuthError> {
    let auth = parse_authorization(auth_rest)?;
    let names: Vec<String> = auth
        .signed_headers
        .split(';')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(AuthError::Incomplete(
            "SignedHeaders has an empty name".into(),
        ));
    }
    let present = |name: &str| req.header(name).is_some();
    for must in MUST_SIGN
        .iter()
        .chain(MUST_SIGN_IF_PRESENT.iter().filter(|n| present(n)))
    {
        if !names.iter().any(|n| n == must) {
            return Err(AuthError::Incomplete(format!("{must} is not signed")));
        }
    }
    let secret = secret_for(auth.credential)
        .ok_or_else(|| AuthError::UnknownAccessKey(auth.credential.into()))?;

    let date = req
        .header("x-acs-date")
        .ok_or_else(|| AuthError::Missing("x-acs-date".into()))?;
    let timestamp = parse_timestamp(date)?;
    check_skew(timestamp, now)?;
    let nonce = req
        .header("x-acs-signature-nonce")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AuthError::Missing("x-acs-signature-nonce".into()))?;

    let hashed_payload = content_sha256(req.body);
    if let Some(claimed) = req.header("x-acs-content-sha256") {
        if !claimed.trim().eq_ignore_ascii_case(&hashed_payload) {
            return Err(AuthError::ContentHash);
        }
    }

    let mut block = String::new();
    for name in &names {
        let mut values: Vec<&str> = req.header_values(name).into_iter().map(str::trim).collect();
        if values.is_empty() {
            return Err(AuthError::Incomplete(format!(
                "signed header {name} is missing"
            )));
        }
        values.sort();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    let query = canon::form_decode(req.raw_query).map_err(AuthError::Query)?;
    let cq = canon::sorted_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let cr = canonical_request(
        req.method,
        req.path,
        &cq,
        &block,
        auth.signed_headers,
        &hashed_payload,
    );
    let string_to_sign = acs3_string_to_sign(&cr);
    let provided = hex::decode(auth.signature).unwrap_or_default();
    let mut m = mac(&secret);
    m.update(string_to_sign.as_bytes());
    // verify_slice compares in constant time.
    if m.verify_slice(&provided).is_err() {
        return Err(AuthError::Mismatch { string_to_sign });
    }
    Ok(Verified {
        access_key_id: auth.credential.to_string(),
        nonce: nonce.to_string(),
        timestamp,
        scheme: Scheme::Acs3HmacSha256,
        action: req.header("x-acs-action").map(|a| a.trim().to_string()),
    })
}
