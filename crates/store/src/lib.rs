//! berth's durable state behind one `Store` trait: accounts with their access keys and
//! container group records. The embedded default is SQLite ([`SqliteStore`]).

mod sqlite;

use berth_core::{GroupId, GroupRecord, GroupStatus};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] rusqlite::Error),
    #[error("stored record is not valid")]
    Corrupt(#[from] serde_json::Error),
    #[error("container group {0} does not exist")]
    NotFound(String),
    #[error("a container group with id {0} exists already")]
    Exists(String),
}

/// An account and one of its access keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub account: String,
    pub access_key_id: String,
    pub secret: String,
}

/// Which groups a listing returns.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// Only these ids (empty: all).
    pub ids: Vec<String>,
    pub name: Option<String>,
    pub status: Option<GroupStatus>,
    /// Tags every returned group carries (a key with any value when the value is `None`).
    pub tags: Vec<(String, Option<String>)>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub groups: Vec<GroupRecord>,
    /// How many groups match the filter in all.
    pub total: u64,
    /// Pass back to get the next page; `None` when this was the last.
    pub next_token: Option<String>,
}

/// The state berth keeps. Implementations are safe to share between threads; every call is
/// one transaction.
pub trait Store: Send + Sync {
    /// Creates an account with one access key.
    fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError>;
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;

    fn insert_group(&self, rec: &GroupRecord) -> Result<(), StoreError>;
    fn get_group(
        &self,
        account: Option<&str>,
        id: &GroupId,
    ) -> Result<Option<GroupRecord>, StoreError>;
    /// Reads, changes and writes back one group atomically; returns the changed record.
    fn modify_group(
        &self,
        id: &GroupId,
        f: &mut dyn FnMut(&mut GroupRecord),
    ) -> Result<GroupRecord, StoreError>;
    fn delete_group(&self, id: &GroupId) -> Result<(), StoreError>;
    fn find_by_client_token(
        &self,
        account: &str,
        token: &str,
    ) -> Result<Option<GroupRecord>, StoreError>;
    /// Groups of an account matching `filter`, oldest first, `limit` at most, after `token`.
    fn list_groups(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, StoreError>;
    /// Every group of every account (for the node agent to converge to at start).
    fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError>;
}
