//! The runtime classes an operator allowed an account and its default class: a
//! `runtime_classes` column of `accounts`, NULL for every class allowed and the node's default,
//! else the policy as JSON. The control plane reads it at every create.

use berth_core::RuntimeClassPolicy;
use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// The runtime_classes column of accounts (the tenth migration).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN runtime_classes TEXT;
"#;

pub(crate) fn set(
    conn: &Connection,
    name: &str,
    policy: &RuntimeClassPolicy,
) -> Result<(), StoreError> {
    let value = (policy != &RuntimeClassPolicy::default())
        .then(|| serde_json::to_string(policy))
        .transpose()?;
    let n = conn.execute(
        "UPDATE accounts SET runtime_classes = ?2 WHERE name = ?1",
        params![name, value],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

/// The account's policy; every class and the node's default for an account without a row.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<RuntimeClassPolicy, StoreError> {
    let value: Option<Option<String>> = conn
        .query_row(
            "SELECT runtime_classes FROM accounts WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    match value.flatten() {
        None => Ok(RuntimeClassPolicy::default()),
        Some(v) => Ok(serde_json::from_str(&v)?),
    }
}
