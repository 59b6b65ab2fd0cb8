//! [`Storage`]: the btrfs filesystem that holds every group's temporary storage, and the
//! size-limited subvolume of each group in it.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statfs::statfs;

use crate::btrfs;
use crate::error::StorageError;
use crate::loopdev;

/// Smallest and largest size of one group's storage.
pub const MIN_SIZE: u64 = 1 << 30;
pub const MAX_SIZE: u64 = 64 << 40;

/// Where the storage filesystem comes from.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The mount point; each group's storage is a subvolume directly below it.
    pub root: PathBuf,
    /// The sparse file berth makes (once) and mounts at `root` through a loop device;
    /// `None` when the operator mounted a btrfs filesystem at `root` already.
    pub image: Option<PathBuf>,
    /// The size of `image` when berth makes it, in bytes.
    pub image_size: u64,
}

/// Bytes used and allowed in one group's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub limit: u64,
}

/// The mounted storage filesystem.
#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
    uuid: String,
    owns_mount: bool,
}

type Result<T> = std::result::Result<T, StorageError>;

impl Storage {
    /// Mounts the storage filesystem if it is not mounted yet (making its backing file
    /// on the first start), turns quota groups on, and forgets quota groups of
    /// subvolumes deleted before a crash.
    pub fn open(config: &StorageConfig) -> Result<Self> {
        let root = &config.root;
        if !root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| StorageError::io("create", root, e))?;
        }
        let mounted = is_btrfs_mount(root)?;
        if !mounted {
            let Some(image) = &config.image else {
                return Err(StorageError::NotBtrfs { path: root.clone() });
            };
            if !image.exists() {
                make_image(image, config.image_size)?;
            }
            let device =
                loopdev::attach(image).map_err(|e| StorageError::io("attach", image, e))?;
            mount(
                Some(&device.path),
                root,
                Some("btrfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
                None::<&str>,
            )
            .map_err(|e| StorageError::io("mount", root, e.into()))?;
            tracing::info!(image = %image.display(), device = %device.path.display(), root = %root.display(), "temporary storage mounted");
        }
        let dir = File::open(root).map_err(|e| StorageError::io("open", root, e))?;
        btrfs::quota_enable(dir.as_fd())
            .map_err(|e| StorageError::io("enable quotas on", root, e))?;
        let uuid =
            btrfs::fs_uuid(dir.as_fd()).map_err(|e| StorageError::io("read the id of", root, e))?;
        drop(dir);
        let storage = Storage {
            root: root.clone(),
            uuid,
            owns_mount: config.image.is_some(),
        };
        storage.forget_stale_qgroups();
        Ok(storage)
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of storage `name` (which may not exist).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Makes (or finds, after a crash) storage `name` and limits it to `size` bytes.
    pub fn create(&self, name: &str, size: u64) -> Result<PathBuf> {
        let cname = check_name(name)?;
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            return Err(StorageError::InvalidSize(size));
        }
        let path = self.path(name);
        match btrfs::subvolume_create(self.root_dir()?.as_fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(StorageError::io("create subvolume", &path, e)),
        }
        let sub = self.open_subvolume(name)?;
        btrfs::qgroup_limit(sub.as_fd(), size).map_err(|e| StorageError::io("limit", &path, e))?;
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| StorageError::io("chmod", &path, e))?;
        Ok(path)
    }

    /// Makes storage `name` without a limit yet (one made ahead of time and renamed to its
    /// group's name later, which then sets the limit with [`Storage::create`]).
    pub fn create_unlimited(&self, name: &str) -> Result<PathBuf> {
        let cname = check_name(name)?;
        let path = self.path(name);
        btrfs::subvolume_create(self.root_dir()?.as_fd(), &cname)
            .map_err(|e| StorageError::io("create subvolume", &path, e))?;
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| StorageError::io("chmod", &path, e))?;
        Ok(path)
    }

    /// Bytes used by and allowed to storage `name`.
    pub fn usage(&self, name: &str) -> Result<Usage> {
        let sub = self.open_subvolume(name)?;
        let id = btrfs::subvolume_id(sub.as_fd())
            .map_err(|e| StorageError::io("look up", self.path(name), e))?;
        let dir = self.qgroups_dir().join(format!("0_{id}"));
        let read = |file: &str| -> Result<u64> {
            let p = dir.join(file);
            let text = fs::read_to_string(&p).map_err(|e| StorageError::io("read", &p, e))?;
            text.trim()
                .parse()
                .map_err(|_| StorageError::io("parse", &p, io::ErrorKind::InvalidData.into()))
        };
        Ok(Usage {
            used: read("referenced")?,
            limit: read("max_referenced")?,
        })
    }

    /// Deletes storage `name` and all in it (nothing mounted may remain below it).
    /// Deleting what does not exist succeeds.
    pub fn remove(&self, name: &str) -> Result<()> {
        let cname = check_name(name)?;
        let id = match self.open_subvolume(name) {
            Ok(sub) => btrfs::subvolume_id(sub.as_fd()).ok(),
            Err(StorageError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match btrfs::subvolume_destroy(self.root_dir()?.as_fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(StorageError::io("delete subvolume", self.path(name), e)),
        }
        if let Some(id) = id {
            // The kernel refuses while the cleaner still drops the subvolume; the next
            // open forgets it then.
            let _ = btrfs::qgroup_remove(self.root_dir()?.as_fd(), id);
        }
        Ok(())
    }

    /// The names of all storages.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in
            fs::read_dir(&self.root).map_err(|e| StorageError::io("list", &self.root, e))?
        {
            let entry = entry.map_err(|e| StorageError::io("list", &self.root, e))?;
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && meta.ino() == btrfs::SUBVOL_ROOT_INO {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Unmounts the filesystem berth mounted when no storage is left in it (the kernel
    /// detaches the loop device then). Storage of groups that outlive berth keeps it.
    pub fn unmount_if_empty(&self) -> Result<bool> {
        if !self.owns_mount || !is_btrfs_mount(&self.root)? || !self.list()?.is_empty() {
            return Ok(false);
        }
        umount2(&self.root, MntFlags::empty())
            .map_err(|e| StorageError::io("unmount", &self.root, e.into()))?;
        tracing::info!(root = %self.root.display(), "temporary storage unmounted");
        Ok(true)
    }

    /// The root directory, opened for one call (no descriptor is kept, so that nothing of
    /// berth holds the filesystem busy when it is unmounted).
    fn root_dir(&self) -> Result<File> {
        File::open(&self.root).map_err(|e| StorageError::io("open", &self.root, e))
    }

    fn open_subvolume(&self, name: &str) -> Result<File> {
        check_name(name)?;
        let path = self.path(name);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => StorageError::NotFound(name.to_string()),
                _ => StorageError::io("open", &path, e),
            })?;
        let meta = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &path, e))?;
        if meta.ino() != btrfs::SUBVOL_ROOT_INO {
            return Err(StorageError::NotFound(name.to_string()));
        }
        Ok(file)
    }

    fn qgroups_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/btrfs/{}/qgroups", self.uuid))
    }

    /// Removes quota groups of subvolumes that no longer exist (their deletion was
    /// refused while the cleaner ran, or berth stopped in between).
    fn forget_stale_qgroups(&self) {
        let mut live = std::collections::HashSet::new();
        for name in self.list().unwrap_or_default() {
            if let Ok(sub) = self.open_subvolume(&name) {
                if let Ok(id) = btrfs::subvolume_id(sub.as_fd()) {
                    live.insert(id);
                }
            }
        }
        let Ok(entries) = fs::read_dir(self.qgroups_dir()) else {
            return;
        };
        let Ok(dir) = self.root_dir() else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("0_"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if id >= btrfs::SUBVOL_ROOT_INO && !live.contains(&id) {
                let _ = btrfs::qgroup_remove(dir.as_fd(), id);
            }
        }
    }
}

fn check_name(name: &str) -> Result<CString> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(StorageError::InvalidName(name.to_string()));
    }
    CString::new(name).map_err(|_| StorageError::InvalidName(name.to_string()))
}

/// True when `path` is the root of a mounted btrfs filesystem.
fn is_btrfs_mount(path: &Path) -> Result<bool> {
    let fs = statfs(path).map_err(|e| StorageError::io("statfs", path, e.into()))?;
    if fs.filesystem_type().0 as i64 != btrfs::SUPER_MAGIC {
        return Ok(false);
    }
    let here = fs::metadata(path).map_err(|e| StorageError::io("stat", path, e))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let up = fs::metadata(parent).map_err(|e| StorageError::io("stat", parent, e))?;
    Ok(here.dev() != up.dev())
}

/// Makes the sparse backing file with a btrfs filesystem in it, under a temporary name
/// first so that a crash never leaves a file without a filesystem.
fn make_image(image: &Path, size: u64) -> Result<()> {
    let tmp = image.with_extension("making");
    let _ = fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    file.set_len(size)
        .map_err(|e| StorageError::io("size", &tmp, e))?;
    drop(file);
    let out = Command::new("mkfs.btrfs")
        .args(["-q", "-f", "-L", "berth", "-m", "single", "-d", "single"])
        .arg(&tmp)
        .output()
        .map_err(|e| StorageError::Mkfs {
            path: tmp.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::Mkfs {
            path: tmp,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    fs::rename(&tmp, image).map_err(|e| StorageError::io("rename", &tmp, e))?;
    tracing::info!(image = %image.display(), size, "temporary storage filesystem made");
    Ok(())
}
