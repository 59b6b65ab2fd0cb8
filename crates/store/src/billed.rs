//! What a bill names a group by: its name and tags, kept in `billed_groups` beside the ledger
//! (ADR 0010) so that a bill for a past month still names a deleted group and knows its tags.
//! A row is written in the transaction that inserts the group and in any that changes its
//! name or tags; it stays after the delete while ledger periods reference it, and goes with
//! the delete of a group that never was billed. So the table holds at most one row per group
//! that exists or has periods: it grows with the ledger, never faster.

use berth_core::{GroupRecord, Tag};
use rusqlite::{params, Connection};

use crate::StoreError;

/// The table, filled from the groups there are (the ninth migration). Groups deleted before
/// it came keep their periods but have no name or tags: a bill names them by id alone.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS billed_groups (
    group_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
INSERT OR IGNORE INTO billed_groups (group_id, account, name, tags)
    SELECT id, account, name, COALESCE(json_extract(record, '$.spec.tags'), '[]') FROM groups;
"#;

/// Records (or updates) the name and tags of `rec`.
pub(crate) fn put(conn: &Connection, rec: &GroupRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO billed_groups (group_id, account, name, tags) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(group_id) DO UPDATE SET name = excluded.name, tags = excluded.tags",
    )?
    .execute(params![
        rec.id.as_str(),
        rec.account,
        rec.spec.name,
        serde_json::to_string(&rec.spec.tags)?
    ])?;
    Ok(())
}

/// Forgets a deleted group's name and tags unless ledger periods reference them.
pub(crate) fn forget_unbilled(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM billed_groups WHERE group_id = ?1 \
         AND NOT EXISTS (SELECT 1 FROM ledger WHERE group_id = ?1)",
    )?
    .execute(params![id])?;
    Ok(())
}

/// What of a record the table keeps: a write that changes neither (most of them) skips it.
#[derive(PartialEq, Eq)]
pub(crate) struct Named {
    name: String,
    tags: Vec<Tag>,
}

impl Named {
    pub(crate) fn of(rec: &GroupRecord) -> Self {
        Self {
            name: rec.spec.name.clone(),
            tags: rec.spec.tags.clone(),
        }
    }
}

/// The tags column as read; a value that does not decode is no tags (the column is written
/// only by [`put`] and the migration, from records that decoded).
pub(crate) fn tags(text: Option<&str>) -> Vec<Tag> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}
