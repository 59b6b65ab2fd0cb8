//! The operator flag of accounts: an operator's keys may read any account's bill through the
//! API (DescribeUsage with `AccountId`). Set only by `berth admin account operator`; read
//! afresh by every request that needs it, so a change counts at once.

use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// The operator column of accounts (the tenth migration): no account is an operator until
/// the operator says so.
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN operator INTEGER NOT NULL DEFAULT 0;
"#;

pub(crate) fn set(conn: &Connection, name: &str, operator: bool) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE accounts SET operator = ?2 WHERE name = ?1",
        params![name, operator],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

/// Whether `name` is an operator's account (false for one without a row).
pub(crate) fn get(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT operator FROM accounts WHERE name = ?1",
            params![name],
            |r| r.get::<_, bool>(0),
        )
        .optional()?
        .unwrap_or(false))
}
