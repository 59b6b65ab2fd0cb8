//! Secrets at rest: access-key secrets and registry passwords never reach the database files
//! in plain text, rows written in plain text before are sealed when the store opens, and a
//! database whose key file is gone is refused. On PostgreSQL, the rows hold no secret in plain
//! text, and a replica without the shared key file, or with another key, is refused.

use std::path::Path;

/// Quotas no test here comes near.
const ROOMY: berth_store::GroupLimits = berth_store::GroupLimits {
    max_cpu: 1000.0,
    max_memory: 1000.0,
    max_groups: 1000,
    max_storage: f64::INFINITY,
};

use berth_core::{
    normalize_size, GroupId, GroupRecord, GroupSpec, GroupStatus, ImageCacheRecord,
    RegistryCredential,
};
use berth_store::{AccessKey, KeyError, SqliteStore, Store, StoreError, TokenKind, KEY_FILE};
use chrono::Utc;

mod common;

const SECRET: &str = "AKsecret-Zq81mXv0pL";
const PASSWORD: &str = "registry-pw-Hf72Kq";
const CACHE_PASSWORD: &str = "cache-pw-Yt31Nb";

fn cred(password: &str) -> RegistryCredential {
    RegistryCredential {
        server: "registry.example:5000".into(),
        user_name: "robot".into(),
        password: password.into(),
    }
}

fn group(n: u8) -> GroupRecord {
    let size = normalize_size(None, None).unwrap();
    GroupRecord {
        client_token: Some(format!("tok{n}")),
        ..GroupRecord::new(
            GroupId::from_random([n; 20]),
            "acct",
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: size.cpu,
                memory: size.memory,
                registry_credentials: vec![cred(PASSWORD)],
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

fn cache() -> ImageCacheRecord {
    ImageCacheRecord {
        id: "imc-1".into(),
        account: "acct".into(),
        name: "c".into(),
        images: vec!["busybox".into()],
        creation_time: Utc::now(),
        client_token: Some("ctok".into()),
        registry_credentials: vec![cred(CACHE_PASSWORD)],
        ..Default::default()
    }
}

fn group_params(rec: &GroupRecord) -> String {
    serde_json::to_string(&rec.spec).unwrap()
}

/// Every byte of the database, its log and its shared memory.
fn files_hold(db: &Path, needle: &str) -> Vec<String> {
    let mut found = vec![];
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        let Ok(bytes) = std::fs::read(&name) else {
            continue;
        };
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(name.to_string_lossy().into_owned());
        }
    }
    found
}

fn assert_no_secret_in_files(db: &Path) {
    for needle in [SECRET, PASSWORD, CACHE_PASSWORD] {
        assert_eq!(
            files_hold(db, needle),
            Vec::<String>::new(),
            "{needle} found"
        );
    }
}

async fn fill(s: &dyn Store) {
    s.create_access_key(&AccessKey {
        account: "acct".into(),
        access_key_id: "AK1".into(),
        secret: SECRET.into(),
    })
    .await
    .unwrap();
    let g = group(1);
    assert!(s
        .insert_group_claiming(&g, &group_params(&g), &ROOMY)
        .await
        .unwrap()
        .is_none());
    s.modify_group(&g.id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
    let params =
        format!(r#"{{"name":"c","registry_credentials":[{{"password":"{CACHE_PASSWORD}"}}]}}"#);
    assert!(s.insert_cache(&cache(), &params).await.unwrap().is_none());
}

async fn assert_reads_plain(s: &dyn Store) {
    assert_eq!(s.access_key("AK1").await.unwrap().unwrap().secret, SECRET);
    let check = s.check_access_key("AK1").await.unwrap().unwrap();
    assert_eq!(check.key.secret, SECRET);
    let g = group(1);
    let got = s.get_group(Some("acct"), &g.id).await.unwrap().unwrap();
    assert_eq!(got.spec.registry_credentials, vec![cred(PASSWORD)]);
    let page = s
        .list_groups("acct", &Default::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(
        page.groups[0].spec.registry_credentials,
        vec![cred(PASSWORD)]
    );
    assert_eq!(
        s.all_groups().await.unwrap()[0].spec.registry_credentials,
        vec![cred(PASSWORD)]
    );
    let used = s
        .find_client_token("acct", TokenKind::Group, "tok1")
        .await
        .unwrap()
        .unwrap();
    let spec: GroupSpec = serde_json::from_str(&used.params).unwrap();
    assert_eq!(
        spec, g.spec,
        "the token's parameters read as they were given"
    );
    let c = s.get_cache(None, "imc-1").await.unwrap().unwrap();
    assert_eq!(c.registry_credentials, vec![cred(CACHE_PASSWORD)]);
    let used = s
        .find_client_token("acct", TokenKind::ImageCache, "ctok")
        .await
        .unwrap()
        .unwrap();
    assert!(used.params.contains(CACHE_PASSWORD));
}

#[tokio::test]
async fn no_secret_reaches_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    let s = SqliteStore::open(&db).unwrap();
    fill(&s).await;
    // While the store is open (the log holds the latest pages) and after it closed.
    assert_no_secret_in_files(&db);
    assert_reads_plain(&s).await;
    drop(s);
    assert_no_secret_in_files(&db);
    let s = SqliteStore::open(&db).unwrap();
    assert_reads_plain(&s).await;
    // A second insert with the token answers the first use, opened.
    let g = group(1);
    let prev = s
        .insert_group_claiming(
            &GroupRecord {
                id: GroupId::from_random([9; 20]),
                ..g.clone()
            },
            "{}",
            &ROOMY,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<GroupSpec>(&prev.params).unwrap(),
        g.spec
    );
}

#[tokio::test]
async fn the_key_file_is_made_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    fill(&SqliteStore::open(&db).unwrap()).await;
    let key = dir.path().join(KEY_FILE);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&key).unwrap();
    assert_reads_plain(&SqliteStore::open(&db).unwrap()).await;
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[tokio::test]
async fn a_missing_key_file_is_refused_when_secrets_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    fill(&SqliteStore::open(&db).unwrap()).await;
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    match SqliteStore::open(&db) {
        Err(StoreError::Key(KeyError::Missing(p))) => assert!(p.ends_with(KEY_FILE)),
        other => panic!("expected a missing key, got {:?}", other.err()),
    }
    assert!(!dir.path().join(KEY_FILE).exists(), "no new key was made");
}

#[tokio::test]
async fn a_wrong_key_file_is_an_error_not_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    fill(&SqliteStore::open(&db).unwrap()).await;
    std::fs::write(dir.path().join(KEY_FILE), format!("{}\n", "ab".repeat(32))).unwrap();
    let s = SqliteStore::open(&db).unwrap();
    assert!(matches!(
        s.check_access_key("AK1").await,
        Err(StoreError::Unseal)
    ));
}

/// Plain rows as a berth from before sealing wrote them: the same schema, the secrets in
/// plain text, no key file.
fn write_plain_rows(db: &Path) {
    let s = SqliteStore::open(db).unwrap();
    drop(s);
    std::fs::remove_file(db.parent().unwrap().join(KEY_FILE)).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let g = group(1);
    let c = cache();
    let cache_params =
        format!(r#"{{"name":"c","registry_credentials":[{{"password":"{CACHE_PASSWORD}"}}]}}"#);
    conn.execute_batch(&format!(
        "INSERT INTO accounts (name, created) VALUES ('acct', '2026-01-01T00:00:00Z');
         INSERT INTO access_keys (access_key_id, account, secret, created)
             VALUES ('AK1', 'acct', '{SECRET}', '2026-01-01T00:00:00Z');"
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO groups (id, account, name, status, client_token, record) \
         VALUES (?1, 'acct', ?2, 'Scheduling', 'tok1', ?3)",
        rusqlite::params![
            g.id.as_str(),
            g.spec.name,
            serde_json::to_string(&g).unwrap()
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO image_caches (id, account, name, status, record) \
         VALUES ('imc-1', 'acct', 'c', 'Preparing', ?1)",
        rusqlite::params![serde_json::to_string(&c).unwrap()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO client_tokens (account, kind, token, resource_id, params) \
         VALUES ('acct', 'group', 'tok1', ?1, ?2), ('acct', 'cache', 'ctok', 'imc-1', ?3)",
        rusqlite::params![g.id.as_str(), group_params(&g), cache_params],
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    assert!(!files_hold(db, SECRET).is_empty(), "the rows are plain");
    assert!(!files_hold(db, PASSWORD).is_empty(), "the rows are plain");
}

#[tokio::test]
async fn plain_rows_are_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    write_plain_rows(&db);
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.sealed_at_open(), 5, "a key, a group, a cache, two tokens");
    assert!(dir.path().join(KEY_FILE).exists());
    assert_no_secret_in_files(&db);
    assert_reads_plain(&s).await;
    drop(s);
    assert_no_secret_in_files(&db);
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.sealed_at_open(), 0, "sealing is done once");
    assert_reads_plain(&s).await;
}

/// Every text of the rows that may hold a secret, read past the store.
async fn postgres_rows(url: &str) -> String {
    let row = common::query_one(
        url,
        "SELECT concat_ws(',', (SELECT string_agg(secret, ',') FROM access_keys), \
         (SELECT string_agg(record::text, ',') FROM groups), \
         (SELECT string_agg(record::text, ',') FROM image_caches), \
         (SELECT string_agg(params, ',') FROM client_tokens))",
    )
    .await;
    row.get(0)
}

#[tokio::test]
async fn no_secret_reaches_the_postgres_rows() {
    let s = common::Backend::Postgres.store().await;
    fill(&*s).await;
    let rows = postgres_rows(s.url().unwrap()).await;
    assert!(rows.contains("sealed:v1:"), "{rows}");
    for needle in [SECRET, PASSWORD, CACHE_PASSWORD] {
        assert!(!rows.contains(needle), "{needle} found");
    }
    // Another replica with the shared key reads them all.
    assert_reads_plain(&*s.another().await).await;
}

#[tokio::test]
async fn postgres_refuses_a_replica_without_the_key_or_with_another() {
    let s = common::Backend::Postgres.store().await;
    fill(&*s).await;
    let url = s.url().unwrap().to_string();
    let key = std::fs::read_to_string(s.key_file()).unwrap();
    let other = s.dir.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let missing = other.join(KEY_FILE);
    match berth_store::PgStore::connect(&url, &missing).await {
        Err(StoreError::Key(KeyError::Missing(p))) => assert_eq!(p, missing),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened without the key"),
    }
    assert!(
        !missing.exists(),
        "no key is made for a database with secrets"
    );
    std::fs::write(&missing, format!("{}\n", "7".repeat(64))).unwrap();
    assert!(matches!(
        berth_store::PgStore::connect(&url, &missing).await,
        Err(StoreError::Unseal)
    ));
    // A copy of the right key opens it.
    std::fs::write(&missing, key).unwrap();
    let copy = berth_store::PgStore::connect(&url, &missing).await.unwrap();
    assert_reads_plain(&copy).await;
}
