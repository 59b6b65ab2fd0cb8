//! Streaming unpack of one layer archive (tar, plain or gzip or zstd compressed) into a
//! directory that overlayfs can use as a lower layer.
//!
//! Whiteouts (`.wh.<name>`) become 0:0 character devices, opaque markers (`.wh..wh..opq`) become
//! `trusted.overlay.opaque=y` on their directory. Ownership, modes, mtimes, xattrs, symlinks,
//! hard links and device nodes are kept. No entry can land outside the root: `..` components
//! are refused, leading `/` are stripped and a parent component that is not a real directory
//! (a symlink, a file) is refused, so nothing is ever created through a symlink.
//!
//! Nothing in an archive is trusted for its size. The bytes written to files (sparse files
//! count their holes) and the entries are charged as they are unpacked to a [`Budget`]
//! shared by the layers of one image, which refuses what goes past its [`UnpackLimits`]. The
//! tar headers read ahead of an entry's data (long names, pax extensions, sparse maps) and the
//! bytes after the end of the archive are bounded too, so a compressed layer can neither fill
//! the disk nor the memory.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::error::{UnpackError, UnpackLimit};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Most bytes of tar headers (long names, pax extensions, sparse maps) read ahead of an
/// entry's data, and most bytes read after the end of the archive. Real ones are a few KiB.
pub const MAX_METADATA_BYTES: u64 = 1 << 20;

/// Caps on what the layers of one image may unpack to, summed over all its layers (layers
/// already stored for other images count too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes written to files, counted as they are written (the holes of sparse files
    /// included). Default [`UnpackLimits::DEFAULT_MAX_BYTES`], 10 GiB.
    pub max_bytes: u64,
    /// Archive entries of every kind (files, directories, links, devices, whiteouts).
    /// Default [`UnpackLimits::DEFAULT_MAX_ENTRIES`], 1,000,000.
    pub max_entries: u64,
}

impl UnpackLimits {
    /// 10 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
    pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;
    /// No cap at all (the tar headers stay bounded by [`MAX_METADATA_BYTES`]).
    pub const UNLIMITED: Self = Self {
        max_bytes: u64::MAX,
        max_entries: u64::MAX,
    };
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What the layers of one image have unpacked so far, against its limits. Shared by the
/// layers unpacked in parallel.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: UnpackLimits,
    bytes: AtomicU64,
    entries: AtomicU64,
}

impl Budget {
    pub fn new(limits: UnpackLimits) -> Self {
        Self {
            limits,
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` and `entries` (of a layer stored before, or written now); refuses
    /// when the image goes past a limit.
    pub fn charge(&self, bytes: u64, entries: u64) -> Result<(), UnpackError> {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if total.saturating_add(bytes) > self.limits.max_bytes {
            return Err(UnpackError::Limit {
                limit: UnpackLimit::Bytes,
                max: self.limits.max_bytes,
            });
        }
        let total = self.entries.fetch_add(entries, Ordering::Relaxed);
        if total.saturating_add(entries) > self.limits.max_entries {
            return Err(UnpackError::Limit {
                limit: UnpackLimit::Entries,
                max: self.limits.max_entries,
            });
        }
        Ok(())
    }
}

/// What one layer unpacked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unpacked {
    /// Digest of the uncompressed archive (`sha256:<hex>`).
    pub diff_id: String,
    /// Bytes written to files.
    pub bytes: u64,
    pub entries: u64,
}

/// Unpacks the layer archive read from `input` into `root`, an existing directory, and returns
/// the digest of the uncompressed archive (`sha256:<hex>`, the layer's diff id).
///
/// The input is read to its end even when the archive ends earlier, so a caller hashing the
/// compressed stream sees all of it. Neither size nor entries are capped; the store caps them
/// with its [`UnpackLimits`].
pub fn unpack_layer(input: impl Read, root: &Path) -> Result<String, UnpackError> {
    unpack_layer_within(input, root, &Budget::new(UnpackLimits::UNLIMITED)).map(|u| u.diff_id)
}

/// [`unpack_layer`], charging what it writes to `budget`. On error, what was written so far
/// stays in `root` for the caller to remove.
pub(crate) fn unpack_layer_within(
    input: impl Read,
    root: &Path,
    budget: &Budget,
) -> Result<Unpacked, UnpackError> {
    let window = Rc::new(Window::default());
    window.end.set(MAX_METADATA_BYTES);
    let mut reader = HashingReader {
        inner: Bounded {
            inner: decompress(input)?,
            window: window.clone(),
        },
        hasher: Sha256::new(),
    };
    let mut unpacked = Unpacked {
        diff_id: String::new(),
        bytes: 0,
        entries: 0,
    };
    {
        let mut archive = tar::Archive::new(&mut reader);
        let mut unpacker = Unpacker {
            root,
            known_dirs: HashSet::new(),
            dir_times: Vec::new(),
            budget,
            written: 0,
            buf: vec![0; 64 << 10],
        };
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            // The entry's data, then at most the next entry's headers.
            let data = if entry.header().entry_type() == EntryType::GNUSparse {
                entry.header().entry_size().map_err(UnpackError::Read)?
            } else {
                entry.size()
            };
            let end = entry
                .raw_file_position()
                .saturating_add(data.div_ceil(512).saturating_mul(512))
                .saturating_add(MAX_METADATA_BYTES);
            window.end.set(end);
            budget.charge(0, 1)?;
            unpacked.entries += 1;
            unpacker.entry(&mut entry)?;
        }
        unpacker.finish()?;
        unpacked.bytes = unpacker.written;
    }
    window
        .end
        .set(window.pos.get().saturating_add(MAX_METADATA_BYTES));
    io::copy(&mut reader, &mut io::sink()).map_err(UnpackError::Read)?;
    unpacked.diff_id = format!("sha256:{}", hex::encode(reader.hasher.finalize()));
    Ok(unpacked)
}

/// How far into the uncompressed archive reading may go: the position reached and the end
/// allowed, moved on by the unpacker at each entry.
#[derive(Default)]
struct Window {
    pos: Cell<u64>,
    end: Cell<u64>,
}

/// Refuses to read the uncompressed archive past the end its [`Window`] allows.
struct Bounded<R> {
    inner: R,
    window: Rc<Window>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pos = self.window.pos.get();
        let room = self.window.end.get().saturating_sub(pos);
        let n = if room == 0 {
            // Only the end of the stream is allowed here.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "more than {MAX_METADATA_BYTES} bytes of tar headers before an entry's data \
                     or after the end of the archive"
                ),
            ));
        } else {
            let len = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
            self.inner.read(&mut buf[..len])?
        };
        self.window.pos.set(pos + n as u64);
        Ok(n)
    }
}

/// Picks the decompressor from the first bytes: gzip, zstd, or a plain tar.
pub(crate) fn decompress<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match input.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
    let head = &head[..filled];
    let stream = io::Cursor::new(head.to_vec()).chain(input);
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(stream)))
    } else if head == [0x28, 0xb5, 0x2f, 0xfd] {
        let decoder = ruzstd::decoding::StreamingDecoder::new(stream)
            .map_err(|e| UnpackError::Read(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(stream))
    }
}

/// Hashes what is read through it.
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Normalises an archive path: leading `/` and `.` components dropped, `..` refused.
pub(crate) fn clean_path(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Some(out)
}

enum Kind {
    Dir,
    File,
    Symlink,
    Node,
}

struct Unpacker<'a> {
    root: &'a Path,
    /// Directories already checked (or created) as real directories under the root.
    known_dirs: HashSet<PathBuf>,
    /// Directory mtimes, set last because creating children changes them.
    dir_times: Vec<(PathBuf, i64)>,
    /// The image's budget, charged as file data is written.
    budget: &'a Budget,
    /// Bytes written to files of this layer.
    written: u64,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean_path(&raw).ok_or_else(|| UnpackError::Escape {
            path: shown.clone(),
        })?;
        let kind = entry.header().entry_type();
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            if kind == EntryType::Directory {
                let root = self.root.to_path_buf();
                self.metadata(&root, entry, Kind::Dir)?;
            }
            return Ok(());
        };
        let parent = self.parent_dir(&rel, &shown)?;
        let name_bytes = name.as_bytes();
        if name_bytes.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&parent, name_bytes);
        }
        let path = parent.join(&name);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        self.remove(&path)?;
                        create_dir(&path)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&path)?,
                    Err(e) => return Err(UnpackError::io("inspecting", &path, e)),
                }
                self.known_dirs.insert(path.clone());
                self.metadata(&path, entry, Kind::Dir)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.remove(&path)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| UnpackError::io("creating file", &path, e))?;
                self.copy(entry, &mut file, &path)?;
                drop(file);
                self.metadata(&path, entry, Kind::File)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::MissingLinkTarget {
                        path: shown.clone(),
                    })?
                    .into_owned();
                self.remove(&path)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| UnpackError::io("creating symlink", &path, e))?;
                self.metadata(&path, entry, Kind::Symlink)
            }
            EntryType::Link => {
                let target = self.link_target(entry, &shown)?;
                if target == path {
                    return Ok(());
                }
                self.remove(&path)?;
                fs::hard_link(&target, &path)
                    .map_err(|e| UnpackError::io("creating hard link", &path, e))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = if flag == SFlag::S_IFIFO {
                    0
                } else {
                    let header = entry.header();
                    let major = header.device_major().map_err(UnpackError::Read)?;
                    let minor = header.device_minor().map_err(UnpackError::Read)?;
                    makedev(u64::from(major.unwrap_or(0)), u64::from(minor.unwrap_or(0)))
                };
                self.remove(&path)?;
                mknod(&path, flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| UnpackError::io("creating device node", &path, e.into()))?;
                self.metadata(&path, entry, Kind::Node)
            }
            // Global pax headers and unknown kinds carry nothing to create.
            _ => Ok(()),
        }
    }

    /// Copies the entry's data (holes of a sparse file as zeros) into `file`, charging each
    /// chunk to the budget before it is written.
    fn copy(
        &mut self,
        entry: &mut impl Read,
        file: &mut fs::File,
        path: &Path,
    ) -> Result<(), UnpackError> {
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            self.budget.charge(n as u64, 0)?;
            self.written += n as u64;
            file.write_all(&self.buf[..n])
                .map_err(|e| UnpackError::io("writing", path, e))?;
        }
    }

    /// `.wh..wh..opq` marks `parent` opaque; `.wh.<name>` hides `<name>` of lower layers.
    fn whiteout(&mut self, parent: &Path, name: &[u8]) -> Result<(), UnpackError> {
        if name == OPAQUE_MARKER {
            return xattr::set(parent, OPAQUE_XATTR, b"y")
                .map_err(|e| UnpackError::io("marking opaque", parent, e));
        }
        if name.starts_with(b".wh..wh.") {
            // Other aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`) means nothing to overlayfs.
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Ok(());
        }
        let path = parent.join(OsStr::from_bytes(hidden));
        self.remove(&path)?;
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| UnpackError::io("creating whiteout", &path, e.into()))
    }

    /// Makes sure every parent component of `rel` is a real directory under the root,
    /// creating missing ones, and returns the parent's full path.
    fn parent_dir(&mut self, rel: &Path, shown: &str) -> Result<PathBuf, UnpackError> {
        let mut current = self.root.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(current);
        };
        for component in parent.components() {
            current.push(component);
            if self.known_dirs.contains(&current) {
                continue;
            }
            match fs::symlink_metadata(&current) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::NotADirectory {
                        path: shown.to_owned(),
                        through: current.strip_prefix(self.root).unwrap_or(&current).into(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&current)?,
                Err(e) => return Err(UnpackError::io("inspecting", &current, e)),
            }
            self.known_dirs.insert(current.clone());
        }
        Ok(current)
    }

    /// The existing entry a hard link points to, resolved inside the root without following
    /// symlinks.
    fn link_target<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        shown: &str,
    ) -> Result<PathBuf, UnpackError> {
        let missing = || UnpackError::MissingLinkTarget {
            path: shown.to_owned(),
        };
        let raw = entry.link_name_bytes().ok_or_else(missing)?.into_owned();
        let rel = clean_path(&raw).ok_or_else(|| UnpackError::Escape {
            path: String::from_utf8_lossy(&raw).into_owned(),
        })?;
        let name = rel.file_name().ok_or_else(missing)?.to_os_string();
        let target = self.parent_dir(&rel, shown)?.join(name);
        match fs::symlink_metadata(&target) {
            Ok(_) => Ok(target),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
            Err(e) => Err(UnpackError::io("inspecting", &target, e)),
        }
    }

    /// Removes whatever is at `path` so a new entry can take its place.
    fn remove(&mut self, path: &Path) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                self.known_dirs.clear();
                fs::remove_dir_all(path).map_err(|e| UnpackError::io("replacing", path, e))
            }
            Ok(_) => fs::remove_file(path).map_err(|e| UnpackError::io("replacing", path, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(UnpackError::io("inspecting", path, e)),
        }
    }

    /// Ownership, then mode (chown clears set-id bits), then xattrs (chown clears file
    /// capabilities), then mtime (deferred for directories).
    fn metadata<R: Read>(
        &mut self,
        path: &Path,
        entry: &mut tar::Entry<R>,
        kind: Kind,
    ) -> Result<(), UnpackError> {
        let header = entry.header();
        let uid = id_u32(header.uid())?;
        let gid = id_u32(header.gid())?;
        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        let mtime = header.mtime().map_err(UnpackError::Read)?;
        let mtime = i64::try_from(mtime).unwrap_or(i64::MAX);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| UnpackError::io("changing owner of", path, e))?;
        if !matches!(kind, Kind::Symlink) {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| UnpackError::io("changing mode of", path, e))?;
        }
        if let Some(extensions) = entry.pax_extensions().map_err(UnpackError::Read)? {
            for extension in extensions {
                let extension = extension.map_err(UnpackError::Read)?;
                let Some(name) = extension.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                // Overlay metadata comes only from whiteouts, never from the image itself.
                if name.starts_with(b"trusted.overlay.") {
                    continue;
                }
                let name = OsStr::from_bytes(name);
                if let Err(e) = xattr::set(path, name, extension.value_bytes()) {
                    tracing::warn!(path = %path.display(), xattr = ?name, error = %e, "xattr not kept");
                }
            }
        }
        if matches!(kind, Kind::Dir) {
            self.dir_times.push((path.to_path_buf(), mtime));
            Ok(())
        } else {
            set_mtime(path, mtime)
        }
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        for (path, mtime) in self.dir_times.iter().rev() {
            match set_mtime(path, *mtime) {
                // A later entry may have replaced the directory.
                Err(UnpackError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                }
                other => other?,
            }
        }
        Ok(())
    }
}

fn id_u32(id: io::Result<u64>) -> Result<u32, UnpackError> {
    let id = id.map_err(UnpackError::Read)?;
    u32::try_from(id).map_err(|_| {
        UnpackError::Read(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("owner id {id} out of range"),
        ))
    })
}

fn create_dir(path: &Path) -> Result<(), UnpackError> {
    fs::create_dir(path).map_err(|e| UnpackError::io("creating directory", path, e))
}

fn set_mtime(path: &Path, mtime: i64) -> Result<(), UnpackError> {
    let time = TimeSpec::new(mtime, 0);
    utimensat(None, path, &time, &time, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| UnpackError::io("setting mtime of", path, e.into()))
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
