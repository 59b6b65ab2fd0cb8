//! Nodes and join tokens on PostgreSQL (the SQL of `nodes.rs`, same checks and answers). A
//! change of a node locks its row (`SELECT ... FOR UPDATE`) and runs the caller's closure
//! once, on the row as stored; a name is unique by its index.

use berth_core::{JoinToken, NodeInfo, NodeRecord};
use deadpool_postgres::GenericClient;

use crate::nodes::{check_node, check_record, check_token, record, seal_key, ByColumn};
use crate::pg_sql::{is_unique, ms, nul};
use crate::seal::Sealer;
use crate::StoreError;

pub(crate) async fn create_token(c: &impl GenericClient, t: &JoinToken) -> Result<(), StoreError> {
    check_token(t)?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO join_tokens (id, digest, description, created, expires) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let res = c
        .execute(
            &stmt,
            &[
                &t.id,
                &t.digest,
                &t.description,
                &ms(t.created),
                &ms(t.expires),
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique(&e) => Err(StoreError::JoinTokenExists(t.id.clone())),
        Err(e) => Err(e.into()),
    }
}

fn token_row(r: &tokio_postgres::Row) -> JoinToken {
    JoinToken {
        id: r.get(0),
        digest: r.get(1),
        description: r.get(2),
        created: r.get(3),
        expires: r.get(4),
    }
}

pub(crate) async fn token(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<JoinToken>, StoreError> {
    if nul(id) {
        return Ok(None);
    }
    let stmt = c
        .prepare_cached(
            "SELECT id, digest, description, created, expires FROM join_tokens WHERE id = $1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&id]).await?.as_ref().map(token_row))
}

pub(crate) async fn tokens(c: &impl GenericClient) -> Result<Vec<JoinToken>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT id, digest, description, created, expires FROM join_tokens \
             ORDER BY created, id COLLATE \"C\"",
        )
        .await?;
    Ok(c.query(&stmt, &[]).await?.iter().map(token_row).collect())
}

pub(crate) async fn delete_token(c: &impl GenericClient, id: &str) -> Result<bool, StoreError> {
    if nul(id) {
        return Ok(false);
    }
    let stmt = c
        .prepare_cached("DELETE FROM join_tokens WHERE id = $1")
        .await?;
    Ok(c.execute(&stmt, &[&id]).await? > 0)
}

pub(crate) async fn upsert(
    c: &impl GenericClient,
    node: &NodeRecord,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    check_record(node)?;
    let info = &node.info;
    let stmt = c
        .prepare_cached(
            "INSERT INTO nodes (id, name, info, key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = $2, info = $3, key = $4",
        )
        .await?;
    let res = c
        .execute(
            &stmt,
            &[
                &info.id,
                &info.name,
                &serde_json::to_string(info)?,
                &seal_key(sealer, &node.key),
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique(&e) => Err(StoreError::NodeNameTaken(info.name.clone())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn get_by(
    c: &impl GenericClient,
    by: ByColumn,
    value: &str,
    sealer: &Sealer,
) -> Result<Option<NodeRecord>, StoreError> {
    if nul(value) {
        return Ok(None);
    }
    let sql = match by {
        ByColumn::Id => "SELECT info, key FROM nodes WHERE id = $1",
        ByColumn::Name => "SELECT info, key FROM nodes WHERE name = $1",
    };
    let stmt = c.prepare_cached(sql).await?;
    c.query_opt(&stmt, &[&value])
        .await?
        .map(|r| record(sealer, r.get(0), r.get(1)))
        .transpose()
}

pub(crate) async fn list(c: &impl GenericClient) -> Result<Vec<NodeInfo>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT info FROM nodes ORDER BY name COLLATE \"C\"")
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| Ok(serde_json::from_str(r.get(0))?))
        .collect()
}

pub(crate) async fn modify<F>(
    client: &mut deadpool_postgres::Client,
    id: &str,
    f: &mut F,
) -> Result<Option<NodeInfo>, StoreError>
where
    F: FnMut(&mut NodeInfo) + Send + ?Sized,
{
    if nul(id) {
        return Ok(None);
    }
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached("SELECT info FROM nodes WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let mut info: NodeInfo = serde_json::from_str(row.get(0))?;
    f(&mut info);
    info.id = id.to_string();
    check_node(&info)?;
    let stmt = tx
        .prepare_cached("UPDATE nodes SET name = $2, info = $3 WHERE id = $1")
        .await?;
    match tx
        .execute(&stmt, &[&id, &info.name, &serde_json::to_string(&info)?])
        .await
    {
        Ok(_) => {}
        Err(e) if is_unique(&e) => return Err(StoreError::NodeNameTaken(info.name)),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(Some(info))
}

pub(crate) async fn delete(c: &impl GenericClient, id: &str) -> Result<bool, StoreError> {
    if nul(id) {
        return Ok(false);
    }
    let stmt = c.prepare_cached("DELETE FROM nodes WHERE id = $1").await?;
    Ok(c.execute(&stmt, &[&id]).await? > 0)
}
