//! The signatures of node protocol calls (docs/NODE_PROTOCOL.md): HMAC-SHA256 with the
//! node's key over the method, the path, the query, the time, a nonce and the SHA-256 of the
//! body. Both directions sign the same way: the node its calls to the control plane, the
//! control plane its calls to the node's server, so each side admits only the other.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The header naming the node.
pub const NODE_HEADER: &str = "x-berth-node";
/// The header with the time of the call, seconds since the epoch.
pub const DATE_HEADER: &str = "x-berth-date";
/// The header with the call's nonce (16 to 64 characters of `[0-9a-zA-Z-]`).
pub const NONCE_HEADER: &str = "x-berth-nonce";
/// The header with the signature, lowercase hex.
pub const SIGNATURE_HEADER: &str = "x-berth-signature";
/// How far the time of a call may be from the receiver's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// The length of a node key.
pub const KEY_LEN: usize = 32;

const ALGORITHM: &str = "BERTH-NODE-HMAC-SHA256";

/// The headers that sign one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub node: String,
    pub date: i64,
    pub nonce: String,
    pub signature: String,
}

impl Signed {
    /// The headers as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (NODE_HEADER, self.node.clone()),
            (DATE_HEADER, self.date.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// Why a call's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the call is not signed: header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is not valid")]
    Malformed(&'static str),
    #[error("the call's time is more than {MAX_SKEW_SECS} s from this clock")]
    Skew,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the nonce was used before")]
    Replayed,
}

fn string_to_sign(
    method: &str,
    path: &str,
    query: &str,
    date: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{ALGORITHM}\n{}\n{path}\n{query}\n{date}\n{nonce}\n{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
}

fn mac(key: &[u8], text: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac
}

/// Signs a call of `node` at `date` (seconds since the epoch).
pub fn sign(
    node: &str,
    key: &[u8],
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    date: i64,
) -> Signed {
    use rand::Rng;
    let nonce: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let text = string_to_sign(method, path, query, date, &nonce, body);
    Signed {
        node: node.to_owned(),
        date,
        signature: hex::encode(mac(key, &text).finalize().into_bytes()),
        nonce,
    }
}

/// The signing headers of a received call, not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    pub node: String,
    date: i64,
    nonce: String,
    signature: Vec<u8>,
}

impl Presented {
    /// Reads the headers through `get` (a header's value by its lowercase name).
    pub fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, SignatureError> {
        let need = |name: &'static str| get(name).ok_or(SignatureError::Missing(name));
        let node = need(NODE_HEADER)?;
        if node.is_empty()
            || node.len() > 64
            || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SignatureError::Malformed(NODE_HEADER));
        }
        let date = need(DATE_HEADER)?
            .parse::<i64>()
            .map_err(|_| SignatureError::Malformed(DATE_HEADER))?;
        let nonce = need(NONCE_HEADER)?;
        if !(16..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SignatureError::Malformed(NONCE_HEADER));
        }
        let signature = hex::decode(need(SIGNATURE_HEADER)?)
            .map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))?;
        Ok(Self {
            node: node.to_owned(),
            date,
            nonce: nonce.to_owned(),
            signature,
        })
    }

    /// Checks the signature with `key` (in constant time), the time against `now` and the
    /// nonce against `seen` (recorded only when all else holds).
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        key: &[u8],
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        now: i64,
        seen: &Nonces,
    ) -> Result<(), SignatureError> {
        if (now - self.date).abs() > MAX_SKEW_SECS {
            return Err(SignatureError::Skew);
        }
        let text = string_to_sign(method, path, query, self.date, &self.nonce, body);
        mac(key, &text)
            .verify_slice(&self.signature)
            .map_err(|_| SignatureError::Mismatch)?;
        if !seen.insert(&self.node, &self.nonce, now) {
            return Err(SignatureError::Replayed);
        }
        Ok(())
    }
}

/// The nonces of the calls accepted within the skew window (both sides of it), per node.
/// Bounded: past [`Nonces::MAX`] remembered, the oldest are forgotten early, which can only
/// let a replay of a call older than all of them through while its time is still accepted.
#[derive(Default)]
pub struct Nonces {
    inner: Mutex<NonceInner>,
}

#[derive(Default)]
struct NonceInner {
    seen: HashMap<(String, String), i64>,
    order: VecDeque<(i64, (String, String))>,
}

impl Nonces {
    /// The most nonces remembered.
    pub const MAX: usize = 1 << 20;

    /// Records a nonce seen at `now`; `false` if it was seen before.
    pub fn insert(&self, node: &str, nonce: &str, now: i64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((t, _)) = inner.order.front() {
            if now - *t <= 2 * MAX_SKEW_SECS && inner.order.len() < Self::MAX {
                break;
            }
            if let Some((_, key)) = inner.order.pop_front() {
                inner.seen.remove(&key);
            }
        }
        let key = (node.to_owned(), nonce.to_owned());
        if inner.seen.contains_key(&key) {
            return false;
        }
        inner.seen.insert(key.clone(), now);
        inner.order.push_back((now, key));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presented(s: &Signed) -> Presented {
        let headers: HashMap<&str, String> = s.headers().into_iter().collect();
        Presented::read(|name| headers.get(name).map(String::as_str)).expect("reads")
    }

    #[test]
    fn a_signed_call_verifies_once() {
        let key = [7u8; KEY_LEN];
        let s = sign("node-a", &key, "post", "/node/v1/report", "", b"{}", 1_000);
        let p = presented(&s);
        let nonces = Nonces::default();
        assert_eq!(p.node, "node-a");
        p.verify(&key, "POST", "/node/v1/report", "", b"{}", 1_010, &nonces)
            .expect("verifies");
        assert_eq!(
            p.verify(&key, "POST", "/node/v1/report", "", b"{}", 1_010, &nonces),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = [7u8; KEY_LEN];
        let s = sign(
            "node-a",
            &key,
            "GET",
            "/node/v1/watch",
            "after=3",
            b"",
            1_000,
        );
        let p = presented(&s);
        let n = Nonces::default();
        let bad = [
            ("POST", "/node/v1/watch", "after=3", &b""[..], &key[..]),
            ("GET", "/node/v1/watcH", "after=3", b"", &key),
            ("GET", "/node/v1/watch", "after=4", b"", &key),
            ("GET", "/node/v1/watch", "after=3", b"x", &key),
            ("GET", "/node/v1/watch", "after=3", b"", &[8u8; KEY_LEN]),
        ];
        for (method, path, query, body, key) in bad {
            assert_eq!(
                p.verify(key, method, path, query, body, 1_000, &n),
                Err(SignatureError::Mismatch),
                "{method} {path}?{query}"
            );
        }
        assert_eq!(
            p.verify(
                &key,
                "GET",
                "/node/v1/watch",
                "after=3",
                b"",
                1_000 + MAX_SKEW_SECS + 1,
                &n
            ),
            Err(SignatureError::Skew)
        );
        p.verify(&key, "GET", "/node/v1/watch", "after=3", b"", 1_000, &n)
            .expect("the failed checks recorded no nonce");
    }

    #[test]
    fn headers_are_checked() {
        let s = sign("node-a", &[1; KEY_LEN], "GET", "/", "", b"", 0);
        let mut headers: HashMap<&str, String> = s.headers().into_iter().collect();
        headers.remove(NONCE_HEADER);
        assert_eq!(
            Presented::read(|n| headers.get(n).map(String::as_str)),
            Err(SignatureError::Missing(NONCE_HEADER))
        );
        headers.insert(NONCE_HEADER, "short".into());
        assert_eq!(
            Presented::read(|n| headers.get(n).map(String::as_str)),
            Err(SignatureError::Malformed(NONCE_HEADER))
        );
        headers.insert(NONCE_HEADER, "a".repeat(20));
        headers.insert(NODE_HEADER, "../x".into());
        assert_eq!(
            Presented::read(|n| headers.get(n).map(String::as_str)),
            Err(SignatureError::Malformed(NODE_HEADER))
        );
    }

    #[test]
    fn nonces_are_forgotten_after_the_window() {
        let n = Nonces::default();
        assert!(n.insert("a", "x", 0));
        assert!(!n.insert("a", "x", 10));
        assert!(n.insert("b", "x", 10), "per node");
        assert!(n.insert("c", "y", 2 * MAX_SKEW_SECS + 1));
        assert!(n.insert("a", "x", 2 * MAX_SKEW_SECS + 1), "forgotten");
    }
}
