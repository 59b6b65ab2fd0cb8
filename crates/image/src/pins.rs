//! The pins (owner → pinned manifest digests) and their file, `pins.json`.
//!
//! A change is either durable — written and synced before the call returns, and not applied
//! if the write fails (image caches, which users create) — or deferred: applied at once in
//! memory, where collection and removal look, and written shortly after by a background
//! thread that folds every change made meanwhile into one write (container groups, which pin
//! and unpin on every start and delete). A deferred change lost in a crash costs nothing:
//! berth pins the images of every group again when it resumes them, and collection only
//! takes the least recently used images above a disk watermark.
//!
//! Writes are ordered by `written`, which is held across each write and records the
//! generation on disk, so an older snapshot never replaces a newer one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk;
use crate::error::ImageError;

pub(crate) type PinMap = BTreeMap<String, BTreeSet<String>>;

pub(crate) struct Pins {
    path: PathBuf,
    state: Mutex<State>,
    /// The generation on disk; held while writing.
    written: Mutex<u64>,
    /// A background write is scheduled or running.
    flushing: AtomicBool,
}

#[derive(Default)]
struct State {
    map: PinMap,
    generation: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pins {
    /// Reads `path` (no file: no pins).
    pub fn open(path: PathBuf) -> Result<Self, ImageError> {
        let map = disk::read_json(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            state: Mutex::new(State { map, generation: 0 }),
            written: Mutex::new(0),
            flushing: AtomicBool::new(false),
        })
    }

    /// Whether `owner` pins `digest`.
    pub fn holds(&self, owner: &str, digest: &str) -> bool {
        lock(&self.state)
            .map
            .get(owner)
            .is_some_and(|digests| digests.contains(digest))
    }

    pub fn snapshot(&self) -> PinMap {
        lock(&self.state).map.clone()
    }

    /// Applies `change` once it is on disk; on a failed write nothing changes.
    pub fn update_durable(&self, change: impl FnOnce(&mut PinMap)) -> Result<(), ImageError> {
        let mut written = lock(&self.written);
        let mut state = lock(&self.state);
        let mut next = state.map.clone();
        change(&mut next);
        next.retain(|_, digests| !digests.is_empty());
        disk::write_json(&self.path, &next)?;
        state.map = next;
        state.generation += 1;
        *written = state.generation;
        Ok(())
    }

    /// Applies `change` now and writes it soon, on a background thread.
    pub fn update_deferred(self: &Arc<Self>, change: impl FnOnce(&mut PinMap)) {
        {
            let mut state = lock(&self.state);
            change(&mut state.map);
            state.map.retain(|_, digests| !digests.is_empty());
            state.generation += 1;
        }
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let pins = self.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-pins".into())
            .spawn(move || pins.flush_in_background());
        if let Err(e) = spawned {
            self.flushing.store(false, Ordering::Release);
            tracing::warn!(error = %e, "cannot start the thread that writes pins; writing now");
            if let Err(e) = self.flush() {
                tracing::warn!(error = %e, "cannot write the image pins");
            }
        }
    }

    /// Writes the pins if memory is ahead of the file.
    pub fn flush(&self) -> Result<(), ImageError> {
        let mut written = lock(&self.written);
        let (map, generation) = {
            let state = lock(&self.state);
            if state.generation <= *written {
                return Ok(());
            }
            (state.map.clone(), state.generation)
        };
        disk::write_json(&self.path, &map)?;
        *written = generation;
        Ok(())
    }

    fn flush_in_background(&self) {
        loop {
            if let Err(e) = self.flush() {
                tracing::warn!(error = %e, "cannot write the image pins");
            }
            self.flushing.store(false, Ordering::Release);
            // A change made after the snapshot was taken, whose caller saw the flag still set.
            // One lock at a time: `flush` and `update_durable` take `written` before `state`,
            // and holding `state` while waiting for `written` deadlocked with them.
            let generation = lock(&self.state).generation;
            let behind = generation > *lock(&self.written);
            if !behind || self.flushing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(d: &[&str]) -> BTreeSet<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    fn on_disk(path: &std::path::Path) -> PinMap {
        disk::read_json(path).unwrap().unwrap_or_default()
    }

    #[test]
    fn deferred_changes_are_seen_at_once_and_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let pins = Arc::new(Pins::open(path.clone()).unwrap());
        for i in 0..50 {
            pins.update_deferred(|m| {
                m.insert(format!("group:{i}"), digests(&["sha256:a"]));
            });
            assert!(pins.snapshot().contains_key(&format!("group:{i}")));
        }
        pins.update_deferred(|m| {
            m.remove("group:7");
        });
        pins.flush().unwrap();
        let file = on_disk(&path);
        assert_eq!(file.len(), 49);
        assert!(!file.contains_key("group:7"));
        assert_eq!(file, pins.snapshot());
        // Reopening reads what was written.
        assert_eq!(Pins::open(path).unwrap().snapshot(), file);
    }

    #[test]
    fn a_durable_change_is_never_overwritten_by_an_older_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let pins = Arc::new(Pins::open(path.clone()).unwrap());
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let pins = pins.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        pins.update_deferred(|m| {
                            m.insert(format!("group:{t}-{i}"), digests(&["sha256:a"]));
                        });
                    }
                })
            })
            .collect();
        pins.update_durable(|m| {
            m.insert("cache:c".into(), digests(&["sha256:b"]));
        })
        .unwrap();
        assert!(on_disk(&path).contains_key("cache:c"));
        for w in writers {
            w.join().unwrap();
        }
        pins.flush().unwrap();
        let file = on_disk(&path);
        assert_eq!(file.len(), 101, "{:?}", file.keys().collect::<Vec<_>>());
        assert!(file.contains_key("cache:c"));
    }

    #[test]
    fn a_failed_durable_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("pins.json");
        let pins = Pins::open(path).unwrap();
        let res = pins.update_durable(|m| {
            m.insert("cache:c".into(), digests(&["sha256:b"]));
        });
        assert!(res.is_err());
        assert!(pins.snapshot().is_empty());
    }
}
