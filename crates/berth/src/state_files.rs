//! The state directory kept private: the directory itself 0700, and the files that hold
//! secrets (`berth.db` with its `-wal` and `-shm` files, `credentials.json`, and the key of the
//! secrets sealed in the database, `secrets.key`) 0600. Files made before, with looser modes,
//! are tightened, and each change is logged.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Mode of the state directory.
const DIR_MODE: u32 = 0o700;
/// Mode of the database files and the credentials.
const FILE_MODE: u32 = 0o600;

/// Makes (0700) or tightens the state directory and the secrets already there (the
/// credentials, the key of the sealed secrets).
pub(crate) fn prepare(state_dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    tighten(state_dir, DIR_MODE)?;
    tighten_if_present(&state_dir.join("credentials.json"))?;
    tighten_if_present(&state_dir.join(berth_store::KEY_FILE))?;
    Ok(())
}

/// [`prepare`]s the state directory for the embedded store: tightens the database files
/// already there and creates an empty `berth.db` 0600 when there is none, so that SQLite
/// (which gives its `-wal` and `-shm` files the mode of the database) never makes a readable
/// one. Returns the database's path; call [`tighten_database`] once it is open.
pub(crate) fn prepare_database(state_dir: &Path) -> anyhow::Result<PathBuf> {
    prepare(state_dir)?;
    let db = state_dir.join("berth.db");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&db)
        .with_context(|| format!("cannot create {}", db.display()))?;
    tighten_database(&db)?;
    Ok(db)
}

/// Logs what opening the store changed: secrets it found in plain text and sealed.
pub(crate) fn opened(store: &berth_store::SqliteStore) {
    let n = store.sealed_at_open();
    if n > 0 {
        tracing::warn!(
            rows = n,
            "sealed secrets that the database held in plain text"
        );
    }
}

/// Tightens `berth.db` and its `-wal` and `-shm` files (those that exist) to 0600.
pub(crate) fn tighten_database(db: &Path) -> anyhow::Result<()> {
    tighten_if_present(db)?;
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        tighten_if_present(Path::new(&name))?;
    }
    Ok(())
}

fn tighten_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => tighten(path, FILE_MODE),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read the mode of {}", path.display())),
    }
}

/// Sets `mode` on `path` when its group or others have any permission on it; on a directory,
/// search alone (`--x`, which `berth serve --userns` gives so that containers' user namespaces
/// reach their own root filesystems) lists and reads nothing and is left.
fn tighten(path: &Path, mode: u32) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the mode of {}", path.display()))?;
    let was = meta.permissions().mode() & 0o7777;
    let loose = if meta.is_dir() { 0o066 } else { 0o077 };
    if was & loose == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot change the mode of {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{was:04o}"),
        now = format!("{mode:04o}"),
        "tightened the mode of a state file that others could read"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_state_directory_is_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let db = prepare_database(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn a_state_directory_for_another_store_holds_no_database() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert!(!dir.join("berth.db").exists());
    }

    #[test]
    fn loose_modes_are_tightened() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let names = [
            "berth.db",
            "berth.db-wal",
            "berth.db-shm",
            "credentials.json",
        ];
        for name in names {
            let p = dir.join(name);
            std::fs::write(&p, b"").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let other = dir.join("other");
        std::fs::write(&other, b"").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_database(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for name in names {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        // Only the files that hold secrets are changed.
        assert_eq!(mode(&other), 0o644);
    }

    #[test]
    fn a_stricter_mode_is_left_alone() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        prepare_database(&dir).unwrap();
        let db = dir.join("berth.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        tighten_database(&db).unwrap();
        assert_eq!(mode(&db), 0o400);
    }
}
