//! Revisions of groups and groups by node, in SQLite: every write of a group's row gives it
//! the next value of one store-wide counter (a one-row table bumped inside the write's
//! transaction), so a node's agent can read what changed on it since the revision it last
//! saw. Writes are serialized by SQLite, so revisions are committed in order, and a read
//! transaction sees exactly the writes up to the counter it reads.
//!
//! The row also carries, in columns of its own kept from the record on every write, the node
//! the group is placed on, whether it waits for room and when it was created: placement reads
//! them without the records.

use berth_core::GroupRecord;
use rusqlite::{params, Connection};

use crate::nodes::{NodeGroups, NodeUsage};
use crate::quota::FINAL;
use crate::sqlite_db::SqliteDb;
use crate::StoreError;

/// The columns and the counter (existing groups get their insert order as revision).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE groups ADD COLUMN node TEXT;
ALTER TABLE groups ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE groups SET
    node = json_extract(record, '$.node'),
    waiting = COALESCE(json_extract(record, '$.waiting'), 0),
    created = COALESCE(CAST(ROUND(
        (julianday(json_extract(record, '$.creation_time')) - 2440587.5) * 86400000
    ) AS INTEGER), 0),
    revision = seq;
CREATE TABLE group_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO group_revision (id, value) SELECT 1, COALESCE(MAX(seq), 0) FROM groups;
CREATE INDEX groups_node_revision ON groups(node, revision);
CREATE INDEX groups_unplaced ON groups(created, id) WHERE node IS NULL
    AND status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed', 'Terminating');
CREATE INDEX groups_placed ON groups(node, cpu, memory, storage)
    WHERE node IS NOT NULL AND waiting = 0
    AND status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed');
"#;

/// The next revision; called inside the transaction that writes the group's row.
pub(crate) fn next(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE group_revision SET value = value + 1 WHERE id = 1 RETURNING value")?
        .query_row([], |r| r.get(0))?)
}

fn current(conn: &Connection) -> Result<u64, StoreError> {
    let v: i64 = conn
        .prepare_cached("SELECT value FROM group_revision WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    Ok(v.max(0) as u64)
}

/// `n` as a bound of SQLite's integers.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteDb {
    pub(crate) fn node_groups(
        &self,
        node: &str,
        after: u64,
        limit: usize,
    ) -> Result<NodeGroups, StoreError> {
        let mut conn = self.reader();
        // One read transaction: the counter and the rows from one snapshot.
        let tx = conn.transaction()?;
        let revision = current(&tx)?;
        let mut stmt = tx.prepare_cached(
            "SELECT revision, record FROM groups WHERE node = ?1 AND revision > ?2 \
             ORDER BY revision LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![node, bound(after), bound(limit as u64)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut groups = Vec::new();
        for row in rows {
            let (rev, json) = row?;
            groups.push((rev.max(0) as u64, self.decode(&json)?));
        }
        drop(stmt);
        tx.commit()?;
        Ok(page(after, revision, groups, limit))
    }

    pub(crate) fn group_revision(&self) -> Result<u64, StoreError> {
        current(&self.reader())
    }

    pub(crate) fn placed_usage(&self) -> Result<Vec<NodeUsage>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT node, SUM(CAST(cpu * 1000 + 0.5 AS INTEGER)), \
             SUM(CAST(memory * 1024 + 0.5 AS INTEGER)), SUM(CAST(storage + 0.5 AS INTEGER)), \
             COUNT(*) FROM groups \
             WHERE node IS NOT NULL AND waiting = 0 AND status NOT IN ({FINAL}) \
             GROUP BY node ORDER BY node"
        ))?;
        let rows = stmt.query_map([], |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok(NodeUsage {
                node: r.get(0)?,
                cpu_milli: n(1)?,
                memory_mib: n(2)?,
                storage_gib: n(3)?,
                groups: n(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn unplaced_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            // The partial index holds only these rows, in order; SQLite's planner, without
            // statistics, would rather read every group on no node and sort them.
            "SELECT record FROM groups INDEXED BY groups_unplaced \
             WHERE node IS NULL AND status NOT IN ({FINAL}, 'Terminating') \
             ORDER BY created, id LIMIT ?1"
        ))?;
        let rows = stmt.query_map(params![bound(limit as u64)], |r| r.get::<_, String>(0))?;
        rows.map(|j| self.decode(&j?)).collect()
    }

    pub(crate) fn terminating_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        self.records_by(
            "SELECT record FROM groups INDEXED BY groups_terminating \
             WHERE status = 'Terminating' ORDER BY created, id LIMIT ?1",
            limit,
        )
    }

    pub(crate) fn unfinished_groups(&self, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        self.records_by(
            &format!(
                "SELECT record FROM groups INDEXED BY groups_unfinished \
                 WHERE status NOT IN ({FINAL}) ORDER BY created, id LIMIT ?1"
            ),
            limit,
        )
    }

    /// The records `sql` selects, at most `limit` (its one parameter).
    fn records_by(&self, sql: &str, limit: usize) -> Result<Vec<GroupRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![bound(limit as u64)], |r| r.get::<_, String>(0))?;
        rows.map(|j| self.decode(&j?)).collect()
    }
}

/// The groups being deleted and those not finished, for a cluster's leader to finish the
/// deletions of replicas that went away and to watch deadlines (partial indexes of them).
pub(crate) const TERMINATING_MIGRATION: &str = r#"
CREATE INDEX IF NOT EXISTS groups_terminating ON groups(created, id) WHERE status = 'Terminating';
CREATE INDEX IF NOT EXISTS groups_unfinished ON groups(created, id)
    WHERE status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed');
"#;

/// The answer of a page after `after` read at store revision `revision`: a full page goes on
/// from its last group (or from `after` when empty), since more groups of the node may follow.
pub(crate) fn page(
    after: u64,
    revision: u64,
    groups: Vec<(u64, GroupRecord)>,
    limit: usize,
) -> NodeGroups {
    let revision = if groups.len() >= limit {
        groups.last().map_or(after, |(last, _)| *last)
    } else {
        revision.max(after)
    };
    NodeGroups { revision, groups }
}
