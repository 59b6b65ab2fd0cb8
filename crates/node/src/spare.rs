//! Disk directories of groups made ahead of time.
//!
//! A group's start needs about ten new inodes on disk: its writable-layer directory with
//! the `/etc` files, a container's overlay upper and work directories, its log directory and
//! first log file. On a journal-less ext4 after many deletes, each allocation scans past
//! every recently deleted inode; in a burst of 100 starts that was ~14 % of all CPU time
//! (perf: `recently_deleted`, `find_inode_bit`, `find_get_block_common` under berth's
//! workers). So berth keeps spare skeletons, made while the host is quiet, and a new group
//! takes one with two renames, which allocate nothing:
//!
//! ```text
//! spare/<slot>.rw/.etc/{hosts,hostname,resolv.conf}   -> rw/<group>/.etc/...
//! spare/<slot>.rw/.ctr/{upper,work}                   -> rw/<group>/<first container>/...
//! spare/<slot>.logs/.ctr/0.log                        -> logs/<group>/<first container>/0.log
//! ```
//!
//! The `.ctr` skeletons become the first container's directories when it first starts (see
//! [`take_container_skeleton`]); container names never start with a dot. Slots are plain
//! empty directories and files: one left half made by a crash is removed at the next start.
//!
//! With sized temporary storage the writable half of a slot is a subvolume of the storage
//! filesystem, `spare-<slot>` (made as `making-<slot>`), renamed to the group's id when
//! taken: a subvolume cannot be renamed out of its filesystem, and files cannot move between
//! subvolumes. Those slots are removed when berth stops, so that the storage filesystem is
//! unmounted with the last group.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_storage::Storage;
use tokio::sync::Notify;

use crate::files::{GroupDirs, NodeDirs};

/// The skeleton of a container's directories inside a group's trees.
const SKELETON: &str = ".ctr";

/// The spare slots of a node.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    /// Where the writable halves live: `None` beside the log halves in `dir`.
    storage: Option<Arc<Storage>>,
    target: usize,
    ready: Arc<Mutex<VecDeque<String>>>,
    wake: Notify,
    claims: AtomicU64,
    /// Held while a slot is made and handed to `ready`, and by [`Spares::drain`]: a slot
    /// being made when berth stops is either drained or never made, so the storage
    /// filesystem is left empty.
    making: Arc<Mutex<bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spares {
    /// Spares under `dirs`' node root (`spare/`), kept at `target` slots; adopts the complete
    /// slots an earlier berth made and removes the rest.
    pub fn open(dirs: &NodeDirs, storage: Option<Arc<Storage>>, target: usize) -> io::Result<Self> {
        let dir = dirs.spare.clone();
        fs::create_dir_all(&dir)?;
        let mut names: Vec<String> = fs::read_dir(&dir)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let stored: Vec<String> = match &storage {
            Some(st) => st.list().map_err(io::Error::other)?,
            None => Vec::new(),
        };
        let mut ready = VecDeque::new();
        for name in &names {
            let Some(slot) = name.strip_suffix(".logs") else {
                continue;
            };
            let rw_ok = match &storage {
                None => is_complete_rw(&dir.join(format!("{slot}.rw"))),
                Some(st) => {
                    stored.iter().any(|n| *n == format!("spare-{slot}"))
                        && is_complete_rw(&st.path(&format!("spare-{slot}")))
                }
            };
            if rw_ok && is_complete_logs(&dir, slot) && ready.len() < target {
                ready.push_back(slot.to_owned());
            }
        }
        for name in names {
            let slot = name
                .strip_suffix(".rw")
                .or_else(|| name.strip_suffix(".logs"))
                .unwrap_or(&name);
            if !ready.iter().any(|r| r == slot) {
                remove_any(&dir.join(&name))?;
            }
        }
        if let Some(st) = &storage {
            for name in stored {
                let slot = name
                    .strip_prefix("spare-")
                    .or_else(|| name.strip_prefix("making-"));
                if slot.is_some_and(|slot| {
                    !ready.iter().any(|r| r == slot) || name.starts_with("making-")
                }) {
                    st.remove(&name).map_err(io::Error::other)?;
                }
            }
        }
        Ok(Self {
            dir,
            storage,
            target,
            ready: Arc::new(Mutex::new(ready)),
            making: Arc::default(),
            wake: Notify::new(),
            claims: AtomicU64::new(0),
        })
    }

    /// Slots ready to be taken.
    pub fn ready(&self) -> usize {
        lock(&self.ready).len()
    }

    /// Gives a new group a slot: its `rw` and `logs` directories must not exist yet. Returns
    /// whether it got one (without, its directories are made as they are needed).
    pub fn claim(&self, group: &GroupDirs) -> bool {
        if group.rw.exists() || group.logs.exists() {
            return false;
        }
        loop {
            let Some(slot) = lock(&self.ready).pop_front() else {
                return false;
            };
            self.claims.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
            let rw = self.rw_of(&slot);
            let logs = self.dir.join(format!("{slot}.logs"));
            match fs::rename(&rw, &group.rw) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(slot, error = %e, "spare directory unusable");
                    let _ = self.remove_rw(&slot);
                    let _ = remove_any(&logs);
                    continue;
                }
            }
            if let Err(e) = fs::rename(&logs, &group.logs) {
                // The logs are made as they are needed; the writable tree is the group's.
                tracing::warn!(slot, error = %e, "spare log directory unusable");
                let _ = remove_any(&logs);
            }
            return true;
        }
    }

    /// Keeps the spares at their target, forever: refills once no group took a slot and no
    /// start was in progress (`starting`) for a moment, so the disk work does not compete
    /// with starting groups.
    pub async fn maintain(&self, starting: &AtomicUsize) {
        loop {
            if self.ready() >= self.target {
                self.wake.notified().await;
            }
            crate::quiet::until_quiet(&self.claims, starting).await;
            while self.ready() < self.target {
                let seen = self.claims.load(Ordering::Relaxed);
                let dir = self.dir.clone();
                let storage = self.storage.clone();
                let (ready, making) = (Arc::clone(&self.ready), Arc::clone(&self.making));
                let made = tokio::task::spawn_blocking(move || {
                    let closed = lock(&making);
                    if *closed {
                        return None;
                    }
                    let made = make_slot(&dir, storage.as_deref());
                    if let Ok(slot) = &made {
                        lock(&ready).push_back(slot.clone());
                    }
                    Some(made)
                })
                .await;
                match made {
                    Ok(None) => return,
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "cannot make a spare group directory");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the task making spare directories failed");
                        break;
                    }
                }
                if self.claims.load(Ordering::Relaxed) != seen
                    || starting.load(Ordering::Relaxed) != 0
                {
                    break;
                }
            }
        }
    }
}

impl Spares {
    fn rw_of(&self, slot: &str) -> PathBuf {
        match &self.storage {
            None => self.dir.join(format!("{slot}.rw")),
            Some(st) => st.path(&format!("spare-{slot}")),
        }
    }

    fn remove_rw(&self, slot: &str) -> io::Result<()> {
        match &self.storage {
            None => remove_any(&self.dir.join(format!("{slot}.rw"))),
            Some(st) => st
                .remove(&format!("spare-{slot}"))
                .map_err(io::Error::other),
        }
    }

    /// Removes every slot (when berth stops with sized storage, whose filesystem is
    /// unmounted once no subvolume is left in it).
    pub fn drain(&self) {
        // Waits for a slot being made; none is made after this.
        let mut closed = lock(&self.making);
        *closed = true;
        let slots: Vec<String> = lock(&self.ready).drain(..).collect();
        for slot in slots {
            if let Err(e) = self.remove_rw(&slot) {
                tracing::warn!(slot, error = %e, "cannot remove a spare directory");
            }
            let _ = remove_any(&self.dir.join(format!("{slot}.logs")));
        }
    }
}

/// Makes the first start of container `name` use the group's skeleton directories, when it
/// has them and the container has none yet.
pub fn take_container_skeleton(group: &GroupDirs, name: &str) {
    for (tree, target) in [
        (&group.rw, group.container_rw(name)),
        (&group.logs, group.logs(name)),
    ] {
        let skeleton = tree.join(SKELETON);
        if !target.exists() && skeleton.is_dir() {
            if let Err(e) = fs::rename(&skeleton, &target) {
                tracing::debug!(path = %skeleton.display(), error = %e, "skeleton not taken");
            }
        }
    }
}

fn new_slot_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{nanos:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Makes one slot; the writable directory is renamed into place last, so a slot is
/// complete exactly when it exists with its `.logs`.
fn make_slot(dir: &Path, storage: Option<&Storage>) -> io::Result<String> {
    let slot = new_slot_name();
    let logs = dir.join(format!("{slot}.logs"));
    let (rw_tmp, rw) = match storage {
        None => (
            dir.join(format!("{slot}.rw-making")),
            dir.join(format!("{slot}.rw")),
        ),
        Some(st) => (
            st.path(&format!("making-{slot}")),
            st.path(&format!("spare-{slot}")),
        ),
    };
    let made = (|| {
        fs::create_dir_all(logs.join(SKELETON))?;
        fs::File::create(logs.join(SKELETON).join("0.log"))?;
        if let Some(st) = storage {
            st.create_unlimited(&format!("making-{slot}"))
                .map_err(io::Error::other)?;
        }
        let etc = rw_tmp.join(".etc");
        fs::create_dir_all(&etc)?;
        for f in ["hosts", "hostname", "resolv.conf"] {
            fs::File::create(etc.join(f))?;
        }
        fs::create_dir_all(rw_tmp.join(SKELETON).join("upper"))?;
        fs::create_dir_all(rw_tmp.join(SKELETON).join("work"))?;
        fs::rename(&rw_tmp, &rw)
    })();
    if let Err(e) = made {
        match storage {
            None => {
                let _ = remove_any(&rw_tmp);
            }
            Some(st) => {
                let _ = st.remove(&format!("making-{slot}"));
            }
        }
        let _ = remove_any(&logs);
        return Err(e);
    }
    Ok(slot)
}

fn is_complete_rw(rw: &Path) -> bool {
    ["hosts", "hostname", "resolv.conf"]
        .iter()
        .all(|f| rw.join(".etc").join(f).is_file())
        && rw.join(SKELETON).join("upper").is_dir()
        && rw.join(SKELETON).join("work").is_dir()
}

fn is_complete_logs(dir: &Path, slot: &str) -> bool {
    dir.join(format!("{slot}.logs"))
        .join(SKELETON)
        .join("0.log")
        .is_file()
}

fn remove_any(path: &Path) -> io::Result<()> {
    let res = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match res {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &Path) -> NodeDirs {
        let dirs = NodeDirs::new(dir);
        fs::create_dir_all(&dirs.rw).unwrap();
        fs::create_dir_all(&dirs.logs).unwrap();
        dirs
    }

    #[tokio::test]
    async fn groups_take_slots_and_containers_their_skeletons() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = node(tmp.path());
        let spares = std::sync::Arc::new(Spares::open(&dirs, None, 2).unwrap());
        let s = spares.clone();
        let task = tokio::spawn(async move { s.maintain(&AtomicUsize::new(0)).await });
        spares.wake.notify_one();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while spares.ready() < 2 {
            assert!(std::time::Instant::now() < deadline, "spares not made");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let g = dirs.group("eci-a");
        assert!(spares.claim(&g));
        assert!(g.etc().join("hosts").is_file());
        take_container_skeleton(&g, "web");
        assert!(g.container_rw("web").join("upper").is_dir());
        assert!(g.container_rw("web").join("work").is_dir());
        assert!(g.log_file("web", 0).is_file());
        assert!(!g.rw.join(SKELETON).exists() && !g.logs.join(SKELETON).exists());
        // A second container of the group makes its own directories.
        take_container_skeleton(&g, "side");
        assert!(!g.container_rw("side").exists());
        // A group whose directories exist (resumed) takes no slot.
        assert!(!spares.claim(&g));
        assert_eq!(spares.ready(), 1);
        // The taken slot is made again once things are quiet.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while spares.ready() < 2 {
            assert!(std::time::Instant::now() < deadline, "spare not refilled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }

    #[test]
    fn complete_slots_are_adopted_and_broken_ones_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = node(tmp.path());
        fs::create_dir_all(&dirs.spare).unwrap();
        let good = make_slot(&dirs.spare, None).unwrap();
        let half = make_slot(&dirs.spare, None).unwrap();
        fs::remove_file(dirs.spare.join(format!("{half}.logs/.ctr/0.log"))).unwrap();
        fs::create_dir_all(dirs.spare.join("x.rw-making/.etc")).unwrap();
        let spares = Spares::open(&dirs, None, 8).unwrap();
        assert_eq!(*lock(&spares.ready), VecDeque::from([good.clone()]));
        let mut left: Vec<String> = fs::read_dir(&dirs.spare)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{good}.logs"), format!("{good}.rw")]);
    }
}
