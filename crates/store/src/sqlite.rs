//! The embedded store: [`Store`] on one SQLite file ([`SqliteDb`] does the SQL), each call a
//! job on the store's own threads (`worker.rs`) so that no caller's thread waits on SQLite.
//! A change (`modify_*`) reads the record, runs the caller's closure on the caller's task and
//! writes the result only if the row is still as read; else it runs the closure again on the
//! row as it is now.

use std::path::Path;
use std::sync::Arc;

use berth_core::{GroupId, GroupRecord, ImageCacheRecord, JoinToken, NodeInfo, NodeRecord};

use crate::nodes::ByColumn;
use crate::sqlite_db::{Changed, ForChange, SqliteDb};
use crate::tokens::{TokenKind, TokenUse};
use crate::worker::Workers;
use crate::{
    AccessKey, Account, AccountSeccomp, ConsoleSession, GroupFilter, GroupLimits, GroupUsage,
    KeyCheck, KeyInfo, LedgerPeriod, NodeGroups, NodeUsage, Page, QuotaOverrides, SessionBounds,
    Store, StoreError, TagCursor, TagPage, TagQuery, UsageInterval,
};

/// Most times a change is tried again because another write changed the row first. Each
/// retry means some other write went through, so this is only reached by a record changed
/// without pause by others.
const MAX_RETRIES: usize = 1000;

/// [`Store`] on SQLite.
pub struct SqliteStore {
    db: Arc<SqliteDb>,
    workers: Workers,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// The key of its secrets is the file [`crate::KEY_FILE`] in the same directory, made
    /// (0600) when there is none yet; [`crate::KeyError::Missing`] when there is none but the
    /// database holds sealed secrets. Secrets found in plain text (rows written before sealing
    /// existed) are sealed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::on_threads(SqliteDb::open(path)?)
    }

    /// A database in memory, for tests; its secrets are sealed with a key of its own.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::on_threads(SqliteDb::in_memory()?)
    }

    fn on_threads(db: SqliteDb) -> Result<Self, StoreError> {
        // One writer and each reader connection can be busy at once; one more thread lets a
        // job start while another waits on SQLite's own lock.
        let threads = db.connections() + 1;
        let workers = Workers::start("berth-store", threads).map_err(StoreError::Threads)?;
        Ok(Self {
            db: Arc::new(db),
            workers,
        })
    }

    /// How many rows held secrets in plain text that [`open`](Self::open) sealed.
    pub fn sealed_at_open(&self) -> usize {
        self.db.sealed_at_open()
    }

    async fn on_db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteDb) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        self.workers.run(move || f(&db)).await
    }

    async fn change_group<F>(
        &self,
        id: &GroupId,
        limits: Option<GroupLimits>,
        f: &mut F,
    ) -> Result<GroupRecord, StoreError>
    where
        F: FnMut(&mut GroupRecord) + Send + ?Sized,
    {
        let key = id.clone();
        let mut read = self.on_db(move |db| db.group_for_change(&key)).await?;
        for _ in 0..MAX_RETRIES {
            let mut after = read.rec.clone();
            f(&mut after);
            let key = id.clone();
            let job = (read, after);
            let res = self
                .on_db(move |db| {
                    let (read, after) = job;
                    db.write_group_change(&key, &read, after, limits.as_ref())
                })
                .await?;
            match res {
                Changed::Written(rec) => return Ok(rec),
                Changed::Meanwhile(now) => read = now,
            }
        }
        Err(StoreError::Contended(id.to_string()))
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.on_db(move |db| db.create_access_key(&key)).await
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let access_key_id = access_key_id.to_owned();
        self.on_db(move |db| db.access_key(&access_key_id)).await
    }

    async fn check_access_key(&self, access_key_id: &str) -> Result<Option<KeyCheck>, StoreError> {
        // Every request checks its key: a key remembered and unchanged costs no hand-off.
        if let Some(hit) = self.db.remembered_key(access_key_id) {
            return Ok(Some(hit));
        }
        let access_key_id = access_key_id.to_owned();
        self.on_db(move |db| db.check_access_key(&access_key_id))
            .await
    }

    async fn create_account(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.on_db(move |db| db.create_account(&name)).await
    }

    async fn set_account_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.on_db(move |db| db.set_account_disabled(&name, disabled))
            .await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.on_db(move |db| db.list_accounts()).await
    }

    async fn add_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.on_db(move |db| db.add_access_key(&key)).await
    }

    async fn list_access_keys(&self, account: &str) -> Result<Vec<KeyInfo>, StoreError> {
        let account = account.to_owned();
        self.on_db(move |db| db.list_access_keys(&account)).await
    }

    async fn set_access_key_disabled(
        &self,
        account: &str,
        access_key_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let account = account.to_owned();
        let access_key_id = access_key_id.to_owned();
        self.on_db(move |db| db.set_access_key_disabled(&account, &access_key_id, disabled))
            .await
    }

    async fn delete_access_key(
        &self,
        account: &str,
        access_key_id: &str,
    ) -> Result<(), StoreError> {
        let account = account.to_owned();
        let access_key_id = access_key_id.to_owned();
        self.on_db(move |db| db.delete_access_key(&account, &access_key_id))
            .await
    }

    async fn set_account_quota(
        &self,
        name: &str,
        quota: &QuotaOverrides,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let quota = *quota;
        self.on_db(move |db| db.set_account_quota(&name, &quota))
            .await
    }

    async fn account_quota(&self, account: &str) -> Result<QuotaOverrides, StoreError> {
        let account = account.to_owned();
        self.on_db(move |db| db.account_quota(&account)).await
    }

    async fn set_account_seccomp(
        &self,
        name: &str,
        seccomp: &AccountSeccomp,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let seccomp = seccomp.clone();
        self.on_db(move |db| db.set_account_seccomp(&name, &seccomp))
            .await
    }

    async fn account_seccomp(&self, account: &str) -> Result<AccountSeccomp, StoreError> {
        let account = account.to_owned();
        self.on_db(move |db| db.account_seccomp(&account)).await
    }

    async fn set_account_operator(&self, name: &str, operator: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.on_db(move |db| db.set_account_operator(&name, operator))
            .await
    }

    async fn account_operator(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.on_db(move |db| db.account_operator(&name)).await
    }

    async fn set_account_runtime_classes(
        &self,
        name: &str,
        policy: &berth_core::RuntimeClassPolicy,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let policy = policy.clone();
        self.on_db(move |db| db.set_account_runtime_classes(&name, &policy))
            .await
    }

    async fn account_runtime_classes(
        &self,
        account: &str,
    ) -> Result<berth_core::RuntimeClassPolicy, StoreError> {
        let account = account.to_owned();
        self.on_db(move |db| db.account_runtime_classes(&account))
            .await
    }

    async fn group_usage(&self, account: &str) -> Result<GroupUsage, StoreError> {
        let account = account.to_owned();
        self.on_db(move |db| db.group_usage(&account)).await
    }

    async fn insert_group(&self, rec: &GroupRecord) -> Result<(), StoreError> {
        let rec = rec.clone();
        self.on_db(move |db| db.insert_group(&rec)).await
    }

    async fn get_group(
        &self,
        account: Option<&str>,
        id: &GroupId,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let account = account.map(str::to_owned);
        let id = id.clone();
        self.on_db(move |db| db.get_group(account.as_deref(), &id))
            .await
    }

    async fn insert_group_claiming(
        &self,
        rec: &GroupRecord,
        params: &str,
        limits: &GroupLimits,
    ) -> Result<Option<TokenUse>, StoreError> {
        let rec = rec.clone();
        let params = params.to_owned();
        let limits = *limits;
        self.on_db(move |db| db.insert_group_claiming(&rec, &params, &limits))
            .await
    }

    async fn delete_group(&self, id: &GroupId) -> Result<(), StoreError> {
        let id = id.clone();
        self.on_db(move |db| db.delete_group(&id)).await
    }

    async fn find_client_token(
        &self,
        account: &str,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        let account = account.to_owned();
        let token = token.to_owned();
        self.on_db(move |db| db.find_client_token(&account, kind, &token))
            .await
    }

    async fn sweep_client_tokens(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.on_db(move |db| db.sweep_client_tokens(now)).await
    }

    async fn list_groups(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let account = account.to_owned();
        let filter = filter.clone();
        let token = token.map(str::to_owned);
        self.on_db(move |db| db.list_groups(&account, &filter, limit, token.as_deref()))
            .await
    }

    async fn meter_start(
        &self,
        account: &str,
        kind: &str,
        resource: &str,
        quantity: u64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let account = account.to_owned();
        let kind = kind.to_owned();
        let resource = resource.to_owned();
        self.on_db(move |db| db.meter_start(&account, &kind, &resource, quantity, at))
            .await
    }

    async fn meter_stop(
        &self,
        resource: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let resource = resource.to_owned();
        self.on_db(move |db| db.meter_stop(&resource, at)).await
    }

    async fn usage(
        &self,
        account: &str,
        kind: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<UsageInterval>, StoreError> {
        let account = account.to_owned();
        let kind = kind.to_owned();
        self.on_db(move |db| db.usage(&account, &kind, from, to))
            .await
    }

    async fn ledger(
        &self,
        account: Option<&str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<LedgerPeriod>, StoreError> {
        let account = account.map(str::to_owned);
        self.on_db(move |db| db.ledger(account.as_deref(), from, to))
            .await
    }

    async fn group_ledger(&self, id: &GroupId) -> Result<Vec<LedgerPeriod>, StoreError> {
        let id = id.clone();
        self.on_db(move |db| db.group_ledger(&id)).await
    }

    async fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.on_db(move |db| db.all_groups()).await
    }

    async fn insert_cache(
        &self,
        rec: &ImageCacheRecord,
        params: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        let rec = rec.clone();
        let params = params.to_owned();
        self.on_db(move |db| db.insert_cache(&rec, &params)).await
    }

    async fn get_cache(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageCacheRecord>, StoreError> {
        let account = account.map(str::to_owned);
        let id = id.to_owned();
        self.on_db(move |db| db.get_cache(account.as_deref(), &id))
            .await
    }

    async fn delete_cache(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.on_db(move |db| db.delete_cache(&id)).await
    }

    async fn list_caches(
        &self,
        account: Option<&str>,
    ) -> Result<Vec<ImageCacheRecord>, StoreError> {
        let account = account.map(str::to_owned);
        self.on_db(move |db| db.list_caches(account.as_deref()))
            .await
    }

    async fn change_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        ids: &[String],
        change: &berth_core::TagChange,
    ) -> Result<(), StoreError> {
        let account = account.to_owned();
        let ids = ids.to_vec();
        let change = change.clone();
        self.on_db(move |db| db.change_tags(&account, kind, &ids, &change))
            .await
    }

    async fn list_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        query: &TagQuery,
        limit: usize,
        after: Option<&TagCursor>,
    ) -> Result<TagPage, StoreError> {
        let account = account.to_owned();
        let query = query.clone();
        let after = after.cloned();
        self.on_db(move |db| db.list_tags(&account, kind, &query, limit, after.as_ref()))
            .await
    }

    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.on_db(move |db| db.create_console_session(&session, bounds))
            .await
    }

    async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let id_hash = id_hash.to_owned();
        self.on_db(move |db| db.console_session(&id_hash)).await
    }

    async fn touch_console_session(&self, id_hash: &str, used: i64) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.on_db(move |db| db.touch_console_session(&id_hash, used))
            .await
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.on_db(move |db| db.delete_console_session(&id_hash))
            .await
    }

    async fn console_sessions(&self) -> Result<usize, StoreError> {
        self.on_db(move |db| db.console_sessions()).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.on_db(move |db| db.take_lease(&name, &holder, ttl))
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.on_db(move |db| db.release_lease(&name, &holder)).await
    }

    async fn modify_group(
        &self,
        id: &GroupId,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError> {
        self.change_group(id, None, f).await
    }

    async fn modify_group_within(
        &self,
        id: &GroupId,
        limits: &GroupLimits,
        f: &mut (dyn for<'r> FnMut(&'r mut GroupRecord) + Send),
    ) -> Result<GroupRecord, StoreError> {
        self.change_group(id, Some(*limits), f).await
    }

    async fn modify_cache(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut ImageCacheRecord) + Send),
    ) -> Result<ImageCacheRecord, StoreError> {
        let key = id.to_owned();
        let mut read: ForChange<ImageCacheRecord> =
            self.on_db(move |db| db.cache_for_change(&key)).await?;
        for _ in 0..MAX_RETRIES {
            let mut after = read.rec.clone();
            f(&mut after);
            let key = id.to_owned();
            let job = (read, after);
            let res = self
                .on_db(move |db| {
                    let (read, after) = job;
                    db.write_cache_change(&key, &read, after)
                })
                .await?;
            match res {
                Changed::Written(rec) => return Ok(rec),
                Changed::Meanwhile(now) => read = now,
            }
        }
        Err(StoreError::Contended(id.to_string()))
    }

    async fn create_join_token(&self, token: &JoinToken) -> Result<(), StoreError> {
        let token = token.clone();
        self.on_db(move |db| db.create_join_token(&token)).await
    }

    async fn join_token(&self, id: &str) -> Result<Option<JoinToken>, StoreError> {
        let id = id.to_owned();
        self.on_db(move |db| db.join_token(&id)).await
    }

    async fn list_join_tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        self.on_db(move |db| db.list_join_tokens()).await
    }

    async fn delete_join_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.on_db(move |db| db.delete_join_token(&id)).await
    }

    async fn upsert_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let node = node.clone();
        self.on_db(move |db| db.upsert_node(&node)).await
    }

    async fn get_node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        let id = id.to_owned();
        self.on_db(move |db| db.node(ByColumn::Id, &id)).await
    }

    async fn node_by_name(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        let name = name.to_owned();
        self.on_db(move |db| db.node(ByColumn::Name, &name)).await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        self.on_db(move |db| db.list_nodes()).await
    }

    async fn modify_node(
        &self,
        id: &str,
        f: &mut (dyn for<'r> FnMut(&'r mut NodeInfo) + Send),
    ) -> Result<Option<NodeInfo>, StoreError> {
        let key = id.to_owned();
        let Some(mut read) = self.on_db(move |db| db.node_for_change(&key)).await? else {
            return Ok(None);
        };
        for _ in 0..MAX_RETRIES {
            let mut after = read.rec.clone();
            f(&mut after);
            let key = id.to_owned();
            let res = self
                .on_db(move |db| db.write_node_change(&key, &read, after))
                .await?;
            match res {
                None => return Ok(None),
                Some(Changed::Written(info)) => return Ok(Some(info)),
                Some(Changed::Meanwhile(now)) => read = now,
            }
        }
        Err(StoreError::Contended(id.to_string()))
    }

    async fn delete_node(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.on_db(move |db| db.delete_node(&id)).await
    }

    async fn node_groups(
        &self,
        node: &str,
        after: u64,
        limit: usize,
    ) -> Result<NodeGroups, StoreError> {
        let node = node.to_owned();
        self.on_db(move |db| db.node_groups(&node, after, limit))
            .await
    }

    async fn group_revision(&self) -> Result<u64, StoreError> {
        self.on_db(move |db| db.group_revision()).await
    }

    async fn placed_usage(&self) -> Result<Vec<NodeUsage>, StoreError> {
        self.on_db(move |db| db.placed_usage()).await
    }

    async fn unplaced_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        self.on_db(move |db| db.unplaced_groups(limit)).await
    }

    async fn terminating_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        self.on_db(move |db| db.terminating_groups(limit)).await
    }

    async fn unfinished_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        self.on_db(move |db| db.unfinished_groups(limit)).await
    }
}
