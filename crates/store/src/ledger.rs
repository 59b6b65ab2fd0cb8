//! The metering ledger of container groups (ADR 0010): billed periods with the size held,
//! written inside the transaction that writes the group's record, so that a period and the
//! status it follows are committed together or not at all.

use berth_core::metering::{self, BilledTerms};
use berth_core::{GroupId, GroupRecord};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::StoreError;

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    account TEXT NOT NULL,
    cpu_milli INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    storage_gib INTEGER NOT NULL,
    spot_price TEXT,
    started TEXT NOT NULL,
    ended TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_open ON ledger(group_id) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS ledger_account ON ledger(account, started);
CREATE INDEX IF NOT EXISTS ledger_group ON ledger(group_id, seq);
-- Groups billed when the ledger came are billed from then on.
INSERT INTO ledger (group_id, account, cpu_milli, memory_mib, storage_gib, started)
    SELECT id, account, CAST(round(cpu * 1000) AS INTEGER), CAST(round(memory * 1024) AS INTEGER),
           max(CAST(storage AS INTEGER) - 30, 0), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM groups
    WHERE status IN ('Pending', 'Running', 'Restarting', 'Updating', 'Terminating');
"#;

/// One billed period of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerPeriod {
    pub group_id: String,
    pub account: String,
    /// The group's name ("" for a group deleted before names were kept).
    pub group_name: String,
    /// The group's tags, as last written.
    pub tags: Vec<berth_core::Tag>,
    pub terms: BilledTerms,
    /// The hourly spot price in force (decimal text) for a preemptible group.
    pub spot_price: Option<String>,
    pub started: DateTime<Utc>,
    /// `None` while the group is billed.
    pub ended: Option<DateTime<Utc>>,
}

impl LedgerPeriod {
    /// Milliseconds of this period within `[from, to)` (an open one runs to `to`).
    pub fn millis_within(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let start = self.started.max(from);
        let end = self.ended.unwrap_or(to).min(to);
        (end - start).num_milliseconds().max(0)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// What of a record the ledger follows: a write that changes none of it changes no period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Billing {
    status: berth_core::GroupStatus,
    cpu: f64,
    memory: f64,
    storage: u32,
}

impl Billing {
    pub(crate) fn of(rec: &GroupRecord) -> Self {
        Self {
            status: rec.status,
            cpu: rec.spec.cpu,
            memory: rec.spec.memory,
            storage: rec.spec.ephemeral_storage_gib(),
        }
    }
}

struct Open {
    seq: i64,
    terms: BilledTerms,
    started: DateTime<Utc>,
}

fn open(tx: &Transaction<'_>, id: &str) -> Result<Option<Open>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT seq, cpu_milli, memory_mib, storage_gib, started FROM ledger \
             WHERE group_id = ?1 AND ended IS NULL",
        )?
        .query_row(params![id], |r| {
            Ok(Open {
                seq: r.get(0)?,
                terms: BilledTerms {
                    cpu_milli: r.get::<_, i64>(1)?.clamp(0, u32::MAX.into()) as u32,
                    memory_mib: r.get::<_, i64>(2)?.clamp(0, u32::MAX.into()) as u32,
                    storage_gib: r.get::<_, i64>(3)?.clamp(0, u32::MAX.into()) as u32,
                },
                started: parse(&r.get::<_, String>(4)?),
            })
        })
        .optional()?)
}

fn close(tx: &Transaction<'_>, seq: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE ledger SET ended = ?2 WHERE seq = ?1")?
        .execute(params![seq, ts(at)])?;
    Ok(())
}

/// Brings the ledger of `rec` up to its new state, within the transaction writing it: closes
/// the open period and opens the next when what is billed changed.
pub(crate) fn follow(
    tx: &Transaction<'_>,
    rec: &GroupRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = rec.id.as_str();
    let open = open(tx, id)?;
    let want = metering::terms(rec, open.is_some());
    if open.as_ref().map(|o| o.terms) == want {
        return Ok(());
    }
    let at = match (&open, want) {
        (Some(o), None) => metering::period_end(rec, o.started, now),
        _ => now,
    };
    if let Some(o) = &open {
        close(tx, o.seq, at)?;
    }
    if let Some(t) = want {
        tx.prepare_cached(
            "INSERT INTO ledger \
             (group_id, account, cpu_milli, memory_mib, storage_gib, spot_price, started) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            rec.account,
            t.cpu_milli,
            t.memory_mib,
            t.storage_gib,
            // The hourly price in force of a preemptible group, fixed at its creation.
            rec.spec.spot.as_ref().and_then(|s| s.hour_price.as_deref()),
            ts(at)
        ])?;
    }
    Ok(())
}

/// Closes the open period of a group being deleted; `record` reads its record (only when
/// there is a period to close: the end comes from its containers' exits).
pub(crate) fn close_deleted(
    tx: &Transaction<'_>,
    id: &GroupId,
    now: DateTime<Utc>,
    record: impl FnOnce() -> Result<Option<GroupRecord>, StoreError>,
) -> Result<(), StoreError> {
    if let Some(o) = open(tx, id.as_str())? {
        let end = match record()? {
            Some(rec) => metering::period_end(&rec, o.started, now),
            None => now,
        };
        close(tx, o.seq, end)?;
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerPeriod> {
    Ok(LedgerPeriod {
        group_id: r.get(0)?,
        account: r.get(1)?,
        terms: BilledTerms {
            cpu_milli: r.get::<_, i64>(2)?.clamp(0, u32::MAX.into()) as u32,
            memory_mib: r.get::<_, i64>(3)?.clamp(0, u32::MAX.into()) as u32,
            storage_gib: r.get::<_, i64>(4)?.clamp(0, u32::MAX.into()) as u32,
        },
        spot_price: r.get(5)?,
        started: parse(&r.get::<_, String>(6)?),
        ended: r.get::<_, Option<String>>(7)?.as_deref().map(parse),
        group_name: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        tags: crate::billed::tags(r.get_ref(9)?.as_str_or_null()?),
    })
}

const COLUMNS: &str = "l.group_id, l.account, l.cpu_milli, l.memory_mib, l.storage_gib, \
     l.spot_price, l.started, l.ended, b.name, b.tags";
const FROM: &str = "ledger l LEFT JOIN billed_groups b ON b.group_id = l.group_id";

/// Periods of `account` (every account's with `None`) overlapping `[from, to)`, oldest first.
pub(crate) fn list(
    conn: &Connection,
    account: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<LedgerPeriod>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE (?1 IS NULL OR l.account = ?1) \
         AND l.started < ?3 AND (l.ended IS NULL OR l.ended > ?2) ORDER BY l.seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![account, ts(from), ts(to)], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every period of one group, oldest first.
pub(crate) fn of_group(conn: &Connection, id: &GroupId) -> Result<Vec<LedgerPeriod>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE l.group_id = ?1 ORDER BY l.seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![id.as_str()], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
