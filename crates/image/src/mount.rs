//! Container root filesystems: an overlay of the image layers with a private upper layer.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::ImageError;
use crate::idmap::IdMap;
use crate::store::Image;

/// Longest mount data the kernel takes (one page, with its terminating NUL).
const MAX_MOUNT_DATA: usize = 4095;

/// Mounts the root filesystem of one container: an overlay of the image layers with
/// `rw/upper` and `rw/work` (the container's writable layer, which belongs on disk), on
/// `dir/rootfs`, which is returned. Mounting again while it is mounted does nothing.
pub fn mount_rootfs(image: &Image, dir: &Path, rw: &Path) -> Result<PathBuf, ImageError> {
    mount_rootfs_mapped(image, dir, rw, None)
}

/// [`mount_rootfs`] for a container in a user namespace: with `Some((userns, map))` the layers
/// are stacked as id-mapped clones through `userns` (see [`crate::idmap`]) and the upper
/// directory is owned by `map.host`, the container's root.
pub fn mount_rootfs_mapped(
    image: &Image,
    dir: &Path,
    rw: &Path,
    mapped: Option<(&OwnedFd, IdMap)>,
) -> Result<PathBuf, ImageError> {
    let upper = rw.join("upper");
    let work = rw.join("work");
    let rootfs = dir.join("rootfs");
    for path in [&upper, &work, &rootfs] {
        fs::create_dir_all(path).map_err(|e| ImageError::io("creating", path.as_path(), e))?;
    }
    if is_mount_point(&rootfs, dir)? {
        return Ok(rootfs);
    }
    let empty = dir.join("empty");
    if image.layers.is_empty() {
        fs::create_dir_all(&empty).map_err(|e| ImageError::io("creating", &empty, e))?;
    }
    // The id-mapped clones live until the overlay is mounted; it keeps its own references.
    let mut clones = Vec::new();
    let lowers = match mapped {
        None => image.layers.clone(),
        Some((userns, map)) => {
            chown_dir(&upper, map.host)?;
            let mut out = Vec::with_capacity(image.layers.len());
            for layer in &image.layers {
                let fd = crate::idmap::idmapped_clone(layer, userns).map_err(|source| {
                    ImageError::Mount {
                        target: layer.clone(),
                        source,
                    }
                })?;
                out.push(PathBuf::from(format!(
                    "/proc/thread-self/fd/{}",
                    fd.as_raw_fd()
                )));
                clones.push(fd);
            }
            out
        }
    };
    let data = overlay_options(&lowers, &empty, &upper, &work)?;
    if data.len() > MAX_MOUNT_DATA {
        return Err(ImageError::MountOptionsTooLong {
            target: rootfs,
            len: data.len(),
        });
    }
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| ImageError::Mount {
        target: rootfs.clone(),
        source,
    })?;
    drop(clones);
    Ok(rootfs)
}

/// Gives the berth-made directory `path` to host id `id` (user and group), without following
/// a symbolic link.
fn chown_dir(path: &Path, id: u32) -> Result<(), ImageError> {
    let dir = fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| ImageError::io("opening", path, e))?;
    std::os::unix::fs::fchown(&dir, Some(id), Some(id))
        .map_err(|e| ImageError::io("changing the owner of", path, e))
}

/// Unmounts `dir/rootfs`. Does nothing when it is not mounted (or does not exist); detaches
/// lazily when it is busy. Removes nothing.
pub fn unmount_rootfs(dir: &Path) -> Result<(), ImageError> {
    let rootfs = dir.join("rootfs");
    // Loop in case the same point was mounted more than once.
    for _ in 0..16 {
        let result = match umount2(&rootfs, MntFlags::empty()) {
            Err(Errno::EBUSY) => umount2(&rootfs, MntFlags::MNT_DETACH),
            other => other,
        };
        match result {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(source) => {
                return Err(ImageError::Unmount {
                    target: rootfs,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Overlay mount data: lower layers uppermost first. A layer listed twice (images repeat the
/// empty layer) is kept only at its uppermost place, which merges the same and which overlayfs
/// requires (it refuses overlapping layers).
fn overlay_options(
    layers: &[PathBuf],
    empty: &Path,
    upper: &Path,
    work: &Path,
) -> Result<String, ImageError> {
    let mut lowers: Vec<&str> = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let layer = option_path(layer)?;
        if !lowers.contains(&layer) {
            lowers.push(layer);
        }
    }
    if lowers.is_empty() {
        lowers.push(option_path(empty)?);
    }
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        option_path(upper)?,
        option_path(work)?
    ))
}

fn option_path(path: &Path) -> Result<&str, ImageError> {
    path.to_str()
        .filter(|s| !s.contains([',', ':']))
        .ok_or_else(|| ImageError::UnusableLayerPath {
            path: path.to_path_buf(),
        })
}

/// A mount point sits on another device than its parent.
fn is_mount_point(path: &Path, parent: &Path) -> Result<bool, ImageError> {
    let dev = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| ImageError::io("inspecting", p, e))
    };
    Ok(dev(path)? != dev(parent)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdirs_are_uppermost_first_without_repeats() {
        let layers: Vec<PathBuf> = ["/s/a", "/s/e", "/s/b", "/s/e"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let (empty, upper, work) = (Path::new("/c/empty"), Path::new("/c/u"), Path::new("/c/w"));
        assert_eq!(
            overlay_options(&layers, empty, upper, work).unwrap(),
            "lowerdir=/s/e:/s/b:/s/a,upperdir=/c/u,workdir=/c/w"
        );
        assert_eq!(
            overlay_options(&[], empty, upper, work).unwrap(),
            "lowerdir=/c/empty,upperdir=/c/u,workdir=/c/w"
        );
        let odd = [PathBuf::from("/s/a,b")];
        assert!(matches!(
            overlay_options(&odd, empty, upper, work),
            Err(ImageError::UnusableLayerPath { .. })
        ));
    }
}
