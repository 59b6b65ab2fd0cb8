//! The runtime classes an operator allowed an account and its default class: a
//! `runtime_classes` column of `accounts`, NULL for every class allowed and the node's default,
//! else the policy as JSON. The control plane reads it at every create.

use berth_core::RuntimeClassPolicy;
use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// The runtime_classes column of accounts (the tenth migration).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN runtime_classes TEXT;
"#;

pub(crate) fn set(
    conn: &Connection,
    name: &str,
    policy: &RuntimeClassPolicy,
) -> Result<(), StoreError> {
    let value = (policy != &RuntimeClassPolicy::default())
        .then(|| serde_json::to_string(policy))
        .transpose()?;
    let n = conn.execute(
        "UPDATE accounts SET runtime_classes = ?2 WHERE name = ?1",
        params![name, value],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

/// The account's policy; every class and the node's default for an account without a row.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<RuntimeClassPolicy, StoreError> {
    let value: Option<Option<String>> = conn
        .query_row(
            "SELECT runtime_classes FROM accounts WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    match value.flatten() {
        None => Ok(RuntimeClassPolicy::default()),
        Some(v) => Ok(serde_json::from_str(&v)?),
    }
}

#[cfg(test)]
mod tests {
    use berth_core::RuntimeClass;

    use super::*;
    use crate::{SqliteStore, Store};

    #[tokio::test]
    async fn a_policy_is_kept_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        store.create_account("a").await.unwrap();
        store.create_account("b").await.unwrap();
        assert_eq!(
            store.account_runtime_classes("a").await.unwrap(),
            RuntimeClassPolicy::default()
        );
        let p = RuntimeClassPolicy::new(vec![RuntimeClass::Gvisor], Some(RuntimeClass::Gvisor))
            .unwrap();
        store.set_account_runtime_classes("a", &p).await.unwrap();
        assert_eq!(store.account_runtime_classes("a").await.unwrap(), p);
        assert_eq!(
            store.account_runtime_classes("b").await.unwrap(),
            RuntimeClassPolicy::default()
        );
        store
            .set_account_runtime_classes("a", &RuntimeClassPolicy::default())
            .await
            .unwrap();
        assert_eq!(
            store.account_runtime_classes("a").await.unwrap(),
            RuntimeClassPolicy::default()
        );
        assert!(matches!(
            store.set_account_runtime_classes("nobody", &p).await,
            Err(StoreError::NoAccount(_))
        ));
    }
}
