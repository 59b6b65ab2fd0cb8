//! The store on PostgreSQL ([`PgStore`]), for berth's control plane run as several replicas
//! over one database. Every method of [`Store`] has the semantics of the embedded store's
//! (`sqlite.rs`); the SQL of each table lives in a `pg_*` module of its own.
//!
//! Atomicity. Transactions run at PostgreSQL's default, READ COMMITTED, and take locks where a
//! check and a write must be one:
//! - the quota check and the insert of a group, a ClientToken claim with it, and the growth
//!   of a group (`modify_group_within`) take the account's transaction-scoped advisory lock
//!   (`pg_advisory_xact_lock` on the hash of its name) first: one account's creates run one
//!   after the other, each reading what the one before committed, while other accounts' go
//!   on beside them. SERIALIZABLE would give the same answers but fail concurrent creates of
//!   one account with serialization errors to retry, which under a burst (the tests run 40
//!   at once) costs more than the wait;
//! - a ClientToken is a primary key, claimed by `INSERT ... ON CONFLICT DO NOTHING`;
//! - a change of a record (`modify_*`, tags) locks its row (`SELECT ... FOR UPDATE`), runs the
//!   caller's closure on the caller's task (it is synchronous, so the lock is held only for
//!   the round trips of the read and the write) and writes; the ledger and `billed_groups`
//!   follow inside that transaction. Locks are always taken account first, then rows, and
//!   rows of a batch in one order, so no two transactions wait on each other in a cycle.
//!
//! Access keys are read afresh at every check (one primary-key lookup joined with the
//! account): nothing is remembered, so a key disabled or deleted through another replica
//! counts at once.
//!
//! Connections come from a deadpool-postgres pool (maintained, small, made for
//! tokio-postgres; each connection keeps its prepared statements, so a query is one round
//! trip after its first use). TLS is not spoken: the database is reached on loopback or a
//! Unix socket.

use std::path::Path;

use berth_core::{GroupId, GroupRecord, ImageCacheRecord, JoinToken, NodeInfo, NodeRecord};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::nodes::ByColumn;
use crate::pg_sql::nul;
use crate::seal::Sealer;
use crate::tokens::{TokenKind, TokenUse};
use crate::{
    pg_accounts, pg_caches, pg_groups, pg_leases, pg_ledger, pg_nodes, pg_revision, pg_sessions,
    pg_tags, pg_tokens, AccessKey, Account, AccountSeccomp, ConsoleSession, GroupFilter,
    GroupLimits, GroupUsage, KeyCheck, KeyInfo, LedgerPeriod, NodeGroups, NodeUsage, Page,
    QuotaOverrides, SessionBounds, Store, StoreError, TagCursor, TagPage, TagQuery, UsageInterval,
};

/// Most connections one store holds open.
const POOL_SIZE: usize = 16;

/// [`Store`] on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    sealer: Sealer,
    /// Notified when any replica committed a group write (`pg_listen.rs`).
    writes: std::sync::Arc<tokio::sync::Notify>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or the key=value
    /// form, `host=/socket/dir` for a Unix socket), brings its schema up to date and checks
    /// the key of its secrets: the file `key_file`, which every replica shares. It is made
    /// (0600) when there is none and the database holds no secret yet;
    /// [`crate::KeyError::Missing`] when there is none but the database holds sealed secrets,
    /// and [`StoreError::Unseal`] when it holds another key than the one they were sealed with.
    pub async fn connect(url: &str, key_file: &Path) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Url(e.to_string()))?;
        let mut client = pool.get().await?;
        let sealer = crate::pg_schema::prepare(&mut client, key_file).await?;
        drop(client);
        let writes = std::sync::Arc::new(tokio::sync::Notify::new());
        crate::pg_listen::spawn(config, writes.clone());
        Ok(Self {
            pool,
            sealer,
            writes,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.pool.get().await?)
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn group_writes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.writes.clone())
    }

    async fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        pg_accounts::create_key(&mut self.client().await?, key, &self.sealer).await
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        Ok(self.check_access_key(access_key_id).await?.map(|k| k.key))
    }

    async fn check_access_key(&self, access_key_id: &str) -> Result<Option<KeyCheck>, StoreError> {
        if nul(access_key_id) {
            return Ok(None);
        }
        pg_accounts::check_key(&self.client().await?, access_key_id, &self.sealer).await
    }

    async fn create_account(&self, name: &str) -> Result<(), StoreError> {
        pg_accounts::create_account(&self.client().await?, name).await
    }

    async fn set_account_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        pg_accounts::set_account_disabled(&self.client().await?, name, disabled).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        pg_accounts::list_accounts(&self.client().await?).await
    }

    async fn add_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        pg_accounts::add_key(&mut self.client().await?, key, &self.sealer).await
    }

    async fn list_access_keys(&self, account: &str) -> Result<Vec<KeyInfo>, StoreError> {
        pg_accounts::list_keys(&self.client().await?, account).await
    }

    async fn set_access_key_disabled(
        &self,
        account: &str,
        access_key_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        pg_accounts::set_key_disabled(&self.client().await?, account, access_key_id, disabled).await
    }

    async fn delete_access_key(
        &self,
        account: &str,
        access_key_id: &str,
    ) -> Result<(), StoreError> {
        pg_accounts::delete_key(&self.client().await?, account, access_key_id).await
    }

    async fn set_account_quota(
        &self,
        name: &str,
        quota: &QuotaOverrides,
    ) -> Result<(), StoreError> {
        pg_accounts::set_quota(&self.client().await?, name, quota).await
    }

    async fn account_quota(&self, account: &str) -> Result<QuotaOverrides, StoreError> {
        if nul(account) {
            return Ok(QuotaOverrides::default());
        }
        pg_accounts::quota(&self.client().await?, account).await
    }

    async fn set_account_seccomp(
        &self,
        name: &str,
        seccomp: &AccountSeccomp,
    ) -> Result<(), StoreError> {
        pg_accounts::set_seccomp(&self.client().await?, name, seccomp).await
    }

    async fn account_seccomp(&self, account: &str) -> Result<AccountSeccomp, StoreError> {
        if nul(account) {
            return Ok(AccountSeccomp::Default);
        }
        pg_accounts::seccomp(&self.client().await?, account).await
    }

    async fn set_account_operator(&self, name: &str, operator: bool) -> Result<(), StoreError> {
        pg_accounts::set_operator(&self.client().await?, name, operator).await
    }

    async fn account_operator(&self, name: &str) -> Result<bool, StoreError> {
        if nul(name) {
            return Ok(false);
        }
        pg_accounts::operator(&self.client().await?, name).await
    }

    async fn set_account_runtime_classes(
        &self,
        name: &str,
        policy: &berth_core::RuntimeClassPolicy,
    ) -> Result<(), StoreError> {
        pg_accounts::set_runtime_classes(&self.client().await?, name, policy).await
    }

    async fn account_runtime_classes(
        &self,
        account: &str,
    ) -> Result<berth_core::RuntimeClassPolicy, StoreError> {
        if nul(account) {
            return Ok(berth_core::RuntimeClassPolicy::default());
        }
        pg_accounts::runtime_classes(&self.client().await?, account).await
    }

    async fn group_usage(&self, account: &str) -> Result<GroupUsage, StoreError> {
        if nul(account) {
            return Ok(GroupUsage::default());
        }
        pg_accounts::usage(&self.client().await?, account).await
    }

    async fn insert_group(&self, rec: &GroupRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        pg_revision::lock_for_write(&tx).await?;
        pg_groups::insert(&tx, rec, &self.sealer).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_group(
        &self,
        account: Option<&str>,
        id: &GroupId,
    ) -> Result<Option<GroupRecord>, StoreError> {
        if account.is_some_and(nul) {
            return Ok(None);
        }
        pg_groups::get(&self.client().await?, account, id, &self.sealer).await
    }

    async fn modify_group(
        &self,
        id: &GroupId,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError> {
        pg_groups::modify(&mut self.client().await?, id, None, f, &self.sealer).await
    }

    async fn modify_group_within(
        &self,
        id: &GroupId,
        limits: &GroupLimits,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError> {
        pg_groups::modify(&mut self.client().await?, id, Some(limits), f, &self.sealer).await
    }

    async fn insert_group_claiming(
        &self,
        rec: &GroupRecord,
        params: &str,
        limits: &GroupLimits,
    ) -> Result<Option<TokenUse>, StoreError> {
        let mut client = self.client().await?;
        pg_groups::insert_claiming(&mut client, rec, params, limits, &self.sealer).await
    }

    async fn delete_group(&self, id: &GroupId) -> Result<(), StoreError> {
        pg_groups::delete(&mut self.client().await?, id).await
    }

    async fn find_client_token(
        &self,
        account: &str,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        if nul(account) || nul(token) {
            return Ok(None);
        }
        let found = pg_tokens::find(&self.client().await?, account, kind, token).await?;
        pg_tokens::open(&self.sealer, found)
    }

    async fn sweep_client_tokens(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        pg_tokens::sweep(&self.client().await?, now).await
    }

    async fn list_groups(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let client = self.client().await?;
        pg_groups::list(&client, account, filter, limit, token, &self.sealer).await
    }

    async fn meter_start(
        &self,
        account: &str,
        kind: &str,
        resource: &str,
        quantity: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        pg_ledger::meter_start(&mut client, account, kind, resource, quantity, at).await
    }

    async fn meter_stop(&self, resource: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        pg_ledger::meter_stop(&self.client().await?, resource, at).await
    }

    async fn usage(
        &self,
        account: &str,
        kind: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageInterval>, StoreError> {
        if nul(account) || nul(kind) {
            return Ok(Vec::new());
        }
        pg_ledger::usage(&self.client().await?, account, kind, from, to).await
    }

    async fn ledger(
        &self,
        account: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LedgerPeriod>, StoreError> {
        if account.is_some_and(nul) {
            return Ok(Vec::new());
        }
        pg_ledger::list(&self.client().await?, account, from, to).await
    }

    async fn group_ledger(&self, id: &GroupId) -> Result<Vec<LedgerPeriod>, StoreError> {
        pg_ledger::of_group(&self.client().await?, id).await
    }

    async fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        pg_groups::all(&self.client().await?, &self.sealer).await
    }

    async fn insert_cache(
        &self,
        rec: &ImageCacheRecord,
        params: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        pg_caches::insert(&mut self.client().await?, rec, params, &self.sealer).await
    }

    async fn get_cache(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageCacheRecord>, StoreError> {
        if nul(id) || account.is_some_and(nul) {
            return Ok(None);
        }
        pg_caches::get(&self.client().await?, account, id, &self.sealer).await
    }

    async fn modify_cache(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut ImageCacheRecord) + Send),
    ) -> Result<ImageCacheRecord, StoreError> {
        if nul(id) {
            return Err(StoreError::NotFound(id.to_string()));
        }
        pg_caches::modify(&mut self.client().await?, id, f, &self.sealer).await
    }

    async fn delete_cache(&self, id: &str) -> Result<(), StoreError> {
        if nul(id) {
            return Ok(());
        }
        pg_caches::delete(&mut self.client().await?, id).await
    }

    async fn list_caches(
        &self,
        account: Option<&str>,
    ) -> Result<Vec<ImageCacheRecord>, StoreError> {
        if account.is_some_and(nul) {
            return Ok(Vec::new());
        }
        pg_caches::list(&self.client().await?, account, &self.sealer).await
    }

    async fn change_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        ids: &[String],
        change: &berth_core::TagChange,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        pg_tags::change(&mut client, &self.sealer, account, kind, ids, change).await
    }

    async fn list_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        query: &TagQuery,
        limit: usize,
        after: Option<&TagCursor>,
    ) -> Result<TagPage, StoreError> {
        pg_tags::list(&self.client().await?, account, kind, query, limit, after).await
    }

    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
    ) -> Result<(), StoreError> {
        pg_sessions::create(&mut self.client().await?, session, bounds).await
    }

    async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
        if nul(id_hash) {
            return Ok(None);
        }
        pg_sessions::get(&self.client().await?, id_hash).await
    }

    async fn touch_console_session(&self, id_hash: &str, used: i64) -> Result<(), StoreError> {
        if nul(id_hash) {
            return Ok(());
        }
        pg_sessions::touch(&self.client().await?, id_hash, used).await
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        if nul(id_hash) {
            return Ok(());
        }
        pg_sessions::delete(&self.client().await?, id_hash).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError> {
        pg_leases::take(&self.client().await?, name, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        pg_leases::release(&self.client().await?, name, holder).await
    }

    async fn console_sessions(&self) -> Result<usize, StoreError> {
        pg_sessions::total(&self.client().await?).await
    }

    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError> {
        pg_nodes::create_token(&self.client().await?, token).await
    }

    async fn join_token(&self, id: &str) -> Result<Option<JoinToken>, StoreError> {
        pg_nodes::token(&self.client().await?, id).await
    }

    async fn list_join_tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        pg_nodes::tokens(&self.client().await?).await
    }

    async fn delete_join_token(&self, id: &str) -> Result<bool, StoreError> {
        pg_nodes::delete_token(&self.client().await?, id).await
    }

    async fn upsert_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        pg_nodes::upsert(&self.client().await?, node, &self.sealer).await
    }

    async fn get_node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        pg_nodes::get_by(&self.client().await?, ByColumn::Id, id, &self.sealer).await
    }

    async fn node_by_name(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        pg_nodes::get_by(&self.client().await?, ByColumn::Name, name, &self.sealer).await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        pg_nodes::list(&self.client().await?).await
    }

    async fn modify_node(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut NodeInfo) + Send),
    ) -> Result<Option<NodeInfo>, StoreError> {
        pg_nodes::modify(&mut self.client().await?, id, f).await
    }

    async fn delete_node(&self, id: &str) -> Result<bool, StoreError> {
        pg_nodes::delete(&self.client().await?, id).await
    }

    async fn node_groups(
        &self,
        node: &str,
        after: u64,
        limit: usize,
    ) -> Result<NodeGroups, StoreError> {
        let client = self.client().await?;
        if nul(node) {
            // No group is placed on such a node; the revision still moves on.
            let revision = pg_revision::settled(&client).await?;
            return Ok(crate::revision::page(after, revision, Vec::new(), limit));
        }
        pg_revision::node_groups(&client, node, after, limit, &self.sealer).await
    }

    async fn group_revision(&self) -> Result<u64, StoreError> {
        pg_revision::settled(&self.client().await?).await
    }

    async fn placed_usage(&self) -> Result<Vec<NodeUsage>, StoreError> {
        pg_revision::placed_usage(&self.client().await?).await
    }

    async fn unplaced_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        pg_revision::unplaced(&self.client().await?, limit, &self.sealer).await
    }

    async fn terminating_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        pg_revision::terminating(&self.client().await?, limit, &self.sealer).await
    }

    async fn unfinished_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        pg_revision::unfinished(&self.client().await?, limit, &self.sealer).await
    }
}
