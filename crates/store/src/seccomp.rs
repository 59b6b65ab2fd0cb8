//! The seccomp profile an operator set for an account: a `seccomp` column of `accounts`, NULL
//! for the built-in profile, `unconfined`, or the profile's JSON as the operator gave it (the
//! admin command checks it before it is stored). The node reads it at every start of one of
//! the account's groups, so a change counts from the next start on.

use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// The seccomp column of accounts (the seventh migration).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN seccomp TEXT;
"#;

const UNCONFINED: &str = "unconfined";

/// An account's seccomp confinement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccountSeccomp {
    /// The built-in profile.
    #[default]
    Default,
    /// No seccomp filter: only when the operator set it.
    Unconfined,
    /// A profile (Docker's JSON format), checked when it was set.
    Profile(String),
}

pub(crate) fn set(conn: &Connection, name: &str, s: &AccountSeccomp) -> Result<(), StoreError> {
    let value = match s {
        AccountSeccomp::Default => None,
        AccountSeccomp::Unconfined => Some(UNCONFINED),
        AccountSeccomp::Profile(p) => Some(p.as_str()),
    };
    let n = conn.execute(
        "UPDATE accounts SET seccomp = ?2 WHERE name = ?1",
        params![name, value],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

/// The account's setting; the built-in profile for an account without a row.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<AccountSeccomp, StoreError> {
    let value: Option<Option<String>> = conn
        .query_row(
            "SELECT seccomp FROM accounts WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match value.flatten() {
        None => AccountSeccomp::Default,
        Some(v) if v == UNCONFINED => AccountSeccomp::Unconfined,
        Some(v) => AccountSeccomp::Profile(v),
    })
}
