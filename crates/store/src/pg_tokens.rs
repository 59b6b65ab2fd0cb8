//! ClientTokens on PostgreSQL (the SQL of `tokens.rs`). The primary key (account, kind,
//! token) makes a token unique: a claim is `INSERT ... ON CONFLICT DO NOTHING` in the
//! transaction that inserts the resource, which waits for a concurrent claim of the same token
//! to commit or roll back; the loser then reads the winner's row.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::seal::Sealer;
use crate::tokens::{TokenKind, TokenUse, TOKEN_RETENTION};
use crate::StoreError;

fn kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Group => "group",
        TokenKind::ImageCache => "cache",
    }
}

pub(crate) async fn find(
    c: &impl GenericClient,
    account: &str,
    kind: TokenKind,
    token: &str,
) -> Result<Option<TokenUse>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT resource_id, params, deleted FROM client_tokens \
             WHERE account = $1 AND kind = $2 AND token = $3",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&account, &kind_str(kind), &token])
        .await?
        .map(|r| TokenUse {
            resource_id: r.get(0),
            params: r.get(1),
            deleted: r
                .get::<_, Option<i64>>(2)
                .and_then(|s| DateTime::from_timestamp(s, 0)),
        }))
}

/// A token's first use as read, its secrets opened.
pub(crate) fn open(
    sealer: &Sealer,
    found: Option<TokenUse>,
) -> Result<Option<TokenUse>, StoreError> {
    found
        .map(|mut t| {
            t.params = sealer.open_json(&t.params)?;
            Ok(t)
        })
        .transpose()
}

/// Claims `token` for `resource_id` inside a transaction; `Some` (and nothing written) when
/// the account's token is claimed already.
pub(crate) async fn claim(
    c: &impl GenericClient,
    account: &str,
    kind: TokenKind,
    token: &str,
    resource_id: &str,
    params: &str,
) -> Result<Option<TokenUse>, StoreError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO client_tokens (account, kind, token, resource_id, params) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await?;
    // A conflicting row swept between the two statements is claimed anew; each round means
    // a sweep ran meanwhile, so a few are plenty.
    for _ in 0..8 {
        let n = c
            .execute(
                &stmt,
                &[&account, &kind_str(kind), &token, &resource_id, &params],
            )
            .await?;
        if n == 1 {
            return Ok(None);
        }
        if let Some(prev) = find(c, account, kind, token).await? {
            return Ok(Some(prev));
        }
    }
    Err(StoreError::Contended(format!("ClientToken {token}")))
}

/// Marks the tokens of a deleted resource, and sweeps those past the retention.
pub(crate) async fn tombstone(
    c: &impl GenericClient,
    kind: TokenKind,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "UPDATE client_tokens SET deleted = $3 \
             WHERE kind = $1 AND resource_id = $2 AND deleted IS NULL",
        )
        .await?;
    c.execute(&stmt, &[&kind_str(kind), &resource_id, &now.timestamp()])
        .await?;
    sweep(c, now).await
}

/// Forgets the tokens deleted more than [`TOKEN_RETENTION`] before `now`.
pub(crate) async fn sweep(c: &impl GenericClient, now: DateTime<Utc>) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("DELETE FROM client_tokens WHERE deleted IS NOT NULL AND deleted < $1")
        .await?;
    c.execute(&stmt, &[&(now - TOKEN_RETENTION).timestamp()])
        .await?;
    Ok(())
}
