//! The `accounts` and `access_keys` tables: the accounts an operator hands out, each with any
//! number of access keys, and the flags that switch either off. The API reads a key with its
//! account's flag in one query per request, so a change made by another process (the admin
//! commands) counts from the next request on.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::seal::Sealer;
use crate::{AccessKey, Account, KeyCheck, KeyInfo, StoreError};

/// Accounts and the disabled flags (the fourth migration). The accounts of existing keys are
/// recorded as enabled, and the keys as made at the upgrade.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
ALTER TABLE access_keys ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN created TEXT;
UPDATE access_keys SET created = strftime('%Y-%m-%dT%H:%M:%SZ', 'now');
INSERT OR IGNORE INTO accounts (name, created)
    SELECT DISTINCT account, strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM access_keys;
CREATE INDEX IF NOT EXISTS access_keys_account ON access_keys(account);
"#;

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn time(text: Option<String>) -> DateTime<Utc> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.with_timezone(&Utc))
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn create_account(conn: &Connection, name: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO accounts (name, created) VALUES (?1, ?2)",
        params![name, now()],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::AccountExists(name.to_string())
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub(crate) fn set_account_disabled(
    conn: &Connection,
    name: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE accounts SET disabled = ?2 WHERE name = ?1",
        params![name, disabled],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

pub(crate) fn list_accounts(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, a.disabled, a.created, \
         (SELECT COUNT(*) FROM access_keys k WHERE k.account = a.name), \
         a.max_cpu, a.max_memory, a.max_groups, a.max_image_caches, a.max_storage, a.operator \
         FROM accounts a ORDER BY a.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Account {
            name: r.get(0)?,
            disabled: r.get(1)?,
            created: time(r.get(2)?),
            keys: r.get::<_, i64>(3)?.max(0) as u64,
            quota: crate::quota::row_from(r, 4)?,
            operator: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds a key (its secret sealed); the account is made (enabled) when it does not exist yet.
pub(crate) fn create_key(
    conn: &mut Connection,
    key: &AccessKey,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let secret = sealer.seal(&key.secret);
    let tx = conn.transaction()?;
    let created = now();
    tx.execute(
        "INSERT OR IGNORE INTO accounts (name, created) VALUES (?1, ?2)",
        params![key.account, created],
    )?;
    tx.execute(
        "INSERT INTO access_keys (access_key_id, account, secret, created) VALUES (?1, ?2, ?3, ?4)",
        params![key.access_key_id, key.account, secret, created],
    )
    .map_err(|e| {
        if is_constraint(&e) {
            StoreError::KeyExists(key.access_key_id.clone())
        } else {
            e.into()
        }
    })?;
    tx.commit()?;
    Ok(())
}

/// Adds a key to an account that must exist.
pub(crate) fn add_key(
    conn: &mut Connection,
    key: &AccessKey,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let known: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE name = ?1",
            params![key.account],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Err(StoreError::NoAccount(key.account.clone()));
    }
    create_key(conn, key, sealer)
}

/// The key `id` with its secret opened: one AEAD of a few dozen bytes per request.
pub(crate) fn check_key(
    conn: &Connection,
    id: &str,
    sealer: &Sealer,
) -> Result<Option<KeyCheck>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT k.access_key_id, k.account, k.secret, k.disabled, COALESCE(a.disabled, 0) \
             FROM access_keys k LEFT JOIN accounts a ON a.name = k.account \
             WHERE k.access_key_id = ?1",
        )?
        .query_row(params![id], |r| {
            let key_off: bool = r.get(3)?;
            let account_off: bool = r.get(4)?;
            Ok(KeyCheck {
                key: AccessKey {
                    access_key_id: r.get(0)?,
                    account: r.get(1)?,
                    secret: r.get(2)?,
                },
                active: !key_off && !account_off,
            })
        })
        .optional()?;
    found
        .map(|mut k| {
            k.key.secret = sealer.open(&k.key.secret)?;
            Ok(k)
        })
        .transpose()
}

pub(crate) fn list_keys(conn: &Connection, account: &str) -> Result<Vec<KeyInfo>, StoreError> {
    let known: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE name = ?1",
            params![account],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_none() {
        return Err(StoreError::NoAccount(account.to_string()));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT access_key_id, account, disabled, created FROM access_keys \
         WHERE account = ?1 ORDER BY created, access_key_id",
    )?;
    let rows = stmt.query_map(params![account], |r| {
        Ok(KeyInfo {
            access_key_id: r.get(0)?,
            account: r.get(1)?,
            disabled: r.get(2)?,
            created: time(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn set_key_disabled(
    conn: &Connection,
    account: &str,
    id: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE access_keys SET disabled = ?3 WHERE access_key_id = ?2 AND account = ?1",
        params![account, id, disabled],
    )?;
    if n == 0 {
        return Err(StoreError::NoKey(id.to_string(), account.to_string()));
    }
    Ok(())
}

pub(crate) fn delete_key(conn: &Connection, account: &str, id: &str) -> Result<(), StoreError> {
    let n = conn.execute(
        "DELETE FROM access_keys WHERE access_key_id = ?2 AND account = ?1",
        params![account, id],
    )?;
    if n == 0 {
        return Err(StoreError::NoKey(id.to_string(), account.to_string()));
    }
    Ok(())
}
