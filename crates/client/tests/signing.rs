//! The client signs as the official SDK does: the ACS3 worked example of ECI_API.md §4.3,
//! round trips through berth-eci's verifier, and real calls to a loopback server that verifies
//! them.

use berth_client::{Client, ClientError, CreateParams, DescribeParams};
use berth_core::ContainerSpec;
use berth_eci::request::{decode, Action, Request};
use berth_eci::sign::{verify, RawRequest, Scheme};
use berth_eci::Params;
use chrono::{TimeZone, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const AK: &str = "testAccessKeyId";
const SECRET: &str = "testSecret";

fn secret(ak: &str) -> Option<String> {
    (ak == AK).then(|| SECRET.to_string())
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn acs3_worked_example() {
    let client = Client::new("eci.aliyuncs.com", AK, SECRET)
        .unwrap()
        .with_user_agent("AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2")
        .with_header("x-acs-credentials-provider", "static_ak");
    let params = pairs(&[
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
    ]);
    let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let req = client.prepare(
        "CreateContainerGroup",
        &params,
        now,
        "3a7c1e2b9f0d4c5e8a6b7c8d9e0f1a2b",
    );
    let auth = &req.headers.last().unwrap().1;
    assert!(
        auth.ends_with(
            ",Signature=d065e9487aa0cd19f457ea3da52bd930f45e184a5a234c046cf719d313c27a09"
        ),
        "{auth}"
    );
    assert!(req
        .url
        .starts_with("http://eci.aliyuncs.com/?RegionId=cn-hangzhou&"));
    assert!(req.query.ends_with("Tag.1.Value=a%20b%2Ac~%2F%C3%A9"));
}

#[test]
fn prepared_requests_verify() {
    let client = Client::new("http://127.0.0.1:18080", AK, SECRET)
        .unwrap()
        .with_region("cn-local");
    let spec = CreateParams {
        name: "smoke".into(),
        containers: vec![ContainerSpec {
            name: "busybox".into(),
            image: "busybox".into(),
            command: vec!["sleep".into(), "3600".into()],
            cpu: Some(0.5),
            memory: Some(1.0),
            ..Default::default()
        }],
        ..Default::default()
    };
    let now = Utc::now();
    let req = client.prepare("CreateContainerGroup", &spec.to_query(), now, "n-1");
    let raw = RawRequest {
        method: req.method,
        path: "/",
        raw_query: &req.query,
        headers: &req.headers,
        body: b"",
    };
    let v = verify(&raw, secret, now).unwrap();
    assert_eq!(v.scheme, Scheme::Acs3HmacSha256);
    assert_eq!(v.nonce, "n-1");
    assert_eq!(v.action.as_deref(), Some("CreateContainerGroup"));
    let params = Params::parse(&req.query, None).unwrap();
    match decode(Action::CreateContainerGroup, &params).unwrap() {
        Request::Create(c) => {
            assert_eq!(c.spec.region_id, "cn-local");
            assert_eq!((c.spec.cpu, c.spec.memory), (0.5, 1.0));
        }
        other => panic!("{other:?}"),
    }
    let wrong = Client::new("127.0.0.1:18080", AK, "other").unwrap();
    let req = wrong.prepare("DescribeRegions", &[], now, "n-2");
    let raw = RawRequest {
        raw_query: &req.query,
        headers: &req.headers,
        ..raw
    };
    assert!(verify(&raw, secret, now).is_err());
}

/// Serves `n` requests: verifies each and answers with the action's canned body, or an ECI
/// error body when the signature does not verify.
async fn serve(listener: TcpListener, n: usize) {
    for _ in 0..n {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = sock.read(&mut chunk).await.unwrap();
            assert!(k > 0);
            buf.extend_from_slice(&chunk[..k]);
        }
        let text = String::from_utf8(buf).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap().split(' ');
        let (method, target) = (first.next().unwrap(), first.next().unwrap());
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = RawRequest {
            method,
            path,
            raw_query: query,
            headers: &headers,
            body: b"",
        };
        let (status, body) = match verify(&req, secret, Utc::now()) {
            Ok(v) => match v.action.as_deref() {
                Some("DescribeRegions") => (200, r#"{"RequestId":"r1","Regions":[{"RegionId":"cn-local","RegionEndpoint":"127.0.0.1","Zones":["cn-local-a"],"RecommendZones":[]}]}"#.to_string()),
                Some("DescribeContainerGroups") => (200, r#"{"RequestId":"r2","TotalCount":0,"NextToken":"","ContainerGroups":[]}"#.to_string()),
                _ => (404, r#"{"RequestId":"r3","Code":"InvalidApi.NotFound","Message":"Specified api is not found: x"}"#.to_string()),
            },
            Err(e) => {
                let e = e.to_api_error();
                (e.status, e.to_body("r4", "127.0.0.1").to_string())
            }
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        sock.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn calls_reach_a_verifying_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, 4));
    let client = Client::new(&addr.to_string(), AK, SECRET).unwrap();

    let regions = client.describe_regions().await.unwrap();
    assert_eq!(regions.request_id, "r1");
    assert_eq!(regions.regions[0].zones, vec!["cn-local-a"]);

    let groups = client
        .list_container_groups(&DescribeParams::default())
        .await
        .unwrap();
    assert!(groups.is_empty());

    match client.delete_container_group("eci-x").await {
        Err(ClientError::Api {
            status: 404,
            code,
            request_id,
            ..
        }) => {
            assert_eq!(code, "InvalidApi.NotFound");
            assert_eq!(request_id, "r3");
        }
        other => panic!("{other:?}"),
    }

    let bad = Client::new(&format!("http://{addr}"), AK, "wrong").unwrap();
    match bad.describe_regions().await {
        Err(ClientError::Api {
            status: 400,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "SignatureDoesNotMatch");
            assert!(message.contains(':'));
        }
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}
