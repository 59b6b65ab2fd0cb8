//! The open-files budget of `berth serve`. At start the soft `RLIMIT_NOFILE` is raised to the
//! hard one (a service manager's soft default, 1,024 under systemd, would stop berth near a
//! thousand containers). Under that limit berth holds one open file per process it watches
//! (a pidfd per container and per gVisor sandbox), one per pooled network namespace and one
//! per API connection (at most `--max-connections`, exec and log streams included), and
//! keeps [`RESERVE`] for everything else: the store, the files of groups being started or
//! removed, the runtime processes it starts and their pipes. What is left
//! is the node's container slots, a dimension of its capacity (ADR 0012): a group beyond
//! them waits for room as it would for CPU or memory, instead of its start failing on
//! EMFILE half way.

use anyhow::{bail, Context};

/// Open files kept for what is not a watched process, a pooled namespace or a connection.
pub const RESERVE: u64 = 512;

/// The limit before and after [`raise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpenFiles {
    /// The soft limit berth was started with.
    pub soft_at_start: u64,
    /// The soft limit now, the hard one.
    pub limit: u64,
}

/// Raises the soft open-files limit of this process to its hard limit.
pub fn raise() -> anyhow::Result<OpenFiles> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    let soft_at_start = r.rlim_cur;
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot raise the soft open-files limit to the hard one");
        }
    }
    Ok(OpenFiles {
        soft_at_start,
        limit: r.rlim_cur,
    })
}

/// The container slots under `limit` open files with `pooled` namespaces kept open and at
/// most `connections` API connections.
pub fn container_slots(limit: u64, pooled: u64, connections: u64) -> anyhow::Result<u64> {
    let slots = limit
        .saturating_sub(RESERVE)
        .saturating_sub(pooled)
        .saturating_sub(connections);
    if slots == 0 {
        bail!(
            "the open-files limit ({limit}) leaves no room for containers: berth keeps {RESERVE} \
             open files for itself, one per pooled network namespace ({pooled}) and one per \
             API connection ({connections}); raise the hard limit (LimitNOFILE= under \
             systemd, ulimit -Hn) or lower --netns-pool or --max-connections"
        );
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_are_the_limit_less_the_reserve_and_the_pool() {
        assert_eq!(
            container_slots(20_000, 128, 512).unwrap(),
            20_000 - 512 - 128 - 512
        );
        let e = container_slots(1100, 128, 512).unwrap_err().to_string();
        assert!(e.contains("(1100)") && e.contains("--netns-pool"), "{e}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let o = raise().unwrap();
        assert!(o.limit >= o.soft_at_start);
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        assert_eq!(r.rlim_cur, r.rlim_max);
        assert_eq!(o.limit, r.rlim_max);
    }
}
