//! The monitor's end of the pipe on which it tells berth whether the container started.
//! Writes never fail loudly: berth may be gone, and the monitor carries on without it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) struct SyncPipe(Option<File>);

impl SyncPipe {
    /// Takes `fd` if it is open: moves it to a new close-on-exec descriptor, so the runtime
    /// does not inherit it, and puts /dev/null in its place (`fd` is the monitor's stdout).
    pub fn take(fd: i32) -> Self {
        // SAFETY: F_DUPFD_CLOEXEC only duplicates a descriptor number; it fails if `fd` is
        // not open.
        let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if moved < 0 {
            return Self(None);
        }
        // SAFETY: open(2) of a static C string and dup2(2)/close(2) of descriptors this
        // process owns; `fd` stays open (now on /dev/null) if anything fails.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, fd);
                libc::close(null);
            }
        }
        // SAFETY: `moved` was just created and nothing else in this process owns it.
        Self(Some(File::from(unsafe { OwnedFd::from_raw_fd(moved) })))
    }

    /// No pipe: reports go nowhere.
    pub fn none() -> Self {
        Self(None)
    }

    /// The pipe a request to a shared monitor carried (received close-on-exec).
    pub fn new(fd: OwnedFd) -> Self {
        Self(Some(File::from(fd)))
    }

    pub fn started(&mut self, pid: i32, monitor_pid: i32, at: DateTime<Utc>) {
        let at = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        self.send(&format!("started {pid} {monitor_pid} {at}\n"));
    }

    pub fn error(&mut self, message: &str) {
        self.send(&format!("error {message}\n"));
    }

    /// Writes one message and closes the pipe.
    fn send(&mut self, line: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
