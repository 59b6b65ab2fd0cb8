//! The user a container runs as: the image's `User` resolved against the image's own
//! `/etc/passwd` and `/etc/group`, read without trusting the image.
//!
//! Those files belong to the image (or to a container's writable layer, which the tenant
//! controls): they may be symlinks to the host's files, FIFOs that block a reader forever,
//! or device nodes such as `/dev/zero`. berth opens them with `openat2(RESOLVE_IN_ROOT)`
//! below the root filesystem (symlinks resolve inside it, never to the host), only as
//! `O_PATH` until `fstat` has shown a regular file, and reads at most [`MAX_DB_BYTES`].
//! A `..` resolved while any rename or mount happens on the host makes the kernel answer
//! `EAGAIN` (it cannot prove the walk stayed inside); the open is tried again then.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// The most of `/etc/passwd` or `/etc/group` berth reads.
pub const MAX_DB_BYTES: u64 = 1 << 20;

/// How often an open that met a concurrent rename or mount (`EAGAIN`) is tried.
const OPEN_ATTEMPTS: usize = 128;

/// uid and gid of `user` (`uid[:gid]` or `name[:group]`, empty for root) in the image whose
/// root filesystem is `rootfs`. A name the image does not define is an error, as podman has it.
pub fn resolve(user: &str, rootfs: &Path) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    let passwd = || read_db(rootfs, "etc/passwd");
    let (uid, mut gid) = match u.parse::<u32>() {
        // A numeric user need not be in the file; its group comes from there when it is.
        Ok(n) => (n, field(&passwd()?, |f| f[2] == u, 3).unwrap_or(0)),
        Err(_) => {
            let text = passwd()?;
            let found = |idx| field(&text, |f| f[0] == u, idx);
            match (found(2), found(3)) {
                (Some(uid), Some(gid)) => (uid, gid),
                _ => {
                    return Err(format!(
                        "unable to find user {u}: no matching entries in the image's /etc/passwd"
                    ))
                }
            }
        }
    };
    if let Some(g) = g {
        gid = match g.parse() {
            Ok(n) => n,
            Err(_) => field(&read_db(rootfs, "etc/group")?, |f| f[0] == g, 2).ok_or_else(|| {
                format!("unable to find group {g}: no matching entries in the image's /etc/group")
            })?,
        };
    }
    Ok((uid, gid))
}

/// The text of `rel` below `root`, empty when it does not exist.
fn read_db(root: &Path, rel: &str) -> Result<String, String> {
    let fail = |e: io::Error| format!("cannot read /{rel} of the image: {e}");
    match read_in_root(root, rel, MAX_DB_BYTES) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Ok(String::new()),
        Err(e) => Err(fail(e)),
    }
}

/// Reads the regular file `rel` inside `root` (at most `max` bytes): `None` when it does not
/// exist; an error when it is anything but a regular file or is larger than `max`.
pub fn read_in_root(root: &Path, rel: &str, max: u64) -> io::Result<Option<String>> {
    let dir = File::open(root)?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let mut attempt = 1;
    let opened = loop {
        match openat2(dir.as_raw_fd(), rel, how) {
            Err(nix::errno::Errno::EAGAIN) if attempt < OPEN_ATTEMPTS => attempt += 1,
            other => break other,
        }
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    let path_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let meta = File::from(path_fd.try_clone()?).metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is {what}, not a regular file"),
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it has {} bytes, more than {max}", meta.len()),
        ));
    }
    // Reopened for reading only now that it is known to be a regular file.
    let file = File::open(format!("/proc/self/fd/{}", path_fd.as_raw_fd()))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it grew past {max} bytes"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn field(file: &str, pick: impl Fn(&[&str]) -> bool, idx: usize) -> Option<u32> {
    file.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > idx && f.len() >= 3 && pick(f))
        .and_then(|f| f[idx].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        dir
    }

    #[test]
    fn users_resolve() {
        let dir = image();
        let r = |u| resolve(u, dir.path());
        assert_eq!(r(""), Ok((0, 0)));
        assert_eq!(r("web"), Ok((33, 34)));
        assert_eq!(r("33"), Ok((33, 34)));
        assert_eq!(r("1000:1000"), Ok((1000, 1000)));
        assert_eq!(r("web:staff"), Ok((33, 50)));
        let err = r("nobody").unwrap_err();
        assert!(err.contains("unable to find user nobody"), "{err}");
        let err = r("web:wheel").unwrap_err();
        assert!(err.contains("unable to find group wheel"), "{err}");
    }

    #[test]
    fn a_symlink_resolves_inside_the_image_never_to_the_host() {
        let dir = image();
        let passwd = dir.path().join("etc/passwd");
        fs::remove_file(&passwd).unwrap();
        // Absolute and climbing links both stay below the image's root.
        for target in ["/etc/shadow", "../../../../../../etc/shadow"] {
            std::os::unix::fs::symlink(target, &passwd).unwrap();
            assert_eq!(
                read_in_root(dir.path(), "etc/passwd", MAX_DB_BYTES).unwrap(),
                None
            );
            let err = resolve("root", dir.path()).unwrap_err();
            assert!(err.contains("unable to find user root"), "{err}");
            fs::remove_file(&passwd).unwrap();
        }
        fs::write(dir.path().join("etc/real"), "app:x:7:8::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/real", &passwd).unwrap();
        assert_eq!(resolve("app", dir.path()), Ok((7, 8)));
    }

    #[test]
    fn climbing_links_resolve_while_the_host_renames_files() {
        let dir = image();
        fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        fs::write(dir.path().join("usr/lib/passwd"), "app:x:7:8::/:/bin/sh\n").unwrap();
        let passwd = dir.path().join("etc/passwd");
        fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink("../usr/lib/../lib/passwd", &passwd).unwrap();
        // Renames anywhere make the kernel refuse a `..` now and then with EAGAIN.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            let scratch = tempfile::tempdir().unwrap();
            std::thread::spawn(move || {
                let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
                fs::create_dir(&a).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    fs::rename(&a, &b).unwrap();
                    fs::rename(&b, &a).unwrap();
                }
            })
        };
        let started = std::time::Instant::now();
        let mut failures = Vec::new();
        while started.elapsed() < std::time::Duration::from_millis(500) {
            if let Err(e) = resolve("app", dir.path()) {
                failures.push(e);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} failures: {:?}",
            failures.len(),
            failures.first()
        );
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_without_blocking() {
        let dir = image();
        let passwd = dir.path().join("etc/passwd");
        fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = resolve("web", dir.path()).unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
        fs::remove_file(&passwd).unwrap();

        std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
        // Inside the image, /dev/zero does not exist.
        assert!(resolve("web", dir.path()).is_err());
        fs::remove_file(&passwd).unwrap();

        if nix::unistd::geteuid().is_root() {
            nix::sys::stat::mknod(
                &passwd,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
                nix::sys::stat::makedev(1, 5),
            )
            .unwrap();
            let err = resolve("web", dir.path()).unwrap_err();
            assert!(err.contains("device"), "{err}");
            fs::remove_file(&passwd).unwrap();
        }

        let f = fs::File::create(&passwd).unwrap();
        f.set_len(MAX_DB_BYTES + 1).unwrap();
        let err = resolve("web", dir.path()).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
