//! The stores the Store tests run on: each test of the shared suite runs once on a fresh
//! [`SqliteStore`] and once on a fresh [`PgStore`], a database of its own on a PostgreSQL
//! server that the test binary starts (once, `server.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_store::{PgStore, SqliteStore, Store};

mod server;
#[allow(unused_imports)]
pub use server::{new_database, query_one, server};

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestStore)` on both stores: `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite.store().await).await
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres.store().await).await
                }
            }
        )*
    };
}

/// A fresh store, and the means to open more handles on its database (as more processes or
/// replicas would).
pub struct TestStore {
    store: Arc<dyn Store>,
    pub backend: Backend,
    /// SQLite: the database file. PostgreSQL: the key file.
    path: PathBuf,
    /// PostgreSQL: the database's URL.
    url: Option<String>,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Backend {
    /// A store on a new, empty database.
    pub async fn store(self) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        match self {
            Backend::Sqlite => {
                let path = dir.path().join("berth.db");
                TestStore {
                    store: Arc::new(SqliteStore::open(&path).unwrap()),
                    backend: self,
                    path,
                    url: None,
                    dir,
                }
            }
            Backend::Postgres => {
                let url = new_database().await;
                let path = dir.path().join(berth_store::KEY_FILE);
                TestStore {
                    store: Arc::new(PgStore::connect(&url, &path).await.unwrap()),
                    backend: self,
                    path,
                    url: Some(url),
                    dir,
                }
            }
        }
    }
}

impl TestStore {
    /// The store, shared.
    pub fn arc(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Another handle on the same database, with connections of its own.
    pub async fn another(&self) -> Arc<dyn Store> {
        match &self.url {
            None => Arc::new(SqliteStore::open(&self.path).unwrap()),
            Some(url) => Arc::new(PgStore::connect(url, &self.path).await.unwrap()),
        }
    }

    /// How many rows `table` holds, read past the store.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.url {
            None => rusqlite::Connection::open(&self.path)
                .unwrap()
                .query_row(&sql, [], |r| r.get(0))
                .unwrap(),
            Some(url) => query_one(url, &sql).await.get(0),
        }
    }

    /// PostgreSQL: the database's URL.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// PostgreSQL: the key file.
    pub fn key_file(&self) -> &Path {
        &self.path
    }
}
