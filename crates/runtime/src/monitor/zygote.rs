//! `berth-monitor --zygote`: a process that exists to be forked. berth starts one and asks it
//! for each monitor instead of starting the monitor's executable anew. A fresh executable
//! relocates its code and libraries, so that every monitor held ~110 KiB of private pages
//! that were the same in all of them; forked from the zygote, those pages stay shared.
//!
//! Protocol: the zygote's stdin is one end of a `SOCK_SEQPACKET` socket pair. Each message
//! is a container directory (the bytes of its path) with one descriptor attached
//! (`SCM_RIGHTS`): the write end of that start's sync pipe. The zygote forks; the child puts
//! the pipe on its stdout, /dev/null on its stdin, and runs [`super::monitor_main`], which
//! forks the monitor away and returns, as a monitor started by berth does. The zygote reaps
//! that child and reads the next message; it exits when berth's end closes (berth stopped or
//! was killed), and drops the requests still queued then, whose containers the next berth
//! starts. Monitors are never its children for long: they survive it.
//!
//! A forked monitor would show the zygote's command line; it writes its own over it, as a
//! monitor started from the executable would have it (`<exe> [args] <container-dir>`), into
//! the room berth leaves with a blank argument after [`ZYGOTE_ARG`] ([`TITLE_ROOM`] bytes),
//! so that `ps` and whoever looks for a group's processes by their command line find it.

use std::ffi::OsStr;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2, fork, ForkResult};

/// The argument that makes the monitor's executable a zygote.
pub(crate) const ZYGOTE_ARG: &str = "--zygote";

/// The longest container directory path a request carries.
const MAX_PATH: usize = 4096;

/// The length of the blank argument berth gives after [`ZYGOTE_ARG`]: room for a monitor's
/// command line.
pub(crate) const TITLE_ROOM: usize = MAX_PATH + 256;

/// The body of `berth-monitor --zygote`. Call it from `main` before any thread exists.
pub(crate) fn zygote_main() -> i32 {
    let _ = std::env::set_current_dir("/");
    let title = Title::find();
    // SAFETY: getppid(2) has no preconditions.
    let berth = unsafe { libc::getppid() };
    // SAFETY: fd 0 is the request socket berth gave as stdin, owned by nothing else here.
    let sock = unsafe { OwnedFd::from_raw_fd(libc::STDIN_FILENO) };
    let mut buf = [0u8; MAX_PATH];
    loop {
        let (len, fds) = match receive(&sock, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return 0,
            Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        };
        let mut fds = fds.into_iter();
        let Some(sync) = fds.next() else {
            continue;
        };
        // Any further descriptor is not ours to keep.
        drop(fds);
        // berth is gone (killed with requests still queued): starting the monitor now would
        // race the berth that starts next, which finds no monitor for these requests and
        // starts its own. Closing the pipe unanswered leaves the container to it.
        // SAFETY: getppid(2) has no preconditions.
        if unsafe { libc::getppid() } != berth {
            continue;
        }
        let dir = Path::new(OsStr::from_bytes(&buf[..len]));
        // SAFETY: the zygote is single-threaded, so the child may do anything after fork.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                if let Some(t) = &title {
                    t.write(dir);
                }
                std::process::exit(launch(dir, sync))
            }
            Ok(ForkResult::Parent { child }) => {
                drop(sync);
                // The child returns as soon as it has forked the monitor away.
                while let Err(Errno::EINTR) = waitpid(child, None) {}
            }
            Err(e) => {
                let mut f = std::fs::File::from(sync);
                let _ = write!(f, "error cannot fork the monitor: {e}");
            }
        }
    }
}

/// One request: the length of the path in `buf` and the descriptors attached; `None` at the
/// end of the stream.
fn receive(sock: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Vec<OwnedFd>)>, Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|_| Errno::EINVAL)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors for this process.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fds)))
}

/// In the forked child: the sync pipe as stdout, /dev/null as stdin (closing the request
/// socket), then the monitor as berth would start it.
fn launch(dir: &Path, sync: OwnedFd) -> i32 {
    let null = match std::fs::File::open("/dev/null") {
        Ok(f) => f,
        Err(_) => return 1,
    };
    if dup2(null.as_raw_fd(), libc::STDIN_FILENO).is_err()
        || dup2(sync.as_raw_fd(), super::SYNC_FD).is_err()
    {
        return 1;
    }
    drop(sync);
    drop(null);
    super::monitor_main(dir)
}

/// The command line's memory (`/proc/self/stat`'s `arg_start`..`arg_end`) and what a
/// monitor's title starts with: the arguments before [`ZYGOTE_ARG`].
struct Title {
    start: usize,
    len: usize,
    prefix: Vec<u8>,
}

impl Title {
    fn find() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may hold spaces, start with the state (3rd).
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let start: usize = fields.get(48 - 3)?.parse().ok()?;
        let end: usize = fields.get(49 - 3)?.parse().ok()?;
        let mut prefix = Vec::new();
        for a in std::env::args_os().take_while(|a| a != ZYGOTE_ARG) {
            prefix.extend_from_slice(a.as_bytes());
            prefix.push(0);
        }
        // berth's blank argument is what makes the room.
        (end > start && end - start > prefix.len() + TITLE_ROOM / 2).then_some(Self {
            start,
            len: end - start,
            prefix,
        })
    }

    /// Writes `<prefix> <dir>` over the command line, NUL-padded; a path longer than the
    /// room is cut.
    fn write(&self, dir: &Path) {
        let mut title = self.prefix.clone();
        title.extend_from_slice(dir.as_os_str().as_bytes());
        title.truncate(self.len - 1);
        title.resize(self.len, 0);
        // SAFETY: [start, start + len) is this process's own argument area (the kernel's
        // arg_start..arg_end), on its stack and writable, and nothing in this process keeps
        // a reference to it (std copies the arguments). Only this single-threaded child
        // writes it.
        unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), self.start as *mut u8, self.len) };
    }
}
