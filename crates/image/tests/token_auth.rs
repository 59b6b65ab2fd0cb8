//! Bearer-token authentication against a real Debian `docker-registry` configured with
//! `auth: token`: the registry trusts a certificate made here with `openssl`, and a token
//! service written here (axum on loopback) issues JWTs signed with its key, only to the right
//! user name and password. Pulls follow the registry's `WWW-Authenticate` challenge to it.
//!
//! The token service sits on a front (one loopback port) that passes every other request on
//! to the registry, as Harbor serves its token service beside the registry: pulls through the
//! front send their login to the realm. Pulls from the registry's own port find the realm on
//! another port over plain HTTP, which never sees their login.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
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
    /// Token requests that carried an `Authorization` header.
    with_login: AtomicUsize,
}

/// The front: the token service and the registry behind it.
#[derive(Clone)]
struct Front {
    service: Arc<TokenService>,
    registry: String,
    http: reqwest::Client,
}

impl FromRef<Front> for Arc<TokenService> {
    fn from_ref(front: &Front) -> Self {
        front.service.clone()
    }
}

/// Passes a pull's request (GET or HEAD, no body) on to the registry and its answer back.
async fn forward(
    State(front): State<Front>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let url = format!("http://{}{uri}", front.registry);
    let mut request = front.http.request(method, url);
    for name in ["authorization", "accept", "range"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.expect("the registry answers");
    let status = response.status();
    let mut out = HeaderMap::new();
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length"
        ) {
            out.insert(name.clone(), value.clone());
        }
    }
    let body = response
        .bytes()
        .await
        .expect("the registry's body")
        .to_vec();
    (status, out, body)
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
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    if authorization.is_some() {
        service.with_login.fetch_add(1, Ordering::SeqCst);
    }
    let authorized = authorization == Some(expected.as_str());
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
        with_login: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{front}/token");
    let registry =
        TestRegistry::start_token_auth(&realm, SERVICE, ISSUER, &keys.path().join("cert.pem"))
            .unwrap();
    let app = Router::new()
        .route("/token", get(token))
        .fallback(forward)
        .with_state(Front {
            service: service.clone(),
            registry: registry.addr.clone(),
            http: reqwest::Client::new(),
        });
    tokio::spawn(async move { axum::serve(listener, app).await });

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
    let reference = format!("{front}/private/busybox:v1");
    let plain = |credentials: Vec<RegistryCredential>| PullOptions {
        credentials,
        plain_http: vec![front.clone(), registry.addr.clone()],
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    };

    // Anonymous and wrong passwords are refused by the token service, with its message.
    for credentials in [vec![], vec![login(&front, "wrong")]] {
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
        .ensure(&reference, &plain(vec![login(&front, "s3cret")]), &|_| {})
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(service.issued.load(Ordering::SeqCst), pushed + 1);
    store
        .ensure(&reference, &plain(vec![login(&front, "s3cret")]), &|_| {})
        .await
        .unwrap();
    assert_eq!(service.issued.load(Ordering::SeqCst), pushed + 1);

    // A login from the node's configuration serves pulls that bring none; a pull's own
    // login wins over it.
    let node = ImageStore::open(tmp.path().join("node"))
        .unwrap()
        .with_node_credentials(vec![login(&format!("http://{front}"), "s3cret")]);
    let image = node
        .ensure(&reference, &plain(vec![]), &|_| {})
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    let err = node
        .ensure(&reference, &plain(vec![login(&front, "wrong")]), &|_| {})
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");

    // From the registry's own port the realm is another port over plain HTTP: the token is
    // asked for without the login, which the realm never sees, and is refused.
    let with_login = service.with_login.load(Ordering::SeqCst);
    let refused = service.refused.load(Ordering::SeqCst);
    let direct = format!("{}/private/busybox:v1", registry.addr);
    let err = store
        .ensure(
            &direct,
            &plain(vec![login(&registry.addr, "s3cret")]),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Token { .. }), "{err:?}");
    assert!(
        err.to_string().contains("incorrect username or password"),
        "{err}"
    );
    assert_eq!(service.with_login.load(Ordering::SeqCst), with_login);
    assert_eq!(service.refused.load(Ordering::SeqCst), refused + 1);
    // The same login through the front reaches the realm (a new store: no token cached).
    ImageStore::open(tmp.path().join("again"))
        .unwrap()
        .ensure(&reference, &plain(vec![login(&front, "s3cret")]), &|_| {})
        .await
        .unwrap();
    assert_eq!(service.with_login.load(Ordering::SeqCst), with_login + 1);
}
