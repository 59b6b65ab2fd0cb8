//! Container groups on PostgreSQL: the `groups` rows (real columns for what is filtered on,
//! the record as JSON text), their tags in `group_tags`, and the ledger and `billed_groups` rows
//! written in the same transactions as in the embedded store (`sqlite_db.rs`).
//!
//! A change locks the group's row (`SELECT ... FOR UPDATE`), runs the caller's closure on the
//! record as stored and writes the result before the lock goes with the commit: the closure
//! runs once, on the newest record, and no other write of that group can come between.
//! Checks of an account's quota take the account's advisory lock first ([`lock_account`]).

use std::sync::Arc;

use berth_core::{GroupId, GroupRecord, GroupStatus, Tag};
use chrono::Utc;
use deadpool_postgres::GenericClient;

use crate::pg_sql::{is_unique, ms, nul, Params};
use crate::pg_tokens;
use crate::quota::GroupSize;
use crate::seal::Sealer;
use crate::tokens::{TokenKind, TokenUse};
use crate::{GroupFilter, GroupLimits, Page, StoreError};

/// The first key of the advisory locks of accounts (the second is the hash of the name).
const ACCOUNT_LOCKS: i32 = 0x6265_7274;

/// Takes the transaction-scoped advisory lock of `account`: the quota checks and ClientToken
/// claims of one account run one at a time, each seeing what the one before committed, while
/// other accounts (and every write that cannot grow what an account holds) go on beside them.
pub(crate) async fn lock_account(c: &impl GenericClient, account: &str) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    c.execute(&stmt, &[&ACCOUNT_LOCKS, &account]).await?;
    Ok(())
}

/// A record as read, its secrets opened.
fn open(sealer: &Sealer, json: &str) -> Result<GroupRecord, StoreError> {
    let mut rec: GroupRecord = serde_json::from_str(json)?;
    sealer.open_group(&mut rec)?;
    Ok(rec)
}

/// The `group_tags` columns of `tags`: keys and values as bytes.
fn tag_columns(tags: &[Tag]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    tags.iter()
        .map(|t| (t.key.as_bytes(), t.value.as_bytes()))
        .unzip()
}

/// Writes the row of a new group, its tags and its `billed_groups` row;
/// [`StoreError::Exists`] when its id is taken. The transaction holds the revision's lock
/// (`pg_revision::lock_for_write`).
pub(crate) async fn insert(
    c: &impl GenericClient,
    rec: &GroupRecord,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let json = sealer.group_json(rec)?;
    let stmt = c
        .prepare_cached(
            "WITH g AS (INSERT INTO groups \
             (id, account, name, status, client_token, cpu, memory, storage, created, changed, \
              record, node, waiting, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $14, $15, \
                     nextval('group_revision')) RETURNING seq), \
             n AS (INSERT INTO account_groups (account, groups) SELECT $2, 1 FROM g \
             ON CONFLICT (account) DO UPDATE SET groups = account_groups.groups + 1) \
             INSERT INTO group_tags (group_seq, key, value) \
             SELECT g.seq, t.key, t.value FROM g, unnest($12::bytea[], $13::bytea[]) AS t(key, value) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let size = GroupSize::of(&rec.spec);
    let (keys, values) = tag_columns(&rec.spec.tags);
    let res = c
        .execute(
            &stmt,
            &[
                &rec.id.as_str(),
                &rec.account,
                &rec.spec.name,
                &rec.status.as_str(),
                &rec.client_token,
                &size.cpu,
                &size.memory,
                &size.storage,
                &rec.creation_time,
                &ms(Utc::now()),
                &json,
                &keys,
                &values,
                &rec.node,
                &rec.waiting,
            ],
        )
        .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique(&e) => return Err(StoreError::Exists(rec.id.to_string())),
        Err(e) => return Err(e.into()),
    }
    crate::pg_ledger::put_billed(c, rec).await
}

/// Replaces the tags of the group whose row is `seq`.
pub(crate) async fn put_tags(
    c: &impl GenericClient,
    seq: i64,
    tags: &[Tag],
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("DELETE FROM group_tags WHERE group_seq = $1")
        .await?;
    c.execute(&stmt, &[&seq]).await?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO group_tags (group_seq, key, value) \
             SELECT $1, t.key, t.value FROM unnest($2::bytea[], $3::bytea[]) AS t(key, value) \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let (keys, values) = tag_columns(tags);
    c.execute(&stmt, &[&seq, &keys, &values]).await?;
    Ok(())
}

/// Inserts a group, claiming its ClientToken and checking its account's quota, in one
/// transaction under the account's lock.
pub(crate) async fn insert_claiming(
    client: &mut deadpool_postgres::Client,
    rec: &GroupRecord,
    params: &str,
    limits: &GroupLimits,
    sealer: &Sealer,
) -> Result<Option<TokenUse>, StoreError> {
    let params = sealer.seal_json(params)?;
    let tx = client.transaction().await?;
    crate::pg_revision::lock_for_write(&tx).await?;
    lock_account(&tx, &rec.account).await?;
    if let Some(token) = &rec.client_token {
        let (id, kind) = (rec.id.as_str(), TokenKind::Group);
        if let Some(prev) = pg_tokens::claim(&tx, &rec.account, kind, token, id, &params).await? {
            return pg_tokens::open(sealer, Some(prev));
        }
    }
    let limits = limits.with(&crate::pg_accounts::quota(&tx, &rec.account).await?);
    let used = crate::pg_accounts::usage(&tx, &rec.account).await?;
    if let Err(over) = crate::quota::fits(&limits, &used, GroupSize::of(&rec.spec)) {
        // Dropping the transaction rolls back the token's claim.
        return Err(StoreError::QuotaExceeded(over));
    }
    insert(&tx, rec, sealer).await?;
    tx.commit().await?;
    Ok(None)
}

pub(crate) async fn get(
    c: &impl GenericClient,
    account: Option<&str>,
    id: &GroupId,
    sealer: &Sealer,
) -> Result<Option<GroupRecord>, StoreError> {
    let row = match account {
        Some(a) => {
            let stmt = c
                .prepare_cached("SELECT record FROM groups WHERE id = $1 AND account = $2")
                .await?;
            c.query_opt(&stmt, &[&id.as_str(), &a]).await?
        }
        None => {
            let stmt = c
                .prepare_cached("SELECT record FROM groups WHERE id = $1")
                .await?;
            c.query_opt(&stmt, &[&id.as_str()]).await?
        }
    };
    row.map(|r| open(sealer, r.get(0))).transpose()
}

/// Reads (locked), changes with `f` and writes back one group; with `limits`, a group that
/// grows must fit its account's quota (checked under the account's lock).
pub(crate) async fn modify<F>(
    client: &mut deadpool_postgres::Client,
    id: &GroupId,
    limits: Option<&GroupLimits>,
    f: &mut F,
    sealer: &Sealer,
) -> Result<GroupRecord, StoreError>
where
    F: FnMut(&mut GroupRecord) + Send + ?Sized,
{
    let tx = client.transaction().await?;
    crate::pg_revision::lock_for_write(&tx).await?;
    if limits.is_some() {
        // The account's lock before the row's, as every insert takes it.
        let stmt = tx
            .prepare_cached("SELECT account FROM groups WHERE id = $1")
            .await?;
        let Some(row) = tx.query_opt(&stmt, &[&id.as_str()]).await? else {
            return Err(StoreError::NotFound(id.to_string()));
        };
        lock_account(&tx, row.get(0)).await?;
    }
    let stmt = tx
        .prepare_cached("SELECT seq, record FROM groups WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id.as_str()]).await? else {
        return Err(StoreError::NotFound(id.to_string()));
    };
    let seq: i64 = row.get(0);
    let unchanged = open(sealer, row.get(1))?;
    let mut rec = unchanged.clone();
    f(&mut rec);
    let (before, after) = (GroupSize::of(&unchanged.spec), GroupSize::of(&rec.spec));
    if let Some(limits) = limits {
        if crate::quota::grows(before, after) {
            // The account whose lock is held: the row's.
            let account = &unchanged.account;
            let limits = limits.with(&crate::pg_accounts::quota(&tx, account).await?);
            let used = crate::pg_accounts::usage(&tx, account).await?;
            if let Err(over) = crate::quota::fits_growth(&limits, &used, before, after) {
                return Err(StoreError::QuotaExceeded(over));
            }
        }
    }
    if rec == unchanged {
        // A report repeating what is known (most of them) writes nothing: the row keeps its
        // time of change, so listings of what changed lately skip it, and no dead row version
        // is left behind. The lock goes with the transaction.
        return Ok(rec);
    }
    let now = Utc::now();
    let stmt = tx
        .prepare_cached(
            "UPDATE groups SET status = $2, record = $3, cpu = $4, memory = $5, \
             storage = $6, changed = $7, node = $8, waiting = $9, \
             revision = nextval('group_revision') WHERE seq = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &seq,
            &rec.status.as_str(),
            &sealer.group_json(&rec)?,
            &after.cpu,
            &after.memory,
            &after.storage,
            &ms(now),
            &rec.node,
            &rec.waiting,
        ],
    )
    .await?;
    if rec.spec.tags != unchanged.spec.tags {
        put_tags(&tx, seq, &rec.spec.tags).await?;
    }
    // Only a change of status or size can change what is billed.
    if crate::ledger::Billing::of(&rec) != crate::ledger::Billing::of(&unchanged) {
        crate::pg_ledger::follow(&tx, &rec, now).await?;
    }
    if crate::billed::Named::of(&rec) != crate::billed::Named::of(&unchanged) {
        crate::pg_ledger::put_billed(&tx, &rec).await?;
    }
    tx.commit().await?;
    Ok(rec)
}

pub(crate) async fn delete(
    client: &mut deadpool_postgres::Client,
    id: &GroupId,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("SELECT record FROM groups WHERE id = $1 FOR UPDATE")
        .await?;
    // The end of a period comes from the containers' exits: no secret is opened.
    let rec: Option<GroupRecord> = match tx.query_opt(&stmt, &[&id.as_str()]).await? {
        Some(row) => Some(serde_json::from_str(row.get(0))?),
        None => None,
    };
    crate::pg_ledger::close_deleted(&tx, rec.as_ref(), id, now).await?;
    let stmt = tx
        .prepare_cached(
            "WITH g AS (DELETE FROM groups WHERE id = $1 RETURNING account) \
             UPDATE account_groups SET groups = groups - 1 WHERE account IN (SELECT account FROM g)",
        )
        .await?;
    tx.execute(&stmt, &[&id.as_str()]).await?;
    crate::pg_ledger::forget_unbilled(&tx, id.as_str()).await?;
    pg_tokens::tombstone(&tx, TokenKind::Group, id.as_str(), now).await?;
    tx.commit().await?;
    Ok(())
}

/// The condition of a listing in SQL, with its parameters.
fn condition(account: &str, filter: &GroupFilter) -> (String, Params) {
    let mut p = Params::default();
    let mut cond = format!("g.account = {}", p.push(account.to_string()));
    if !filter.ids.is_empty() {
        cond.push_str(&format!(" AND g.id = ANY({})", p.push(filter.ids.clone())));
    }
    if let Some(n) = &filter.name {
        cond.push_str(&format!(" AND g.name = {}", p.push(n.clone())));
    }
    if let Some(n) = &filter.name_contains {
        // The C collation lowers ASCII letters only, as the embedded store does.
        cond.push_str(&format!(
            " AND strpos(lower(g.name COLLATE \"C\"), lower({}::text COLLATE \"C\")) > 0",
            p.push(n.clone())
        ));
    }
    if let Some(s) = filter.status {
        cond.push_str(&format!(
            " AND g.status = {}",
            p.push(s.as_str().to_string())
        ));
    }
    if let Some(ended) = filter.ended {
        let statuses: Vec<String> = GroupStatus::ended(ended)
            .map(|s| s.as_str().to_string())
            .collect();
        cond.push_str(&format!(" AND g.status = ANY({})", p.push(statuses)));
    }
    if let Some(t) = filter.changed_since {
        cond.push_str(&format!(" AND g.changed >= {}", p.push(ms(t))));
    }
    for (k, v) in &filter.tags {
        cond.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM group_tags t WHERE t.group_seq = g.seq AND t.key = {}",
            p.push(k.as_bytes().to_vec())
        ));
        if let Some(v) = v {
            let v = p.push(v.as_bytes().to_vec());
            cond.push_str(&format!(" AND t.value = {v}"));
        }
        cond.push(')');
    }
    (cond, p)
}

pub(crate) async fn list(
    c: &impl GenericClient,
    account: &str,
    filter: &GroupFilter,
    limit: usize,
    token: Option<&str>,
    sealer: &Sealer,
) -> Result<Page, StoreError> {
    // No group has a NUL character in its account, name or id (`pg_sql::nul`).
    let texts = [
        Some(account),
        filter.name.as_deref(),
        filter.name_contains.as_deref(),
    ];
    let ids: Vec<String> = filter.ids.iter().filter(|i| !nul(i)).cloned().collect();
    if texts.into_iter().flatten().any(nul) || ids.len() < filter.ids.len() && ids.is_empty() {
        return Ok(Page::default());
    }
    let filter = &GroupFilter {
        ids,
        ..filter.clone()
    };
    let (cond, mut p) = condition(account, filter);
    let after: Option<i64> = token.and_then(|t| t.parse().ok());
    let first = after.is_none();
    let (cmp, order, start) = if filter.newest_first {
        ("<", "DESC", i64::MAX)
    } else {
        (">", "ASC", 0)
    };
    let count_args = p.len();
    let sql = format!(
        "SELECT g.seq, g.record FROM groups g WHERE {cond} AND g.seq {cmp} {} \
         ORDER BY g.seq {order} LIMIT {}",
        p.push(after.unwrap_or(start)),
        p.push(limit.min(i64::MAX as usize - 1) as i64 + 1)
    );
    // The statements of listings without tags come in a few dozen shapes, kept prepared on
    // each connection; with tags, the shape follows the caller's filter, and a connection
    // keeps none of them (so no caller can grow what each connection holds).
    let cache = filter.tags.is_empty();
    let stmt = prepare(c, &sql, cache).await?;
    let rows = c.query(&stmt, &p.refs()).await?;
    let mut page = Page::default();
    let mut last_seq = 0;
    for row in rows {
        let seq: i64 = row.get(0);
        if page.groups.len() == limit {
            page.next_token = Some(last_seq.to_string());
            break;
        }
        last_seq = seq;
        page.groups.push(Arc::new(open(sealer, row.get(1))?));
    }
    page.total = if first && page.next_token.is_none() {
        // A first page with nothing after it holds every match: no need to count.
        page.groups.len() as u64
    } else if count_args == 1 {
        // Every group of the account: counted by the inserts and deletes.
        let stmt = c
            .prepare_cached("SELECT groups FROM account_groups WHERE account = $1")
            .await?;
        let n: Option<i64> = c.query_opt(&stmt, &[&account]).await?.map(|r| r.get(0));
        n.unwrap_or(0).max(0) as u64
    } else {
        let sql = format!("SELECT COUNT(*) FROM groups g WHERE {cond}");
        let stmt = prepare(c, &sql, cache).await?;
        let n: i64 = c.query_one(&stmt, &p.refs()[..count_args]).await?.get(0);
        n.max(0) as u64
    };
    Ok(page)
}

async fn prepare(
    c: &impl GenericClient,
    sql: &str,
    cache: bool,
) -> Result<tokio_postgres::Statement, StoreError> {
    Ok(if cache {
        c.prepare_cached(sql).await?
    } else {
        c.prepare(sql).await?
    })
}

pub(crate) async fn all(
    c: &impl GenericClient,
    sealer: &Sealer,
) -> Result<Vec<GroupRecord>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT record FROM groups ORDER BY seq")
        .await?;
    c.query(&stmt, &[])
        .await?
        .into_iter()
        .map(|r| open(sealer, r.get(0)))
        .collect()
}
