//! The nodes of a cluster and the join tokens they join with (docs/CLUSTER.md, ADR 0016):
//! what both stores check of them before a write, the answers of the calls on groups by node,
//! and their tables in SQLite. A node's key is sealed at rest (`seal.rs`) as access keys'
//! secrets are; a join token is kept as the SHA-256 of its secret, never the secret.

use berth_core::{
    node::{
        MAX_NODE_ADDRESS, MAX_NODE_CLASSES, MAX_NODE_IMAGES, MAX_NODE_IMAGE_REF, MAX_NODE_NAME,
        MAX_NODE_VOLUME_RULES,
    },
    JoinToken, NodeInfo, NodeRecord,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::seal::{is_sealed, Sealer};
use crate::sqlite_db::{Changed, ForChange, SqliteDb};
use crate::StoreError;

/// The tables of nodes and join tokens (SQLite).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS join_tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    description TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL,
    key TEXT NOT NULL
);
"#;

/// The most bytes of a join token's description.
pub const MAX_TOKEN_DESCRIPTION: usize = 200;

/// The length of a join token's id.
const TOKEN_ID_LEN: usize = 6;
/// The most bytes of a runtime class a node offers.
const MAX_CLASS_NAME: usize = 63;
/// The bytes of a node's key.
const NODE_KEY_LEN: usize = 32;

/// A page of the groups placed on one node, by revision.
#[derive(Clone, Debug, Default)]
pub struct NodeGroups {
    /// Where to go on from: every write of a group of the node up to this revision is in
    /// this page or an earlier one. It is the store's revision, read with the page, unless
    /// the page is full: then the revision of its last group.
    pub revision: u64,
    /// Each group with the revision of its last write, oldest write first.
    pub groups: Vec<(u64, berth_core::GroupRecord)>,
}

/// What the unfinished groups placed on a node hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub node: String,
    /// Thousandths of a vCPU (each group's rounded as `Room::of` does).
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub storage_gib: u64,
    /// How many groups.
    pub groups: u64,
}

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::BadNode(msg.into())
}

fn lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Printable text of at most `max` bytes (`empty`: may be empty).
fn printable(what: &str, s: &str, max: usize, empty: bool) -> Result<(), StoreError> {
    if (!empty && s.is_empty()) || s.len() > max || s.chars().any(char::is_control) {
        let least = if empty { 0 } else { 1 };
        return Err(bad(format!(
            "a {what} is {least} to {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// Whether `id` is a node id: `node-` and 16 lowercase letters and digits.
pub(crate) fn is_node_id(id: &str) -> bool {
    id.strip_prefix("node-")
        .is_some_and(|r| r.len() == 16 && lower_alnum(r))
}

/// Refuses a node the store does not keep: a malformed id, an empty or long name (or one
/// shaped like an id) or address, too many runtime classes.
pub(crate) fn check_node(info: &NodeInfo) -> Result<(), StoreError> {
    if !is_node_id(&info.id) {
        return Err(bad(
            "a node id is node- and 16 lowercase letters and digits",
        ));
    }
    printable("node name", &info.name, MAX_NODE_NAME, false)?;
    if is_node_id(&info.name) {
        // A node is named by its name or its id alike (`berth admin node cordon NAME|ID`).
        return Err(bad("a node's name may not have the shape of a node id"));
    }
    printable("node address", &info.address, MAX_NODE_ADDRESS, false)?;
    let classes = &info.offer.runtime_classes;
    if classes.len() > MAX_NODE_CLASSES {
        return Err(bad(format!(
            "a node offers at most {MAX_NODE_CLASSES} runtime classes"
        )));
    }
    for c in classes {
        printable("runtime class", c, MAX_CLASS_NAME, false)?;
    }
    if info.offer.images.len() > MAX_NODE_IMAGES {
        return Err(bad(format!(
            "a node lists at most {MAX_NODE_IMAGES} images"
        )));
    }
    for i in &info.offer.images {
        printable("image reference", i, MAX_NODE_IMAGE_REF, false)?;
    }
    let v = &info.offer.volumes;
    if v.nfs_servers().count() > MAX_NODE_VOLUME_RULES
        || v.host_path_prefixes().count() > MAX_NODE_VOLUME_RULES
    {
        return Err(bad(format!(
            "a node allows at most {MAX_NODE_VOLUME_RULES} NFS servers and {MAX_NODE_VOLUME_RULES} host-path prefixes"
        )));
    }
    Ok(())
}

/// Refuses a node record whose key is not [`NODE_KEY_LEN`] bytes, or whose info is refused
/// by [`check_node`].
pub(crate) fn check_record(node: &NodeRecord) -> Result<(), StoreError> {
    check_node(&node.info)?;
    if node.key.len() != NODE_KEY_LEN {
        return Err(bad(format!("a node's key is {NODE_KEY_LEN} bytes")));
    }
    Ok(())
}

/// Refuses a join token the store does not keep.
pub(crate) fn check_token(t: &JoinToken) -> Result<(), StoreError> {
    if t.id.len() != TOKEN_ID_LEN || !lower_alnum(&t.id) {
        return Err(bad(format!(
            "a join token id is {TOKEN_ID_LEN} lowercase letters and digits"
        )));
    }
    if t.digest.len() != 64
        || !t
            .digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad("a join token's digest is 64 lowercase hex digits"));
    }
    printable(
        "join token description",
        &t.description,
        MAX_TOKEN_DESCRIPTION,
        true,
    )
}

/// The key as stored: sealed hex.
pub(crate) fn seal_key(sealer: &Sealer, key: &[u8]) -> String {
    sealer.seal(&hex::encode(key))
}

/// The key as stored, opened; a key stored in plain text is refused.
pub(crate) fn open_key(sealer: &Sealer, stored: &str) -> Result<Vec<u8>, StoreError> {
    if !is_sealed(stored) {
        return Err(StoreError::Unseal);
    }
    hex::decode(sealer.open(stored)?).map_err(|_| StoreError::Unseal)
}

/// A node as read: its info as JSON and its key as stored.
pub(crate) fn record(sealer: &Sealer, info: &str, key: &str) -> Result<NodeRecord, StoreError> {
    Ok(NodeRecord {
        info: serde_json::from_str(info)?,
        key: open_key(sealer, key)?,
    })
}

/// A time kept to the millisecond, as both stores keep a token's times.
pub(crate) fn millis(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or_default()
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn create_token(conn: &Connection, t: &JoinToken) -> Result<(), StoreError> {
    check_token(t)?;
    let res = conn.execute(
        "INSERT INTO join_tokens (id, digest, description, created, expires) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            t.id,
            t.digest,
            t.description,
            t.created.timestamp_millis(),
            t.expires.timestamp_millis()
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_constraint(&e) => Err(StoreError::JoinTokenExists(t.id.clone())),
        Err(e) => Err(e.into()),
    }
}

const TOKEN_COLUMNS: &str = "id, digest, description, created, expires";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JoinToken> {
    Ok(JoinToken {
        id: r.get(0)?,
        digest: r.get(1)?,
        description: r.get(2)?,
        created: millis(r.get(3)?),
        expires: millis(r.get(4)?),
    })
}

pub(crate) fn token(conn: &Connection, id: &str) -> Result<Option<JoinToken>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM join_tokens WHERE id = ?1"
        ))?
        .query_row(params![id], token_row)
        .optional()?)
}

pub(crate) fn tokens(conn: &Connection) -> Result<Vec<JoinToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM join_tokens ORDER BY created, id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn delete_token(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM join_tokens WHERE id = ?1", params![id])? > 0)
}

pub(crate) fn upsert(
    conn: &Connection,
    node: &NodeRecord,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    check_record(node)?;
    let info = &node.info;
    let res = conn.execute(
        "INSERT INTO nodes (id, name, info, key) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(id) DO UPDATE SET name = ?2, info = ?3, key = ?4",
        params![
            info.id,
            info.name,
            serde_json::to_string(info)?,
            seal_key(sealer, &node.key)
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_constraint(&e) => Err(StoreError::NodeNameTaken(info.name.clone())),
        Err(e) => Err(e.into()),
    }
}

/// The node whose `column` (id or name) is `value`.
pub(crate) fn get_by(
    conn: &Connection,
    column: ByColumn,
    value: &str,
    sealer: &Sealer,
) -> Result<Option<NodeRecord>, StoreError> {
    let sql = match column {
        ByColumn::Id => "SELECT info, key FROM nodes WHERE id = ?1",
        ByColumn::Name => "SELECT info, key FROM nodes WHERE name = ?1",
    };
    let row: Option<(String, String)> = conn
        .prepare_cached(sql)?
        .query_row(params![value], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(info, key)| record(sealer, &info, &key))
        .transpose()
}

/// Which column a node is found by.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ByColumn {
    Id,
    Name,
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<NodeInfo>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT info FROM nodes ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|j| Ok(serde_json::from_str(&j?)?)).collect()
}

pub(crate) fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM nodes WHERE id = ?1", params![id])? > 0)
}

/// A node's info as stored now, for a change (`None`: no such node).
pub(crate) fn for_change(
    conn: &Connection,
    id: &str,
) -> Result<Option<ForChange<NodeInfo>>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT info FROM nodes WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    json.map(|json| {
        let rec = serde_json::from_str(&json)?;
        Ok(ForChange { json, rec })
    })
    .transpose()
}

/// Writes `after`, the change of `read`, unless the row changed since (then the row as it is
/// now comes back); `None` when the node is gone.
pub(crate) fn write_change(
    conn: &mut Connection,
    id: &str,
    read: &ForChange<NodeInfo>,
    mut after: NodeInfo,
) -> Result<Option<Changed<NodeInfo>>, StoreError> {
    after.id = id.to_string();
    check_node(&after)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(now) = for_change(&tx, id)? else {
        return Ok(None);
    };
    if now.json != read.json {
        return Ok(Some(Changed::Meanwhile(now)));
    }
    let res = tx.execute(
        "UPDATE nodes SET name = ?2, info = ?3 WHERE id = ?1",
        params![id, after.name, serde_json::to_string(&after)?],
    );
    match res {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => return Err(StoreError::NodeNameTaken(after.name)),
        Err(e) => return Err(e.into()),
    }
    tx.commit()?;
    Ok(Some(Changed::Written(after)))
}

/// The calls of [`crate::Store`] on nodes and join tokens, each one transaction.
impl SqliteDb {
    pub(crate) fn create_join_token(&self, t: &JoinToken) -> Result<(), StoreError> {
        create_token(&self.conn(), t)
    }

    pub(crate) fn join_token(&self, id: &str) -> Result<Option<JoinToken>, StoreError> {
        token(&self.reader(), id)
    }

    pub(crate) fn list_join_tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        tokens(&self.reader())
    }

    pub(crate) fn delete_join_token(&self, id: &str) -> Result<bool, StoreError> {
        delete_token(&self.conn(), id)
    }

    pub(crate) fn upsert_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        upsert(&self.conn(), node, self.sealer())
    }

    pub(crate) fn node(&self, by: ByColumn, value: &str) -> Result<Option<NodeRecord>, StoreError> {
        get_by(&self.reader(), by, value, self.sealer())
    }

    pub(crate) fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        list(&self.reader())
    }

    pub(crate) fn node_for_change(
        &self,
        id: &str,
    ) -> Result<Option<ForChange<NodeInfo>>, StoreError> {
        for_change(&self.reader(), id)
    }

    pub(crate) fn write_node_change(
        &self,
        id: &str,
        read: &ForChange<NodeInfo>,
        after: NodeInfo,
    ) -> Result<Option<Changed<NodeInfo>>, StoreError> {
        write_change(&mut self.conn(), id, read, after)
    }

    pub(crate) fn delete_node(&self, id: &str) -> Result<bool, StoreError> {
        delete(&self.conn(), id)
    }
}
