//! Leases: a named right to run something that must run once among the control-plane
//! replicas sharing a store (placement, sweeps, settlement; ADR 0016). A lease is held by one
//! holder until it expires; its epoch grows each time it changes hands, so a write fenced by
//! an epoch tells a holder that lost the lease from the one that holds it. Each store keeps
//! time by its own clock (SQLite the process's, PostgreSQL the database's), so replicas'
//! clocks need not agree.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;

/// The leases table (SQLite).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
"#;

/// Longest a lease name or holder may be.
pub const MAX_LEASE_TEXT: usize = 128;

/// Refuses names and holders that are empty or too long.
pub(crate) fn check(name: &str, holder: &str) -> Result<(), StoreError> {
    for (what, v) in [("name", name), ("holder", holder)] {
        if v.is_empty() || v.len() > MAX_LEASE_TEXT || v.contains('\0') {
            return Err(StoreError::BadLease(format!(
                "a lease {what} is 1 to {MAX_LEASE_TEXT} bytes without NUL"
            )));
        }
    }
    Ok(())
}

/// Milliseconds of `ttl`, at least one.
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// [`crate::Store::take_lease`] on SQLite.
pub(crate) fn take(
    conn: &mut Connection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<u64>, StoreError> {
    check(name, holder)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = chrono::Utc::now().timestamp_millis();
    let expires = now.saturating_add(ttl_millis(ttl));
    let row: Option<(String, i64, i64)> = tx
        .query_row(
            "SELECT holder, epoch, expires FROM leases WHERE name = ?1",
            params![name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let epoch = match row {
        None => 1,
        Some((h, epoch, _)) if h == holder => epoch,
        Some((_, epoch, until)) if until < now => epoch + 1,
        Some(_) => return Ok(None),
    };
    tx.execute(
        "INSERT INTO leases (name, holder, epoch, expires) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(name) DO UPDATE SET holder = ?2, epoch = ?3, expires = ?4",
        params![name, holder, epoch, expires],
    )?;
    tx.commit()?;
    Ok(Some(epoch as u64))
}

/// [`crate::Store::release_lease`] on SQLite: the lease expires now if `holder` holds it.
pub(crate) fn release(conn: &Connection, name: &str, holder: &str) -> Result<(), StoreError> {
    check(name, holder)?;
    conn.execute(
        "UPDATE leases SET expires = 0 WHERE name = ?1 AND holder = ?2",
        params![name, holder],
    )?;
    Ok(())
}
