//! The `client_tokens` table: each ClientToken an account used to create a group or an image
//! cache, with the id it answered and the parameters it was first used with. The primary key
//! (account, kind, token) makes a token unique in the store itself: a record and its token are
//! inserted in one transaction, and of two concurrent creates with one token only one insert
//! succeeds; the other finds the winner's row. A row outlives its resource by
//! [`TOKEN_RETENTION`] (a tombstone time set when the resource is deleted; rows past it are
//! swept by later deletes), so a retry after a delete answers the deleted id instead of
//! creating anew.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::StoreError;

/// How long a token is kept after its resource is deleted.
pub const TOKEN_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Schema of the tokens (the fifth migration); the tokens of existing groups and caches are
/// carried over (the first of each account and token wins, as the old lookups did).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS client_tokens (
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    token TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    params TEXT NOT NULL,
    deleted INTEGER,
    PRIMARY KEY (account, kind, token)
);
CREATE INDEX IF NOT EXISTS client_tokens_resource ON client_tokens(kind, resource_id);
CREATE INDEX IF NOT EXISTS client_tokens_deleted ON client_tokens(deleted)
    WHERE deleted IS NOT NULL;
INSERT OR IGNORE INTO client_tokens (account, kind, token, resource_id, params)
    SELECT account, 'group', client_token, id,
           json_set(json_extract(record, '$.spec'), '$.region_id', '')
    FROM groups WHERE client_token IS NOT NULL ORDER BY seq;
INSERT OR IGNORE INTO client_tokens (account, kind, token, resource_id, params)
    SELECT account, 'cache', json_extract(record, '$.client_token'), id,
           json_object('name', name, 'images', json(json_extract(record, '$.images')),
                       'container_group_id', json_extract(record, '$.container_group_id'))
    FROM image_caches WHERE json_extract(record, '$.client_token') IS NOT NULL ORDER BY seq;
"#;

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Group,
    ImageCache,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Group => "group",
            TokenKind::ImageCache => "cache",
        }
    }
}

/// What a token was first used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUse {
    /// The id the first request answered.
    pub resource_id: String,
    /// The parameters of the first request, as the caller encoded them.
    pub params: String,
    /// When the resource was deleted, if it was.
    pub deleted: Option<DateTime<Utc>>,
}

pub(crate) fn find(
    conn: &Connection,
    account: &str,
    kind: TokenKind,
    token: &str,
) -> Result<Option<TokenUse>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT resource_id, params, deleted FROM client_tokens \
             WHERE account = ?1 AND kind = ?2 AND token = ?3",
        )?
        .query_row(params![account, kind.as_str(), token], |r| {
            Ok(TokenUse {
                resource_id: r.get(0)?,
                params: r.get(1)?,
                deleted: r
                    .get::<_, Option<i64>>(2)?
                    .and_then(|s| DateTime::from_timestamp(s, 0)),
            })
        })
        .optional()?)
}

/// Claims `token` for `resource_id` inside `tx`; `Some` (and nothing written) when the
/// account's token is claimed already.
pub(crate) fn claim(
    tx: &Transaction<'_>,
    account: &str,
    kind: TokenKind,
    token: &str,
    resource_id: &str,
    params: &str,
) -> Result<Option<TokenUse>, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO client_tokens (account, kind, token, resource_id, params) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![account, kind.as_str(), token, resource_id, params])?;
    if n == 1 {
        return Ok(None);
    }
    find(tx, account, kind, token)?
        .map(Some)
        .ok_or_else(|| StoreError::Db(rusqlite::Error::QueryReturnedNoRows))
}

/// Marks the tokens of a deleted resource, and sweeps the tokens deleted more than
/// [`TOKEN_RETENTION`] before `now`.
pub(crate) fn tombstone(
    conn: &Connection,
    kind: TokenKind,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE client_tokens SET deleted = ?3 \
         WHERE kind = ?1 AND resource_id = ?2 AND deleted IS NULL",
    )?
    .execute(params![kind.as_str(), resource_id, now.timestamp()])?;
    sweep(conn, now)
}

/// Forgets the tokens deleted more than [`TOKEN_RETENTION`] before `now`.
pub(crate) fn sweep(conn: &Connection, now: DateTime<Utc>) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM client_tokens WHERE deleted IS NOT NULL AND deleted < ?1")?
        .execute(params![(now - TOKEN_RETENTION).timestamp()])?;
    Ok(())
}
