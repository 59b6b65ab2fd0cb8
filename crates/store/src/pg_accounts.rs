//! Accounts and access keys on PostgreSQL, with the per-account settings the control plane
//! reads afresh at each use (quota, seccomp profile, operator flag, runtime classes): the
//! SQL of the `accounts`, `quota`, `seccomp`, `operator` and `runtime_classes` modules.
//! No key is remembered between checks: each check is one primary-key lookup joined with its
//! account, so a key disabled or deleted through any replica counts from the next request on.

use berth_core::RuntimeClassPolicy;
use chrono::{DateTime, SubsecRound, Utc};
use deadpool_postgres::GenericClient;

use crate::pg_sql::is_unique;
use crate::seal::Sealer;
use crate::{
    AccessKey, Account, AccountSeccomp, GroupUsage, KeyCheck, KeyInfo, QuotaOverrides, StoreError,
};

/// `accounts.seccomp` of an unconfined account (as in `seccomp.rs`).
const UNCONFINED: &str = "unconfined";

/// Now, to the second, as the embedded store keeps the times of accounts and keys.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

pub(crate) async fn create_account(c: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("INSERT INTO accounts (name, created) VALUES ($1, $2)")
        .await?;
    match c.execute(&stmt, &[&name, &now()]).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique(&e) => Err(StoreError::AccountExists(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Runs an `UPDATE accounts ... WHERE name = $1`; [`StoreError::NoAccount`] when no row.
async fn update_account(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    name: &str,
) -> Result<(), StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    if c.execute(&stmt, params).await? == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

pub(crate) async fn set_account_disabled(
    c: &impl GenericClient,
    name: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    let sql = "UPDATE accounts SET disabled = $2 WHERE name = $1";
    update_account(c, sql, &[&name, &disabled], name).await
}

pub(crate) async fn list_accounts(c: &impl GenericClient) -> Result<Vec<Account>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT a.name, a.disabled, a.created, \
             (SELECT COUNT(*) FROM access_keys k WHERE k.account = a.name), \
             a.max_cpu, a.max_memory, a.max_groups, a.max_image_caches, a.max_storage, \
             a.operator FROM accounts a ORDER BY a.name COLLATE \"C\"",
        )
        .await?;
    let rows = c.query(&stmt, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| Account {
            name: r.get(0),
            disabled: r.get(1),
            created: r.get(2),
            keys: r.get::<_, i64>(3).max(0) as u64,
            quota: quota_from(r, 4),
            operator: r.get(9),
        })
        .collect())
}

/// Adds a key (its secret sealed), making its account (enabled) when there is none.
pub(crate) async fn create_key(
    c: &mut deadpool_postgres::Client,
    key: &AccessKey,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let secret = sealer.seal(&key.secret);
    let created = now();
    let tx = c.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO accounts (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    tx.execute(&stmt, &[&key.account, &created]).await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO access_keys (access_key_id, account, secret, created) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    match tx
        .execute(
            &stmt,
            &[&key.access_key_id, &key.account, &secret, &created],
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_unique(&e) => return Err(StoreError::KeyExists(key.access_key_id.clone())),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(())
}

async fn account_exists(c: &impl GenericClient, name: &str) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached("SELECT 1 FROM accounts WHERE name = $1")
        .await?;
    Ok(c.query_opt(&stmt, &[&name]).await?.is_some())
}

/// Adds a key to an account that must exist.
pub(crate) async fn add_key(
    c: &mut deadpool_postgres::Client,
    key: &AccessKey,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    if !account_exists(&*c, &key.account).await? {
        return Err(StoreError::NoAccount(key.account.clone()));
    }
    create_key(c, key, sealer).await
}

/// The key `id` with whether it and its account are enabled, its secret opened.
pub(crate) async fn check_key(
    c: &impl GenericClient,
    id: &str,
    sealer: &Sealer,
) -> Result<Option<KeyCheck>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT k.access_key_id, k.account, k.secret, k.disabled, COALESCE(a.disabled, FALSE) \
             FROM access_keys k LEFT JOIN accounts a ON a.name = k.account \
             WHERE k.access_key_id = $1",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let key_off: bool = r.get(3);
    let account_off: bool = r.get(4);
    Ok(Some(KeyCheck {
        key: AccessKey {
            access_key_id: r.get(0),
            account: r.get(1),
            secret: sealer.open(r.get(2))?,
        },
        active: !key_off && !account_off,
    }))
}

pub(crate) async fn list_keys(
    c: &impl GenericClient,
    account: &str,
) -> Result<Vec<KeyInfo>, StoreError> {
    if !account_exists(c, account).await? {
        return Err(StoreError::NoAccount(account.to_string()));
    }
    let stmt = c
        .prepare_cached(
            "SELECT access_key_id, account, disabled, created FROM access_keys \
             WHERE account = $1 ORDER BY created, access_key_id COLLATE \"C\"",
        )
        .await?;
    Ok(c.query(&stmt, &[&account])
        .await?
        .iter()
        .map(|r| KeyInfo {
            access_key_id: r.get(0),
            account: r.get(1),
            disabled: r.get(2),
            created: r.get(3),
        })
        .collect())
}

pub(crate) async fn set_key_disabled(
    c: &impl GenericClient,
    account: &str,
    id: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "UPDATE access_keys SET disabled = $3 WHERE access_key_id = $2 AND account = $1",
        )
        .await?;
    if c.execute(&stmt, &[&account, &id, &disabled]).await? == 0 {
        return Err(StoreError::NoKey(id.to_string(), account.to_string()));
    }
    Ok(())
}

pub(crate) async fn delete_key(
    c: &impl GenericClient,
    account: &str,
    id: &str,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("DELETE FROM access_keys WHERE access_key_id = $2 AND account = $1")
        .await?;
    if c.execute(&stmt, &[&account, &id]).await? == 0 {
        return Err(StoreError::NoKey(id.to_string(), account.to_string()));
    }
    Ok(())
}

/// Limits from the five columns starting at `first` (cpu, memory, groups, image caches,
/// storage).
fn quota_from(r: &tokio_postgres::Row, first: usize) -> QuotaOverrides {
    QuotaOverrides {
        cpu: r.get(first),
        memory: r.get(first + 1),
        groups: r.get::<_, Option<i64>>(first + 2).map(|g| g.max(0) as u64),
        image_caches: r
            .get::<_, Option<i64>>(first + 3)
            .map(|g| g.clamp(0, i64::from(u32::MAX)) as u32),
        storage: r.get(first + 4),
    }
}

/// Sets the given limits of an existing account; the others keep their value.
pub(crate) async fn set_quota(
    c: &impl GenericClient,
    name: &str,
    q: &QuotaOverrides,
) -> Result<(), StoreError> {
    let sql = "UPDATE accounts SET max_cpu = COALESCE($2, max_cpu), \
         max_memory = COALESCE($3, max_memory), max_groups = COALESCE($4, max_groups), \
         max_image_caches = COALESCE($5, max_image_caches), \
         max_storage = COALESCE($6, max_storage) WHERE name = $1";
    let groups = q.groups.map(|g| g.min(i64::MAX as u64) as i64);
    let caches = q.image_caches.map(i64::from);
    update_account(
        c,
        sql,
        &[&name, &q.cpu, &q.memory, &groups, &caches, &q.storage],
        name,
    )
    .await
}

/// The limits of an account (all `None` when it has none, or no row).
pub(crate) async fn quota(
    c: &impl GenericClient,
    account: &str,
) -> Result<QuotaOverrides, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT max_cpu, max_memory, max_groups, max_image_caches, max_storage \
             FROM accounts WHERE name = $1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&account])
        .await?
        .map(|r| quota_from(&r, 0))
        .unwrap_or_default())
}

/// What the account's unfinished groups hold.
pub(crate) async fn usage(c: &impl GenericClient, account: &str) -> Result<GroupUsage, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(cpu), 0), COALESCE(SUM(memory), 0), \
             COALESCE(SUM(storage), 0) FROM groups \
             WHERE account = $1 AND status NOT IN ({})",
            crate::quota::FINAL
        ))
        .await?;
    let r = c.query_one(&stmt, &[&account]).await?;
    Ok(GroupUsage {
        groups: r.get::<_, i64>(0).max(0) as u64,
        cpu: r.get(1),
        memory: r.get(2),
        storage: r.get(3),
    })
}

pub(crate) async fn set_seccomp(
    c: &impl GenericClient,
    name: &str,
    s: &AccountSeccomp,
) -> Result<(), StoreError> {
    let value = match s {
        AccountSeccomp::Default => None,
        AccountSeccomp::Unconfined => Some(UNCONFINED),
        AccountSeccomp::Profile(p) => Some(p.as_str()),
    };
    let sql = "UPDATE accounts SET seccomp = $2 WHERE name = $1";
    update_account(c, sql, &[&name, &value], name).await
}

/// The account's text column `column` (NULL, or no row: `None`).
async fn account_text(
    c: &impl GenericClient,
    column: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let stmt = c
        .prepare_cached(&format!("SELECT {column} FROM accounts WHERE name = $1"))
        .await?;
    Ok(c.query_opt(&stmt, &[&name])
        .await?
        .and_then(|r| r.get::<_, Option<String>>(0)))
}

pub(crate) async fn seccomp(
    c: &impl GenericClient,
    name: &str,
) -> Result<AccountSeccomp, StoreError> {
    Ok(match account_text(c, "seccomp", name).await? {
        None => AccountSeccomp::Default,
        Some(v) if v == UNCONFINED => AccountSeccomp::Unconfined,
        Some(v) => AccountSeccomp::Profile(v),
    })
}

pub(crate) async fn set_operator(
    c: &impl GenericClient,
    name: &str,
    operator: bool,
) -> Result<(), StoreError> {
    let sql = "UPDATE accounts SET operator = $2 WHERE name = $1";
    update_account(c, sql, &[&name, &operator], name).await
}

pub(crate) async fn operator(c: &impl GenericClient, name: &str) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached("SELECT operator FROM accounts WHERE name = $1")
        .await?;
    Ok(c.query_opt(&stmt, &[&name])
        .await?
        .is_some_and(|r| r.get::<_, bool>(0)))
}

pub(crate) async fn set_runtime_classes(
    c: &impl GenericClient,
    name: &str,
    policy: &RuntimeClassPolicy,
) -> Result<(), StoreError> {
    let value = (policy != &RuntimeClassPolicy::default())
        .then(|| serde_json::to_string(policy))
        .transpose()?;
    let sql = "UPDATE accounts SET runtime_classes = $2 WHERE name = $1";
    update_account(c, sql, &[&name, &value], name).await
}

pub(crate) async fn runtime_classes(
    c: &impl GenericClient,
    name: &str,
) -> Result<RuntimeClassPolicy, StoreError> {
    match account_text(c, "runtime_classes", name).await? {
        None => Ok(RuntimeClassPolicy::default()),
        Some(v) => Ok(serde_json::from_str(&v)?),
    }
}
