//! Bearer-token authentication against a real Debian `docker-registry` configured with
//! `auth: token`: the registry trusts a certificate made here with `openssl`, and a token
//! service written here (axum on loopback) issues JWTs signed with its key, only to the right
//! user name and password. Pulls follow the registry's `WWW-Authenticate` challenge to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use berth_core::{ImagePullPolicy, RegistryCredential};
use berth_image::testutil::{build_busybox, Pusher, TestRegistry};
use berth_image::{ImageError, ImageStore, PullOptions};

const SERVICE: &str = "berth-test-registry";
const ISSUER: &str = "berth-test-issuer";

struct TokenService {
    key: PathBuf,
    cert_der: Vec<u8>,
    issued: AtomicUsize,
    refused: AtomicUsize,
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An RS256 JWT with the certificate in `x5c`, signed by `openssl dgst`.
fn sign(service: &TokenService, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&service.cert_der)],
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&service.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", b64url(&out.stdout))
}

async fn token(
    State(service): State<Arc<TokenService>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("berth:s3cret")
    );
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if !authorized || query.get("service").map(String::as_str) != Some(SERVICE) {
        service.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"details":"incorrect username or password"}"#.into(),
        );
    }
    let scope = query.get("scope").cloned().unwrap_or_default();
    let mut parts = scope.splitn(3, ':');
    let (kind, name, actions) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let issued = service.issued.fetch_add(1, Ordering::SeqCst);
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "berth", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("token-{issued}"),
        "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
    });
    let jwt = sign(&service, &claims);
    (
        StatusCode::OK,
        serde_json::json!({"token": jwt, "expires_in": 300}).to_string(),
    )
}

fn login(server: &str, password: &str) -> RegistryCredential {
    RegistryCredential {
        server: server.into(),
        user_name: "berth".into(),
        password: password.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_the_realm() {
    let keys = tempfile::tempdir().unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth token issuer",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
        keys.path(),
    );
    openssl(
        &[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ],
        keys.path(),
    );
    let service = Arc::new(TokenService {
        key: keys.path().join("key.pem"),
        cert_der: std::fs::read(keys.path().join("cert.der")).unwrap(),
        issued: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/token", get(token))
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let registry =
        TestRegistry::start_token_auth(&realm, SERVICE, ISSUER, &keys.path().join("cert.pem"))
            .unwrap();
    let pusher = Pusher::new(&registry.addr, "private/busybox", Some(("berth", "s3cret")))
        .await
        .unwrap();
    let digest = pusher
        .image("v1", &build_busybox(&[]).unwrap())
        .await
        .unwrap();
    let pushed = service.issued.load(Ordering::SeqCst);
    assert!(pushed >= 1, "the push went through the token service");

    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let reference = format!("{}/private/busybox:v1", registry.addr);
    let plain = |credentials: Vec<RegistryCredential>| PullOptions {
        credentials,
        plain_http: vec![registry.addr.clone()],
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    };

    // Anonymous and wrong passwords are refused by the token service, with its message.
    for credentials in [vec![], vec![login(&registry.addr, "wrong")]] {
        let err = store
            .ensure(&reference, &plain(credentials), &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ImageError::Token { .. }), "{err:?}");
        assert!(err.is_unauthorized());
        assert!(
            err.to_string().contains("incorrect username or password"),
            "{err}"
        );
    }
    assert_eq!(service.issued.load(Ordering::SeqCst), pushed);

    // The right login gets one token, reused for manifest, config and layer, and again for
    // the next pull of the same repository.
    let image = store
        .ensure(
            &reference,
            &plain(vec![login(&registry.addr, "s3cret")]),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(service.issued.load(Ordering::SeqCst), pushed + 1);
    store
        .ensure(
            &reference,
            &plain(vec![login(&registry.addr, "s3cret")]),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(service.issued.load(Ordering::SeqCst), pushed + 1);

    // A login from the node's configuration serves pulls that bring none; a pull's own
    // login wins over it.
    let node = ImageStore::open(tmp.path().join("node"))
        .unwrap()
        .with_node_credentials(vec![login(&format!("http://{}", registry.addr), "s3cret")]);
    let image = node
        .ensure(&reference, &plain(vec![]), &|_| {})
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    let err = node
        .ensure(
            &reference,
            &plain(vec![login(&registry.addr, "wrong")]),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
}
