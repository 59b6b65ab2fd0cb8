//! Console sessions on PostgreSQL (the SQL of `sessions.rs`). Creating one deletes the expired
//! rows and those beyond the bounds in the same transaction, which takes a lock of the table's
//! own first: two replicas creating sessions at once never both count the same rows and leave
//! more than the bounds allow.

use deadpool_postgres::GenericClient;

use crate::{ConsoleSession, SessionBounds, StoreError};

/// The advisory lock of session creation.
const SESSIONS_LOCK: i64 = 0x6265_7274_6800_0002;

async fn count(c: &impl GenericClient, account: Option<&str>) -> Result<usize, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT COUNT(*) FROM console_sessions WHERE $1::text IS NULL OR account = $1",
        )
        .await?;
    let n: i64 = c.query_one(&stmt, &[&account]).await?.get(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) async fn create(
    client: &mut deadpool_postgres::Client,
    s: &ConsoleSession,
    b: SessionBounds,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SESSIONS_LOCK])
        .await?;
    let stmt = tx
        .prepare_cached("DELETE FROM console_sessions WHERE used <= $1 OR created <= $2")
        .await?;
    tx.execute(&stmt, &[&b.idle_before, &b.created_before])
        .await?;
    let held = count(&tx, Some(&s.account)).await?;
    let over = (held + 1).saturating_sub(b.per_account.max(1));
    if over > 0 {
        let stmt = tx
            .prepare_cached(
                "DELETE FROM console_sessions WHERE id_hash IN (SELECT id_hash \
                 FROM console_sessions WHERE account = $1 \
                 ORDER BY used, id_hash COLLATE \"C\" LIMIT $2)",
            )
            .await?;
        tx.execute(&stmt, &[&s.account, &(over as i64)]).await?;
    }
    let all = count(&tx, None).await?;
    let over = (all + 1).saturating_sub(b.max.max(1));
    if over > 0 {
        let stmt = tx
            .prepare_cached(
                "DELETE FROM console_sessions WHERE id_hash IN (SELECT id_hash \
                 FROM console_sessions ORDER BY used, id_hash COLLATE \"C\" LIMIT $1)",
            )
            .await?;
        tx.execute(&stmt, &[&(over as i64)]).await?;
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO console_sessions (id_hash, account, access_key_id, csrf, created, used) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &s.id_hash,
            &s.account,
            &s.access_key_id,
            &s.csrf,
            &s.created,
            &s.used,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn get(
    c: &impl GenericClient,
    id_hash: &str,
) -> Result<Option<ConsoleSession>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT account, access_key_id, csrf, created, used FROM console_sessions \
             WHERE id_hash = $1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&id_hash])
        .await?
        .map(|r| ConsoleSession {
            id_hash: id_hash.to_string(),
            account: r.get(0),
            access_key_id: r.get(1),
            csrf: r.get(2),
            created: r.get(3),
            used: r.get(4),
        }))
}

pub(crate) async fn touch(
    c: &impl GenericClient,
    id_hash: &str,
    used: i64,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("UPDATE console_sessions SET used = $2 WHERE id_hash = $1 AND used < $2")
        .await?;
    c.execute(&stmt, &[&id_hash, &used]).await?;
    Ok(())
}

pub(crate) async fn delete(c: &impl GenericClient, id_hash: &str) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("DELETE FROM console_sessions WHERE id_hash = $1")
        .await?;
    c.execute(&stmt, &[&id_hash]).await?;
    Ok(())
}

pub(crate) async fn total(c: &impl GenericClient) -> Result<usize, StoreError> {
    count(c, None).await
}
