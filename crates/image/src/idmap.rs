//! Id-mapped views of the shared image layers, for groups that run in a user namespace.
//!
//! A group with a user namespace maps container ids `0..count` to host ids
//! `host..host+count`. The layers stay owned by host root on disk (they are shared by digest
//! between groups and accounts and are never chowned); each layer is instead given to the
//! overlay as an id-mapped clone of its mount (`open_tree` + `mount_setattr(MOUNT_ATTR_IDMAP)`),
//! which shows host id `n` as `host + n`, so inside the container the image's files are owned
//! by the container's root. The overlay keeps private clones of its layers, so the detached
//! id-mapped mounts are dropped as soon as the overlay is mounted: no mount is left on the host.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// Ids a group's user namespace maps: container `0..count` to host `host..host+count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdMap {
    pub host: u32,
    pub count: u32,
}

impl IdMap {
    /// `"0 host count"`, one line of `uid_map` / `gid_map`.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.host, self.count)
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace holding `map`, held by a descriptor (no process stays in it).
///
/// Made by a forked child that unshares its user namespace and waits until its parent has
/// written the maps and opened the namespace, then exits.
pub fn user_namespace(map: IdMap) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    // `ready`: the child says it has unshared (or failed); `done`: closed by the parent when
    // it holds the namespace.
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (done_r, done_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the child calls only async-signal-safe functions (unshare, close, read, write,
    // _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Errno::last());
    }
    if pid == 0 {
        // SAFETY: the child of a fork: raw syscalls, then _exit.
        unsafe {
            libc::close(ready_r.as_raw_fd());
            libc::close(done_w.as_raw_fd());
            let ok: u8 = u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0);
            libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut ok = [0u8; 1];
        let n = nix::unistd::read(ready_r.as_raw_fd(), &mut ok)?;
        if n != 1 || ok[0] != 1 {
            return Err(Errno::EPERM);
        }
        let line = map.map_line();
        for file in ["uid_map", "gid_map"] {
            File::options()
                .write(true)
                .open(format!("/proc/{pid}/{file}"))
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(io_errno)?;
        }
        let ns = File::open(format!("/proc/{pid}/ns/user")).map_err(io_errno)?;
        Ok(OwnedFd::from(ns))
    })();
    drop(done_w);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A detached clone of the mount tree at `path`, id-mapped through the user namespace `userns`.
/// It is gone when the descriptor is closed; `/proc/self/fd/<n>` names it meanwhile.
pub fn idmapped_clone(path: &Path, userns: &OwnedFd) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: plain syscalls with valid pointers; the result is a new descriptor we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: open_tree returned a new descriptor.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: `attr` lives across the call and its size is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_map_container_root_to_the_range() {
        let m = IdMap {
            host: 1 << 30,
            count: 65536,
        };
        assert_eq!(m.map_line(), "0 1073741824 65536\n");
    }
}
