//! berth's durable state behind one `Store` trait: accounts with their access keys and
//! container group records. The embedded default is SQLite ([`SqliteStore`]); a control plane
//! of several replicas shares one PostgreSQL database ([`PgStore`]). Both seal secrets at rest
//! (`seal`).

mod accounts;
mod billed;
mod cache;
mod keycache;
mod leases;
mod ledger;
mod migrate_secrets;
mod nodes;
mod operator;
mod pg;
mod pg_accounts;
mod pg_caches;
mod pg_groups;
mod pg_leases;
mod pg_ledger;
mod pg_listen;
mod pg_nodes;
mod pg_revision;
mod pg_schema;
mod pg_sessions;
mod pg_sql;
mod pg_tags;
mod pg_tokens;
mod quota;
mod revision;
mod runtime_classes;
mod seal;
mod seccomp;
mod sessions;
mod sqlite;
mod sqlite_db;
mod tags;
mod tokens;
mod usage;
mod worker;

use std::sync::Arc;

use berth_core::{
    GroupId, GroupRecord, GroupStatus, ImageCacheRecord, JoinToken, NodeInfo, NodeRecord,
};

pub use keycache::GENERATION_FILE as KEY_GENERATION_FILE;
pub use leases::MAX_LEASE_TEXT;
pub use ledger::LedgerPeriod;
pub use nodes::{NodeGroups, NodeUsage, MAX_TOKEN_DESCRIPTION};
pub use pg::PgStore;
pub use quota::{GroupLimits, GroupUsage, QuotaExceeded, QuotaOverrides, QuotaResource};
pub use seal::{KeyError, KEY_FILE};
pub use seccomp::AccountSeccomp;
pub use sessions::{ConsoleSession, SessionBounds};
pub use sqlite::SqliteStore;
pub use tags::{TagCursor, TagPage, TagQuery, TagRow};
pub use tokens::{TokenKind, TokenUse, TOKEN_RETENTION};
pub use usage::UsageInterval;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] rusqlite::Error),
    #[error("stored record is not valid")]
    Corrupt(#[from] serde_json::Error),
    #[error("container group {0} does not exist")]
    NotFound(String),
    /// An image cache of the account named by a batch does not exist.
    #[error("image cache {0} does not exist")]
    CacheNotFound(String),
    /// A change of tags would leave a resource with too many; nothing was written.
    #[error("the resource {id} would carry {count} tags; at most {max} are allowed", max = berth_core::MAX_TAGS_PER_RESOURCE)]
    TooManyTags { id: String, count: usize },
    #[error("a container group with id {0} exists already")]
    Exists(String),
    #[error("no account named {0}")]
    NoAccount(String),
    #[error("an account named {0} exists already")]
    AccountExists(String),
    #[error("no access key {0} in account {1}")]
    NoKey(String, String),
    #[error("an access key with id {0} exists already")]
    KeyExists(String),
    #[error("a join token with id {0} exists already")]
    JoinTokenExists(String),
    /// Another node holds the name; nothing was written.
    #[error("another node is named {0}")]
    NodeNameTaken(String),
    /// A node or a join token is not as the store keeps them (its id, name, address or
    /// sizes); nothing was written.
    #[error("{0}")]
    BadNode(String),
    /// A new group does not fit the account's quota; nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(QuotaExceeded),
    #[error("the key of the sealed secrets")]
    Key(#[from] KeyError),
    #[error("a sealed secret does not open with the key file's key")]
    Unseal,
    /// The file by which processes sharing the database tell each other that keys or
    /// accounts changed (`keys.generation`) cannot be opened.
    /// The threads the store runs its work on are gone, or one failed while doing it.
    #[error("the store's worker failed")]
    Worker,
    /// The store's threads could not be started.
    #[error("cannot start the store's threads")]
    Threads(#[source] std::io::Error),
    /// A lease's name or holder is empty, too long or holds a NUL.
    #[error("{0}")]
    BadLease(String),
    /// A record was changed by others every time a change of it was tried.
    #[error("the record {0} kept changing while a change of it was written")]
    Contended(String),
    #[error("the key generation file")]
    GenerationFile(#[source] std::io::Error),
    /// An error of PostgreSQL ([`PgStore`]).
    #[error("database error")]
    Pg(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had.
    #[error("cannot get a database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The PostgreSQL URL does not parse, or no pool can be made for it.
    #[error("the database URL is not valid: {0}")]
    Url(String),
}

impl StoreError {
    /// Whether the database could not be written because its disk is full: the write was
    /// rolled back and a retry once there is room succeeds.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Pg(e) => e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }
}

/// An account and one of its access keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub account: String,
    pub access_key_id: String,
    pub secret: String,
}

/// An access key as a request is checked against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCheck {
    pub key: AccessKey,
    /// Neither the key nor its account is disabled.
    pub active: bool,
}

/// An account as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub name: String,
    pub disabled: bool,
    pub created: chrono::DateTime<chrono::Utc>,
    /// How many access keys it has.
    pub keys: u64,
    /// Its own limits (`None`: the server's default).
    pub quota: QuotaOverrides,
    /// Its keys may read every account's bill.
    pub operator: bool,
}

/// An access key as the operator sees it (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key_id: String,
    pub account: String,
    pub disabled: bool,
    pub created: chrono::DateTime<chrono::Utc>,
}

/// Which groups a listing returns.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// Only these ids (empty: all).
    pub ids: Vec<String>,
    pub name: Option<String>,
    /// Only groups whose name contains this text (ASCII letters in any case).
    pub name_contains: Option<String>,
    pub status: Option<GroupStatus>,
    /// Only groups that have ended (`Some(true)`: in a final status, [`GroupStatus::is_final`])
    /// or that have not (`Some(false)`), read in one query, so that a group moving between
    /// statuses meanwhile is never missed.
    pub ended: Option<bool>,
    /// Newest first (by creation) instead of oldest first; a page's `next_token` goes on in
    /// the order it was made with.
    pub newest_first: bool,
    /// Tags every returned group carries (a key with any value when the value is `None`).
    pub tags: Vec<(String, Option<String>)>,
    /// Only groups whose record changed at or after this time (created, or any write that
    /// changed it).
    pub changed_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// Shared, not copied: while a group's row is unchanged, every listing may get the same
    /// record, and a caller may tell that by pointer ([`Arc::ptr_eq`]).
    pub groups: Vec<Arc<GroupRecord>>,
    /// How many groups match the filter in all.
    pub total: u64,
    /// Pass back to get the next page; `None` when this was the last.
    pub next_token: Option<String>,
}

/// The state berth keeps, as an async repository: no call blocks the caller's thread (the
/// SQLite implementation runs on threads of its own). Implementations are safe to share
/// between threads; every call is one transaction.
///
/// The `modify_*` calls run their closure on the caller's task, on the record as last stored;
/// when another write changed the record meanwhile, the closure runs again on the newer one.
/// A closure must therefore set whatever it reports out on every run, and do nothing else
/// that cannot be repeated.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Adds an access key, making its account (enabled) when there is none of that name.
    async fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError>;
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;
    /// The key with whether it may be used now. A key added, disabled or deleted by another
    /// process with the same database counts at once (`SqliteStore` remembers checked keys only
    /// until any process changes keys or accounts; `PgStore` reads the key at every check).
    async fn check_access_key(&self, access_key_id: &str) -> Result<Option<KeyCheck>, StoreError>;
    /// [`StoreError::AccountExists`] when the name is taken.
    async fn create_account(&self, name: &str) -> Result<(), StoreError>;
    async fn set_account_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError>;
    /// Every account, by name.
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Adds a key to an existing account ([`StoreError::NoAccount`] otherwise).
    async fn add_access_key(&self, key: &AccessKey) -> Result<(), StoreError>;
    /// The keys of an existing account, oldest first.
    async fn list_access_keys(&self, account: &str) -> Result<Vec<KeyInfo>, StoreError>;
    async fn set_access_key_disabled(
        &self,
        account: &str,
        access_key_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError>;
    async fn delete_access_key(&self, account: &str, access_key_id: &str)
        -> Result<(), StoreError>;
    /// Sets the given limits of an existing account ([`StoreError::NoAccount`] otherwise); the
    /// others keep their value. Read afresh by every create, so a change counts at once.
    async fn set_account_quota(&self, name: &str, quota: &QuotaOverrides)
        -> Result<(), StoreError>;
    /// An account's own limits (all `None` for an account without any, or without a row).
    async fn account_quota(&self, account: &str) -> Result<QuotaOverrides, StoreError>;
    /// Sets an existing account's seccomp profile. Read afresh by every start of one of its
    /// groups.
    async fn set_account_seccomp(
        &self,
        name: &str,
        seccomp: &AccountSeccomp,
    ) -> Result<(), StoreError>;
    /// An account's seccomp profile (the built-in one for an account without a row).
    async fn account_seccomp(&self, account: &str) -> Result<AccountSeccomp, StoreError>;
    /// Makes an existing account an operator's (its keys may read every account's bill) or
    /// not ([`StoreError::NoAccount`] otherwise).
    async fn set_account_operator(&self, name: &str, operator: bool) -> Result<(), StoreError>;
    /// Whether an account is an operator's (false for an unknown one), read afresh.
    async fn account_operator(&self, name: &str) -> Result<bool, StoreError>;
    /// Sets the runtime classes an existing account may use and its default. Read afresh by
    /// every create.
    async fn set_account_runtime_classes(
        &self,
        name: &str,
        policy: &berth_core::RuntimeClassPolicy,
    ) -> Result<(), StoreError>;
    /// An account's runtime class policy (every class, the node's default, for an account
    /// without one or without a row).
    async fn account_runtime_classes(
        &self,
        account: &str,
    ) -> Result<berth_core::RuntimeClassPolicy, StoreError>;
    /// What an account's unfinished groups hold (see the `quota` module for what counts).
    async fn group_usage(&self, account: &str) -> Result<GroupUsage, StoreError>;

    /// Inserts a group without claiming its ClientToken (see
    /// [`insert_group_claiming`](Store::insert_group_claiming)).
    async fn insert_group(&self, rec: &GroupRecord) -> Result<(), StoreError>;
    async fn get_group(
        &self,
        account: Option<&str>,
        id: &GroupId,
    ) -> Result<Option<GroupRecord>, StoreError>;
    /// Reads, changes and writes back one group atomically; returns the changed record.
    async fn modify_group(
        &self,
        id: &GroupId,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError>;
    /// [`modify_group`](Store::modify_group) for a change of a group's size: when the
    /// changed record asks for more vCPU, memory or temporary storage than before, what it
    /// grows by must fit `limits` (with the account's overrides) beside the account's other
    /// groups, checked in the same write transaction; else [`StoreError::QuotaExceeded`] and
    /// nothing written.
    async fn modify_group_within(
        &self,
        id: &GroupId,
        limits: &GroupLimits,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError>;
    /// Inserts a group and, when it has a ClientToken, claims the token for it with `params`
    /// (the request as the caller encodes it) in the same transaction. When the account's
    /// token is claimed already nothing is written and the first use is returned. Otherwise
    /// the group must fit `limits` (with the account's own overrides) beside what the account
    /// holds, checked in the same write transaction: [`StoreError::QuotaExceeded`] and nothing
    /// written when it does not.
    async fn insert_group_claiming(
        &self,
        rec: &GroupRecord,
        params: &str,
        limits: &GroupLimits,
    ) -> Result<Option<TokenUse>, StoreError>;
    /// Deletes a group's record; its ClientToken stays for [`TOKEN_RETENTION`].
    async fn delete_group(&self, id: &GroupId) -> Result<(), StoreError>;
    /// What an account's ClientToken of `kind` was first used for, while it is kept.
    async fn find_client_token(
        &self,
        account: &str,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<TokenUse>, StoreError>;
    /// Forgets the tokens of resources deleted more than [`TOKEN_RETENTION`] before `now`
    /// (deletes do it too).
    async fn sweep_client_tokens(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// Groups of an account matching `filter`, oldest first (or newest first), `limit` at most,
    /// after `token`.
    async fn list_groups(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, StoreError>;
    /// Starts metering `quantity` of `kind` held by `account` through `resource` at `at`
    /// (ending the resource's former interval, so a change of size is a new interval).
    async fn meter_start(
        &self,
        account: &str,
        kind: &str,
        resource: &str,
        quantity: u64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// Stops metering `resource` at `at`.
    async fn meter_stop(
        &self,
        resource: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// Metered intervals of an account's `kind` that overlap `[from, to)`.
    async fn usage(
        &self,
        account: &str,
        kind: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<UsageInterval>, StoreError>;
    /// Billed periods of groups of `account` (of every account with `None`) that overlap
    /// `[from, to)`, oldest first (ADR 0010), each with its group's name and tags (kept after
    /// the group is deleted).
    async fn ledger(
        &self,
        account: Option<&str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<LedgerPeriod>, StoreError>;
    /// Every billed period of one group, oldest first.
    async fn group_ledger(&self, id: &GroupId) -> Result<Vec<LedgerPeriod>, StoreError>;
    /// Every group of every account (for the node agent to converge to at start).
    async fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError>;

    /// Records a new image cache; [`StoreError::Exists`] when the id or the account's name is
    /// taken. With a ClientToken in the record, claims it as
    /// [`insert_group_claiming`](Store::insert_group_claiming) does (`params`: the request as
    /// the caller encodes it).
    async fn insert_cache(
        &self,
        rec: &ImageCacheRecord,
        params: &str,
    ) -> Result<Option<TokenUse>, StoreError>;
    async fn get_cache(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageCacheRecord>, StoreError>;
    /// Reads, changes and writes back one image cache atomically.
    async fn modify_cache(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut ImageCacheRecord) + Send),
    ) -> Result<ImageCacheRecord, StoreError>;
    /// Deletes an image cache's record; its ClientToken stays for [`TOKEN_RETENTION`].
    async fn delete_cache(&self, id: &str) -> Result<(), StoreError>;
    /// Image caches of an account (of all accounts with `None`), oldest first.
    async fn list_caches(&self, account: Option<&str>)
        -> Result<Vec<ImageCacheRecord>, StoreError>;

    /// Applies one change of tags to each of `ids`, resources of `account` of type `kind`, in
    /// one transaction (a group's `billed_groups` row in step): when any id is not the
    /// account's ([`StoreError::NotFound`], [`StoreError::CacheNotFound`]) or would carry too
    /// many tags ([`StoreError::TooManyTags`]), nothing is written.
    async fn change_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        ids: &[String],
        change: &berth_core::TagChange,
    ) -> Result<(), StoreError>;
    /// A page of at most `limit` tags of `account`'s resources of type `kind` matching
    /// `query`, after `after`.
    async fn list_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        query: &TagQuery,
        limit: usize,
        after: Option<&TagCursor>,
    ) -> Result<TagPage, StoreError>;

    /// Stores a new console session, first deleting the expired ones and, least recently used
    /// first, those beyond `bounds` (of its account, then of the table), in one transaction.
    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
    ) -> Result<(), StoreError>;
    /// The console session of `id_hash`, expired or not.
    async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError>;
    /// Marks the session used at `used` (seconds since the epoch; an earlier time is kept).
    async fn touch_console_session(&self, id_hash: &str, used: i64) -> Result<(), StoreError>;
    async fn delete_console_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Console sessions stored.
    async fn console_sessions(&self) -> Result<usize, StoreError>;

    /// Takes the lease `name` for `holder` for `ttl`, or keeps it when `holder` holds it
    /// already: when it is free, expired or `holder`'s, `holder` holds it until `ttl` from
    /// now by the store's clock and its epoch comes back (the same while one holder keeps
    /// renewing it, one more each time it changes hands); `None` while another holds it.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError>;
    /// Ends the lease `name` now if `holder` holds it (a graceful stop hands over at once).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Notified when a group write is committed by any process sharing the store (another
    /// replica), where the store can tell; `None` where it cannot (SQLite, one process).
    fn group_writes(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Stores a new join token ([`StoreError::JoinTokenExists`] when its id is taken).
    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError>;
    async fn join_token(&self, id: &str) -> Result<Option<JoinToken>, StoreError>;
    /// Every join token, expired or not, oldest first.
    async fn list_join_tokens(&self) -> Result<Vec<JoinToken>, StoreError>;
    /// Whether there was such a token.
    async fn delete_join_token(&self, id: &str) -> Result<bool, StoreError>;

    /// Writes a node by its id (its key sealed at rest); [`StoreError::NodeNameTaken`] when
    /// a node of another id holds its name.
    async fn upsert_node(&self, node: &NodeRecord) -> Result<(), StoreError>;
    async fn get_node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError>;
    async fn node_by_name(&self, name: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Every node, by name, without keys.
    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError>;
    /// Reads, changes and writes back one node atomically (its id stays); `None` when there
    /// is no such node. [`StoreError::NodeNameTaken`] when the change takes another's name.
    async fn modify_node(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut NodeInfo) + Send),
    ) -> Result<Option<NodeInfo>, StoreError>;
    /// Whether there was such a node.
    async fn delete_node(&self, id: &str) -> Result<bool, StoreError>;

    /// The groups placed on `node` written after revision `after`, by revision, at most
    /// `limit`, with the revision to go on from (see [`NodeGroups`]).
    async fn node_groups(
        &self,
        node: &str,
        after: u64,
        limit: usize,
    ) -> Result<NodeGroups, StoreError>;
    /// The store's latest group revision: every write of a group up to it can be read.
    async fn group_revision(&self) -> Result<u64, StoreError>;
    /// What the unfinished groups placed on each node hold (waiting groups hold nothing), by
    /// node.
    async fn placed_usage(&self) -> Result<Vec<NodeUsage>, StoreError>;
    /// Unfinished groups placed on no node and not being deleted, oldest first (by creation,
    /// then id), at most `limit`.
    async fn unplaced_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError>;
    /// Groups being deleted (`Terminating`), oldest first (by creation, then id), at most
    /// `limit`.
    async fn terminating_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError>;
    /// Groups not finished (being deleted included), oldest first (by creation, then id), at
    /// most `limit`.
    async fn unfinished_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError>;
}
