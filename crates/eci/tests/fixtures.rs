//! The byte-exact SDK captures of tests/fixtures (see its README.md) verify, stop verifying
//! when any one byte of a signed part changes, and are refused as expired by the real clock.

use berth_eci::sign::{verify, AuthError, RawRequest, Scheme};
use chrono::{DateTime, TimeZone, Utc};

const V3: &[u8] = include_bytes!("fixtures/raw_v3default.txt");
const V2: &[u8] = include_bytes!("fixtures/raw_v2.txt");

/// A parsed HTTP/1.1 request; `None` when the bytes are not one.
struct Parsed {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse(raw: &[u8]) -> Option<Parsed> {
    let text = std::str::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/") {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Some(Parsed {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

fn secret(ak: &str) -> Option<String> {
    (ak == "testAccessKeyId").then(|| "testSecret".to_string())
}

fn capture_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 5, 0).unwrap()
}

fn check(raw: &[u8], now: DateTime<Utc>) -> Result<berth_eci::Verified, AuthError> {
    let Some(p) = parse(raw) else {
        return Err(AuthError::Missing("a parsable request".into()));
    };
    let req = RawRequest {
        method: &p.method,
        path: &p.path,
        raw_query: &p.query,
        headers: &p.headers,
        body: &p.body,
    };
    verify(&req, secret, now)
}

/// Byte ranges of the signed parts: the method and target of the request line, and for ACS3
/// every signed header line and the Authorization line.
fn signed_ranges(raw: &[u8]) -> Vec<(usize, usize)> {
    let text = std::str::from_utf8(raw).unwrap();
    let head_end = text.find("\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let first_end = text.find("\r\n").unwrap();
    let target_end = text[..first_end].rfind(' ').unwrap();
    out.push((0, target_end));
    let signed: Vec<String> = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Authorization: "))
        .and_then(|a| a.split("SignedHeaders=").nth(1))
        .map(|s| {
            s.split(',')
                .next()
                .unwrap()
                .split(';')
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut pos = first_end + 2;
    while pos < head_end {
        let end = pos + text[pos..].find("\r\n").unwrap();
        let name = text[pos..end]
            .split(':')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        if name == "authorization" || signed.contains(&name) {
            out.push((pos, end));
        }
        pos = end + 2;
    }
    out
}

#[test]
fn acs3_capture_verifies() {
    let v = check(V3, capture_time()).unwrap();
    assert_eq!(v.scheme, Scheme::Acs3HmacSha256);
    assert_eq!(v.access_key_id, "testAccessKeyId");
    assert_eq!(v.nonce, "3a7c1e2b9f0d4c5e8a6b7c8d9e0f1a2b");
    assert_eq!(
        v.timestamp,
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(v.action.as_deref(), Some("CreateContainerGroup"));
    let text = std::str::from_utf8(V3).unwrap();
    assert!(text.contains(
        "Signature=220de1506316dcede4e34e2404782ea327b224b3e4b1817804fc5abcbf590c31\r\n"
    ));
}

#[test]
fn rpc_capture_verifies() {
    let v = check(V2, capture_time()).unwrap();
    assert_eq!(v.scheme, Scheme::RpcHmacSha1);
    assert_eq!(v.nonce, "3a7c1e2b9f0d4c5e8a6b7c8d9e0f1a2b");
    assert_eq!(v.action.as_deref(), Some("CreateContainerGroup"));
    let text = std::str::from_utf8(V2).unwrap();
    assert!(text.contains("&Signature=sCjUbjeFjcLNaaaWsJUdRdejRYw%3D HTTP/1.1"));
}

fn flips_are_refused(raw: &[u8]) {
    let ranges = signed_ranges(raw);
    assert!(ranges.len() > 1 || raw.starts_with(b"POST /?Action"));
    let mut tried = 0;
    for (start, end) in ranges {
        for i in start..end {
            let mut changed = raw.to_vec();
            changed[i] ^= 0x01;
            assert!(
                check(&changed, capture_time()).is_err(),
                "flipping byte {i} ({:?}) still verifies",
                raw[i] as char
            );
            tried += 1;
        }
    }
    assert!(tried > 300, "only {tried} bytes tried");
}

#[test]
fn acs3_capture_refused_after_any_flip() {
    flips_are_refused(V3);
}

#[test]
fn rpc_capture_refused_after_any_flip() {
    flips_are_refused(V2);
}

#[test]
fn unsigned_parts_may_change() {
    let text = std::str::from_utf8(V3).unwrap().replace("identity", "gzip");
    assert!(check(text.as_bytes(), capture_time()).is_ok());
}

#[test]
fn captures_are_expired_now() {
    for raw in [V3, V2] {
        let err = check(raw, Utc::now()).unwrap_err();
        assert!(matches!(err, AuthError::Expired { .. }), "{err:?}");
        assert_eq!(err.to_api_error().code, "InvalidTimeStamp.Expired");
    }
}
