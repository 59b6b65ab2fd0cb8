//! What only the PostgreSQL store has: its URL forms, its versioned migrations run once by
//! replicas starting together, and the schema's real columns and indexes.

use berth_store::{PgStore, Store, KEY_FILE};

mod common;

#[tokio::test]
async fn the_socket_form_of_the_url_reaches_the_server() {
    let url = common::new_database().await;
    let db = url.rsplit('/').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = PgStore::connect(&common::server().socket_url(db), &dir.path().join(KEY_FILE))
        .await
        .unwrap();
    s.create_account("a").await.unwrap();
    assert_eq!(s.list_accounts().await.unwrap()[0].name, "a");
    assert!(matches!(
        PgStore::connect("postgres://nobody@[::1", &dir.path().join(KEY_FILE)).await,
        Err(berth_store::StoreError::Url(_))
    ));
}

#[tokio::test]
async fn replicas_starting_at_once_migrate_once_and_share_one_key() {
    let url = common::new_database().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(KEY_FILE);
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move { PgStore::connect(&url, &key).await })
        })
        .collect();
    let mut stores = vec![];
    for s in starts {
        stores.push(s.await.unwrap().unwrap());
    }
    let versions = common::query_one(
        &url,
        "SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_migrations",
    )
    .await;
    let (n, distinct): (i64, i64) = (versions.get(0), versions.get(1));
    assert_eq!(n, distinct);
    assert_eq!(i64::from(versions.get::<_, i32>(2)), n);
    let checks: i64 = common::query_one(&url, "SELECT COUNT(*) FROM seal_check")
        .await
        .get(0);
    assert_eq!(checks, 1);
    // A secret written through one replica reads through every other.
    stores[0]
        .create_access_key(&berth_store::AccessKey {
            account: "a".into(),
            access_key_id: "AK".into(),
            secret: "s3cret".into(),
        })
        .await
        .unwrap();
    for s in &stores[1..] {
        assert_eq!(s.access_key("AK").await.unwrap().unwrap().secret, "s3cret");
    }
}

#[tokio::test]
async fn what_listings_filter_on_has_columns_and_indexes() {
    let url = common::new_database().await;
    let dir = tempfile::tempdir().unwrap();
    PgStore::connect(&url, &dir.path().join(KEY_FILE))
        .await
        .unwrap();
    let columns: String = common::query_one(
        &url,
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) \
         FROM information_schema.columns WHERE table_name = 'groups'",
    )
    .await
    .get(0);
    for c in [
        "account:text",
        "status:text",
        "name:text",
        "client_token:text",
        "node:text",
        "created:timestamp with time zone",
        "changed:timestamp with time zone",
        "cpu:double precision",
        "memory:double precision",
        "storage:double precision",
        "record:text",
    ] {
        assert!(columns.contains(c), "{c} missing in {columns}");
    }
    let indexes: String = common::query_one(
        &url,
        "SELECT string_agg(indexdef, E'\\n') FROM pg_indexes \
         WHERE tablename IN ('groups', 'group_tags')",
    )
    .await
    .get(0);
    for i in [
        "(account, seq)",
        "(account, status, seq)",
        "(account, name, seq)",
        "(account, created)",
        "(account, changed)",
        "(account, client_token)",
        "(node, seq)",
        "(key, value, group_seq)",
        "(account) INCLUDE (cpu, memory, storage) WHERE",
    ] {
        assert!(indexes.contains(i), "no index on {i}: {indexes}");
    }
}
