//! Metering: how much of a resource an account held and for how long (image-cache storage in
//! bytes, later vCPU and memory of groups), as intervals that a billing run prices.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::StoreError;

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE IF NOT EXISTS usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    started TEXT NOT NULL,
    ended TEXT
);
CREATE INDEX IF NOT EXISTS usage_account ON usage(account, kind, started);
CREATE INDEX IF NOT EXISTS usage_open ON usage(resource, ended);
"#;

/// One metered interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageInterval {
    pub resource: String,
    pub quantity: u64,
    pub started: DateTime<Utc>,
    /// `None` while the resource is still held.
    pub ended: Option<DateTime<Utc>>,
}

impl UsageInterval {
    /// Quantity × seconds of this interval that fall within `[from, to)`.
    pub fn quantity_seconds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u128 {
        let start = self.started.max(from);
        let end = self.ended.unwrap_or(to).min(to);
        if end <= start {
            return 0;
        }
        let secs = (end - start).num_milliseconds() as u128 / 1000;
        secs * u128::from(self.quantity)
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

/// Ends the open interval of `resource` (if any) and opens one with `quantity` from `at`.
pub(crate) fn start(
    conn: &mut Connection,
    account: &str,
    kind: &str,
    resource: &str,
    quantity: u64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE usage SET ended = ?2 WHERE resource = ?1 AND ended IS NULL",
        params![resource, ts(at)],
    )?;
    tx.execute(
        "INSERT INTO usage (account, kind, resource, quantity, started) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![account, kind, resource, quantity as i64, ts(at)],
    )?;
    tx.commit()?;
    Ok(())
}

/// Ends the open interval of `resource`, if any.
pub(crate) fn stop(conn: &Connection, resource: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE usage SET ended = ?2 WHERE resource = ?1 AND ended IS NULL",
        params![resource, ts(at)],
    )?;
    Ok(())
}

/// Intervals of an account's `kind` that overlap `[from, to)`.
pub(crate) fn list(
    conn: &Connection,
    account: &str,
    kind: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageInterval>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT resource, quantity, started, ended FROM usage
         WHERE account = ?1 AND kind = ?2 AND started < ?4 AND (ended IS NULL OR ended > ?3)
         ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![account, kind, ts(from), ts(to)], |r| {
        Ok(UsageInterval {
            resource: r.get(0)?,
            quantity: r.get::<_, i64>(1)?.max(0) as u64,
            started: parse(&r.get::<_, String>(2)?),
            ended: r.get::<_, Option<String>>(3)?.as_deref().map(parse),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
