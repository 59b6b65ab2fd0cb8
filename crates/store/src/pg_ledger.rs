//! The metering ledger, the names of billed groups and the metered intervals on PostgreSQL
//! (the SQL of `ledger.rs`, `billed.rs` and `usage.rs`, ADR 0010): periods are written in the
//! transaction that writes the group's record, with the group's row locked, so a period and
//! the status it follows commit together and two replicas never both open one.

use berth_core::metering::{self, BilledTerms};
use berth_core::{GroupId, GroupRecord};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::pg_sql::ms;
use crate::{LedgerPeriod, StoreError, UsageInterval};

struct Open {
    seq: i64,
    terms: BilledTerms,
    started: DateTime<Utc>,
}

fn u32_of(v: i64) -> u32 {
    v.clamp(0, u32::MAX.into()) as u32
}

async fn open(c: &impl GenericClient, id: &str) -> Result<Option<Open>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, cpu_milli, memory_mib, storage_gib, started FROM ledger \
             WHERE group_id = $1 AND ended IS NULL",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&id]).await?.map(|r| Open {
        seq: r.get(0),
        terms: BilledTerms {
            cpu_milli: u32_of(r.get(1)),
            memory_mib: u32_of(r.get(2)),
            storage_gib: u32_of(r.get(3)),
        },
        started: r.get(4),
    }))
}

async fn close(c: &impl GenericClient, seq: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("UPDATE ledger SET ended = $2 WHERE seq = $1")
        .await?;
    c.execute(&stmt, &[&seq, &ms(at)]).await?;
    Ok(())
}

/// Brings the ledger of `rec` up to its new state (as `ledger::follow`).
pub(crate) async fn follow(
    c: &impl GenericClient,
    rec: &GroupRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = rec.id.as_str();
    let open = open(c, id).await?;
    let want = metering::terms(rec, open.is_some());
    if open.as_ref().map(|o| o.terms) == want {
        return Ok(());
    }
    let at = match (&open, want) {
        (Some(o), None) => metering::period_end(rec, o.started, now),
        _ => now,
    };
    if let Some(o) = &open {
        close(c, o.seq, at).await?;
    }
    if let Some(t) = want {
        let stmt = c
            .prepare_cached(
                "INSERT INTO ledger \
                 (group_id, account, cpu_milli, memory_mib, storage_gib, spot_price, started) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        // The hourly price in force of a preemptible group, fixed at its creation.
        let spot = rec.spec.spot.as_ref().and_then(|s| s.hour_price.as_deref());
        c.execute(
            &stmt,
            &[
                &id,
                &rec.account,
                &i64::from(t.cpu_milli),
                &i64::from(t.memory_mib),
                &i64::from(t.storage_gib),
                &spot,
                &ms(at),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Closes the open period of a group being deleted, `rec` its record as stored.
pub(crate) async fn close_deleted(
    c: &impl GenericClient,
    rec: Option<&GroupRecord>,
    id: &GroupId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Some(o) = open(c, id.as_str()).await? {
        let end = match rec {
            Some(rec) => metering::period_end(rec, o.started, now),
            None => now,
        };
        close(c, o.seq, end).await?;
    }
    Ok(())
}

const COLUMNS: &str = "l.group_id, l.account, l.cpu_milli, l.memory_mib, l.storage_gib, \
     l.spot_price, l.started, l.ended, b.name, b.tags";
const FROM: &str = "ledger l LEFT JOIN billed_groups b ON b.group_id = l.group_id";

fn period(r: &tokio_postgres::Row) -> LedgerPeriod {
    LedgerPeriod {
        group_id: r.get(0),
        account: r.get(1),
        terms: BilledTerms {
            cpu_milli: u32_of(r.get(2)),
            memory_mib: u32_of(r.get(3)),
            storage_gib: u32_of(r.get(4)),
        },
        spot_price: r.get(5),
        started: r.get(6),
        ended: r.get(7),
        group_name: r.get::<_, Option<String>>(8).unwrap_or_default(),
        tags: crate::billed::tags(r.get(9)),
    }
}

/// Periods of `account` (every account's with `None`) overlapping `[from, to)`, oldest first.
pub(crate) async fn list(
    c: &impl GenericClient,
    account: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<LedgerPeriod>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE ($1::text IS NULL OR l.account = $1) \
             AND l.started < $3 AND (l.ended IS NULL OR l.ended > $2) ORDER BY l.seq"
        ))
        .await?;
    let rows = c.query(&stmt, &[&account, &ms(from), &ms(to)]).await?;
    Ok(rows.iter().map(period).collect())
}

/// Every period of one group, oldest first.
pub(crate) async fn of_group(
    c: &impl GenericClient,
    id: &GroupId,
) -> Result<Vec<LedgerPeriod>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE l.group_id = $1 ORDER BY l.seq"
        ))
        .await?;
    let rows = c.query(&stmt, &[&id.as_str()]).await?;
    Ok(rows.iter().map(period).collect())
}

/// Records (or updates) the name and tags a bill names `rec` by.
pub(crate) async fn put_billed(
    c: &impl GenericClient,
    rec: &GroupRecord,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO billed_groups (group_id, account, name, tags) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, tags = excluded.tags",
        )
        .await?;
    let tags = serde_json::to_string(&rec.spec.tags)?;
    c.execute(
        &stmt,
        &[&rec.id.as_str(), &rec.account, &rec.spec.name, &tags],
    )
    .await?;
    Ok(())
}

/// Forgets a deleted group's name and tags unless ledger periods reference them.
pub(crate) async fn forget_unbilled(c: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "DELETE FROM billed_groups WHERE group_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM ledger WHERE group_id = $1)",
        )
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Ends the open interval of `resource` (if any) and opens one with `quantity` from `at`.
pub(crate) async fn meter_start(
    c: &mut deadpool_postgres::Client,
    account: &str,
    kind: &str,
    resource: &str,
    quantity: u64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    meter_stop(&tx, resource, at).await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO usage (account, kind, resource, quantity, started) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let quantity = i64::try_from(quantity).unwrap_or(i64::MAX);
    tx.execute(&stmt, &[&account, &kind, &resource, &quantity, &ms(at)])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the open interval of `resource`, if any.
pub(crate) async fn meter_stop(
    c: &impl GenericClient,
    resource: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached("UPDATE usage SET ended = $2 WHERE resource = $1 AND ended IS NULL")
        .await?;
    c.execute(&stmt, &[&resource, &ms(at)]).await?;
    Ok(())
}

/// Intervals of an account's `kind` that overlap `[from, to)`.
pub(crate) async fn usage(
    c: &impl GenericClient,
    account: &str,
    kind: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageInterval>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT resource, quantity, started, ended FROM usage \
             WHERE account = $1 AND kind = $2 AND started < $4 AND (ended IS NULL OR ended > $3) \
             ORDER BY seq",
        )
        .await?;
    let rows = c
        .query(&stmt, &[&account, &kind, &ms(from), &ms(to)])
        .await?;
    Ok(rows
        .iter()
        .map(|r| UsageInterval {
            resource: r.get(0),
            quantity: r.get::<_, i64>(1).max(0) as u64,
            started: r.get(2),
            ended: r.get(3),
        })
        .collect())
}
