//! ConfigFile volumes laid out as the kubelet's AtomicWriter lays out configMap, secret,
//! projected and downwardAPI volumes, so that their files can change under running
//! containers and a reader never sees half of a change:
//!
//! ```text
//! VOLUME/..2026_12_04_16_30_00.123456789/   the files, written whole before anyone sees them
//! VOLUME/..data -> ..2026_12_04_16_30_00.123456789
//! VOLUME/NAME -> ..data/NAME                 each top-level name of the files
//! ```
//!
//! A change ([`update`]) writes the new files into a new timestamped directory, points a new
//! `..data_tmp` link at it and renames that over `..data` (one `rename`: a reader opens the
//! old set or the new one), adds the links of new top-level names, removes those of names
//! that went, and removes the former timestamped directories. A container mounts the volume
//! itself (read-only), so it sees the change; a `SubPath` mount is bound from the file or
//! directory it named when the container started and keeps that content, as with the
//! kubelet: the directory it was bound from is kept ([`Pins`]) until no mount uses it.
//!
//! Everything here is berth's own: the volume is mounted read-only into the containers and
//! lies beside, not inside, their writable trees, so no name below it is the tenant's.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use berth_core::ConfigFile;

use super::{chown, Owner};

/// The link to the current set of files.
const DATA: &str = "..data";
/// The link made beside it and renamed over it.
const DATA_TMP: &str = "..data_tmp";

/// Whether the volume in `dir` has this layout (volumes made by an earlier berth hold their
/// files directly and are made anew on a change).
pub fn is_atomic(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(DATA)).is_ok_and(|m| m.file_type().is_symlink())
}

/// Makes the volume in `<dir>.tmp` and renames it to `dir`: a volume is there whole or not
/// at all.
pub fn create(
    dir: &Path,
    files: &[ConfigFile],
    default_mode: Option<u32>,
    who: Owner,
) -> io::Result<()> {
    let tmp = dir.with_extension("tmp");
    remove_tree(&tmp)?;
    fs::DirBuilder::new().mode(0o755).create(&tmp)?;
    own_dir(&tmp, who)?;
    let ts = new_payload_dir(&tmp)?;
    write_payload(&tmp.join(&ts), files, default_mode, who)?;
    link(&ts, &tmp.join(DATA), who)?;
    for name in top_level(files) {
        link(format!("{DATA}/{name}"), &tmp.join(&name), who)?;
    }
    fs::rename(&tmp, dir)
}

/// The files of a volume made with [`create`] become `files`, in place (see the module's
/// documentation). Former timestamped directories a `SubPath` mount uses (`pins`) stay.
pub fn update(
    dir: &Path,
    files: &[ConfigFile],
    default_mode: Option<u32>,
    who: Owner,
    pins: &Pins,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() || !is_atomic(dir) {
        return Err(io::Error::other(format!(
            "{} is not a volume berth can change in place",
            dir.display()
        )));
    }
    let ts = new_payload_dir(dir)?;
    if let Err(e) = write_payload(&dir.join(&ts), files, default_mode, who) {
        let _ = remove_tree(&dir.join(&ts));
        return Err(e);
    }
    remove_file(&dir.join(DATA_TMP))?;
    link(&ts, &dir.join(DATA_TMP), who)?;
    fs::rename(dir.join(DATA_TMP), dir.join(DATA))?;
    let wanted = top_level(files);
    for name in &wanted {
        match link(format!("{DATA}/{name}"), &dir.join(name), who) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != DATA && name != ts && e.file_type()?.is_dir() && !pins.holds(&e.path())? {
                remove_tree(&e.path())?;
            }
        } else if !wanted.contains(&name) && e.file_type()?.is_symlink() {
            remove_file(&e.path())?;
        }
    }
    Ok(())
}

/// The files and directories `SubPath` mounts were bound from, by device and inode (a bind
/// mount's root is the inode it was bound from).
#[derive(Debug, Default)]
pub struct Pins(HashSet<(u64, u64)>);

impl Pins {
    /// The roots of the mounts on `points` (berth's staging paths; one not mounted is its
    /// own empty placeholder, which nothing in a volume is).
    pub fn of(points: impl IntoIterator<Item = PathBuf>) -> Self {
        Self(
            points
                .into_iter()
                .filter_map(|p| fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
        )
    }

    /// Whether anything in `dir` (itself included, links not followed) is pinned.
    fn holds(&self, dir: &Path) -> io::Result<bool> {
        if self.0.is_empty() {
            return Ok(false);
        }
        let mut todo = vec![dir.to_path_buf()];
        while let Some(p) = todo.pop() {
            let m = fs::symlink_metadata(&p)?;
            if self.0.contains(&(m.dev(), m.ino())) {
                return Ok(true);
            }
            if m.is_dir() {
                for e in fs::read_dir(&p)? {
                    todo.push(e?.path());
                }
            }
        }
        Ok(false)
    }
}

/// A new, empty timestamped directory in `dir`; its name.
fn new_payload_dir(dir: &Path) -> io::Result<String> {
    let mut attempt = 0;
    loop {
        let name = chrono::Utc::now()
            .format("..%Y_%m_%d_%H_%M_%S%.9f")
            .to_string();
        match fs::DirBuilder::new().mode(0o755).create(dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The first part of every file's path: the names the volume shows.
fn top_level(files: &[ConfigFile]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| f.path.split('/').find(|p| !p.is_empty() && *p != "."))
        .map(str::to_string)
        .collect()
}

/// Writes the files into the new, empty directory `root`, with their modes and owner.
fn write_payload(
    root: &Path,
    files: &[ConfigFile],
    default_mode: Option<u32>,
    who: Owner,
) -> io::Result<()> {
    let mut dirs = fs::DirBuilder::new();
    dirs.recursive(true).mode(0o755);
    for f in files {
        // Checked by the API: relative, without `..`, its first part not `..`-prefixed.
        let path = root.join(&f.path);
        if let Some(parent) = path.parent() {
            dirs.create(parent)?;
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(f.content.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut out = File::create(&path)?;
        out.write_all(&data)?;
        let mode = f
            .mode
            .or(default_mode)
            .unwrap_or(berth_core::volume::DEFAULT_CONFIG_MODE);
        // With an FsGroup, readable by its members whatever the mode (as the kubelet does).
        let mode = if who.fs_group { mode | 0o440 } else { mode };
        chown(&out, who)?;
        out.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
        out.sync_all()?;
    }
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        own_dir(&d, who)?;
        for e in fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                todo.push(e.path());
            }
        }
    }
    Ok(())
}

/// A directory of the volume belongs to `who` (set-group-id with an `FsGroup`).
/// A link of the layout, owned as the volume's files are (with a user namespace, a link left
/// to the host's root would show as `nobody` in the container).
fn link(target: impl AsRef<Path>, path: &Path, who: Owner) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)?;
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid))
}

fn own_dir(d: &Path, who: Owner) -> io::Result<()> {
    let f = File::open(d)?;
    chown(&f, who)?;
    if who.fs_group {
        f.set_permissions(fs::Permissions::from_mode(0o2755))?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> ConfigFile {
        ConfigFile {
            path: path.into(),
            content: base64::engine::general_purpose::STANDARD.encode(content),
            mode: None,
        }
    }

    fn root() -> Owner {
        super::super::owner(None, None)
    }

    fn payload_dirs(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        out.sort();
        out
    }

    /// Root test: the files change behind one rename; names that went are gone, new ones
    /// are there, one open before the change still reads the old content.
    #[test]
    fn an_update_swaps_the_whole_set_at_once() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        create(&dir, &[file("a", "1"), file("d/b", "2")], None, root()).unwrap();
        assert!(is_atomic(&dir));
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.join("d/b")).unwrap(), "2");
        let mode = fs::metadata(dir.join("a")).unwrap().mode() & 0o777;
        assert_eq!(mode, berth_core::volume::DEFAULT_CONFIG_MODE);
        let mut before = File::open(dir.join("a")).unwrap();
        let first = fs::read_link(dir.join(DATA)).unwrap();

        let next = [file("a", "one"), file("c", "3")];
        update(&dir, &next, Some(0o600), root(), &Pins::default()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert_eq!(fs::metadata(dir.join("c")).unwrap().mode() & 0o777, 0o600);
        assert!(
            fs::symlink_metadata(dir.join("d")).is_err(),
            "a name that went"
        );
        assert_ne!(fs::read_link(dir.join(DATA)).unwrap(), first);
        assert_eq!(payload_dirs(&dir).len(), 1, "the former set is removed");
        let mut old = String::new();
        io::Read::read_to_string(&mut before, &mut old).unwrap();
        assert_eq!(old, "1", "an open file keeps its content");
    }

    /// Root test: the directory a SubPath mount was bound from stays until nothing uses it.
    #[test]
    fn a_pinned_set_stays() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        create(&dir, &[file("d/b", "2")], None, root()).unwrap();
        let first = payload_dirs(&dir);
        let pins = Pins::of([dir.join("d/b")]);
        update(&dir, &[file("d/b", "3")], None, root(), &pins).unwrap();
        assert_eq!(payload_dirs(&dir).len(), 2, "the pinned set stays");
        assert!(payload_dirs(&dir).contains(&first[0]));
        update(&dir, &[file("d/b", "4")], None, root(), &Pins::default()).unwrap();
        assert_eq!(payload_dirs(&dir).len(), 1, "removed once no mount uses it");
        assert_eq!(fs::read_to_string(dir.join("d/b")).unwrap(), "4");
    }

    #[test]
    fn a_flat_volume_is_not_changed_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a"), "1").unwrap();
        assert!(!is_atomic(&dir));
        assert!(update(&dir, &[file("a", "2")], None, root(), &Pins::default()).is_err());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
    }
}
