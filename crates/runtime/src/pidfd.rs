//! Waiting for a process that need not be our child to end, without polling: a pidfd
//! (`pidfd_open(2)`, Linux 5.3) becomes readable when the process exits, and tokio's `AsyncFd`
//! wakes the task then.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A pidfd for `pid`, or `None` when no such process exists.
pub(crate) fn open(pid: i32) -> io::Result<Option<OwnedFd>> {
    if pid <= 0 {
        return Ok(None);
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// A process being watched for its end.
pub(crate) struct ProcWatch(AsyncFd<OwnedFd>);

impl ProcWatch {
    /// Watches `pid`; `None` when no such process exists. Needs a tokio runtime with I/O.
    pub fn new(pid: i32) -> io::Result<Option<Self>> {
        match open(pid)? {
            // SAFETY: the OwnedFd is moved into the AsyncFd, which keeps it open and unchanged
            // until it is dropped.
            Some(fd) => Ok(Some(Self(unsafe {
                AsyncFd::register_with_interest(fd, Interest::READABLE)?
            }))),
            None => Ok(None),
        }
    }

    /// Sends `signal` to the process through its pidfd (never to a process that took over its
    /// pid after it ended); `false` when it has ended already.
    pub fn signal(&self, signal: i32) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal takes a pidfd this struct keeps open, a signal number,
        // a null siginfo (the kernel fills in a kill(2)-like one) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.get_ref().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(false),
            _ => Err(err),
        }
    }

    /// Resolves once the process has exited; may be awaited again.
    pub async fn exited(&self) -> io::Result<()> {
        let _ready = self.0.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_on_exit() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let watch = ProcWatch::new(pid).unwrap().unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(5), watch.exited()).await;
        assert!(waited.is_ok());
        // Once ended, it stays ended.
        watch.exited().await.unwrap();
        child.wait().unwrap();
        assert!(ProcWatch::new(pid).unwrap().is_none());
        assert!(open(-1).unwrap().is_none());
    }

    #[tokio::test]
    async fn signals_the_process_it_watches() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = ProcWatch::new(child.id() as i32).unwrap().unwrap();
        assert!(watch.signal(libc::SIGTERM).unwrap());
        let waited = tokio::time::timeout(Duration::from_secs(5), watch.exited()).await;
        assert!(waited.is_ok(), "SIGTERM did not end it");
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        assert!(
            !watch.signal(libc::SIGKILL).unwrap(),
            "reaped: nothing to signal"
        );
    }
}
