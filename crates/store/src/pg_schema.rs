//! The PostgreSQL store's schema and its versions: each migration runs in a transaction of its
//! own with its row in `schema_migrations`, under a transaction-scoped advisory lock, so two
//! replicas starting at once never both run one (the second waits, then finds it done). Then
//! the key of the sealed secrets is checked against the database (`seal_check`): the replicas
//! share one key file, and a replica with none, or with another key, is refused before it
//! reads or writes a secret.

use std::path::Path;

use deadpool_postgres::GenericClient;

use crate::seal::{KeyError, Sealer};
use crate::StoreError;

/// The advisory lock (`pg_advisory_xact_lock`) taken by migrations and the key check.
const SCHEMA_LOCK: i64 = 0x6265_7274_6800_0001;

/// What `seal_check` holds sealed: opening it tells the key is the database's.
const CHECK_TEXT: &str = "berth sealed secrets";

/// The migrations, in order; the version of a database is how many of them ran.
const MIGRATIONS: &[&str] = &[FIRST, LEASES, NODES, TERMINATING];

/// The schema: real columns (and indexes) for what listings and checks filter on, the records
/// as JSON text beside them (text, not JSONB: JSONB refuses the NUL character, which a
/// tenant's tag may hold and the embedded store keeps). Times are `timestamptz` kept to the precision the embedded store
/// keeps (milliseconds; seconds for accounts and keys), so both answer alike.
const FIRST: &str = r#"
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created TIMESTAMPTZ NOT NULL,
    max_cpu DOUBLE PRECISION,
    max_memory DOUBLE PRECISION,
    max_groups BIGINT,
    max_image_caches BIGINT,
    max_storage DOUBLE PRECISION,
    seccomp TEXT,
    operator BOOLEAN NOT NULL DEFAULT FALSE,
    runtime_classes TEXT
);
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    secret TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created TIMESTAMPTZ NOT NULL
);
CREATE INDEX access_keys_account ON access_keys (account);
CREATE TABLE groups (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    client_token TEXT,
    -- The node a group is placed on (NULL: not placed by the cluster's control plane).
    node TEXT,
    cpu DOUBLE PRECISION NOT NULL,
    memory DOUBLE PRECISION NOT NULL,
    storage DOUBLE PRECISION NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    changed TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX groups_account ON groups (account, seq);
CREATE INDEX groups_status ON groups (account, status, seq);
CREATE INDEX groups_name ON groups (account, name, seq);
CREATE INDEX groups_created ON groups (account, created);
CREATE INDEX groups_changed ON groups (account, changed);
CREATE INDEX groups_token ON groups (account, client_token) WHERE client_token IS NOT NULL;
CREATE INDEX groups_node ON groups (node, seq) WHERE node IS NOT NULL;
-- What an account's unfinished groups hold, summed at every create without reading the
-- finished ones (the statuses of quota::FINAL).
CREATE INDEX groups_held ON groups (account) INCLUDE (cpu, memory, storage)
    WHERE status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed');
-- How many groups each account has, kept by every insert and delete: the total of an
-- unfiltered listing without counting the rows.
CREATE TABLE account_groups (
    account TEXT PRIMARY KEY,
    groups BIGINT NOT NULL
);
-- Keys and values as the bytes of their text: a tag may hold any character, NUL too.
CREATE TABLE group_tags (
    group_seq BIGINT NOT NULL REFERENCES groups (seq) ON DELETE CASCADE,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (group_seq, key, value)
);
CREATE INDEX group_tags_key ON group_tags (key, value, group_seq);
CREATE TABLE image_caches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (account, name)
);
CREATE TABLE client_tokens (
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    token TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    params TEXT NOT NULL,
    deleted BIGINT,
    PRIMARY KEY (account, kind, token)
);
CREATE INDEX client_tokens_resource ON client_tokens (kind, resource_id);
CREATE INDEX client_tokens_deleted ON client_tokens (deleted) WHERE deleted IS NOT NULL;
CREATE TABLE usage (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    started TIMESTAMPTZ NOT NULL,
    ended TIMESTAMPTZ
);
CREATE INDEX usage_account ON usage (account, kind, started);
CREATE INDEX usage_open ON usage (resource) WHERE ended IS NULL;
CREATE TABLE ledger (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id TEXT NOT NULL,
    account TEXT NOT NULL,
    cpu_milli BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    storage_gib BIGINT NOT NULL,
    spot_price TEXT,
    started TIMESTAMPTZ NOT NULL,
    ended TIMESTAMPTZ
);
CREATE UNIQUE INDEX ledger_open ON ledger (group_id) WHERE ended IS NULL;
CREATE INDEX ledger_account ON ledger (account, started);
CREATE INDEX ledger_group ON ledger (group_id, seq);
CREATE TABLE billed_groups (
    group_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    used BIGINT NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account, used);
CREATE INDEX console_sessions_used ON console_sessions (used);
CREATE INDEX console_sessions_created ON console_sessions (created);
CREATE TABLE seal_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
"#;

/// The leases of loops that run on one replica at a time (`pg_leases.rs`).
const LEASES: &str = r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
"#;

/// The nodes of a cluster, their join tokens, and the revisions of groups (`pg_revision.rs`):
/// every write of a group's row takes the next value of `group_revision`; the `node` and
/// `waiting` columns follow the record on every write. Existing groups get revisions too.
const NODES: &str = r#"
CREATE TABLE join_tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    description TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE SEQUENCE group_revision;
ALTER TABLE groups ADD COLUMN waiting BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE groups ADD COLUMN revision BIGINT;
-- A record may hold a NUL character (as the JSON escape \u0000), which PostgreSQL's JSON
-- functions refuse: it becomes \u0001 for the read of two fields that never hold one (the
-- escape keeps its length, so the document stays valid JSON whatever precedes it).
UPDATE groups SET
    revision = nextval('group_revision'),
    node = replace(record, E'\\u0000', E'\\u0001')::json ->> 'node',
    waiting = COALESCE(
        (replace(record, E'\\u0000', E'\\u0001')::json ->> 'waiting')::boolean, FALSE);
ALTER TABLE groups ALTER COLUMN revision SET NOT NULL;
CREATE INDEX groups_node_revision ON groups (node, revision);
-- The groups waiting for a node (unplaced_groups), oldest first.
CREATE INDEX groups_unplaced ON groups (created, id) WHERE node IS NULL
    AND status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed', 'Terminating');
-- What each node's unfinished groups hold (placed_usage), without reading the finished ones.
CREATE INDEX groups_placed ON groups (node) INCLUDE (cpu, memory, storage)
    WHERE node IS NOT NULL AND NOT waiting
    AND status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed');
"#;

/// The groups being deleted (`terminating_groups`) and those not finished
/// (`unfinished_groups`): a cluster's leader finishes the deletions of replicas that went
/// away and watches deadlines.
const TERMINATING: &str = r#"
CREATE INDEX groups_terminating ON groups (created, id COLLATE "C") WHERE status = 'Terminating';
CREATE INDEX groups_unfinished ON groups (created, id COLLATE "C")
    WHERE status NOT IN ('Succeeded', 'Failed', 'Expired', 'ScheduleFailed');
"#;

/// Brings the schema up to date, then returns the sealer of the database's secrets: the key
/// of `key_file`, made (0600) when neither it nor any sealed secret exists yet.
pub(crate) async fn prepare(
    client: &mut deadpool_postgres::Client,
    key_file: &Path,
) -> Result<Sealer, StoreError> {
    migrate(client).await?;
    check_key(client, key_file).await
}

/// Runs the migrations the database lacks, one transaction each.
async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let version: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        let Some(m) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            tx.commit().await?;
            return Ok(());
        };
        tx.batch_execute(m).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(version + 1)],
        )
        .await?;
        tx.commit().await?;
    }
}

/// The sealer of the database: the key file must open `seal_check` when the database has
/// one ([`KeyError::Missing`] without the file, [`StoreError::Unseal`] with another key).
async fn check_key(
    client: &mut deadpool_postgres::Client,
    key_file: &Path,
) -> Result<Sealer, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let check: Option<String> = tx
        .query_opt("SELECT sealed FROM seal_check WHERE id = 1", &[])
        .await?
        .map(|r| r.get(0));
    let loaded = Sealer::load(key_file)?;
    let sealer = match (check, loaded) {
        (Some(check), Some(s)) => {
            if s.open(&check)? != CHECK_TEXT {
                return Err(StoreError::Unseal);
            }
            s
        }
        (Some(_), None) => return Err(KeyError::Missing(key_file.to_path_buf()).into()),
        (None, loaded) => {
            if loaded.is_none() && any_sealed(&tx).await? {
                return Err(KeyError::Missing(key_file.to_path_buf()).into());
            }
            let s = match loaded {
                Some(s) => s,
                None => Sealer::create(key_file)?,
            };
            tx.execute(
                "INSERT INTO seal_check (id, sealed) VALUES (1, $1)",
                &[&s.seal(CHECK_TEXT)],
            )
            .await?;
            s
        }
    };
    tx.commit().await?;
    Ok(sealer)
}

/// Whether any secret in the database is sealed (a database whose check row was lost).
async fn any_sealed(c: &impl GenericClient) -> Result<bool, StoreError> {
    let prefix = crate::seal::PREFIX;
    let sealed_json = format!("\"password\":\"{prefix}");
    Ok(c.query_one(
        "SELECT EXISTS(SELECT 1 FROM access_keys WHERE starts_with(secret, $1)) \
         OR EXISTS(SELECT 1 FROM groups WHERE strpos(record, $2) > 0) \
         OR EXISTS(SELECT 1 FROM image_caches WHERE strpos(record, $2) > 0) \
         OR EXISTS(SELECT 1 FROM client_tokens WHERE strpos(params, $1) > 0) \
         OR EXISTS(SELECT 1 FROM nodes WHERE starts_with(key, $1))",
        &[&prefix, &sealed_json],
    )
    .await?
    .get(0))
}
