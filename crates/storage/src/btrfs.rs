//! The few btrfs ioctls berth needs: subvolumes, quota groups, the filesystem id.
//!
//! Called directly rather than through `btrfs-progs` because each process spawn costs
//! milliseconds on the start path, while the ioctls take about 0.1 ms together (see
//! docs/adr/0008-temporary-storage.md). The layouts are those of `linux/btrfs.h`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const SUBVOL_CREATE: libc::c_ulong = 0x5000_940e;
const SNAP_DESTROY: libc::c_ulong = 0x5000_940f;
const INO_LOOKUP: libc::c_ulong = 0xd000_9412;
const FS_INFO: libc::c_ulong = 0x8400_941f;
const QUOTA_CTL: libc::c_ulong = 0xc010_9428;
const QGROUP_CREATE: libc::c_ulong = 0x4010_942a;
const QGROUP_LIMIT: libc::c_ulong = 0x8030_942b;

/// `BTRFS_SUPER_MAGIC`, the `f_type` of a btrfs filesystem in statfs.
pub(crate) const SUPER_MAGIC: i64 = 0x9123_683e;
/// The inode number of the root directory of every subvolume.
pub(crate) const SUBVOL_ROOT_INO: u64 = 256;

const QUOTA_CTL_ENABLE: u64 = 1;
const QGROUP_LIMIT_MAX_RFER: u64 = 1;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    rest: [u8; 992],
}

#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
struct QgroupCreateArgs {
    create: u64,
    qgroupid: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

fn ioctl<T>(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed `repr(C)` value of the layout the
    // request expects (sizes are encoded in the request numbers and checked in tests).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn vol_args(name: &CStr) -> Box<VolArgs> {
    let mut args = Box::new(VolArgs {
        fd: 0,
        name: [0; 4088],
    });
    let bytes = name.to_bytes();
    args.name[..bytes.len()].copy_from_slice(bytes);
    args
}

/// Makes subvolume `name` in the directory `dir`.
pub(crate) fn subvolume_create(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    ioctl(dir, SUBVOL_CREATE, &mut *vol_args(name))
}

/// Deletes subvolume `name` of the directory `dir` with everything in it; the space is
/// given back by the filesystem's cleaner in the background.
pub(crate) fn subvolume_destroy(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    ioctl(dir, SNAP_DESTROY, &mut *vol_args(name))
}

/// The id of the subvolume that `fd` (a directory in it) belongs to.
pub(crate) fn subvolume_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut args = Box::new(InoLookupArgs {
        treeid: 0,
        objectid: SUBVOL_ROOT_INO,
        name: [0; 4080],
    });
    ioctl(fd, INO_LOOKUP, &mut *args)?;
    Ok(args.treeid)
}

/// The filesystem's id, as `/sys/fs/btrfs/<uuid>` names it.
pub(crate) fn fs_uuid(fd: BorrowedFd<'_>) -> io::Result<String> {
    let mut args = Box::new(FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        rest: [0; 992],
    });
    ioctl(fd, FS_INFO, &mut *args)?;
    let h: String = args.fsid.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Turns quota groups on (nothing happens when they are on already).
pub(crate) fn quota_enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl(
        fd,
        QUOTA_CTL,
        &mut QuotaCtlArgs {
            cmd: QUOTA_CTL_ENABLE,
            status: 0,
        },
    )
}

/// Limits the bytes the subvolume of `fd` refers to.
pub(crate) fn qgroup_limit(fd: BorrowedFd<'_>, bytes: u64) -> io::Result<()> {
    ioctl(
        fd,
        QGROUP_LIMIT,
        &mut QgroupLimitArgs {
            qgroupid: 0,
            flags: QGROUP_LIMIT_MAX_RFER,
            max_rfer: bytes,
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        },
    )
}

/// Removes the quota group `0/id` left behind by a deleted subvolume.
pub(crate) fn qgroup_remove(fd: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    ioctl(
        fd,
        QGROUP_CREATE,
        &mut QgroupCreateArgs {
            create: 0,
            qgroupid: id,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The argument sizes are part of the request numbers (bits 16..30).
    #[test]
    fn argument_sizes_match_the_request_numbers() {
        let size = |req: libc::c_ulong| ((req >> 16) & 0x3fff) as usize;
        assert_eq!(size(SUBVOL_CREATE), std::mem::size_of::<VolArgs>());
        assert_eq!(size(SNAP_DESTROY), std::mem::size_of::<VolArgs>());
        assert_eq!(size(INO_LOOKUP), std::mem::size_of::<InoLookupArgs>());
        assert_eq!(size(FS_INFO), std::mem::size_of::<FsInfoArgs>());
        assert_eq!(size(QUOTA_CTL), std::mem::size_of::<QuotaCtlArgs>());
        assert_eq!(size(QGROUP_CREATE), std::mem::size_of::<QgroupCreateArgs>());
        assert_eq!(size(QGROUP_LIMIT), std::mem::size_of::<QgroupLimitArgs>());
    }
}
