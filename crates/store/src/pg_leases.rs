//! Leases on PostgreSQL (`leases.rs` says what they are): taken and renewed by one upsert
//! that only overwrites a row that is free, expired or the caller's, timed by the database's
//! clock, so replicas whose clocks differ still agree on who holds a lease.

use std::time::Duration;

use crate::leases::{check, ttl_millis};
use crate::StoreError;

/// [`crate::Store::take_lease`] on PostgreSQL.
pub(crate) async fn take(
    client: &deadpool_postgres::Client,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<u64>, StoreError> {
    check(name, holder)?;
    let row = client
        .query_opt(
            "INSERT INTO leases AS l (name, holder, epoch, expires) \
             VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET \
                 holder = EXCLUDED.holder, \
                 epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END, \
                 expires = EXCLUDED.expires \
             WHERE l.holder = EXCLUDED.holder OR l.expires < clock_timestamp() \
             RETURNING epoch",
            &[&name, &holder, &(ttl_millis(ttl) as f64)],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

/// [`crate::Store::release_lease`] on PostgreSQL.
pub(crate) async fn release(
    client: &deadpool_postgres::Client,
    name: &str,
    holder: &str,
) -> Result<(), StoreError> {
    check(name, holder)?;
    client
        .execute(
            "UPDATE leases SET expires = '-infinity' WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .await?;
    Ok(())
}
