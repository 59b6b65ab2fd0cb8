//! Revisions of groups and groups by node, on PostgreSQL (as `revision.rs`): every write of a
//! group's row sets its `revision` to the next value of the sequence `group_revision`.
//!
//! A sequence hands out values outside transactions, so revisions commit out of order: a
//! transaction may take 5, another 6 and commit first. A reader that saw 6 and went on from
//! there would miss 5. So every transaction that writes a group's row takes the shared
//! advisory lock [`REVISION_LOCK`] first, before any lock of a row or an account, and a reader
//! takes it exclusively, for a moment, to read the sequence: it gets it once every writer that
//! had taken a value has ended, so every revision up to the one it reads is committed (or
//! rolled back) and is then read in full. Writers never wait for the reader while holding
//! another lock (they take it first), so no cycle of waits can form.

use berth_core::GroupRecord;
use deadpool_postgres::GenericClient;

use crate::nodes::{NodeGroups, NodeUsage};
use crate::quota::FINAL;
use crate::seal::Sealer;
use crate::StoreError;

/// The advisory lock writers of groups share and readers of the revision take alone.
const REVISION_LOCK: i64 = 0x6265_7274_6800_0002;

/// Taken by a transaction that may write a group's row, before any other lock; it also tells
/// the other replicas of the write (`pg_listen.rs`).
pub(crate) async fn lock_for_write(c: &impl GenericClient) -> Result<(), StoreError> {
    // The notification goes out when the transaction commits (never when it rolls back).
    let stmt = c
        .prepare_cached(&format!(
            "SELECT pg_advisory_xact_lock_shared($1), pg_notify('{}', '')",
            crate::pg_listen::CHANNEL
        ))
        .await?;
    c.execute(&stmt, &[&REVISION_LOCK]).await?;
    Ok(())
}

/// The latest revision every write up to which has ended: the sequence's value, read in one
/// statement (its own transaction) that also takes the lock exclusively and so ends only
/// once every writer holding it has ended. Whichever comes first, the read or the lock, is
/// safe: a value read was taken by a writer that held the shared lock from before it took
/// it until it ended, and the lock is granted only once all of those have ended.
pub(crate) async fn settled(c: &impl GenericClient) -> Result<u64, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END \
             FROM group_revision, pg_advisory_xact_lock($1)",
        )
        .await?;
    let v: i64 = c.query_one(&stmt, &[&REVISION_LOCK]).await?.get(0);
    Ok(v.max(0) as u64)
}

fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn open(sealer: &Sealer, json: &str) -> Result<GroupRecord, StoreError> {
    let mut rec: GroupRecord = serde_json::from_str(json)?;
    sealer.open_group(&mut rec)?;
    Ok(rec)
}

pub(crate) async fn node_groups(
    client: &deadpool_postgres::Client,
    node: &str,
    after: u64,
    limit: usize,
    sealer: &Sealer,
) -> Result<NodeGroups, StoreError> {
    let revision = settled(client).await?;
    // A statement of its own, whose snapshot is taken after every write up to `revision`
    // ended. Rows past it are left for the next read: one of them could have been committed
    // before a lower revision that is not yet.
    let stmt = client
        .prepare_cached(
            "SELECT revision, record FROM groups \
             WHERE node = $1 AND revision > $2 AND revision <= $3 \
             ORDER BY revision LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&node, &bound(after), &bound(revision), &bound(limit as u64)],
        )
        .await?;
    let groups = rows
        .into_iter()
        .map(|r| Ok((r.get::<_, i64>(0).max(0) as u64, open(sealer, r.get(1))?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(crate::revision::page(after, revision, groups, limit))
}

pub(crate) async fn placed_usage(c: &impl GenericClient) -> Result<Vec<NodeUsage>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT node, SUM(floor(cpu * 1000 + 0.5))::bigint, \
             SUM(floor(memory * 1024 + 0.5))::bigint, SUM(floor(storage + 0.5))::bigint, \
             COUNT(*) FROM groups \
             WHERE node IS NOT NULL AND NOT waiting AND status NOT IN ({FINAL}) \
             GROUP BY node ORDER BY node COLLATE \"C\""
        ))
        .await?;
    Ok(c.query(&stmt, &[])
        .await?
        .into_iter()
        .map(|r| {
            let n = |i| r.get::<_, i64>(i).max(0) as u64;
            NodeUsage {
                node: r.get(0),
                cpu_milli: n(1),
                memory_mib: n(2),
                storage_gib: n(3),
                groups: n(4),
            }
        })
        .collect())
}

pub(crate) async fn unplaced(
    c: &impl GenericClient,
    limit: usize,
    sealer: &Sealer,
) -> Result<Vec<GroupRecord>, StoreError> {
    let sql = format!(
        "SELECT record FROM groups \
         WHERE node IS NULL AND status NOT IN ({FINAL}, 'Terminating') \
         ORDER BY created, id COLLATE \"C\" LIMIT $1"
    );
    records(c, &sql, limit, sealer).await
}

pub(crate) async fn terminating(
    c: &impl GenericClient,
    limit: usize,
    sealer: &Sealer,
) -> Result<Vec<GroupRecord>, StoreError> {
    let sql = "SELECT record FROM groups WHERE status = 'Terminating' \
               ORDER BY created, id COLLATE \"C\" LIMIT $1";
    records(c, sql, limit, sealer).await
}

pub(crate) async fn unfinished(
    c: &impl GenericClient,
    limit: usize,
    sealer: &Sealer,
) -> Result<Vec<GroupRecord>, StoreError> {
    let sql = format!(
        "SELECT record FROM groups WHERE status NOT IN ({FINAL}) \
         ORDER BY created, id COLLATE \"C\" LIMIT $1"
    );
    records(c, &sql, limit, sealer).await
}

/// The records `sql` selects, at most `limit` (its one parameter).
async fn records(
    c: &impl GenericClient,
    sql: &str,
    limit: usize,
    sealer: &Sealer,
) -> Result<Vec<GroupRecord>, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    c.query(&stmt, &[&bound(limit as u64)])
        .await?
        .into_iter()
        .map(|r| open(sealer, r.get(0)))
        .collect()
}
