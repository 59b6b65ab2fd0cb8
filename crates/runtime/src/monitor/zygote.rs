//! `berth-monitor --zygote`: a process that exists to be forked. berth starts one and asks it
//! for each monitor instead of starting the monitor's executable anew. A fresh executable
//! relocates its code and libraries, so that every monitor held ~110 KiB of private pages
//! that were the same in all of them; forked from the zygote, those pages stay shared.
//!
//! Protocol: the zygote's stdin is one end of a `SOCK_SEQPACKET` socket pair. Each message
//! is a share key, a NUL and a container directory (the bytes of its path), with one
//! descriptor attached (`SCM_RIGHTS`): the write end of that start's sync pipe. An empty key
//! asks for a monitor of that container alone; containers asked for with one key share a
//! monitor, up to [`SHARED_CAPACITY`] over its life (ADR 0018). The zygote passes the request
//! on to the monitor over a socket pair of its own: to the current shared monitor of the key
//! if it still takes requests, else to a new monitor it forks. A new monitor's first request
//! is queued on its socket before the fork, so it always finds it. The forked child leaves
//! the zygote's session, forks the monitor away and exits, so monitors are never the
//! zygote's children for long and survive it. The zygote exits when berth's end closes
//! (berth stopped or was killed), and drops the requests still queued then, whose containers
//! the next berth starts; its shared monitors then see their sockets close, serve what they
//! have and exit.
//!
//! A forked monitor would show the zygote's command line; it writes its own over it into the
//! room berth leaves with a blank argument after [`ZYGOTE_ARG`] ([`TITLE_ROOM`] bytes): a
//! monitor of one container as one started from the executable would have it
//! (`<exe> [args] <container-dir>`), so that `ps` and whoever looks for a group's processes by
//! their command line find it; a shared one `<exe> [args] --shared`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2, fork, ForkResult};

use super::host::{self, SHARED_CAPACITY};

/// The argument that makes the monitor's executable a zygote.
pub(crate) const ZYGOTE_ARG: &str = "--zygote";

/// The longest container directory path a request carries.
const MAX_PATH: usize = 4096;

/// The longest share key a request carries.
pub(crate) const MAX_KEY: usize = 256;

/// The longest request: a key, its NUL and a path.
pub(crate) const MAX_REQUEST: usize = MAX_KEY + 1 + MAX_PATH;

/// How many keys' shared monitors the zygote keeps taking requests for; beyond it the one
/// asked for longest ago gets no more (it serves what it has and exits).
const MAX_OPEN_SHARES: usize = 64;

/// The length of the blank argument berth gives after [`ZYGOTE_ARG`]: room for a monitor's
/// command line.
pub(crate) const TITLE_ROOM: usize = MAX_PATH + 256;

/// A shared monitor that still takes requests: the zygote's end of its socket.
struct Shared {
    sock: OwnedFd,
    sent: usize,
    last: u64,
}

/// The body of `berth-monitor --zygote`. Call it from `main` before any thread exists.
pub(crate) fn zygote_main() -> i32 {
    let _ = std::env::set_current_dir("/");
    let title = Title::find();
    // SAFETY: getppid(2) has no preconditions.
    let berth = unsafe { libc::getppid() };
    // SAFETY: fd 0 is the request socket berth gave as stdin, owned by nothing else here.
    let sock = unsafe { OwnedFd::from_raw_fd(libc::STDIN_FILENO) };
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut shared: HashMap<Vec<u8>, Shared> = HashMap::new();
    let mut asked = 0u64;
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
        let Some((key, path)) = split_request(&buf[..len]) else {
            continue;
        };
        asked += 1;
        if key.is_empty() {
            let dir = Path::new(OsStr::from_bytes(path));
            if let Err(e) = start_monitor(&mut shared, &title, Some(dir), path, &sync, 1) {
                refuse(sync, e);
            }
            continue;
        }
        if let Some(current) = shared.get_mut(key) {
            if send(&current.sock, path, sync.as_fd()).is_ok() {
                current.sent += 1;
                current.last = asked;
                if current.sent >= SHARED_CAPACITY {
                    shared.remove(key);
                }
                continue;
            }
            // It stopped taking requests (idle, or gone): a new one takes this.
            shared.remove(key);
        }
        if shared.len() >= MAX_OPEN_SHARES {
            if let Some(oldest) = shared
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                shared.remove(&oldest);
            }
        }
        match start_monitor(&mut shared, &title, None, path, &sync, SHARED_CAPACITY) {
            Ok(sock) => {
                shared.insert(
                    key.to_vec(),
                    Shared {
                        sock,
                        sent: 1,
                        last: asked,
                    },
                );
            }
            Err(e) => refuse(sync, e),
        }
    }
}

/// `(key, path)` of a request; `None` for one without a NUL or with an empty path.
fn split_request(request: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = request.iter().position(|b| *b == 0)?;
    let (key, path) = (&request[..nul], &request[nul + 1..]);
    (!path.is_empty() && key.len() <= MAX_KEY && path.len() <= MAX_PATH).then_some((key, path))
}

fn refuse(sync: OwnedFd, e: Errno) {
    let mut f = std::fs::File::from(sync);
    let _ = write!(f, "error cannot start the monitor: {e}");
}

/// Forks a monitor that takes up to `capacity` containers, the first of them `path` (queued
/// on its socket before the fork); returns the zygote's end of that socket. `dir` names the
/// container of a monitor for one, for its title.
fn start_monitor(
    shared: &mut HashMap<Vec<u8>, Shared>,
    title: &Option<Title>,
    dir: Option<&Path>,
    path: &[u8],
    sync: &OwnedFd,
    capacity: usize,
) -> Result<OwnedFd, Errno> {
    let (ours, theirs) = socket_pair()?;
    send(&ours, path, sync.as_fd())?;
    // SAFETY: the zygote is single-threaded, so the child may do anything after fork.
    match unsafe { fork() }? {
        ForkResult::Child => {
            // Only the new monitor's socket goes with it: not the zygote's request socket,
            // nor the other monitors' sockets, nor the zygote's copy of the sync pipe (the
            // monitor's own comes with the request; a copy left open would keep berth from
            // seeing the pipe's end).
            shared.clear();
            drop(ours);
            // SAFETY: the child never returns to the frame that owns `sync` (it exits
            // below), so nothing closes or uses this descriptor again.
            unsafe { libc::close(sync.as_raw_fd()) };
            let _ = std::fs::File::open("/dev/null")
                .map(|null| dup2(null.as_raw_fd(), libc::STDIN_FILENO));
            if let Some(t) = title {
                match dir {
                    Some(dir) => t.write(dir.as_os_str().as_bytes()),
                    None => t.write(b"--shared"),
                }
            }
            // SAFETY: still single-threaded.
            let code = match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    super::detach();
                    host::serve(None, Some(theirs), capacity)
                }
                Ok(ForkResult::Parent { .. }) => 0,
                Err(_) => 1,
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            // The child returns as soon as it has forked the monitor away.
            while let Err(Errno::EINTR) = waitpid(child, None) {}
            Ok(ours)
        }
    }
}

/// A socket pair of the zygote's protocol: berth's and the zygote's ends, or the zygote's
/// and a monitor's (one message a request, close-on-exec).
pub(crate) fn socket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// One message of the zygote's protocol (`bytes`, with the sync pipe attached), from berth to
/// the zygote or from the zygote to a monitor; never waits for room.
pub(crate) fn send(sock: &OwnedFd, bytes: &[u8], sync: BorrowedFd<'_>) -> Result<(), Errno> {
    let fds = [sync.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One request: the length of the path in `buf` and the descriptors attached; `None` at the
/// end of the stream.
pub(crate) fn receive(
    sock: &OwnedFd,
    buf: &mut [u8],
) -> Result<Option<(usize, Vec<OwnedFd>)>, Errno> {
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

    /// Writes `<prefix> <last>` over the command line, NUL-padded; a `last` longer than the
    /// room is cut.
    fn write(&self, last: &[u8]) {
        let mut title = self.prefix.clone();
        title.extend_from_slice(last);
        title.truncate(self.len - 1);
        title.resize(self.len, 0);
        // SAFETY: [start, start + len) is this process's own argument area (the kernel's
        // arg_start..arg_end), on its stack and writable, and nothing in this process keeps
        // a reference to it (std copies the arguments). Only this single-threaded child
        // writes it.
        unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), self.start as *mut u8, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_a_key_a_nul_and_a_path() {
        assert_eq!(
            split_request(b"acct\0/state/groups/g/containers/c"),
            Some((&b"acct"[..], &b"/state/groups/g/containers/c"[..]))
        );
        // A monitor of its own.
        assert_eq!(split_request(b"\0/d"), Some((&b""[..], &b"/d"[..])));
        // The first NUL ends the key; the rest is the path as sent.
        assert_eq!(split_request(b"a\0b\0c"), Some((&b"a"[..], &b"b\0c"[..])));
        assert_eq!(split_request(b"/no/key"), None);
        assert_eq!(split_request(b"acct\0"), None);
        let long_key = [b'k'; MAX_KEY + 1];
        let mut request = long_key.to_vec();
        request.extend_from_slice(b"\0/d");
        assert_eq!(split_request(&request), None);
    }
}
