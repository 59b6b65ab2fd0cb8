//! Which account may use which stored image: the proofs an account gave that it may pull an
//! image, kept in memory and on disk, one file per account.
//!
//! ```text
//! <root>/access/<sha256 of the account>.json   { account, digests, checked }
//! ```
//!
//! An account proves an image in one of these ways (see [`ImageStore::ensure`]):
//! * **its own pull** (`digests[d].sources` holds `pull`): the registry served manifest `d`
//!   to the account's credentials (or anonymously). Lasting: the account got that content.
//! * **one of its image caches** (`cache:<id>`): the cache was built for the account, each of
//!   its images proved as here; the source goes when the cache is deleted.
//! * **a registry check** (`checked[registry/repository]`): a manifest `HEAD` with the
//!   account's credentials (or anonymous) succeeded. It counts for the store's TTL
//!   ([`ImageStore::set_access_ttl`], 300 s by default) from when it passed, also across a
//!   restart; a refusal is never recorded, so a retry is checked afresh.
//!
//! Images imported by the operator and the images a group resolved before (its pins) need no
//! proof. Everything here only grows by a successful registry answer or a cache build, and is
//! written (temporary file, fsync, rename) before the image is handed out; a failed write
//! leaves the proof in memory only (logged), so the worst a crash costs is one more check.
//!
//! [`ImageStore::ensure`]: crate::ImageStore::ensure
//! [`ImageStore::set_access_ttl`]: crate::ImageStore::set_access_ttl

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::disk;
use crate::error::ImageError;

/// How long a passed registry check counts by default.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(300);

/// The source of a proof by the account's own pull.
const PULL: &str = "pull";

/// The key of proofs by repository: `registry host/repository`.
pub(crate) fn repository_of(reference: &oci_client::Reference) -> String {
    format!(
        "{}/{}",
        crate::reference::registry_host(reference.registry()),
        reference.repository()
    )
}

/// The source of a proof by image cache `id`.
pub(crate) fn cache_source(id: &str) -> String {
    format!("cache:{id}")
}

/// What one account proved.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AccountProofs {
    account: String,
    /// Manifest digest → how the account proved it.
    #[serde(default)]
    digests: BTreeMap<String, DigestProof>,
    /// `registry/repository` → when a registry check with the account's credentials passed.
    #[serde(default)]
    checked: BTreeMap<String, SystemTime>,
}

impl AccountProofs {
    fn add(&mut self, repository: &str, digest: &str, source: &str) {
        let proof = self
            .digests
            .entry(digest.to_owned())
            .or_insert_with(|| DigestProof {
                repository: repository.to_owned(),
                sources: BTreeSet::new(),
                proved_at: SystemTime::now(),
            });
        proof.sources.insert(source.to_owned());
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DigestProof {
    /// `registry/repository` it was proved from.
    repository: String,
    /// `pull`, `cache:<id>`.
    sources: BTreeSet<String>,
    /// The first proof.
    proved_at: SystemTime,
}

/// The proofs of every account, and their files.
pub(crate) struct Access {
    dir: PathBuf,
    ttl: Mutex<Duration>,
    state: Mutex<HashMap<String, AccountProofs>>,
    /// Held across a write, so the last writer of an account writes its latest proofs.
    written: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Access {
    /// Reads the proofs under `dir` (made if missing); unreadable files are skipped with a
    /// warning (their accounts prove again).
    pub fn open(dir: PathBuf) -> Result<Self, ImageError> {
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::io("creating", &dir, e))?;
        let mut state = HashMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                // Temporary files of an interrupted write.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match disk::read_json::<AccountProofs>(&path) {
                Ok(Some(p)) if path == file_of(&dir, &p.account) => {
                    state.insert(p.account.clone(), p);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring unreadable image access record"),
            }
        }
        Ok(Self {
            dir,
            ttl: Mutex::new(DEFAULT_ACCESS_TTL),
            state: Mutex::new(state),
            written: Mutex::new(()),
        })
    }

    pub fn set_ttl(&self, ttl: Duration) {
        *lock(&self.ttl) = ttl;
    }

    pub fn ttl(&self) -> Duration {
        *lock(&self.ttl)
    }

    /// Whether `account` proved manifest `digest` by a pull or an image cache of its own.
    pub fn holds_digest(&self, account: &str, digest: &str) -> bool {
        lock(&self.state)
            .get(account)
            .and_then(|p| p.digests.get(digest))
            .is_some_and(|d| !d.sources.is_empty())
    }

    /// Whether a registry check of `repository` by `account` passed less than the TTL ago.
    pub fn checked_recently(&self, account: &str, repository: &str) -> bool {
        self.checked_recently_at(account, repository, SystemTime::now())
    }

    /// Whether a check of `repository` by `account` is younger than the TTL at `now`.
    fn checked_recently_at(&self, account: &str, repository: &str, now: SystemTime) -> bool {
        let ttl = self.ttl();
        let at = lock(&self.state)
            .get(account)
            .and_then(|p| p.checked.get(repository).copied());
        at.is_some_and(|at| fresh(at, ttl, now))
    }

    /// Records that a registry check of `repository` by `account` passed now.
    pub fn record_check(&self, account: &str, repository: &str) {
        self.change(account, |p| {
            p.checked.insert(repository.to_owned(), SystemTime::now());
        });
    }

    /// Records that `account` proved `digest` of `repository` by `source`.
    pub fn record_digest(&self, account: &str, repository: &str, digest: &str, source: &str) {
        self.change(account, |p| p.add(repository, digest, source));
    }

    /// Records a pull of `digest` from `repository` by `account`: a lasting proof of the
    /// digest, and a passed check of the repository.
    pub fn record_pull(&self, account: &str, repository: &str, digest: &str) {
        self.change(account, |p| {
            p.add(repository, digest, PULL);
            p.checked.insert(repository.to_owned(), SystemTime::now());
        });
    }

    /// Removes `source` (an image cache that is gone) from every account's proofs.
    pub fn forget_source(&self, source: &str) {
        let accounts: Vec<String> = lock(&self.state)
            .iter()
            .filter(|(_, p)| p.digests.values().any(|d| d.sources.contains(source)))
            .map(|(a, _)| a.clone())
            .collect();
        for account in accounts {
            self.change(&account, |p| {
                for d in p.digests.values_mut() {
                    d.sources.remove(source);
                }
            });
        }
    }

    /// Applies `change` to the proofs of `account` and writes them.
    fn change(&self, account: &str, change: impl FnOnce(&mut AccountProofs)) {
        let _written = lock(&self.written);
        let ttl = self.ttl();
        let snapshot = {
            let mut state = lock(&self.state);
            let proofs = state
                .entry(account.to_owned())
                .or_insert_with(|| AccountProofs {
                    account: account.to_owned(),
                    ..AccountProofs::default()
                });
            change(proofs);
            let now = SystemTime::now();
            proofs.digests.retain(|_, d| !d.sources.is_empty());
            proofs.checked.retain(|_, at| fresh(*at, ttl, now));
            proofs.clone()
        };
        let path = file_of(&self.dir, account);
        let res = if snapshot.digests.is_empty() && snapshot.checked.is_empty() {
            disk::remove_file(&path)
        } else {
            disk::write_json(&path, &snapshot)
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot write an image access record; it holds in memory");
        }
    }
}

/// Whether something that happened `at` is less than `ttl` old at `now`; a time in the
/// future (the clock went back) is not.
fn fresh(at: SystemTime, ttl: Duration, now: SystemTime) -> bool {
    now.duration_since(at).is_ok_and(|age| age < ttl)
}

fn file_of(dir: &std::path::Path, account: &str) -> PathBuf {
    dir.join(format!(
        "{}.json",
        hex::encode(Sha256::digest(account.as_bytes()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "registry.example/team/app";
    const DIGEST: &str = "sha256:aaaa";

    #[test]
    fn proofs_are_per_account_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path().join("access")).unwrap();
        access.record_pull("a", REPO, DIGEST);
        assert!(access.holds_digest("a", DIGEST));
        assert!(access.checked_recently("a", REPO));
        assert!(!access.holds_digest("b", DIGEST));
        assert!(!access.checked_recently("b", REPO));

        let again = Access::open(dir.path().join("access")).unwrap();
        assert!(again.holds_digest("a", DIGEST));
        assert!(again.checked_recently("a", REPO));
        assert!(!again.holds_digest("b", DIGEST));
    }

    #[test]
    fn a_check_counts_for_the_ttl_only() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path().join("access")).unwrap();
        access.set_ttl(Duration::from_secs(60));
        let before = SystemTime::now();
        access.record_check("a", REPO);
        assert!(access.checked_recently("a", REPO));
        let later = before + Duration::from_secs(61);
        assert!(!access.checked_recently_at("a", REPO, later));
        // Nor after a reopen: the time of the check is what is kept.
        let again = Access::open(dir.path().join("access")).unwrap();
        again.set_ttl(Duration::from_secs(60));
        assert!(again.checked_recently("a", REPO));
        assert!(!again.checked_recently_at("a", REPO, later));
        // A TTL of zero never remembers.
        access.set_ttl(Duration::ZERO);
        access.record_check("a", REPO);
        assert!(!access.checked_recently("a", REPO));
    }

    #[test]
    fn the_ttl_is_measured_from_the_check_and_not_from_the_future() {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(300);
        assert!(fresh(now - Duration::from_secs(299), ttl, now));
        assert!(!fresh(now - Duration::from_secs(300), ttl, now));
        assert!(!fresh(now + Duration::from_secs(5), ttl, now));
    }

    #[test]
    fn a_cache_proof_goes_with_its_cache_and_a_pull_stays() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path().join("access")).unwrap();
        access.record_digest("a", REPO, DIGEST, &cache_source("c1"));
        access.record_digest("a", REPO, "sha256:bbbb", &cache_source("c1"));
        access.record_digest("a", REPO, "sha256:bbbb", PULL);
        access.forget_source(&cache_source("c1"));
        assert!(!access.holds_digest("a", DIGEST));
        assert!(access.holds_digest("a", "sha256:bbbb"));
        let again = Access::open(dir.path().join("access")).unwrap();
        assert!(!again.holds_digest("a", DIGEST));
        assert!(again.holds_digest("a", "sha256:bbbb"));
    }

    #[test]
    fn an_account_with_nothing_left_has_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path().join("access")).unwrap();
        access.record_digest("a", REPO, DIGEST, &cache_source("c1"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("access"))
                .unwrap()
                .count(),
            1
        );
        access.forget_source(&cache_source("c1"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("access"))
                .unwrap()
                .count(),
            0
        );
    }
}
