//! Tags changed and listed on PostgreSQL (as `tags.rs`): a batch locks every row it names
//! first, in one order (so two batches never wait on each other in a cycle), then applies the
//! change resource by resource in the order given; a group's `group_tags` and `billed_groups`
//! rows follow in the same transaction.

use berth_core::{GroupRecord, ImageCacheRecord, TagChange, TagResourceType};
use deadpool_postgres::GenericClient;
use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;

use crate::pg_sql::nul;
use crate::seal::Sealer;
use crate::tags::{last_page, page_of, TagCursor, TagPage, TagQuery};
use crate::StoreError;

fn apply(
    id: &str,
    tags: &mut Vec<berth_core::Tag>,
    change: &TagChange,
) -> Result<bool, StoreError> {
    change.apply(tags).map_err(|e| StoreError::TooManyTags {
        id: id.to_string(),
        count: e.count,
    })
}

pub(crate) async fn change(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    account: &str,
    kind: TagResourceType,
    ids: &[String],
    change: &TagChange,
) -> Result<(), StoreError> {
    let mut seen: Vec<&String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    let table = match kind {
        TagResourceType::ContainerGroup => "groups",
        TagResourceType::ImageCache => "image_caches",
    };
    let tx = client.transaction().await?;
    if kind == TagResourceType::ContainerGroup {
        crate::pg_revision::lock_for_write(&tx).await?;
    }
    // No resource has a NUL character in its id or account (`pg_sql::nul`): such an id is not
    // found where the batch names it.
    let mut sorted: Vec<&str> = seen
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !nul(s) && !nul(account))
        .collect();
    sorted.sort_unstable();
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT seq FROM {table} WHERE id = ANY($1) AND account = $2 \
             ORDER BY id COLLATE \"C\" FOR UPDATE"
        ))
        .await?;
    if !sorted.is_empty() {
        tx.query(&stmt, &[&sorted, &account]).await?;
    }
    for id in seen {
        if nul(id) || nul(account) {
            return Err(match kind {
                TagResourceType::ContainerGroup => StoreError::NotFound(id.to_string()),
                TagResourceType::ImageCache => StoreError::CacheNotFound(id.to_string()),
            });
        }
        match kind {
            TagResourceType::ContainerGroup => {
                change_group(&tx, sealer, account, id, change).await?
            }
            TagResourceType::ImageCache => change_cache(&tx, sealer, account, id, change).await?,
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn change_group(
    tx: &impl GenericClient,
    sealer: &Sealer,
    account: &str,
    id: &str,
    change: &TagChange,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT seq, record FROM groups WHERE id = $1 AND account = $2")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id, &account]).await? else {
        return Err(StoreError::NotFound(id.to_string()));
    };
    let seq: i64 = row.get(0);
    let mut rec: GroupRecord = serde_json::from_str(row.get(1))?;
    sealer.open_group(&mut rec)?;
    if !apply(id, &mut rec.spec.tags, change)? {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE groups SET record = $2, changed = $3, \
             revision = nextval('group_revision') WHERE seq = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &seq,
            &sealer.group_json(&rec)?,
            &crate::pg_sql::ms(chrono::Utc::now()),
        ],
    )
    .await?;
    crate::pg_groups::put_tags(tx, seq, &rec.spec.tags).await?;
    crate::pg_ledger::put_billed(tx, &rec).await
}

async fn change_cache(
    tx: &impl GenericClient,
    sealer: &Sealer,
    account: &str,
    id: &str,
    change: &TagChange,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT record FROM image_caches WHERE id = $1 AND account = $2")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id, &account]).await? else {
        return Err(StoreError::CacheNotFound(id.to_string()));
    };
    let mut rec: ImageCacheRecord = serde_json::from_str(row.get(0))?;
    sealer.open_cache(&mut rec)?;
    if !apply(id, &mut rec.tags, change)? {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached("UPDATE image_caches SET record = $2 WHERE id = $1")
        .await?;
    tx.execute(&stmt, &[&id, &sealer.cache_json(&rec)?]).await?;
    Ok(())
}

/// The tags of a group's record.
#[derive(serde::Deserialize)]
struct GroupTags {
    spec: CacheTags,
}

/// The tags of an image cache's record (or of a group's spec).
#[derive(serde::Deserialize)]
struct CacheTags {
    #[serde(default)]
    tags: Vec<berth_core::Tag>,
}

/// The tags in a record as stored, without decoding the rest; none when it does not decode
/// (as `tags.rs` reads them).
fn tags_of(kind: TagResourceType, json: &str) -> Vec<berth_core::Tag> {
    match kind {
        TagResourceType::ContainerGroup => {
            serde_json::from_str::<GroupTags>(json).map(|g| g.spec.tags)
        }
        TagResourceType::ImageCache => serde_json::from_str::<CacheTags>(json).map(|c| c.tags),
    }
    .unwrap_or_default()
}

/// A page of at most `limit` (at least 1) tags of `account`'s resources of type `kind`
/// matching `q`, after `after`: the resources are read as a stream, a batch at a time, until
/// the page is full.
pub(crate) async fn list(
    c: &impl GenericClient,
    account: &str,
    kind: TagResourceType,
    q: &TagQuery,
    limit: usize,
    after: Option<&TagCursor>,
) -> Result<TagPage, StoreError> {
    let table = match kind {
        TagResourceType::ContainerGroup => "groups",
        TagResourceType::ImageCache => "image_caches",
    };
    let ids: Vec<&str> = q
        .ids
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !nul(s))
        .collect();
    if nul(account) || ids.len() < q.ids.len() && ids.is_empty() {
        return Ok(TagPage::default());
    }
    let ids_cond = if ids.is_empty() {
        ""
    } else {
        " AND id = ANY($3)"
    };
    let stmt = c
        .prepare_cached(&format!(
            "SELECT seq, id, record FROM {table} \
             WHERE account = $1 AND seq >= $2{ids_cond} ORDER BY seq"
        ))
        .await?;
    let from = after.map_or(0, |c| c.seq());
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&account, &from];
    if !ids.is_empty() {
        params.push(&ids);
    }
    let rows = c.query_raw(&stmt, params).await?;
    futures_util::pin_mut!(rows);
    let mut read = Vec::new();
    let mut page = None;
    while let Some(row) = rows.try_next().await? {
        read.push((row.get(0), row.get(1), tags_of(kind, row.get(2))));
        if read.len() >= 256 {
            if let Some(p) = page_of(std::mem::take(&mut read), q, limit, after, &mut page) {
                return Ok(p);
            }
        }
    }
    Ok(page_of(read, q, limit, after, &mut page).unwrap_or_else(|| last_page(page)))
}
