//! Access keys checked recently, so a request does not read its key from SQLite (a read
//! transaction: two fcntl locks and the WAL index) and open its sealed secret every time.
//!
//! Keys and accounts change through [`SqliteStore`](crate::SqliteStore) only, in this process
//! (the server) or another one (`berth admin` on the same state directory). Every such change
//! writes a new value into the *generation file* next to the database after its commit; a
//! remembered key counts only while the generation it was read under is still the current one,
//! read from that file (one `pread` of eight bytes on a descriptor kept open) on every check.
//! So a key disabled or deleted by another process is refused by the first request after the
//! command that did it returned, as when every request read the store. A change made in this
//! process also bumps a counter in memory, which is all a database in memory has.
//!
//! The generation is read *before* the store, and an entry is kept under that generation: a
//! change that commits between the two reads leaves an entry that no later check accepts.
//! Entries also expire after [`MAX_AGE`] (a writer that died between its commit and the write
//! of the file), and the cache holds at most [`MAX_ENTRIES`] keys (only keys found in the
//! store are remembered, so a stream of made-up key ids cannot grow it).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::rand_core::RngCore;

use crate::KeyCheck;

/// The generation file, in the directory of the database.
pub const GENERATION_FILE: &str = "keys.generation";

/// Longest a checked key is used without reading the store again.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// Most keys remembered; the cache starts over when full.
pub const MAX_ENTRIES: usize = 4096;

/// Which state of the keys and accounts a read saw: the generation file's value and this
/// process's own count of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Generation {
    file: u64,
    local: u64,
}

struct Entry {
    generation: Generation,
    read_at: Instant,
    check: KeyCheck,
}

pub(crate) struct KeyCache {
    /// The generation file, opened read-write; `None` for a database in memory, which
    /// remembers nothing.
    file: Option<File>,
    local: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

impl KeyCache {
    /// A cache with no generation file: for a database in memory, changed by this process only.
    pub(crate) fn in_memory() -> Self {
        Self {
            file: None,
            local: AtomicU64::new(0),
            entries: Mutex::default(),
        }
    }

    /// A cache whose generation file is `dir/keys.generation`, made (0600) if missing.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join(GENERATION_FILE))?;
        Ok(Self {
            file: Some(file),
            local: AtomicU64::new(0),
            entries: Mutex::default(),
        })
    }

    /// Whether keys are remembered at all: only when changes by other processes are seen.
    fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// The current generation; `None` when the file cannot be read (then nothing is
    /// remembered or used).
    pub(crate) fn generation(&self) -> Option<Generation> {
        let file = self.file.as_ref()?;
        let mut b = [0u8; 8];
        let n = file.read_at(&mut b, 0).ok()?;
        // A file shorter than eight bytes (new, or written by nothing yet) reads as zero.
        if n < 8 {
            b = [0; 8];
        }
        Some(Generation {
            file: u64::from_le_bytes(b),
            local: self.local.load(Ordering::Acquire),
        })
    }

    /// The key `id` as read under `generation`, if it is still current and young.
    pub(crate) fn get(&self, id: &str, generation: Generation) -> Option<KeyCheck> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(id)?;
        (e.generation == generation && e.read_at.elapsed() < MAX_AGE).then(|| e.check.clone())
    }

    /// Remembers `check`, read from the store after `generation` was read.
    pub(crate) fn put(&self, check: &KeyCheck, generation: Generation) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            check.key.access_key_id.clone(),
            Entry {
                generation,
                read_at: Instant::now(),
                check: check.clone(),
            },
        );
    }

    /// Called after a change of keys or accounts has committed: no key read before it is used
    /// again, here or in any other process with the same state directory.
    pub(crate) fn changed(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if let Some(file) = &self.file {
            // Random rather than counted: two processes changing keys at once need no lock
            // to make a value the other has not written (a repeat has odds of 2^-64).
            let next = chacha20poly1305::aead::OsRng.next_u64();
            if let Err(e) = file.write_all_at(&next.to_le_bytes(), 0) {
                tracing::warn!(error = %e, "cannot write the key generation file; other processes see the change within {} s", MAX_AGE.as_secs());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessKey;

    fn check(id: &str, active: bool) -> KeyCheck {
        KeyCheck {
            key: AccessKey {
                access_key_id: id.into(),
                account: "a".into(),
                secret: "s".into(),
            },
            active,
        }
    }

    #[test]
    fn a_change_by_another_handle_on_the_file_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let server = KeyCache::open(dir.path()).unwrap();
        let admin = KeyCache::open(dir.path()).unwrap();
        let g = server.generation().unwrap();
        server.put(&check("k", true), g);
        assert_eq!(server.get("k", g), Some(check("k", true)));
        admin.changed();
        let now = server.generation().unwrap();
        assert_ne!(now, g);
        assert_eq!(server.get("k", now), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::open(dir.path()).unwrap();
        let before = cache.generation().unwrap();
        // The change commits and bumps the generation after the reader read it, before it
        // stored what it read.
        cache.changed();
        cache.put(&check("k", true), before);
        assert_eq!(cache.get("k", cache.generation().unwrap()), None);
    }

    #[test]
    fn a_cache_in_memory_remembers_nothing() {
        let cache = KeyCache::in_memory();
        assert_eq!(cache.generation(), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::open(dir.path()).unwrap();
        let g = cache.generation().unwrap();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(&check(&format!("k{i}"), true), g);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
