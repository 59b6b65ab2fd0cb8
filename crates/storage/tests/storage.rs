//! The storage against a real btrfs filesystem on a loop device (needs root and
//! btrfs-progs; fails, not skips, without them).

use std::io::Write;

use berth_storage::{Storage, StorageConfig, StorageError, MIN_SIZE};

fn config(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        root: dir.join("storage"),
        image: Some(dir.join("storage.img")),
        image_size: 16 << 30,
    }
}

fn mounts_under(dir: &std::path::Path) -> usize {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.to_str().unwrap();
    text.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(prefix)))
        .count()
}

fn loop_devices_of(image: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("loop") {
            continue;
        }
        if let Ok(back) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            if back.trim() == image.to_str().unwrap() {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn a_group_storage_is_limited_reported_and_removed_without_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let storage = Storage::open(&cfg).expect("open (needs root and btrfs-progs)");
    let path = storage.create("eci-test-a", MIN_SIZE).unwrap();
    assert!(path.is_dir());
    // Writing past the limit fails with EDQUOT; the other group is unaffected.
    let other = storage.create("eci-test-b", 2 * MIN_SIZE).unwrap();
    let mut f = std::fs::File::create(path.join("fill")).unwrap();
    let chunk = vec![7u8; 8 << 20];
    let mut written = 0u64;
    let err = loop {
        match f.write_all(&chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) => break e,
        }
        assert!(written <= 2 * MIN_SIZE, "the limit was not enforced");
    };
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    assert!(
        written >= MIN_SIZE - (64 << 20),
        "stopped early at {written}"
    );
    drop(f);
    let usage = storage.usage("eci-test-a").unwrap();
    assert_eq!(usage.limit, MIN_SIZE);
    assert!(usage.used >= written, "{usage:?} < {written}");
    std::fs::write(other.join("ok"), b"fine").unwrap();
    assert_eq!(storage.list().unwrap(), vec!["eci-test-a", "eci-test-b"]);

    // Re-opening (a restart of berth) finds the mount and the storages.
    let again = Storage::open(&cfg).unwrap();
    assert_eq!(again.list().unwrap().len(), 2);
    drop(again);

    storage.remove("eci-test-a").unwrap();
    storage.remove("eci-test-a").unwrap();
    assert!(matches!(
        storage.usage("eci-test-a"),
        Err(StorageError::NotFound(_))
    ));
    // Not empty: closing keeps the mount.
    assert!(!storage.unmount_if_empty().unwrap());
    storage.remove("eci-test-b").unwrap();
    assert!(storage.unmount_if_empty().unwrap());
    assert_eq!(mounts_under(dir.path()), 0);
    assert_eq!(loop_devices_of(&cfg.image.clone().unwrap()), 0);
}

#[test]
fn names_and_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let storage = Storage::open(&cfg).expect("open (needs root and btrfs-progs)");
    for bad in ["", "..", "a/b", "A", "x".repeat(65).as_str()] {
        assert!(
            matches!(
                storage.create(bad, MIN_SIZE),
                Err(StorageError::InvalidName(_))
            ),
            "{bad}"
        );
        assert!(storage.remove(bad).is_err());
    }
    assert!(matches!(
        storage.create("small", MIN_SIZE - 1),
        Err(StorageError::InvalidSize(_))
    ));
    // A plain directory planted under the root is not a storage and is not deleted.
    std::fs::create_dir(storage.path("planted")).unwrap();
    assert!(matches!(
        storage.usage("planted"),
        Err(StorageError::NotFound(_))
    ));
    assert!(storage.list().unwrap().is_empty());
    std::fs::remove_dir(storage.path("planted")).unwrap();
    assert!(storage.unmount_if_empty().unwrap());
}

#[test]
fn a_directory_that_is_not_btrfs_is_refused_without_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        root: dir.path().join("plain"),
        image: None,
        image_size: 0,
    };
    assert!(matches!(
        Storage::open(&cfg),
        Err(StorageError::NotBtrfs { .. })
    ));
}
