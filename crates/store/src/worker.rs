//! The threads the embedded store runs SQLite on. Every SQLite call blocks its thread (on the
//! disk, on the write lock), so none runs on the async runtime's workers: each call of
//! [`crate::SqliteStore`] is a job on this fixed set of threads, and the caller awaits its
//! answer. A fixed set, not the runtime's blocking pool: SQLite takes one writer and a few
//! readers at a time, so more threads would only wait on its locks, and a burst of a thousand
//! status reports must not start a thousand threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

use crate::StoreError;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs from one queue; they end when it is dropped.
pub(crate) struct Workers {
    queue: Mutex<mpsc::Sender<Job>>,
}

impl Workers {
    /// Starts `threads` threads (at least one) named `name`.
    pub(crate) fn start(name: &str, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || loop {
                    // The lock is held only while taking a job, never while running it.
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Self {
            queue: Mutex::new(tx),
        })
    }

    /// Runs `f` on one of the threads and waits, without blocking, for what it returns. A
    /// job that panics is [`StoreError::Worker`] for its caller; its thread goes on.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(res) = catch_unwind(AssertUnwindSafe(f)) {
                let _ = tx.send(res);
            }
        });
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| StoreError::Worker)?;
        rx.await.map_err(|_| StoreError::Worker)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_runs_off_the_callers_thread_and_a_panic_is_an_error() {
        let w = Workers::start("test-store", 2).unwrap();
        let caller = std::thread::current().id();
        let ran_on = w.run(|| Ok(std::thread::current().id())).await.unwrap();
        assert_ne!(ran_on, caller);
        let res: Result<(), _> = w.run(|| panic!("boom")).await;
        assert!(matches!(res, Err(StoreError::Worker)));
        // The threads go on after a panic.
        assert_eq!(w.run(|| Ok(7)).await.unwrap(), 7);
    }
}
