//! The embedded store's engine, called on the store's own threads ([`crate::SqliteStore`]):
//! one SQLite file in WAL mode. Writes go through one connection behind a
//! mutex (SQLite has one writer anyway; every call is short and never held across I/O of other
//! kinds); reads of groups and access keys go through a small pool of further connections, so
//! concurrent readers neither wait for each other nor for the writer (WAL readers see the last
//! committed state). A database in memory has no pool: everything uses the one connection.
//! Secrets go through [`Sealer`] on their way in and out (`seal.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_core::{GroupId, GroupRecord, GroupStatus, ImageCacheRecord};
use chrono::{DateTime, Utc};
use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, TransactionBehavior,
};

use crate::keycache::KeyCache;
use crate::seal::{KeyError, Sealer, KEY_FILE};
use crate::tokens::{self, TokenKind, TokenUse};
use crate::{
    AccessKey, Account, GroupFilter, GroupLimits, GroupUsage, KeyCheck, KeyInfo, Page,
    QuotaOverrides, StoreError, UsageInterval,
};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    client_token TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS groups_account ON groups(account, seq);
CREATE INDEX IF NOT EXISTS groups_token ON groups(account, client_token);
"#,
    crate::cache::MIGRATION,
    crate::usage::MIGRATION,
    crate::accounts::MIGRATION,
    crate::tokens::MIGRATION,
    crate::quota::MIGRATION,
    crate::seccomp::MIGRATION,
    crate::quota::STORAGE_MIGRATION,
    crate::ledger::MIGRATION,
    crate::billed::MIGRATION,
    crate::operator::MIGRATION,
    CHANGED_MIGRATION,
    crate::runtime_classes::MIGRATION,
    crate::sessions::MIGRATION,
    crate::leases::MIGRATION,
    crate::nodes::MIGRATION,
    crate::revision::MIGRATION,
    crate::revision::TERMINATING_MIGRATION,
];

/// When each group's record last changed (milliseconds since the epoch), so that a client
/// keeping many groups in view reads only those that changed (`SinceSecond`).
const CHANGED_MIGRATION: &str = r#"
ALTER TABLE groups ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS groups_changed ON groups(account, changed);
"#;

/// Most read connections a file database gets.
const MAX_READERS: usize = 8;

/// Most records [`Decoded`] holds; it starts over when full.
const MAX_DECODED: usize = 1024;

/// The SQLite database behind [`crate::SqliteStore`]; every call blocks its thread.
pub(crate) struct SqliteDb {
    conn: Mutex<Connection>,
    /// Read-only connections (`query_only`) to the same file; empty for a database in memory.
    readers: Vec<Mutex<Connection>>,
    /// Where the next reader search starts, so load spreads over the pool.
    next_reader: AtomicUsize,
    counts: Mutex<Counts>,
    decoded: Mutex<Decoded>,
    sealer: Sealer,
    /// Access keys checked recently (`keycache.rs`).
    keys: KeyCache,
    /// Rows whose plain-text secrets [`open`](Self::open) sealed.
    sealed_at_open: usize,
}

/// Records decoded for unfiltered listings, by group id, each with the JSON text it was decoded
/// from. The first pages of a listing are asked for again and again and their records rarely
/// change; decoding one (its timestamps above all) costs several times more than comparing the
/// stored text with the remembered one. A record whose text differs is decoded again, so what a
/// listing returns is always what the row holds; one that does not is handed out shared.
#[derive(Default)]
struct Decoded {
    by_id: HashMap<String, Arc<Remembered>>,
}

struct Remembered {
    json: String,
    rec: Arc<GroupRecord>,
}

/// How many groups each account has, as counted by unfiltered listings: counting 10,000 rows
/// costs more than the rest of a page, and the number changes only through this store's own
/// inserts and deletes, which drop what is remembered.
#[derive(Default)]
struct Counts {
    /// Bumped by every insert and delete of a group. A count is kept only if no insert or
    /// delete happened while it was read, so a count read before a write never outlives it.
    generation: u64,
    by_account: HashMap<String, u64>,
}

impl SqliteDb {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// The key of its secrets is the file [`KEY_FILE`] in the same directory, made (0600) when
    /// there is none yet; [`KeyError::Missing`] when there is none but the database holds
    /// sealed secrets. Secrets found in plain text (rows written before sealing existed) are
    /// sealed.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        prepare(&conn)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let key_path = dir.join(KEY_FILE);
        let sealer = match Sealer::load(&key_path)? {
            Some(s) => s,
            None if crate::migrate_secrets::any_sealed(&conn)? => {
                return Err(KeyError::Missing(key_path).into())
            }
            None => Sealer::create(&key_path)?,
        };
        let sealed = crate::migrate_secrets::seal_plain_rows(&conn, &sealer)?;
        let mut store = Self::init(conn, sealer);
        store.sealed_at_open = sealed;
        store.keys = KeyCache::open(dir).map_err(StoreError::GenerationFile)?;
        let n = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_READERS);
        for _ in 0..n {
            store.readers.push(Mutex::new(open_reader(path)?));
        }
        Ok(store)
    }

    /// A database in memory, for tests; its secrets are sealed with a key of its own.
    pub(crate) fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        prepare(&conn)?;
        Ok(Self::init(conn, Sealer::generate()))
    }

    fn init(conn: Connection, sealer: Sealer) -> Self {
        Self {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            counts: Mutex::default(),
            decoded: Mutex::default(),
            sealer,
            keys: KeyCache::in_memory(),
            sealed_at_open: 0,
        }
    }

    /// How many rows held secrets in plain text that [`open`](Self::open) sealed.
    pub(crate) fn sealed_at_open(&self) -> usize {
        self.sealed_at_open
    }

    /// The sealer of its secrets.
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// How many connections it has: the writer and the readers.
    pub(crate) fn connections(&self) -> usize {
        1 + self.readers.len()
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every remembered count: called after each insert or delete of a group.
    fn groups_changed(&self) {
        let mut c = self.counts();
        c.generation += 1;
        c.by_account.clear();
    }

    /// The record stored as `json` for group `id`, decoded or remembered.
    fn decode_remembered(&self, id: &str, json: &str) -> Result<Arc<GroupRecord>, StoreError> {
        let lock = || self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        let known = lock().by_id.get(id).cloned();
        if let Some(k) = known {
            if k.json == json {
                return Ok(Arc::clone(&k.rec));
            }
        }
        let rec = Arc::new(self.decode(json)?);
        let entry = Arc::new(Remembered {
            json: json.to_string(),
            rec: Arc::clone(&rec),
        });
        let mut d = lock();
        if d.by_id.len() >= MAX_DECODED {
            d.by_id.clear();
        }
        d.by_id.insert(id.to_string(), entry);
        Ok(rec)
    }

    /// A connection for one read: a free one of the pool, else (all busy) one to wait for; the
    /// writer's when there is no pool.
    pub(crate) fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.conn();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(c) = self.readers[(start + i) % n].try_lock() {
                return c;
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A group's record from the JSON of its row, its secrets opened.
    pub(crate) fn decode(&self, json: &str) -> Result<GroupRecord, StoreError> {
        let mut rec: GroupRecord = serde_json::from_str(json)?;
        self.sealer.open_group(&mut rec)?;
        Ok(rec)
    }

    /// A token's first use as read, its secrets opened.
    fn open_token(&self, found: Option<TokenUse>) -> Result<Option<TokenUse>, StoreError> {
        found
            .map(|mut t| {
                t.params = self.sealer.open_json(&t.params)?;
                Ok(t)
            })
            .transpose()
    }
}

/// Sets up a new connection as the writer and brings the schema up to date.
fn prepare(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL loses nothing on a crash of the process, only on a power cut.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(conn)
}

/// Brings the schema up to date: each migration and its `user_version` in one transaction that
/// takes the write lock first, so a crash leaves no half-done step and two processes opening
/// the same file (the server and an admin command) never both run one.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| {
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let Some(m) = usize::try_from(version)
                .ok()
                .and_then(|v| MIGRATIONS.get(v))
            else {
                return Ok::<_, rusqlite::Error>(false);
            };
            conn.execute_batch(m)?;
            conn.pragma_update(None, "user_version", version + 1)?;
            Ok(true)
        })();
        match step {
            Ok(more) => {
                conn.execute_batch("COMMIT")?;
                if !more {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
}

/// A connection that only reads (the schema is the writer's business).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// A page when every condition is in SQL: the total is counted by SQLite (unless `total` is
/// known, or the page is the first and holds every match) and only the rows of the page (and one more, to know whether another page follows)
/// are read and decoded.
/// With `remember`, `store` remembers the records decoded (unfiltered listings).
#[allow(clippy::too_many_arguments)]
fn page_by_sql(
    store: &SqliteDb,
    conn: &Connection,
    cond: &str,
    args: &[String],
    after: Option<i64>,
    newest_first: bool,
    limit: usize,
    total: Option<u64>,
    remember: bool,
) -> Result<Page, StoreError> {
    let (cmp, order, start) = if newest_first {
        ("<", "DESC", i64::MAX)
    } else {
        (">", "ASC", 0)
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, id, record FROM groups WHERE {cond} AND seq {cmp} ? ORDER BY seq {order} LIMIT ?"
    ))?;
    let first = after.is_none();
    let after = after.unwrap_or(start);
    let mut bound: Vec<rusqlite::types::Value> = args.iter().map(|a| a.clone().into()).collect();
    bound.push(after.into());
    bound.push((limit.min(i64::MAX as usize - 1) as i64 + 1).into());
    let mut rows = stmt.query(params_from_iter(bound.iter()))?;
    let mut page = Page::default();
    let mut last_seq = 0;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        if page.groups.len() == limit {
            page.next_token = Some(last_seq.to_string());
            break;
        }
        last_seq = seq;
        let json = text(row, 2)?;
        page.groups.push(if remember {
            store.decode_remembered(text(row, 1)?, json)?
        } else {
            Arc::new(store.decode(json)?)
        });
    }
    drop(rows);
    page.total = match total {
        Some(t) => t,
        // A first page with nothing after it holds every match: no need to count (the
        // Describe of a few ids by the SDKs' waiters is always such a page).
        None if first && page.next_token.is_none() => page.groups.len() as u64,
        None => conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM groups WHERE {cond}"))?
            .query_row(params_from_iter(args.iter()), |r| r.get::<_, i64>(0))?
            .max(0) as u64,
    };
    Ok(page)
}

/// Writes the row of a new group (`json`: the record as stored) with the next revision, inside
/// the caller's write transaction; [`StoreError::Exists`] when its id is taken.
fn insert_group_row(conn: &Connection, rec: &GroupRecord, json: &str) -> Result<(), StoreError> {
    let res = conn.execute(
        "INSERT INTO groups \
         (id, account, name, status, client_token, record, cpu, memory, storage, changed, \
          node, waiting, created, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            rec.id.as_str(),
            rec.account,
            rec.spec.name,
            rec.status.as_str(),
            rec.client_token,
            json,
            rec.spec.cpu,
            rec.spec.memory,
            f64::from(rec.spec.ephemeral_storage_gib()),
            Utc::now().timestamp_millis(),
            rec.node,
            rec.waiting,
            rec.creation_time.timestamp_millis(),
            crate::revision::next(conn)?
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Exists(rec.id.to_string()))
        }
        Err(e) => Err(e.into()),
    }?;
    crate::billed::put(conn, rec)
}

/// Column `i` of `row` as text, without a copy.
fn text<'a>(row: &'a rusqlite::Row<'_>, i: usize) -> Result<&'a str, StoreError> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
            .into()
    })
}

/// One call per method of [`crate::Store`], each one transaction.
impl SqliteDb {
    pub(crate) fn create_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let res = crate::accounts::create_key(&mut self.conn(), key, &self.sealer);
        self.keys.changed();
        res
    }

    pub(crate) fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        Ok(self.check_access_key(access_key_id)?.map(|k| k.key))
    }

    /// A key checked recently and unchanged since (see keycache.rs): a lookup in memory and
    /// one read of eight bytes of the generation file, cheap enough for the caller's thread.
    pub(crate) fn remembered_key(&self, access_key_id: &str) -> Option<KeyCheck> {
        self.keys
            .generation()
            .and_then(|g| self.keys.get(access_key_id, g))
    }

    pub(crate) fn check_access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<KeyCheck>, StoreError> {
        // The generation before the store: see keycache.rs.
        let generation = self.keys.generation();
        if let Some(hit) = generation.and_then(|g| self.keys.get(access_key_id, g)) {
            return Ok(Some(hit));
        }
        let found = crate::accounts::check_key(&self.reader(), access_key_id, &self.sealer)?;
        if let (Some(g), Some(check)) = (generation, &found) {
            self.keys.put(check, g);
        }
        Ok(found)
    }

    pub(crate) fn create_account(&self, name: &str) -> Result<(), StoreError> {
        let res = crate::accounts::create_account(&self.conn(), name);
        self.keys.changed();
        res
    }

    pub(crate) fn set_account_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let res = crate::accounts::set_account_disabled(&self.conn(), name, disabled);
        self.keys.changed();
        res
    }

    pub(crate) fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        crate::accounts::list_accounts(&self.conn())
    }

    pub(crate) fn add_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let res = crate::accounts::add_key(&mut self.conn(), key, &self.sealer);
        self.keys.changed();
        res
    }

    pub(crate) fn list_access_keys(&self, account: &str) -> Result<Vec<KeyInfo>, StoreError> {
        crate::accounts::list_keys(&self.conn(), account)
    }

    pub(crate) fn set_access_key_disabled(
        &self,
        account: &str,
        access_key_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let res = crate::accounts::set_key_disabled(&self.conn(), account, access_key_id, disabled);
        self.keys.changed();
        res
    }

    pub(crate) fn delete_access_key(
        &self,
        account: &str,
        access_key_id: &str,
    ) -> Result<(), StoreError> {
        let res = crate::accounts::delete_key(&self.conn(), account, access_key_id);
        self.keys.changed();
        res
    }

    pub(crate) fn set_account_quota(
        &self,
        name: &str,
        quota: &QuotaOverrides,
    ) -> Result<(), StoreError> {
        crate::quota::set(&self.conn(), name, quota)
    }

    pub(crate) fn account_quota(&self, account: &str) -> Result<QuotaOverrides, StoreError> {
        crate::quota::get(&self.reader(), account)
    }

    pub(crate) fn set_account_seccomp(
        &self,
        name: &str,
        seccomp: &crate::AccountSeccomp,
    ) -> Result<(), StoreError> {
        crate::seccomp::set(&self.conn(), name, seccomp)
    }

    pub(crate) fn account_seccomp(
        &self,
        account: &str,
    ) -> Result<crate::AccountSeccomp, StoreError> {
        crate::seccomp::get(&self.reader(), account)
    }

    pub(crate) fn set_account_operator(
        &self,
        name: &str,
        operator: bool,
    ) -> Result<(), StoreError> {
        crate::operator::set(&self.conn(), name, operator)
    }

    pub(crate) fn account_operator(&self, name: &str) -> Result<bool, StoreError> {
        crate::operator::get(&self.reader(), name)
    }

    pub(crate) fn set_account_runtime_classes(
        &self,
        name: &str,
        policy: &berth_core::RuntimeClassPolicy,
    ) -> Result<(), StoreError> {
        crate::runtime_classes::set(&self.conn(), name, policy)
    }

    pub(crate) fn account_runtime_classes(
        &self,
        account: &str,
    ) -> Result<berth_core::RuntimeClassPolicy, StoreError> {
        crate::runtime_classes::get(&self.reader(), account)
    }

    pub(crate) fn group_usage(&self, account: &str) -> Result<GroupUsage, StoreError> {
        crate::quota::usage(&self.reader(), account)
    }

    pub(crate) fn insert_group(&self, rec: &GroupRecord) -> Result<(), StoreError> {
        let json = self.sealer.group_json(rec)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_group_row(&tx, rec, &json)?;
        tx.commit()?;
        drop(conn);
        self.groups_changed();
        Ok(())
    }

    pub(crate) fn insert_group_claiming(
        &self,
        rec: &GroupRecord,
        params: &str,
        limits: &GroupLimits,
    ) -> Result<Option<TokenUse>, StoreError> {
        let json = self.sealer.group_json(rec)?;
        let params = self.sealer.seal_json(params)?;
        let mut conn = self.conn();
        // Immediate: the use read below cannot change before the insert commits.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(token) = &rec.client_token {
            let id = rec.id.as_str();
            let kind = TokenKind::Group;
            if let Some(prev) = tokens::claim(&tx, &rec.account, kind, token, id, &params)? {
                return self.open_token(Some(prev));
            }
        }
        let size = crate::quota::GroupSize {
            cpu: rec.spec.cpu,
            memory: rec.spec.memory,
            storage: f64::from(rec.spec.ephemeral_storage_gib()),
        };
        if let Err(over) = crate::quota::check(&tx, &rec.account, limits, size)? {
            // Dropping the transaction rolls back the token's claim.
            return Err(StoreError::QuotaExceeded(over));
        }
        insert_group_row(&tx, rec, &json)?;
        tx.commit()?;
        self.groups_changed();
        Ok(None)
    }

    pub(crate) fn get_group(
        &self,
        account: Option<&str>,
        id: &GroupId,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let conn = self.reader();
        let json: Option<String> = match account {
            Some(a) => conn
                .prepare_cached("SELECT record FROM groups WHERE id = ?1 AND account = ?2")?
                .query_row(params![id.as_str(), a], |r| r.get(0))
                .optional()?,
            None => conn
                .prepare_cached("SELECT record FROM groups WHERE id = ?1")?
                .query_row(params![id.as_str()], |r| r.get(0))
                .optional()?,
        };
        json.map(|j| self.decode(&j)).transpose()
    }

    /// A group's record as stored now, for a change to be written by
    /// [`write_group_change`](Self::write_group_change).
    pub(crate) fn group_for_change(
        &self,
        id: &GroupId,
    ) -> Result<ForChange<GroupRecord>, StoreError> {
        let json: Option<String> = self
            .reader()
            .prepare_cached("SELECT record FROM groups WHERE id = ?1")?
            .query_row(params![id.as_str()], |r| r.get(0))
            .optional()?;
        let json = json.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let rec = self.decode(&json)?;
        Ok(ForChange { json, rec })
    }

    pub(crate) fn delete_group(&self, id: &GroupId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::ledger::close_deleted(&tx, id, Utc::now(), || {
            let json: Option<String> = tx
                .prepare_cached("SELECT record FROM groups WHERE id = ?1")?
                .query_row(params![id.as_str()], |r| r.get(0))
                .optional()?;
            json.map(|j| self.decode(&j)).transpose()
        })?;
        tx.execute("DELETE FROM groups WHERE id = ?1", params![id.as_str()])?;
        crate::billed::forget_unbilled(&tx, id.as_str())?;
        tokens::tombstone(&tx, TokenKind::Group, id.as_str(), Utc::now())?;
        tx.commit()?;
        self.groups_changed();
        Ok(())
    }

    pub(crate) fn find_client_token(
        &self,
        account: &str,
        kind: TokenKind,
        token: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        self.open_token(tokens::find(&self.reader(), account, kind, token)?)
    }

    pub(crate) fn sweep_client_tokens(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        tokens::sweep(&self.conn(), now)
    }

    pub(crate) fn list_groups(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        let mut cond = String::from("account = ?");
        let mut args: Vec<String> = vec![account.to_string()];
        if !filter.ids.is_empty() {
            cond.push_str(&format!(
                " AND id IN ({})",
                vec!["?"; filter.ids.len()].join(",")
            ));
            args.extend(filter.ids.iter().cloned());
        }
        if let Some(n) = &filter.name {
            cond.push_str(" AND name = ?");
            args.push(n.clone());
        }
        if let Some(n) = &filter.name_contains {
            cond.push_str(" AND instr(lower(name), lower(?)) > 0");
            args.push(n.clone());
        }
        if let Some(s) = filter.status {
            cond.push_str(" AND status = ?");
            args.push(s.as_str().to_string());
        }
        if let Some(ended) = filter.ended {
            let statuses: Vec<String> = GroupStatus::ended(ended)
                .map(|s| s.as_str().to_string())
                .collect();
            cond.push_str(&format!(
                " AND status IN ({})",
                vec!["?"; statuses.len()].join(",")
            ));
            args.extend(statuses);
        }
        if let Some(t) = filter.changed_since {
            cond.push_str(" AND changed >= CAST(? AS INTEGER)");
            args.push(t.timestamp_millis().to_string());
        }
        let after: Option<i64> = token.and_then(|t| t.parse().ok());
        let newest = filter.newest_first;
        if args.len() == 1 && filter.tags.is_empty() {
            // Every group of the account: the count may be remembered.
            let (generation, known) = {
                let c = self.counts();
                (c.generation, c.by_account.get(account).copied())
            };
            let page = page_by_sql(
                self,
                &self.reader(),
                &cond,
                &args,
                after,
                newest,
                limit,
                known,
                true,
            )?;
            if known.is_none() {
                let mut c = self.counts();
                if c.generation == generation {
                    c.by_account.insert(account.to_string(), page.total);
                }
            }
            return Ok(page);
        }
        let conn = self.reader();
        if filter.tags.is_empty() {
            return page_by_sql(self, &conn, &cond, &args, after, newest, limit, None, false);
        }
        let order = if newest { "DESC" } else { "ASC" };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT seq, record FROM groups WHERE {cond} ORDER BY seq {order}"
        ))?;
        let past = |seq: i64| match after {
            None => true,
            Some(a) if newest => seq < a,
            Some(a) => seq > a,
        };
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut page = Page::default();
        let mut last_seq = 0;
        for row in rows {
            let (seq, json) = row?;
            if !filter.tags.is_empty() || past(seq) {
                let rec = self.decode(&json)?;
                let tagged = filter.tags.iter().all(|(k, v)| {
                    rec.spec
                        .tags
                        .iter()
                        .any(|t| &t.key == k && v.as_ref().is_none_or(|v| &t.value == v))
                });
                if !tagged {
                    continue;
                }
                page.total += 1;
                if past(seq) {
                    if page.groups.len() < limit {
                        last_seq = seq;
                        page.groups.push(Arc::new(rec));
                    } else if page.next_token.is_none() {
                        page.next_token = Some(last_seq.to_string());
                    }
                }
            } else {
                page.total += 1;
            }
        }
        Ok(page)
    }

    pub(crate) fn insert_cache(
        &self,
        rec: &ImageCacheRecord,
        params: &str,
    ) -> Result<Option<TokenUse>, StoreError> {
        crate::cache::insert(&mut self.conn(), rec, params, &self.sealer)
    }

    pub(crate) fn get_cache(
        &self,
        account: Option<&str>,
        id: &str,
    ) -> Result<Option<ImageCacheRecord>, StoreError> {
        crate::cache::get(&self.conn(), account, id, &self.sealer)
    }

    pub(crate) fn cache_for_change(
        &self,
        id: &str,
    ) -> Result<ForChange<ImageCacheRecord>, StoreError> {
        crate::cache::for_change(&self.conn(), id, &self.sealer)
    }

    pub(crate) fn write_cache_change(
        &self,
        id: &str,
        read: &ForChange<ImageCacheRecord>,
        after: ImageCacheRecord,
    ) -> Result<Changed<ImageCacheRecord>, StoreError> {
        crate::cache::write_change(&mut self.conn(), id, read, after, &self.sealer)
    }

    pub(crate) fn delete_cache(&self, id: &str) -> Result<(), StoreError> {
        crate::cache::delete(&mut self.conn(), id)
    }

    pub(crate) fn list_caches(
        &self,
        account: Option<&str>,
    ) -> Result<Vec<ImageCacheRecord>, StoreError> {
        crate::cache::list(&self.conn(), account, &self.sealer)
    }

    pub(crate) fn change_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        ids: &[String],
        change: &berth_core::TagChange,
    ) -> Result<(), StoreError> {
        crate::tags::change(&mut self.conn(), &self.sealer, account, kind, ids, change)
    }

    pub(crate) fn list_tags(
        &self,
        account: &str,
        kind: berth_core::TagResourceType,
        query: &crate::TagQuery,
        limit: usize,
        after: Option<&crate::TagCursor>,
    ) -> Result<crate::TagPage, StoreError> {
        crate::tags::list(&self.reader(), account, kind, query, limit, after)
    }

    pub(crate) fn create_console_session(
        &self,
        session: &crate::ConsoleSession,
        bounds: crate::SessionBounds,
    ) -> Result<(), StoreError> {
        crate::sessions::create(&mut self.conn(), session, bounds)
    }

    pub(crate) fn console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<crate::ConsoleSession>, StoreError> {
        crate::sessions::get(&self.reader(), id_hash)
    }

    pub(crate) fn touch_console_session(&self, id_hash: &str, used: i64) -> Result<(), StoreError> {
        crate::sessions::touch(&self.conn(), id_hash, used)
    }

    pub(crate) fn delete_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        crate::sessions::delete(&self.conn(), id_hash)
    }

    pub(crate) fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError> {
        crate::leases::take(&mut self.conn(), name, holder, ttl)
    }

    pub(crate) fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        crate::leases::release(&self.conn(), name, holder)
    }

    pub(crate) fn console_sessions(&self) -> Result<usize, StoreError> {
        crate::sessions::total(&self.reader())
    }

    pub(crate) fn meter_start(
        &self,
        account: &str,
        kind: &str,
        resource: &str,
        quantity: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::usage::start(&mut self.conn(), account, kind, resource, quantity, at)
    }

    pub(crate) fn meter_stop(&self, resource: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        crate::usage::stop(&self.conn(), resource, at)
    }

    pub(crate) fn ledger(
        &self,
        account: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::LedgerPeriod>, StoreError> {
        crate::ledger::list(&self.reader(), account, from, to)
    }

    pub(crate) fn group_ledger(
        &self,
        id: &GroupId,
    ) -> Result<Vec<crate::LedgerPeriod>, StoreError> {
        crate::ledger::of_group(&self.reader(), id)
    }

    pub(crate) fn usage(
        &self,
        account: &str,
        kind: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageInterval>, StoreError> {
        crate::usage::list(&self.conn(), account, kind, from, to)
    }

    pub(crate) fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare("SELECT record FROM groups ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| self.decode(&r?)).collect()
    }
}

impl SqliteDb {
    /// Writes `after`, the change of `read`, in one write transaction, unless the row changed
    /// since `read` was made: then nothing is written and the row as it is now comes back.
    /// With `limits`, a group that grows must fit its account's quota.
    pub(crate) fn write_group_change(
        &self,
        id: &GroupId,
        read: &ForChange<GroupRecord>,
        after: GroupRecord,
        limits: Option<&GroupLimits>,
    ) -> Result<Changed<GroupRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let json: Option<String> = tx
            .prepare_cached("SELECT record FROM groups WHERE id = ?1")?
            .query_row(params![id.as_str()], |r| r.get(0))
            .optional()?;
        let json = json.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if json != read.json {
            let rec = self.decode(&json)?;
            return Ok(Changed::Meanwhile(ForChange { json, rec }));
        }
        let rec = after;
        let unchanged = &read.rec;
        if let Some(limits) = limits {
            let before = crate::quota::GroupSize::of(&unchanged.spec);
            let after = crate::quota::GroupSize::of(&rec.spec);
            if let Err(over) = crate::quota::check_growth(&tx, &rec.account, limits, before, after)?
            {
                return Err(StoreError::QuotaExceeded(over));
            }
        }
        // A write that changes nothing (a report repeating what is known) keeps the time of
        // the last change: listings of what changed lately skip it.
        // Nor does it take a revision: a node watching its groups has nothing new to read.
        let now = Utc::now();
        let changed = rec != *unchanged;
        let revision = if changed {
            Some(crate::revision::next(&tx)?)
        } else {
            None
        };
        tx.prepare_cached(
            "UPDATE groups SET status = ?2, record = ?3, cpu = ?4, memory = ?5, storage = ?6, \
             changed = CASE WHEN ?7 THEN ?8 ELSE changed END, node = ?9, waiting = ?10, \
             revision = COALESCE(?11, revision) WHERE id = ?1",
        )?
        .execute(params![
            id.as_str(),
            rec.status.as_str(),
            self.sealer.group_json(&rec)?,
            rec.spec.cpu,
            rec.spec.memory,
            f64::from(rec.spec.ephemeral_storage_gib()),
            changed,
            now.timestamp_millis(),
            rec.node,
            rec.waiting,
            revision
        ])?;
        // Only a change of status or size can change what is billed: the reports that
        // change neither (most of them) cost the ledger nothing.
        if crate::ledger::Billing::of(&rec) != crate::ledger::Billing::of(unchanged) {
            crate::ledger::follow(&tx, &rec, now)?;
        }
        if crate::billed::Named::of(&rec) != crate::billed::Named::of(unchanged) {
            crate::billed::put(&tx, &rec)?;
        }
        tx.commit()?;
        Ok(Changed::Written(rec))
    }
}

/// A record as read for a change: the stored text, by which a later write tells whether the
/// row changed meanwhile, and the record it holds.
pub(crate) struct ForChange<T> {
    pub(crate) json: String,
    pub(crate) rec: T,
}

/// What came of writing a change.
pub(crate) enum Changed<T> {
    /// Written; the record as stored.
    Written(T),
    /// Another write changed the row first; nothing was written. The row as it is now.
    Meanwhile(ForChange<T>),
}
