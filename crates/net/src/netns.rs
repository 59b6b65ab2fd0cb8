//! Network namespaces: one nsfs bind mount per group, and namespaces held by a descriptor.
//!
//! A namespace is created on a dedicated, short-lived thread: the thread
//! unshares its network namespace, brings `lo` up inside it, bind-mounts
//! `/proc/thread-self/ns/net` onto an empty file (or opens it, for [`create_held`]) and
//! exits. The mount keeps the namespace alive until [`remove`] detaches it; a held
//! namespace lives as long as its descriptor. No tokio worker thread ever changes
//! namespace.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::sys::statfs::NSFS_MAGIC;
use tokio::sync::oneshot;

use crate::error::NetError;

/// Makes `dir` a shared mount point, bind-mounting it onto itself first when it
/// is not one, as iproute2 does for `/run/netns`. Unmounts of namespace files
/// then propagate to mount namespaces that copied them.
pub fn prepare_dir(dir: &Path) -> Result<(), NetError> {
    std::fs::create_dir_all(dir).map_err(|source| NetError::Io {
        step: "creating namespace directory",
        path: dir.to_owned(),
        source,
    })?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    let sys = |step, source| NetError::Sys {
        step,
        path: dir.to_owned(),
        source,
    };
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(dir), dir, None::<&str>, bind, None::<&str>)
                .map_err(|e| sys("bind-mounting namespace directory onto itself", e))?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)
                .map_err(|e| sys("making namespace directory a shared mount", e))
        }
        Err(e) => Err(sys("making namespace directory a shared mount", e)),
    }
}

/// Undoes [`prepare_dir`] when no namespace is pinned in `dir` any more (at shutdown), so
/// berth leaves no mount behind. A directory that still holds namespaces stays as it is.
pub fn release_dir(dir: &Path) -> Result<(), NetError> {
    let busy = std::fs::read_dir(dir)
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false);
    if busy {
        return Ok(());
    }
    match umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(NetError::Sys {
            step: "unmounting namespace directory",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Creates a new network namespace with `lo` up, pinned at `path` (which must not exist).
pub async fn create(path: PathBuf) -> Result<(), NetError> {
    let (tx, rx) = oneshot::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("berth-netns".to_owned())
        .spawn(move || {
            // The receiver only goes away when the caller was cancelled;
            // the caller's cleanup then handles the leftover file.
            let _ = tx.send(create_on_this_thread(&thread_path));
        })
        .map_err(|source| NetError::NetnsThread {
            path: path.clone(),
            source: Some(source),
        })?;
    rx.await
        .map_err(|_| NetError::NetnsThread { path, source: None })?
}

/// Creates a new network namespace with `lo` up, held only by the returned descriptor: it
/// adds no mount, and it goes away with the descriptor (with this process, after a crash).
pub async fn create_held() -> Result<OwnedFd, NetError> {
    let (tx, rx) = oneshot::channel();
    let thread_path = PathBuf::from("/proc/thread-self/ns/net");
    std::thread::Builder::new()
        .name("berth-netns".to_owned())
        .spawn(move || {
            let held = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| ("unsharing network namespace for", e))
                .and_then(|()| loopback_up().map_err(|e| ("bringing up lo in", e)))
                .and_then(|()| {
                    no_ipv6_on_new_links().map_err(|e| ("turning off IPv6 on new links in", e))
                })
                .map_err(|(step, source)| NetError::Sys {
                    step,
                    path: thread_path.clone(),
                    source,
                })
                .and_then(|()| {
                    std::fs::File::open(&thread_path)
                        .map(OwnedFd::from)
                        .map_err(|source| NetError::Io {
                            step: "opening network namespace",
                            path: thread_path.clone(),
                            source,
                        })
                });
            let _ = tx.send(held);
        })
        .map_err(|source| NetError::NetnsThread {
            path: PathBuf::from("/proc/thread-self/ns/net"),
            source: Some(source),
        })?;
    rx.await.map_err(|_| NetError::NetnsThread {
        path: PathBuf::from("/proc/thread-self/ns/net"),
        source: None,
    })?
}

/// The path under which other processes (the CNI plugins) reach a held namespace.
pub fn held_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ))
}

/// Pins the namespace pinned at `from` a second time, at `to` (which must not exist).
pub fn bind(from: &Path, to: &Path) -> Result<(), NetError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|source| NetError::Io {
            step: "creating network namespace file",
            path: to.to_owned(),
            source,
        })?;
    mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|source| {
        let _ = std::fs::remove_file(to);
        NetError::Sys {
            step: "bind-mounting network namespace onto",
            path: to.to_owned(),
            source,
        }
    })
}

/// Detaches and deletes a namespace file; a missing or unmounted file is fine.
pub fn remove(path: &Path) -> Result<(), NetError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(source) => {
            return Err(NetError::Sys {
                step: "unmounting network namespace",
                path: path.to_owned(),
                source,
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetError::Io {
            step: "removing network namespace file",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether `path` is a namespace pin (an nsfs mount) rather than a plain or missing file.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// Runs on a thread that exits right after, so the namespace change dies with it.
fn create_on_this_thread(path: &Path) -> Result<(), NetError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| NetError::Io {
            step: "creating network namespace file",
            path: path.to_owned(),
            source,
        })?;
    let pinned = unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| ("unsharing network namespace for", e))
        .and_then(|()| loopback_up().map_err(|e| ("bringing up lo in", e)))
        .and_then(|()| no_ipv6_on_new_links().map_err(|e| ("turning off IPv6 on new links in", e)))
        .and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ("bind-mounting network namespace onto", e))
        });
    pinned.map_err(|(step, source)| {
        // Nothing is mounted on failure; only the empty file is left to delete.
        let _ = std::fs::remove_file(path);
        NetError::Sys {
            step,
            path: path.to_owned(),
            source,
        }
    })
}

/// Turns IPv6 off for the links made later in the calling thread's network namespace (the
/// group's `eth0`, which the bridge plugin creates there); `lo` keeps `::1`, so programs that
/// listen on `[::]` still take IPv4 and loopback IPv6. The groups' network is IPv4 only, and
/// an `eth0` with IPv6 sends duplicate-address probes, router solicitations and MLD reports
/// to multicast addresses, which the bridge floods to every group's port: a cost per start
/// that grows with the groups running (measured: about a tenth of the CPU of a burst at
/// 1,000 groups). A kernel without IPv6 has nothing to turn off.
fn no_ipv6_on_new_links() -> nix::Result<()> {
    match std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", b"1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> nix::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the socket is open, the request matches SIOCGIFFLAGS and `req`
    // outlives the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above, for SIOCSIFFLAGS.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) })?;
    Ok(())
}

/// Runs `f` on a short-lived thread that has joined the network namespace at `netns`, so
/// that what `f` opens (netlink sockets, `/proc/sys/net` files) belongs to that namespace.
/// The thread ends with `f`, and the namespace change with it.
pub(crate) fn run_in<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let ns = std::fs::File::open(netns)?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn_scoped(scope, move || {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
                Ok(f())
            })?
            .join()
            .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    })
}
