//! What the PostgreSQL store's modules share below the store itself: times at the precision
//! kept, the errors and strings PostgreSQL refuses, and statements built piece by piece.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// `t` to the millisecond, the precision the embedded store keeps times of groups, periods
/// and intervals at.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// Whether `s` holds a NUL character, which no text of PostgreSQL can: a lookup by such a
/// string finds nothing (as it finds nothing in SQLite, where no stored key holds one), and
/// is answered without asking the database, which would refuse the string.
pub(crate) fn nul(s: &str) -> bool {
    s.contains('\0')
}

/// Whether `e` is a violation of a unique index.
pub(crate) fn is_unique(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The parameters of a statement built piece by piece.
#[derive(Default)]
pub(crate) struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a parameter; its placeholder (`$n`).
    pub(crate) fn push<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
