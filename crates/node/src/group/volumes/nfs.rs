//! NFS volumes: the export is mounted by berth on the host, once for the group, on
//! `groups/<id>/volumes/<name>`, and bound from there into the containers that mount it
//! (the volume's `ReadOnly` makes every bind read-only too). The server is one the operator
//! allows (`berth serve --nfs-server`, checked by the control plane); the name and path were
//! checked by the API (no commas, white space or `..`) and go to `mount` as arguments of
//! their own.
//!
//! A dead server must not hang berth: the mount is `soft` with short RPC time-outs
//! ([`OPTIONS`]), so a call on it fails with `EIO` instead of waiting for ever; the `mount`
//! process itself is killed after [`MOUNT_TIMEOUT`]; and the group's removal detaches it
//! with `MNT_FORCE | MNT_DETACH` (see `volumes::unmount_below`), which does not wait for
//! the server.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Options of every NFS mount: soft, 5 s per RPC try (growing by 5 s), 2 retries, no
/// retry of the mount in the background or foreground, no set-uid files or devices.
pub const OPTIONS: &str = "soft,timeo=50,retrans=2,retry=0,nosuid,nodev";
/// Longest the `mount` command may take.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `dir` is a mount point, read from `/proc/self/mountinfo` (a `stat` of a mount of
/// a dead server could wait).
pub fn mounted(dir: &Path) -> io::Result<bool> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = dir.to_string_lossy();
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| super::mounts::unescape(p) == want))
}

/// Mounts `server:path` on `dir` unless something is mounted there already (after a restart
/// of berth, the group's mount is kept).
pub fn mount(dir: &Path, server: &str, path: &str, read_only: bool) -> io::Result<()> {
    if mounted(dir)? {
        return Ok(());
    }
    let mut opts = OPTIONS.to_string();
    if read_only {
        opts.push_str(",ro");
    }
    let source = format!("{server}:{path}");
    // The mount may wait on the network: give up the worker thread meanwhile.
    blocking(|| run_mount(&source, dir, &opts))
}

fn run_mount(source: &str, dir: &Path, opts: &str) -> io::Result<()> {
    let mut child = Command::new("mount")
        .args(["-t", "nfs", "-o", opts, source])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run mount: {e}")))?;
    let deadline = Instant::now() + MOUNT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.by_ref().take(4096).read_to_string(&mut err);
            }
            return Err(io::Error::other(format!(
                "mount of NFS export {source} failed ({status}): {}",
                err.trim()
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            // A mount that completed as it was killed is not kept.
            let _ = nix::mount::umount2(
                dir,
                nix::mount::MntFlags::MNT_FORCE | nix::mount::MntFlags::MNT_DETACH,
            );
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "mount of NFS export {source} took more than {}s",
                    MOUNT_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` off the async workers when called on a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_bound_every_wait() {
        for o in ["soft", "timeo=", "retrans=", "retry=0", "nosuid", "nodev"] {
            assert!(OPTIONS.contains(o), "{o}");
        }
        assert!(!OPTIONS.contains("hard"));
    }

    #[test]
    fn the_root_is_mounted() {
        assert!(mounted(Path::new("/")).unwrap());
        assert!(!mounted(Path::new("/no/such/dir")).unwrap());
    }
}
