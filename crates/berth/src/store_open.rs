//! Which store `berth serve` and `berth admin` use: the embedded SQLite file of the state
//! directory (the default), or a PostgreSQL database named by `--store` that several
//! control-plane replicas share (docs/CLUSTER.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use berth_store::{PgStore, SqliteStore, Store};

/// The store flags of `berth serve` and `berth admin`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// A PostgreSQL database shared by control-plane replicas
    /// (`postgres://USER@HOST:PORT/DB`, or `host=/socket/dir dbname=DB user=USER`); without
    /// it, the SQLite file `berth.db` of the state directory.
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// The key of the secrets sealed in a PostgreSQL store, which every replica must be
    /// given (0600; made by the first replica on an empty database). Default:
    /// STATE_DIR/secrets.key.
    #[arg(long, global = true, value_name = "FILE", requires = "store")]
    pub store_key: Option<PathBuf>,
}

impl StoreArgs {
    /// Opens the store; the embedded one with the state directory made private first.
    pub async fn open(&self, state_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
        let Some(url) = &self.store else {
            let db = crate::state_files::prepare_database(state_dir)?;
            let sqlite =
                SqliteStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
            crate::state_files::opened(&sqlite);
            crate::state_files::tighten_database(&db)?;
            return Ok(Arc::new(sqlite));
        };
        crate::state_files::prepare(state_dir)?;
        let key = self
            .store_key
            .clone()
            .unwrap_or_else(|| state_dir.join(berth_store::KEY_FILE));
        let pg = PgStore::connect(url, &key)
            .await
            .with_context(|| format!("cannot open the PostgreSQL store ({})", redacted(url)))?;
        tracing::info!(store = %redacted(url), key = %key.display(), "PostgreSQL store");
        Ok(Arc::new(pg))
    }
}

/// `url` with its password (if any) hidden, for logs and errors.
fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        return match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or_default();
                let hidden = if user_info.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}{tail}")
            }
            None => url.to_string(),
        };
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_either_form() {
        assert_eq!(
            redacted("postgres://berth:s3cret@db:5432/berth?sslmode=disable"),
            "postgres://berth:***@db:5432/berth?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://berth@db/berth"),
            "postgres://berth@db/berth"
        );
        assert_eq!(
            redacted("host=/run/postgresql password=s3cret dbname=berth"),
            "host=/run/postgresql password=*** dbname=berth"
        );
    }
}
