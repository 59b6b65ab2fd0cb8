//! The worked examples of ECI_API.md §4.3 and verifier behaviour on built requests.

use chrono::TimeZone;

use super::*;
use crate::canon::encode_query;

const AK: &str = "testAccessKeyId";
const SECRET: &str = "testSecret";
const NONCE: &str = "3a7c1e2b9f0d4c5e8a6b7c8d9e0f1a2b";

fn s(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn business() -> Vec<(String, String)> {
    s(&[
        ("RegionId", "cn-hangzhou"),
        ("ContainerGroupName", "test-cg"),
        ("Container.1.Name", "busybox"),
        ("Container.1.Image", "busybox:latest"),
        ("Container.1.Cpu", "0.5"),
        ("Container.1.Memory", "1.0"),
        ("Container.1.Command.1", "sleep"),
        ("Container.1.Command.2", "3600"),
        ("Tag.1.Key", "owner"),
        ("Tag.1.Value", "a b*c~/é"),
    ])
}

fn example_headers() -> Vec<(String, String)> {
    s(&[
        ("host", "eci.aliyuncs.com"),
        ("x-acs-version", "2018-08-08"),
        ("x-acs-action", "CreateContainerGroup"),
        (
            "user-agent",
            "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
        ),
        ("x-acs-date", "2024-01-01T00:00:00Z"),
        ("x-acs-signature-nonce", NONCE),
        ("accept", "application/json"),
        ("x-acs-content-sha256", &content_sha256(b"")),
        ("x-acs-credentials-provider", "static_ak"),
    ])
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, h, m, 0).unwrap()
}

fn secrets(ak: &str) -> Option<String> {
    (ak == AK).then(|| SECRET.to_string())
}

#[test]
fn acs3_worked_example() {
    let auth = sign_acs3(
        "POST",
        "/",
        &business(),
        &example_headers(),
        b"",
        AK,
        SECRET,
    );
    assert_eq!(
        auth,
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=accept;host;user-agent;\
         x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;\
         x-acs-signature-nonce;x-acs-version,\
         Signature=d065e9487aa0cd19f457ea3da52bd930f45e184a5a234c046cf719d313c27a09"
    );
}

fn rpc_v2_params() -> Vec<(String, String)> {
    let mut p = business();
    p.extend(s(&[
        ("Action", "CreateContainerGroup"),
        ("Format", "json"),
        ("Version", "2018-08-08"),
        ("Timestamp", "2024-01-01T00:00:00Z"),
        ("SignatureNonce", NONCE),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", AK),
    ]));
    p
}

#[test]
fn rpc_post_worked_example() {
    assert_eq!(
        sign_rpc("POST", &rpc_v2_params(), SECRET),
        "Z3JiELV5FKnqGNusXLMZ/jU4jpo="
    );
}

fn legacy_query() -> &'static str {
    "RegionId=cn-hangzhou&ContainerGroupName=test-cg&Container.1.Name=busybox&Container.1.Image=busybox%3Alatest&Container.1.Cpu=0.5&Container.1.Memory=1.0&Container.1.Command.1=sleep&Container.1.Command.2=3600&Tag.1.Key=owner&Tag.1.Value=a%20b%2Ac~%2F%C3%A9&Version=2018-08-08&Action=CreateContainerGroup&Format=JSON&Timestamp=2024-01-01T00%3A00%3A00Z&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=3a7c1e2b9f0d4c5e8a6b7c8d9e0f1a2b&AccessKeyId=testAccessKeyId&Signature=AMWNbUNNVjiemGbaVb4t%2FeGHKic%3D"
}

#[test]
fn legacy_get_worked_example() {
    let params = crate::canon::form_decode(legacy_query()).unwrap();
    let sts = rpc_string_to_sign("GET", &params);
    assert!(sts.starts_with("GET&%2F&AccessKeyId%3DtestAccessKeyId%26Action%3D"));
    assert!(sts.contains("%26SignatureType%3D%26SignatureVersion%3D1.0%26"));
    assert!(sts.contains(
        "Tag.1.Value%3Da%2520b%252Ac~%252F%25C3%25A9%26Timestamp%3D2024-01-01T00%253A00%253A00Z"
    ));
    assert_eq!(
        sign_rpc("GET", &params, SECRET),
        "AMWNbUNNVjiemGbaVb4t/eGHKic="
    );

    let req = RawRequest {
        method: "GET",
        path: "/",
        raw_query: legacy_query(),
        headers: &[],
        body: b"",
    };
    let v = verify(&req, secrets, at(0, 5)).unwrap();
    assert_eq!(v.scheme, Scheme::RpcHmacSha1);
    assert_eq!(v.nonce, NONCE);
    assert_eq!(v.access_key_id, AK);
    assert_eq!(v.action.as_deref(), Some("CreateContainerGroup"));
    assert_eq!(v.timestamp, at(0, 0));
    // The same query sent with POST does not verify: the method is signed.
    let post = RawRequest {
        method: "POST",
        ..req
    };
    let err = verify(&post, secrets, at(0, 5)).unwrap_err();
    let api = err.to_api_error();
    assert_eq!(api.code, "SignatureDoesNotMatch");
    // The legacy SDK reads the server's string to sign after the first ':'.
    let after = api.message.split(':').nth(1).unwrap();
    assert!(after.starts_with("POST&%2F&AccessKeyId%3D"), "{after}");
}

#[test]
fn acs3_verifies_with_plus_encoded_query_and_header_case() {
    let query = business();
    let headers = example_headers();
    let auth = sign_acs3("POST", "/", &query, &headers, b"", AK, SECRET);
    // Python's urlencode writes a space as '+'; header names arrive in any case, values padded.
    let raw_query =
        encode_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))).replace("%20", "+");
    let mut received: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), format!("  {v} ")))
        .collect();
    received.push(("Authorization".into(), auth));
    received.push(("Accept-Encoding".into(), "identity".into()));
    let req = RawRequest {
        method: "POST",
        path: "/",
        raw_query: &raw_query,
        headers: &received,
        body: b"",
    };
    let v = verify(&req, secrets, at(0, 14)).unwrap();
    assert_eq!(v.scheme, Scheme::Acs3HmacSha256);
    assert_eq!(v.action.as_deref(), Some("CreateContainerGroup"));
    assert_eq!(v.nonce, NONCE);

    let code = |r: &RawRequest, now| verify(r, secrets, now).unwrap_err().to_api_error().code;
    assert_eq!(code(&req, at(0, 16)), "InvalidTimeStamp.Expired");
    assert_eq!(
        verify(&req, |_| None, at(0, 1))
            .unwrap_err()
            .to_api_error()
            .code,
        "InvalidAccessKeyId.NotFound"
    );
    assert_eq!(
        verify(&req, |_| Some("other".into()), at(0, 1))
            .unwrap_err()
            .to_api_error()
            .code,
        "SignatureDoesNotMatch"
    );
    let with_body = RawRequest { body: b"x", ..req };
    assert_eq!(code(&with_body, at(0, 1)), "SignatureDoesNotMatch");
}

#[test]
fn rpc_form_body_counts() {
    let mut params = rpc_v2_params();
    let body_params = params.split_off(5);
    let mut all = params.clone();
    all.extend(body_params.clone());
    let sig = sign_rpc("POST", &all, SECRET);
    let mut q = params.clone();
    q.push(("Signature".into(), sig));
    let raw_query = encode_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let body = encode_query(body_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let headers = s(&[(
        "Content-Type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )]);
    let req = RawRequest {
        method: "POST",
        path: "/",
        raw_query: &raw_query,
        headers: &headers,
        body: body.as_bytes(),
    };
    assert!(verify(&req, secrets, at(0, 0)).is_ok());
    let no_form = RawRequest {
        headers: &[],
        ..req
    };
    assert!(verify(&no_form, secrets, at(0, 0)).is_err());
}

#[test]
fn refusals_map_to_eci_codes() {
    let code = |q: &str, h: &[(String, String)]| {
        let req = RawRequest {
            method: "GET",
            path: "/",
            raw_query: q,
            headers: h,
            body: b"",
        };
        verify(&req, secrets, at(0, 0)).unwrap_err().to_api_error()
    };
    assert_eq!(code("Action=X", &[]).code, "MissingParameter");
    let bad_ts = legacy_query().replace("2024-01-01T00%3A00%3A00Z", "yesterday");
    assert_eq!(code(&bad_ts, &[]).code, "InvalidTimeStamp.Format");
    let md5 = legacy_query().replace("HMAC-SHA1", "HMAC-MD5");
    assert_eq!(code(&md5, &[]).code, "InvalidSignatureMethod");
    let basic = s(&[("Authorization", "Basic abc")]);
    assert_eq!(code("", &basic).code, "InvalidSignatureMethod");
    let broken = s(&[("Authorization", "ACS3-HMAC-SHA256 Credential=a")]);
    assert_eq!(code("", &broken).code, "IncompleteSignature");
    let unsigned_date = s(&[(
        "Authorization",
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=host,Signature=00",
    )]);
    assert_eq!(code("", &unsigned_date).code, "IncompleteSignature");
    assert_eq!(code("a=%FF", &[]).code, "InvalidParameter");
}
