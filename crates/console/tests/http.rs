//! The console's router over an in-memory store and a node that runs nothing: sign-in and its
//! cookie, the session's key read again, CSRF refusals, and one account's group unseen by
//! another — all through the API's own call path.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use berth_control::{Control, NodeClient};
use berth_store::{AccessKey, SqliteStore, Store};
use tower::ServiceExt;

struct NullNode;

impl berth_control::NodeObserve for NullNode {}
impl berth_control::CacheNode for NullNode {}

#[async_trait::async_trait]
impl NodeClient for NullNode {
    async fn apply(&self, _rec: berth_core::GroupRecord) {}
    async fn remove(
        &self,
        _id: &berth_core::GroupId,
        _grace: std::time::Duration,
    ) -> Result<(), berth_control::NodeError> {
        Ok(())
    }
    async fn read_log(
        &self,
        _id: &berth_core::GroupId,
        _req: &berth_control::LogRequest,
    ) -> Result<String, berth_control::NodeError> {
        Ok(String::new())
    }
}

struct Fixture {
    router: Router,
    store: Arc<dyn Store>,
}

/// The console of a berth started on `store`.
fn router_on(store: Arc<dyn Store>) -> Router {
    let control = Control::new(store, "local");
    control.attach_node(Arc::new(NullNode));
    let state = berth_server::AppState::new(control);
    let console = berth_console::Console::new(state, Default::default());
    Router::new().nest_service("/console", berth_console::router(console))
}

async fn fixture() -> Fixture {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    for (account, id, secret) in [("a", "AKA", "secret-a"), ("b", "AKB", "secret-b")] {
        store
            .create_access_key(&AccessKey {
                account: account.into(),
                access_key_id: id.into(),
                secret: secret.into(),
            })
            .await
            .unwrap();
    }
    Fixture {
        router: router_on(store.clone()),
        store,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(r: &Router, req: Request<Body>) -> Answer {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(r: &Router, path: &str, cookie: &str) -> Answer {
    let req = Request::get(path)
        .header(header::COOKIE, cookie)
        .header(header::HOST, "console.test")
        .body(Body::empty())
        .unwrap();
    send(r, req).await
}

async fn post(r: &Router, path: &str, cookie: &str, form: &str) -> Answer {
    let req = Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::HOST, "console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    send(r, req).await
}

/// Signs in; answers the cookie pair and the session's CSRF token.
async fn sign_in(r: &Router, id: &str, secret: &str) -> (String, String) {
    let a = post(
        r,
        "/console/sign-in",
        "",
        &format!("access_key_id={id}&access_key_secret={secret}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = get(r, "/console/groups", &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    (cookie, csrf)
}

#[tokio::test]
async fn sign_in_refuses_a_wrong_secret_and_an_unknown_key_alike() {
    let f = fixture().await;
    for form in [
        "access_key_id=AKA&access_key_secret=wrong",
        "access_key_id=NOPE&access_key_secret=secret-a",
    ] {
        let a = post(&f.router, "/console/sign-in", "", form).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.body.contains("InvalidAccessKey"), "{}", a.body);
        assert!(!a.headers.contains_key(header::SET_COOKIE));
        assert!(a.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self';"));
    }
    // Past the burst of one key id, sign-ins are throttled even with the right secret.
    for _ in 0..10 {
        post(
            &f.router,
            "/console/sign-in",
            "",
            "access_key_id=AKB&access_key_secret=x",
        )
        .await;
    }
    let a = post(
        &f.router,
        "/console/sign-in",
        "",
        "access_key_id=AKB&access_key_secret=secret-b",
    )
    .await;
    assert!(a.body.contains("Throttling.User"), "{}", a.body);
}

#[tokio::test]
async fn without_a_session_every_page_asks_to_sign_in() {
    let f = fixture().await;
    for path in [
        "/console",
        "/console/",
        "/console/groups",
        "/console/groups/new",
        "/console/usage",
    ] {
        let a = get(&f.router, path, "berth_console=forged").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.headers[header::LOCATION], "/console/sign-in");
    }
}

#[tokio::test]
async fn posts_need_the_sessions_csrf_token() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let (_, other_csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let form = "name=web&image=busybox&size=0.25%2F0.5&action=create";
    for bad in [form.to_string(), format!("{form}&csrf={other_csrf}")] {
        let a = post(&f.router, "/console/groups", &cookie, &bad).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.body.contains("Forbidden.CsrfToken"), "{}", a.body);
    }
    assert_eq!(
        f.store
            .list_groups("a", &Default::default(), 20, None)
            .await
            .unwrap()
            .total,
        0
    );
    let a = post(
        &f.router,
        "/console/groups",
        &cookie,
        &format!("{form}&csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        f.store
            .list_groups("a", &Default::default(), 20, None)
            .await
            .unwrap()
            .total,
        1
    );
}

#[tokio::test]
async fn another_accounts_group_is_not_found_and_stays() {
    let f = fixture().await;
    let (a_cookie, a_csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let created = post(
        &f.router,
        "/console/groups",
        &a_cookie,
        &format!("name=web&image=busybox&size=0.25%2F0.5&action=create&csrf={a_csrf}"),
    )
    .await;
    let location = created.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let id = location.rsplit('/').next().unwrap().to_string();
    assert!(id.starts_with("eci-"), "{location}");
    assert!(get(&f.router, "/console/groups", &a_cookie)
        .await
        .body
        .contains(&id));

    let (b_cookie, b_csrf) = sign_in(&f.router, "AKB", "secret-b").await;
    assert!(!get(&f.router, "/console/groups", &b_cookie)
        .await
        .body
        .contains(&id));
    let page = get(&f.router, &location, &b_cookie).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body.contains("InvalidParameter.NotFound"),
        "{}",
        page.body
    );
    let del = post(
        &f.router,
        &format!("{location}/delete"),
        &b_cookie,
        &format!("csrf={b_csrf}"),
    )
    .await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
    let m = get(&f.router, &format!("{location}/metrics"), &b_cookie).await;
    assert_eq!(m.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.store
            .list_groups("a", &Default::default(), 20, None)
            .await
            .unwrap()
            .total,
        1
    );
}

#[tokio::test]
async fn the_api_validation_message_comes_back_with_the_form() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let a = post(
        &f.router,
        "/console/groups",
        &cookie,
        &format!("name=Bad_Name&image=busybox&action=create&csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("InvalidParameter"), "{}", a.body);
    assert!(
        a.body.contains("value=\"busybox\""),
        "the form keeps the image"
    );
    assert!(
        a.body.contains("berth run busybox --name Bad_Name"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn disabling_the_key_or_signing_out_ends_the_session() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let out = post(
        &f.router,
        "/console/sign-out",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        get(&f.router, "/console/groups", &cookie).await.status,
        StatusCode::SEE_OTHER
    );

    let (cookie, _) = sign_in(&f.router, "AKA", "secret-a").await;
    f.store
        .set_access_key_disabled("a", "AKA", true)
        .await
        .unwrap();
    assert_eq!(
        get(&f.router, "/console/groups", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
    f.store
        .set_access_key_disabled("a", "AKA", false)
        .await
        .unwrap();
    // The session was dropped, not only refused while the key was off.
    assert_eq!(
        get(&f.router, "/console/groups", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn over_tls_the_cookie_is_secure() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    store
        .create_access_key(&AccessKey {
            account: "a".into(),
            access_key_id: "AKA".into(),
            secret: "secret-a".into(),
        })
        .await
        .unwrap();
    let state = berth_server::AppState::new(Control::new(store, "local")).with_tls();
    let console = berth_console::Console::new(state, Default::default());
    let router = Router::new().nest_service("/console", berth_console::router(console));
    let a = post(
        &router,
        "/console/sign-in",
        "",
        "access_key_id=AKA&access_key_secret=secret-a",
    )
    .await;
    let set = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    assert!(set.contains("HttpOnly; SameSite=Strict"), "{set}");
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_is_refused() {
    let f = fixture().await;
    let req = Request::post("/console/sign-in")
        .header(header::HOST, "console.test")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("access_key_id=AKA&access_key_secret=secret-a"))
        .unwrap();
    let a = send(&f.router, req).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(!a.headers.contains_key(header::SET_COOKIE));
    // The same form from the console's own origin signs in.
    let req = Request::post("/console/sign-in")
        .header(header::HOST, "console.test")
        .header(header::ORIGIN, "http://console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("access_key_id=AKA&access_key_secret=secret-a"))
        .unwrap();
    assert_eq!(send(&f.router, req).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_size_table_shows_each_sizes_price_per_hour() {
    use berth_core::price::{quote, Decimal, PriceCatalog, SECONDS_PER_HOUR};
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.router, "AKA", "secret-a").await;
    let page = get(&f.router, "/console/groups/new", &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let catalog = PriceCatalog::default();
    let prices = catalog.for_region("local", "local").unwrap();
    let mut sizes = 0;
    for size in berth_core::size::offered() {
        let q = quote(prices, size, berth_core::DEFAULT_EPHEMERAL_STORAGE_GIB);
        let hour = (q.second * Decimal::from(SECONDS_PER_HOUR)).normalize();
        let label = format!(
            "{} vCPU, {} GiB — {hour} {}/hour",
            size.cpu, size.memory, q.currency
        );
        assert!(page.body.contains(&label), "{label}");
        sizes += 1;
    }
    assert!(sizes > 40, "{sizes}");
}

#[tokio::test]
async fn the_create_form_offers_the_volume_types_the_api_takes() {
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let page = get(&f.router, "/console/groups/new", &cookie).await;
    for kind in ["disk", "memory", "config"] {
        assert!(page.body.contains(&format!("value=\"{kind}\"")), "{kind}");
    }
    // No NFS server and no host path allowed here: neither is offered.
    assert!(!page.body.contains("value=\"nfs\""));
    assert!(!page.body.contains("value=\"hostpath\""));
    // A config-file volume from the form is the group's, with its mount.
    let form = format!(
        "csrf={csrf}&name=web&image=busybox&size=0.25%2F0.5&action=create\
         &vol.1.name=conf&vol.1.kind=config&vol.1.file.1.path=a.conf\
         &vol.1.file.1.content=hello%0A&vol.1.mount_path=%2Fetc%2Fa&vol.1.read_only=on"
    );
    let a = post(&f.router, "/console/groups", &cookie, &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let groups = f
        .store
        .list_groups("a", &Default::default(), 20, None)
        .await
        .unwrap();
    let spec = &groups.groups[0].spec;
    assert_eq!(spec.volumes[0].name, "conf");
    let berth_core::VolumeSource::ConfigFile { files, .. } = &spec.volumes[0].source else {
        panic!("{:?}", spec.volumes[0]);
    };
    assert_eq!(files[0].path, "a.conf");
    assert_eq!(files[0].content, "aGVsbG8K");
    let m = &spec.containers[0].volume_mounts[0];
    assert_eq!((m.mount_path.as_str(), m.read_only), ("/etc/a", true));
    // A config file over the API's 1 MiB is the API's refusal, not the form's body limit.
    let big = "a".repeat((1 << 20) + 1);
    let too_big = form
        .replace("hello%0A", &big)
        .replace("name=web", "name=web2");
    let a = post(&f.router, "/console/groups", &cookie, &too_big).await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "{}",
        &a.body[..200.min(a.body.len())]
    );
    assert!(a
        .body
        .contains("Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"));
}

#[tokio::test]
async fn sessions_outlive_a_restart_until_they_expire() {
    use sha2::{Digest, Sha256};
    let f = fixture().await;
    let (cookie, csrf) = sign_in(&f.router, "AKA", "secret-a").await;
    let id = cookie.split_once('=').unwrap().1;
    // The store holds a digest of the id, never the id.
    let digest = |id: &str| hex::encode(Sha256::digest(id.as_bytes()));
    assert!(f.store.console_session(id).await.unwrap().is_none());
    let row = f.store.console_session(&digest(id)).await.unwrap().unwrap();
    assert_eq!(
        (row.account.as_str(), row.csrf.as_str()),
        ("a", csrf.as_str())
    );

    // berth restarts: a new state and console on the same store.
    let again = router_on(f.store.clone());
    let page = get(&again, "/console/groups", &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(&csrf),
        "the CSRF token is the session's still"
    );
    let form = format!("csrf={csrf}&name=web&image=busybox&size=0.25%2F0.5&action=create");
    let a = post(&again, "/console/groups", &cookie, &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);

    // Sessions idle for 30 minutes, or made 12 hours ago, are over and their rows go.
    let now = chrono::Utc::now().timestamp();
    for (n, created, used) in [(1, now - 3600, now - 30 * 60), (2, now - 12 * 3600, now)] {
        let id = format!("{n:064}");
        f.store
            .create_console_session(
                &berth_store::ConsoleSession {
                    id_hash: digest(&id),
                    account: "a".into(),
                    access_key_id: "AKA".into(),
                    csrf: "t".repeat(64),
                    created,
                    used,
                },
                berth_store::SessionBounds {
                    idle_before: i64::MIN,
                    created_before: i64::MIN,
                    per_account: 32,
                    max: 10_000,
                },
            )
            .await
            .unwrap();
        let a = get(&again, "/console/groups", &format!("berth_console={id}")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{n}");
        assert_eq!(a.headers[header::LOCATION], "/console/sign-in");
        assert!(
            f.store
                .console_session(&digest(&id))
                .await
                .unwrap()
                .is_none(),
            "{n}"
        );
    }
    // The live one is untouched.
    assert_eq!(
        get(&again, "/console/groups", &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_disabled_key_ends_its_stored_sessions_at_once() {
    let f = fixture().await;
    let (cookie, _) = sign_in(&f.router, "AKA", "secret-a").await;
    f.store
        .set_access_key_disabled("a", "AKA", true)
        .await
        .unwrap();
    let again = router_on(f.store.clone());
    let a = get(&again, "/console/groups", &cookie).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        f.store.console_sessions().await.unwrap(),
        0,
        "the session's row is deleted"
    );
}
