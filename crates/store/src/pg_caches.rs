//! Image caches on PostgreSQL (the SQL of `cache.rs`): one row per cache, the record as JSON
//! text beside the columns lookups use; a change locks the row as a group's does
//! (`pg_groups.rs`).

use berth_core::ImageCacheRecord;
use deadpool_postgres::GenericClient;

use crate::pg_sql::is_unique;
use crate::pg_tokens;
use crate::seal::Sealer;
use crate::tokens::{TokenKind, TokenUse};
use crate::StoreError;

fn open(sealer: &Sealer, json: &str) -> Result<ImageCacheRecord, StoreError> {
    let mut rec: ImageCacheRecord = serde_json::from_str(json)?;
    sealer.open_cache(&mut rec)?;
    Ok(rec)
}

fn exists(e: tokio_postgres::Error, id: &str) -> StoreError {
    if is_unique(&e) {
        StoreError::Exists(id.to_string())
    } else {
        e.into()
    }
}

/// Inserts a cache and claims its ClientToken (if any) in one transaction; the first use of
/// the token, and nothing written, when the account's token is claimed already.
pub(crate) async fn insert(
    client: &mut deadpool_postgres::Client,
    rec: &ImageCacheRecord,
    params: &str,
    sealer: &Sealer,
) -> Result<Option<TokenUse>, StoreError> {
    let json = sealer.cache_json(rec)?;
    let params = sealer.seal_json(params)?;
    let tx = client.transaction().await?;
    if let Some(token) = &rec.client_token {
        let kind = TokenKind::ImageCache;
        if let Some(prev) =
            pg_tokens::claim(&tx, &rec.account, kind, token, &rec.id, &params).await?
        {
            return pg_tokens::open(sealer, Some(prev));
        }
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO image_caches (id, account, name, status, record) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &rec.id,
            &rec.account,
            &rec.name,
            &rec.status.as_str(),
            &json,
        ],
    )
    .await
    .map_err(|e| exists(e, &rec.id))?;
    tx.commit().await?;
    Ok(None)
}

pub(crate) async fn get(
    c: &impl GenericClient,
    account: Option<&str>,
    id: &str,
    sealer: &Sealer,
) -> Result<Option<ImageCacheRecord>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT record FROM image_caches WHERE id = $1 AND ($2::text IS NULL OR account = $2)",
        )
        .await?;
    c.query_opt(&stmt, &[&id, &account])
        .await?
        .map(|r| open(sealer, r.get(0)))
        .transpose()
}

/// Reads (locked), changes with `f` and writes back one cache.
pub(crate) async fn modify<F>(
    client: &mut deadpool_postgres::Client,
    id: &str,
    f: &mut F,
    sealer: &Sealer,
) -> Result<ImageCacheRecord, StoreError>
where
    F: FnMut(&mut ImageCacheRecord) + Send + ?Sized,
{
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("SELECT record FROM image_caches WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id]).await? else {
        return Err(StoreError::NotFound(id.to_string()));
    };
    let mut rec = open(sealer, row.get(0))?;
    f(&mut rec);
    let stmt = tx
        .prepare_cached(
            "UPDATE image_caches SET name = $2, status = $3, record = $4 \
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &id,
            &rec.name,
            &rec.status.as_str(),
            &sealer.cache_json(&rec)?,
        ],
    )
    .await
    .map_err(|e| exists(e, id))?;
    tx.commit().await?;
    Ok(rec)
}

pub(crate) async fn delete(
    client: &mut deadpool_postgres::Client,
    id: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("DELETE FROM image_caches WHERE id = $1")
        .await?;
    tx.execute(&stmt, &[&id]).await?;
    pg_tokens::tombstone(&tx, TokenKind::ImageCache, id, chrono::Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list(
    c: &impl GenericClient,
    account: Option<&str>,
    sealer: &Sealer,
) -> Result<Vec<ImageCacheRecord>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT record FROM image_caches WHERE $1::text IS NULL OR account = $1 ORDER BY seq",
        )
        .await?;
    c.query(&stmt, &[&account])
        .await?
        .into_iter()
        .map(|r| open(sealer, r.get(0)))
        .collect()
}
