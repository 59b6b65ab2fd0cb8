//! The `image_caches` table: one row per image cache, the record as JSON beside the columns
//! that lookups use.

use berth_core::ImageCacheRecord;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::seal::Sealer;
use crate::sqlite_db::{Changed, ForChange};
use crate::tokens::{self, TokenKind, TokenUse};
use crate::StoreError;

/// Schema of the image caches (the second migration).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS image_caches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS image_caches_name ON image_caches(account, name);
"#;

fn decode(json: String, sealer: &Sealer) -> Result<ImageCacheRecord, StoreError> {
    let mut rec: ImageCacheRecord = serde_json::from_str(&json)?;
    sealer.open_cache(&mut rec)?;
    Ok(rec)
}

fn constraint(e: rusqlite::Error, id: &str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Exists(id.to_string())
        }
        e => e.into(),
    }
}

/// Inserts a cache and claims its ClientToken (if any) in one transaction; the first use of
/// the token, and nothing written, when the account's token is claimed already.
pub(crate) fn insert(
    conn: &mut Connection,
    rec: &ImageCacheRecord,
    params: &str,
    sealer: &Sealer,
) -> Result<Option<TokenUse>, StoreError> {
    let json = sealer.cache_json(rec)?;
    let params = sealer.seal_json(params)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(token) = &rec.client_token {
        let kind = TokenKind::ImageCache;
        if let Some(mut prev) = tokens::claim(&tx, &rec.account, kind, token, &rec.id, &params)? {
            prev.params = sealer.open_json(&prev.params)?;
            return Ok(Some(prev));
        }
    }
    tx.execute(
        "INSERT INTO image_caches (id, account, name, status, record) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![rec.id, rec.account, rec.name, rec.status.as_str(), json],
    )
    .map_err(|e| constraint(e, &rec.id))?;
    tx.commit()?;
    Ok(None)
}

pub(crate) fn get(
    conn: &Connection,
    account: Option<&str>,
    id: &str,
    sealer: &Sealer,
) -> Result<Option<ImageCacheRecord>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT record FROM image_caches WHERE id = ?1 AND (?2 IS NULL OR account = ?2)",
            params![id, account],
            |r| r.get(0),
        )
        .optional()?;
    json.map(|j| decode(j, sealer)).transpose()
}

/// A cache's record as stored now, for [`write_change`].
pub(crate) fn for_change(
    conn: &Connection,
    id: &str,
    sealer: &Sealer,
) -> Result<ForChange<ImageCacheRecord>, StoreError> {
    let json = stored_json(conn, id)?;
    let rec = decode(json.clone(), sealer)?;
    Ok(ForChange { json, rec })
}

/// The stored text of cache `id`'s record.
fn stored_json(conn: &Connection, id: &str) -> Result<String, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT record FROM image_caches WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    json.ok_or_else(|| StoreError::NotFound(id.to_string()))
}

/// Writes `after`, the change of `read`, unless the row changed since `read` was made (then
/// the row as it is now comes back and nothing is written).
pub(crate) fn write_change(
    conn: &mut Connection,
    id: &str,
    read: &ForChange<ImageCacheRecord>,
    after: ImageCacheRecord,
    sealer: &Sealer,
) -> Result<Changed<ImageCacheRecord>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let json = stored_json(&tx, id)?;
    if json != read.json {
        let rec = decode(json.clone(), sealer)?;
        return Ok(Changed::Meanwhile(ForChange { json, rec }));
    }
    tx.execute(
        "UPDATE image_caches SET name = ?2, status = ?3, record = ?4 WHERE id = ?1",
        params![
            id,
            after.name,
            after.status.as_str(),
            sealer.cache_json(&after)?
        ],
    )
    .map_err(|e| constraint(e, id))?;
    tx.commit()?;
    Ok(Changed::Written(after))
}

pub(crate) fn delete(conn: &mut Connection, id: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM image_caches WHERE id = ?1", params![id])?;
    tokens::tombstone(&tx, TokenKind::ImageCache, id, chrono::Utc::now())?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn list(
    conn: &Connection,
    account: Option<&str>,
    sealer: &Sealer,
) -> Result<Vec<ImageCacheRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT record FROM image_caches WHERE ?1 IS NULL OR account = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![account], |r| r.get::<_, String>(0))?;
    rows.map(|r| decode(r?, sealer)).collect()
}
