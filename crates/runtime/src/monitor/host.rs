//! The monitor process: one `poll` over the pipes of every container it serves, a signalfd
//! for SIGCHLD and, for a shared monitor, the socket its requests come on.
//!
//! A monitor is the child subreaper of the runtimes it starts, so each container's init is
//! re-parented to it and `waitpid` reports the real exit status; the children it reaps go to
//! the slot that waits for them. A monitor started for one container serves that one and
//! exits. A shared monitor (ADR 0018) takes up to [`SHARED_CAPACITY`] containers over its life
//! from the zygote, one request each (the container directory, with the start's sync pipe
//! attached); once it serves none it takes no more requests (its socket's reading side shut
//! down, so the zygote's next send fails and it starts another), serves those already queued,
//! and exits when they have ended. Each slot runs behind `catch_unwind`: a defect in one
//! container's handling ends that slot, not the others.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{shutdown, Shutdown};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::cri::Stream;
use super::slot::{Reaped, Slot, Step};
use super::sync_pipe::SyncPipe;
use super::zygote::{receive, MAX_REQUEST};

/// How many containers one shared monitor takes over its life: a defect that ends a monitor
/// leaves at most this many containers of one account without their logs and exit records.
pub(crate) const SHARED_CAPACITY: usize = 16;

/// How long a reaped child nobody claimed is kept (an init can be reaped before the slot
/// that starts it has read its pid).
const UNCLAIMED_KEPT: Duration = Duration::from_secs(60);

/// Serves `first` and the requests on `requests` (at most `capacity` containers in all);
/// returns the process exit code once every container it took has ended. Call it in the
/// monitor process, single-threaded, after it has left berth's session.
pub(crate) fn serve(
    first: Option<(PathBuf, SyncPipe)>,
    mut requests: Option<OwnedFd>,
    capacity: usize,
) -> i32 {
    let sigfd = match become_reaper() {
        Ok(fd) => fd,
        Err(message) => {
            if let Some((dir, mut sync)) = first {
                super::note(&dir, &message);
                sync.error(&message);
            }
            return 1;
        }
    };
    let mut slots: Vec<Slot> = Vec::new();
    let mut accepted = 0;
    let mut request = vec![0u8; MAX_REQUEST];
    match (first, &requests) {
        (Some((dir, sync)), _) => {
            accepted += 1;
            slots.extend(Slot::start(dir, sync));
        }
        // The zygote queued the first request before it forked this process.
        (None, Some(sock)) => {
            if take_one(sock, &mut request, &mut slots) == Ok(true) {
                accepted += 1;
            }
        }
        (None, None) => {}
    }
    let mut reaped: Reaped = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if slots.is_empty() {
            let Some(sock) = requests.take() else {
                return 0;
            };
            // Idle: no more requests; those already queued are still served.
            let _ = shutdown(sock.as_raw_fd(), Shutdown::Read);
            while accepted < capacity && take_one(&sock, &mut request, &mut slots) == Ok(true) {
                accepted += 1;
            }
            if slots.is_empty() {
                return 0;
            }
        }

        let timeout = slots
            .iter()
            .filter_map(Slot::deadline)
            .min()
            .map_or(PollTimeout::NONE, millis_until);
        let mut ready: Vec<(usize, Stream)> = Vec::new();
        let (sig_ready, request_ready) = {
            let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            if let Some(sock) = &requests {
                fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
            }
            let first_pipe = fds.len();
            let mut owners = Vec::new();
            for (i, slot) in slots.iter().enumerate() {
                for (fd, stream) in slot
                    .pipes()
                    .into_iter()
                    .zip([Stream::Stdout, Stream::Stderr])
                {
                    if let Some(fd) = fd {
                        fds.push(PollFd::new(fd, PollFlags::POLLIN));
                        owners.push((i, stream));
                    }
                }
            }
            if let Err(e) = poll(&mut fds, timeout) {
                if e != Errno::EINTR {
                    // Never seen; if it happens, retry rather than end every container.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let is_ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            for (k, owner) in owners.iter().enumerate() {
                if is_ready(&fds[first_pipe + k]) {
                    ready.push(*owner);
                }
            }
            (is_ready(&fds[0]), requests.is_some() && is_ready(&fds[1]))
        };

        let now = Utc::now();
        for (i, stream) in ready {
            let slot = &mut slots[i];
            if catch_unwind(AssertUnwindSafe(|| slot.read(stream, &mut buf, now))).is_err() {
                super::note(
                    slot.dir(),
                    "the monitor failed reading the container's output",
                );
            }
        }
        if request_ready {
            if let Some(sock) = &requests {
                match take_one(sock, &mut request, &mut slots) {
                    Ok(true) => accepted += 1,
                    Err(Errno::EAGAIN) => {}
                    Ok(false) | Err(_) => requests = None,
                }
            }
            if accepted >= capacity {
                requests = None;
            }
        }
        if sig_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            reap(&mut reaped);
        }
        slots.retain_mut(|slot| {
            match catch_unwind(AssertUnwindSafe(|| slot.advance(&mut reaped))) {
                Ok(Step::Continue) => true,
                Ok(Step::Done) => false,
                Err(_) => {
                    super::note(
                        slot.dir(),
                        "the monitor failed; the container is no longer supervised",
                    );
                    // berth then reports it lost instead of waiting on it.
                    let _ = crate::files::write_ended(slot.dir());
                    false
                }
            }
        });
        let now = Instant::now();
        reaped.retain(|(_, _, at)| now.duration_since(*at) < UNCLAIMED_KEPT);
    }
}

/// Receives one request on `sock` and starts its slot in `slots`: `Ok(true)` when a request
/// came (started or not), `Ok(false)` when no more will (the zygote's end closed, or this end shut
/// for reading and what was queued taken). An interrupted receive is retried.
fn take_one(sock: &OwnedFd, request: &mut [u8], slots: &mut Vec<Slot>) -> Result<bool, Errno> {
    loop {
        match receive(sock, request) {
            Ok(Some((len, fds))) => {
                slots.extend(take_request(&request[..len], fds));
                return Ok(true);
            }
            Ok(None) => return Ok(false),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The slot of one request: its container directory, with the sync pipe attached.
fn take_request(path: &[u8], fds: Vec<OwnedFd>) -> Option<Slot> {
    let mut fds = fds.into_iter();
    // A request without its pipe has nobody to report to: not started.
    let sync = fds.next()?;
    // Any further descriptor is not ours to keep.
    drop(fds);
    let dir = Path::new(std::ffi::OsStr::from_bytes(path)).to_path_buf();
    Slot::start(dir, SyncPipe::new(sync))
}

/// Makes this process the subreaper of what it starts, with SIGCHLD read from a signalfd.
fn become_reaper() -> Result<SignalFd, String> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot become a child subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))
}

/// Reaps every child that has exited.
fn reap(reaped: &mut Reaped) {
    let now = Instant::now();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                        reaped.push((pid.as_raw(), status, now));
                    }
                }
            }
        }
    }
}

fn millis_until(deadline: Instant) -> PollTimeout {
    let ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
}
