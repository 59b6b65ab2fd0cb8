//! Secrets written in plain text by a berth from before sealing existed, found and sealed when
//! the database is opened; and whether a database holds sealed secrets at all (then the key
//! file must be there). The rewrite runs in one transaction that takes the write lock first,
//! with `secure_delete` on so the pages that held the plain text are zeroed, and ends with a
//! checkpoint that truncates the write-ahead log, which held them too.

use berth_core::{GroupRecord, ImageCacheRecord};
use rusqlite::{params, Connection};

use crate::seal::{is_sealed, Sealer, PREFIX};
use crate::StoreError;

/// Where a JSON record holds a registry password (serde_json writes no spaces).
const PASSWORD_KEY: &str = "\"password\":\"";

/// Whether any secret in the database is sealed.
pub(crate) fn any_sealed(conn: &Connection) -> Result<bool, StoreError> {
    let sealed_json = format!("{PASSWORD_KEY}{PREFIX}");
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM access_keys WHERE substr(secret, 1, ?1) = ?2) \
         OR EXISTS(SELECT 1 FROM groups WHERE instr(record, ?3) > 0) \
         OR EXISTS(SELECT 1 FROM image_caches WHERE instr(record, ?3) > 0) \
         OR EXISTS(SELECT 1 FROM client_tokens WHERE instr(params, ?3) > 0) \
         OR EXISTS(SELECT 1 FROM nodes WHERE substr(key, 1, ?1) = ?2)",
        params![PREFIX.len() as i64, PREFIX, sealed_json],
        |r| r.get(0),
    )?)
}

/// Seals every secret still in plain text; logs nothing and writes nothing when there is none.
/// Returns how many rows were rewritten.
pub(crate) fn seal_plain_rows(conn: &Connection, sealer: &Sealer) -> Result<usize, StoreError> {
    if !any_plain(conn)? {
        return Ok(0);
    }
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = rewrite(conn, sealer);
    let done = match done {
        Ok(n) => conn.execute_batch("COMMIT").map(|()| n).map_err(Into::into),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    };
    conn.pragma_update(None, "secure_delete", "OFF")?;
    let n = done?;
    // The log held the pages with the plain text: fold it into the database and empty it (a
    // reader of another process may keep it from being emptied now; it is at the next
    // checkpoint that finds no reader).
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(n)
}

/// Whether any row may hold a secret in plain text (a cheap test before taking the lock).
fn any_plain(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM access_keys WHERE substr(secret, 1, ?1) <> ?2) \
         OR EXISTS(SELECT 1 FROM groups WHERE instr(record, ?3) > 0) \
         OR EXISTS(SELECT 1 FROM image_caches WHERE instr(record, ?3) > 0) \
         OR EXISTS(SELECT 1 FROM client_tokens WHERE instr(params, ?3) > 0)",
        params![PREFIX.len() as i64, PREFIX, PASSWORD_KEY],
        |r| r.get(0),
    )? && has_plain_password(conn)?)
}

/// The password test of [`any_plain`] is loose (a sealed one matches too): look closer.
fn has_plain_password(conn: &Connection) -> Result<bool, StoreError> {
    let plain_key: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM access_keys WHERE substr(secret, 1, ?1) <> ?2)",
        params![PREFIX.len() as i64, PREFIX],
        |r| r.get(0),
    )?;
    if plain_key {
        return Ok(true);
    }
    // A plain password is `"password":"` followed by anything but the prefix.
    let mut stmt = conn.prepare(
        "SELECT record FROM groups WHERE instr(record, ?1) > 0 \
         UNION ALL SELECT record FROM image_caches WHERE instr(record, ?1) > 0 \
         UNION ALL SELECT params FROM client_tokens WHERE instr(params, ?1) > 0",
    )?;
    let mut rows = stmt.query(params![PASSWORD_KEY])?;
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        if text
            .match_indices(PASSWORD_KEY)
            .any(|(i, _)| !text[i + PASSWORD_KEY.len()..].starts_with(PREFIX))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn rewrite(conn: &Connection, sealer: &Sealer) -> Result<usize, StoreError> {
    let mut n = 0;
    let keys: Vec<(String, String)> = conn
        .prepare("SELECT access_key_id, secret FROM access_keys WHERE substr(secret, 1, ?1) <> ?2")?
        .query_map(params![PREFIX.len() as i64, PREFIX], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, secret) in keys {
        conn.execute(
            "UPDATE access_keys SET secret = ?2 WHERE access_key_id = ?1",
            params![id, sealer.seal(&secret)],
        )?;
        n += 1;
    }
    for (id, json) in rows(
        conn,
        "SELECT id, record FROM groups WHERE instr(record, ?1) > 0",
    )? {
        let rec: GroupRecord = serde_json::from_str(&json)?;
        if rec
            .spec
            .registry_credentials
            .iter()
            .all(|c| is_sealed(&c.password))
        {
            continue;
        }
        conn.execute(
            "UPDATE groups SET record = ?2, revision = ?3 WHERE id = ?1",
            params![id, sealer.group_json(&rec)?, crate::revision::next(conn)?],
        )?;
        n += 1;
    }
    for (id, json) in rows(
        conn,
        "SELECT id, record FROM image_caches WHERE instr(record, ?1) > 0",
    )? {
        let rec: ImageCacheRecord = serde_json::from_str(&json)?;
        if rec
            .registry_credentials
            .iter()
            .all(|c| is_sealed(&c.password))
        {
            continue;
        }
        conn.execute(
            "UPDATE image_caches SET record = ?2 WHERE id = ?1",
            params![id, sealer.cache_json(&rec)?],
        )?;
        n += 1;
    }
    for (rowid, json) in rows(
        conn,
        "SELECT CAST(rowid AS TEXT), params FROM client_tokens WHERE instr(params, ?1) > 0",
    )? {
        let sealed = sealer.seal_json(&json)?;
        if sealed != json {
            conn.execute(
                "UPDATE client_tokens SET params = ?2 WHERE rowid = CAST(?1 AS INTEGER)",
                params![rowid, sealed],
            )?;
            n += 1;
        }
    }
    Ok(n)
}

/// (key, text) pairs of a query over rows that mention a password.
fn rows(conn: &Connection, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
    Ok(conn
        .prepare(sql)?
        .query_map(params![PASSWORD_KEY], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}
