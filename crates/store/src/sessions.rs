//! The `console_sessions` table: the web console's sessions, kept across restarts of berth.
//! A row is keyed by a digest of the session's id (the caller's: the id itself, the cookie's
//! value, is never stored), with the account and access key it signed in with, its CSRF
//! token, and when it was made and last used (seconds since the epoch). Creating one applies
//! the caller's bounds in the same transaction: expired rows go, then the account's least
//! recently used ones beyond its share, then the table's beyond its size.

use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// Schema of the sessions (the fourteenth migration).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_account ON console_sessions(account, used);
CREATE INDEX IF NOT EXISTS console_sessions_used ON console_sessions(used);
CREATE INDEX IF NOT EXISTS console_sessions_created ON console_sessions(created);
"#;

/// One session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// A digest of the session's id (the caller's choice of digest).
    pub id_hash: String,
    pub account: String,
    pub access_key_id: String,
    pub csrf: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub used: i64,
}

/// The bounds [`create`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionBounds {
    /// Rows used at or before this (seconds since the epoch) are expired.
    pub idle_before: i64,
    /// Rows made at or before this are expired.
    pub created_before: i64,
    /// Sessions of one account held at most.
    pub per_account: usize,
    /// Sessions held at most.
    pub max: usize,
}

fn count(conn: &Connection, account: Option<&str>) -> Result<usize, StoreError> {
    let n: i64 = match account {
        Some(a) => conn.query_row(
            "SELECT COUNT(*) FROM console_sessions WHERE account = ?1",
            params![a],
            |r| r.get(0),
        )?,
        None => conn.query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0))?,
    };
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) fn create(
    conn: &mut Connection,
    s: &ConsoleSession,
    b: SessionBounds,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM console_sessions WHERE used <= ?1 OR created <= ?2",
        params![b.idle_before, b.created_before],
    )?;
    let held = count(&tx, Some(&s.account))?;
    let over = (held + 1).saturating_sub(b.per_account.max(1));
    if over > 0 {
        tx.execute(
            "DELETE FROM console_sessions WHERE id_hash IN (SELECT id_hash FROM console_sessions \
             WHERE account = ?1 ORDER BY used, id_hash LIMIT ?2)",
            params![s.account, over as i64],
        )?;
    }
    let all = count(&tx, None)?;
    let over = (all + 1).saturating_sub(b.max.max(1));
    if over > 0 {
        tx.execute(
            "DELETE FROM console_sessions WHERE id_hash IN (SELECT id_hash FROM console_sessions \
             ORDER BY used, id_hash LIMIT ?1)",
            params![over as i64],
        )?;
    }
    tx.execute(
        "INSERT INTO console_sessions (id_hash, account, access_key_id, csrf, created, used) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            s.id_hash,
            s.account,
            s.access_key_id,
            s.csrf,
            s.created,
            s.used
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT account, access_key_id, csrf, created, used FROM console_sessions \
             WHERE id_hash = ?1",
        )?
        .query_row(params![id_hash], |r| {
            Ok(ConsoleSession {
                id_hash: id_hash.to_string(),
                account: r.get(0)?,
                access_key_id: r.get(1)?,
                csrf: r.get(2)?,
                created: r.get(3)?,
                used: r.get(4)?,
            })
        })
        .optional()?)
}

pub(crate) fn touch(conn: &Connection, id_hash: &str, used: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE console_sessions SET used = ?2 WHERE id_hash = ?1 AND used < ?2")?
        .execute(params![id_hash, used])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, id_hash: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM console_sessions WHERE id_hash = ?1")?
        .execute(params![id_hash])?;
    Ok(())
}

pub(crate) fn total(conn: &Connection) -> Result<usize, StoreError> {
    count(conn, None)
}
