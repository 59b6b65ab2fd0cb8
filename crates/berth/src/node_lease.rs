//! One in-process node per shared store. A `berth serve` on a PostgreSQL store runs every
//! group of the database on its own host, so a second one on the same database would run them
//! all again. The first takes the lease `in-process-node` (`Store::take_lease`) before its
//! node starts and renews it; another finds it held and refuses to start. The holder is this
//! state directory's node id (`STATE_DIR/node.id`, made once) on this host, so a restart
//! after a crash takes its own lease back at once. When the lease cannot be renewed for two
//! thirds of its time, or another holds it, berth stops (its containers keep running): it can
//! no longer tell that it alone runs them.

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_store::Store;
use tokio::sync::Notify;

/// The lease's name.
const LEASE: &str = "in-process-node";
/// How long a lease lasts without renewal.
const TTL: Duration = Duration::from_secs(30);
/// How often it is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The file of this state directory's node id.
const ID_FILE: &str = "node.id";

/// The lease, held and renewed until [`release`](Held::release).
pub(crate) struct Held {
    store: Arc<dyn Store>,
    holder: String,
    lost: Arc<Notify>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Takes the lease for this state directory's node, or says who holds it.
pub(crate) async fn take(store: Arc<dyn Store>, state_dir: &Path) -> anyhow::Result<Held> {
    let holder = holder_name(state_dir)?;
    let taken = store
        .take_lease(LEASE, &holder, TTL)
        .await
        .context("cannot take the in-process node's lease")?;
    anyhow::ensure!(
        taken.is_some(),
        "another berth serve runs the groups of this database (it holds the lease \
         `{LEASE}`; it is free {} s after that berth stops); run one berth serve per database",
        TTL.as_secs()
    );
    tracing::info!(holder = %holder, "holding the in-process node's lease");
    let lost = Arc::new(Notify::new());
    let renewer = tokio::spawn(renew(store.clone(), holder.clone(), lost.clone()));
    Ok(Held {
        store,
        holder,
        lost,
        renewer,
    })
}

async fn renew(store: Arc<dyn Store>, holder: String, lost: Arc<Notify>) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.take_lease(LEASE, &holder, TTL).await {
            Ok(Some(_)) => last_renewed = Instant::now(),
            Ok(None) => {
                tracing::error!("another berth serve took the in-process node's lease");
                lost.notify_one();
                return;
            }
            Err(e) if last_renewed.elapsed() > TTL * 2 / 3 => {
                tracing::error!(error = %e, "the in-process node's lease could not be renewed in time");
                lost.notify_one();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the in-process node's lease"),
        }
    }
}

impl Held {
    /// Resolves when the lease is lost.
    pub(crate) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let lost = self.lost.clone();
        async move { lost.notified().await }
    }

    /// Stops renewing and hands the lease over at once.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.store.release_lease(LEASE, &self.holder).await {
            tracing::warn!(error = %e, "cannot release the in-process node's lease");
        }
    }
}

/// `HOST/ID`: this host's name and the state directory's node id, made on first use.
pub(crate) fn holder_name(state_dir: &Path) -> anyhow::Result<String> {
    let path = state_dir.join(ID_FILE);
    let id = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{id}").with_context(|| format!("cannot write {}", path.display()))?;
            id
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    anyhow::ensure!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{} does not hold a node id (32 hex digits)",
        path.display()
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host.trim().chars().take(64).collect();
    Ok(format!("{host}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_state_directory_holds_the_lease_and_takes_it_back_after_a_crash() {
        let store: Arc<dyn Store> = Arc::new(berth_store::SqliteStore::in_memory().unwrap());
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = take(store.clone(), a.path()).await.unwrap();
        let refused = take(store.clone(), b.path()).await.err().unwrap();
        assert!(
            refused.to_string().contains("another berth serve"),
            "{refused}"
        );
        // The same state directory again (a restart after kill -9): its own lease.
        first.renewer.abort();
        let again = take(store.clone(), a.path()).await.unwrap();
        // Released: another may take it at once.
        again.release().await;
        take(store, b.path()).await.unwrap().release().await;
        std::fs::write(a.path().join(ID_FILE), "not an id\n").unwrap();
        assert!(holder_name(a.path()).is_err());
    }
}
