//! The monitor's end of the pipe on which it tells berth whether the container started.
//! Writes never fail loudly: berth may be gone, and the monitor carries on without it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

use chrono::{DateTime, SecondsFormat, Utc};

pub(crate) struct SyncPipe(Option<File>);

impl SyncPipe {
    /// Takes `fd` if it is open, marking it close-on-exec so the runtime does not inherit it.
    pub fn take(fd: i32) -> Self {
        // SAFETY: F_GETFD/F_SETFD only inspect or set flags of a descriptor number.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        if !open {
            return Self(None);
        }
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: the descriptor is open and nothing else in this process owns it.
        Self(Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
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
