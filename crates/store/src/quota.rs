//! Quotas of accounts: the limits an operator sets per account (overriding the server's
//! defaults), and what an account's groups use of them. A group holds its vCPU, its memory,
//! its temporary storage (EphemeralStorage, GiB: the groups' storage is thin, so without a
//! bound one account's sizes could promise the whole backing filesystem) and a place among
//! the account's groups from its insert until it is finished (Succeeded, Failed,
//! Expired, ScheduleFailed) or its record is deleted; a Terminating group still holds them, as
//! its containers run until they are stopped. The check of a new group and its insert are one
//! `BEGIN IMMEDIATE` transaction, so of concurrent creates only as many pass as fit.

use rusqlite::{params, Connection, OptionalExtension};

use crate::StoreError;

/// Quota columns of accounts (NULL: the server's default) and the size of each group in columns
/// of its own, with an index that answers an account's use without reading the records (the
/// sixth migration).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN max_cpu REAL;
ALTER TABLE accounts ADD COLUMN max_memory REAL;
ALTER TABLE accounts ADD COLUMN max_groups INTEGER;
ALTER TABLE accounts ADD COLUMN max_image_caches INTEGER;
ALTER TABLE groups ADD COLUMN cpu REAL NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN memory REAL NOT NULL DEFAULT 0;
UPDATE groups SET cpu = COALESCE(json_extract(record, '$.spec.cpu'), 0),
                  memory = COALESCE(json_extract(record, '$.spec.memory'), 0);
CREATE INDEX IF NOT EXISTS groups_usage ON groups(account, status, cpu, memory);
"#;

/// The temporary storage quota (a later migration): each group's EphemeralStorage in a
/// column (records without one hold the default size), and the account's limit.
pub(crate) const STORAGE_MIGRATION: &str = r#"
ALTER TABLE accounts ADD COLUMN max_storage REAL;
ALTER TABLE groups ADD COLUMN storage REAL NOT NULL DEFAULT 0;
UPDATE groups SET storage = COALESCE(json_extract(record, '$.spec.ephemeral_storage'), 30);
DROP INDEX IF EXISTS groups_usage;
CREATE INDEX IF NOT EXISTS groups_usage ON groups(account, status, cpu, memory, storage);
"#;

/// Statuses in which a group holds nothing (`GroupStatus::is_final`).
pub(crate) const FINAL: &str = "'Succeeded', 'Failed', 'Expired', 'ScheduleFailed'";

/// Slack for sums of fractional vCPU and GiB (0.1 + 0.2 fits a limit of 0.3).
const EPSILON: f64 = 1e-6;

/// An account's own limits; `None` takes the server's default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuotaOverrides {
    pub cpu: Option<f64>,
    /// GiB.
    pub memory: Option<f64>,
    pub groups: Option<u64>,
    pub image_caches: Option<u32>,
    /// GiB of temporary storage.
    pub storage: Option<f64>,
}

/// The limits a new group is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupLimits {
    pub max_cpu: f64,
    /// GiB.
    pub max_memory: f64,
    pub max_groups: u64,
    /// GiB of temporary storage.
    pub max_storage: f64,
}

impl GroupLimits {
    /// No limit at all.
    pub const UNLIMITED: GroupLimits = GroupLimits {
        max_cpu: f64::INFINITY,
        max_memory: f64::INFINITY,
        max_groups: u64::MAX,
        max_storage: f64::INFINITY,
    };

    /// These defaults with an account's overrides applied.
    pub fn with(self, o: &QuotaOverrides) -> GroupLimits {
        GroupLimits {
            max_cpu: o.cpu.unwrap_or(self.max_cpu),
            max_memory: o.memory.unwrap_or(self.max_memory),
            max_groups: o.groups.unwrap_or(self.max_groups),
            max_storage: o.storage.unwrap_or(self.max_storage),
        }
    }
}

/// What an account's groups hold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupUsage {
    pub cpu: f64,
    /// GiB.
    pub memory: f64,
    pub groups: u64,
    /// GiB of temporary storage.
    pub storage: f64,
}

/// A limited resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaResource {
    Cpu,
    Memory,
    Groups,
    Storage,
}

impl QuotaResource {
    /// The unit a limit of it is counted in.
    pub fn unit(self) -> &'static str {
        match self {
            QuotaResource::Cpu => "vCPU",
            QuotaResource::Memory => "GiB of memory",
            QuotaResource::Groups => "container groups",
            QuotaResource::Storage => "GiB of temporary storage",
        }
    }
}

/// A group that does not fit: `used` of `limit` is held and it asks for `asked` more.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuotaExceeded {
    pub resource: QuotaResource,
    pub limit: f64,
    pub used: f64,
    pub asked: f64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the account may hold {} {unit} and holds {}; the container group asks for {}",
            self.limit,
            self.used,
            self.asked,
            unit = self.resource.unit()
        )
    }
}

/// Sets the given limits of an existing account; the others keep their value.
pub(crate) fn set(conn: &Connection, name: &str, q: &QuotaOverrides) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE accounts SET max_cpu = COALESCE(?2, max_cpu), \
         max_memory = COALESCE(?3, max_memory), max_groups = COALESCE(?4, max_groups), \
         max_image_caches = COALESCE(?5, max_image_caches), \
         max_storage = COALESCE(?6, max_storage) WHERE name = ?1",
        params![
            name,
            q.cpu,
            q.memory,
            q.groups.map(|g| g.min(i64::MAX as u64) as i64),
            q.image_caches,
            q.storage
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoAccount(name.to_string()));
    }
    Ok(())
}

/// The limits of an account (all `None` when it has none, or no row).
pub(crate) fn get(conn: &Connection, account: &str) -> Result<QuotaOverrides, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT max_cpu, max_memory, max_groups, max_image_caches, max_storage FROM accounts \
             WHERE name = ?1",
        )?
        .query_row(params![account], |r| row_from(r, 0))
        .optional()?
        .unwrap_or_default())
}

/// Limits from the five columns starting at `first` (cpu, memory, groups, image caches,
/// storage).
pub(crate) fn row_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<QuotaOverrides> {
    Ok(QuotaOverrides {
        cpu: r.get(first)?,
        memory: r.get(first + 1)?,
        groups: r.get::<_, Option<i64>>(first + 2)?.map(|g| g.max(0) as u64),
        image_caches: r
            .get::<_, Option<i64>>(first + 3)?
            .map(|g| g.clamp(0, i64::from(u32::MAX)) as u32),
        storage: r.get(first + 4)?,
    })
}

/// What the account's unfinished groups hold.
pub(crate) fn usage(conn: &Connection, account: &str) -> Result<GroupUsage, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(cpu), 0), COALESCE(SUM(memory), 0), \
             COALESCE(SUM(storage), 0) FROM groups \
             WHERE account = ?1 AND status NOT IN ({FINAL})"
        ))?
        .query_row(params![account], |r| {
            Ok(GroupUsage {
                groups: r.get::<_, i64>(0)?.max(0) as u64,
                cpu: r.get(1)?,
                memory: r.get(2)?,
                storage: r.get(3)?,
            })
        })?)
}

/// What a new group asks of its account's quota.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GroupSize {
    pub cpu: f64,
    /// GiB.
    pub memory: f64,
    /// GiB of temporary storage.
    pub storage: f64,
}

impl GroupSize {
    /// What a group of this spec holds.
    pub(crate) fn of(spec: &berth_core::GroupSpec) -> Self {
        Self {
            cpu: spec.cpu,
            memory: spec.memory,
            storage: f64::from(spec.ephemeral_storage_gib()),
        }
    }
}

/// Whether a group that held `before` and asks for `after` fits the account's limits beside
/// its other groups. Only what grows is checked: a group keeps what it holds even when its
/// account's limits were lowered since.
pub(crate) fn check_growth(
    conn: &Connection,
    account: &str,
    defaults: &GroupLimits,
    before: GroupSize,
    after: GroupSize,
) -> Result<Result<(), QuotaExceeded>, StoreError> {
    if !grows(before, after) {
        return Ok(Ok(()));
    }
    let limits = defaults.with(&get(conn, account)?);
    Ok(fits_growth(&limits, &usage(conn, account)?, before, after))
}

/// Whether a group asking for `after` instead of `before` asks for more of anything.
pub(crate) fn grows(before: GroupSize, after: GroupSize) -> bool {
    let grows = |a: f64, b: f64| b > a + EPSILON;
    grows(before.cpu, after.cpu)
        || grows(before.memory, after.memory)
        || grows(before.storage, after.storage)
}

/// The decision of [`check_growth`]: `used` is what the account holds, the group included.
pub(crate) fn fits_growth(
    limits: &GroupLimits,
    used: &GroupUsage,
    before: GroupSize,
    after: GroupSize,
) -> Result<(), QuotaExceeded> {
    let grows = |a: f64, b: f64| b > a + EPSILON;
    let checks = [
        (
            QuotaResource::Cpu,
            limits.max_cpu,
            used.cpu,
            before.cpu,
            after.cpu,
        ),
        (
            QuotaResource::Memory,
            limits.max_memory,
            used.memory,
            before.memory,
            after.memory,
        ),
        (
            QuotaResource::Storage,
            limits.max_storage,
            used.storage,
            before.storage,
            after.storage,
        ),
    ];
    for (resource, limit, used, before, after) in checks {
        let others = (used - before).max(0.0);
        if grows(before, after) && others + after > limit + EPSILON {
            return Err(QuotaExceeded {
                resource,
                limit,
                used: (others * 1000.0).round() / 1000.0,
                asked: after,
            });
        }
    }
    Ok(())
}

/// Whether a group of `size` fits the account's limits (`defaults` with the
/// account's overrides) beside what it holds; read inside the inserting transaction.
pub(crate) fn check(
    conn: &Connection,
    account: &str,
    defaults: &GroupLimits,
    size: GroupSize,
) -> Result<Result<(), QuotaExceeded>, StoreError> {
    let limits = defaults.with(&get(conn, account)?);
    Ok(fits(&limits, &usage(conn, account)?, size))
}

/// The decision of [`check`]: `used` is what the account holds now.
pub(crate) fn fits(
    limits: &GroupLimits,
    used: &GroupUsage,
    size: GroupSize,
) -> Result<(), QuotaExceeded> {
    let GroupSize {
        cpu,
        memory,
        storage,
    } = size;
    let over = if used.groups.saturating_add(1) > limits.max_groups {
        Some((
            QuotaResource::Groups,
            limits.max_groups as f64,
            used.groups as f64,
            1.0,
        ))
    } else if used.cpu + cpu > limits.max_cpu + EPSILON {
        Some((QuotaResource::Cpu, limits.max_cpu, used.cpu, cpu))
    } else if used.memory + memory > limits.max_memory + EPSILON {
        Some((
            QuotaResource::Memory,
            limits.max_memory,
            used.memory,
            memory,
        ))
    } else if used.storage + storage > limits.max_storage + EPSILON {
        Some((
            QuotaResource::Storage,
            limits.max_storage,
            used.storage,
            storage,
        ))
    } else {
        None
    };
    match over {
        Some((resource, limit, used, asked)) => Err(QuotaExceeded {
            resource,
            limit,
            used: (used * 1000.0).round() / 1000.0,
            asked,
        }),
        None => Ok(()),
    }
}
