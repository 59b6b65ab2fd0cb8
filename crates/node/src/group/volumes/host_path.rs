//! Host-path volumes: a directory or file of the host below a prefix the operator allows
//! (`berth serve --host-path-prefix`), bound for the group onto `groups/<id>/volumes/<name>`
//! in the sandbox step, and from there into its containers.
//!
//! The path was checked by the API (absolute, normalised, no `..`) and by the control plane
//! (at or below an allowed prefix, whole components). Here it is resolved again below the
//! prefix's descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)`: no symlink on the way is followed (whoever can write below the
//! prefix cannot point a group elsewhere), and nothing above the prefix can be reached. The
//! result is bound by its descriptor (`/proc/self/fd/N`), never by name.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use berth_core::{HostPathType, VolumePolicy};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};

/// How often an open that met a concurrent rename or mount (`EAGAIN`) is tried.
const OPEN_ATTEMPTS: usize = 128;

fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

fn open_beneath(dir: &impl AsRawFd, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { "." } else { rel };
    let mut attempt = 1;
    loop {
        match openat2(dir.as_raw_fd(), rel, beneath(flags)) {
            Err(Errno::EAGAIN) if attempt < OPEN_ATTEMPTS => attempt += 1,
            // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) => return Err(e),
        }
    }
}

fn err(path: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("host path {path:?}: {what}"))
}

/// Opens `path` (`O_PATH`) below its allowed prefix, making missing directories for
/// `DirectoryOrCreate`, and checks its type.
pub fn open(policy: &VolumePolicy, path: &str, kind: HostPathType) -> io::Result<OwnedFd> {
    let Some((prefix, rel)) = policy.host_path_prefix(path) else {
        return Err(err(
            path,
            "is not below a prefix this node allows (--host-path-prefix)",
        ));
    };
    let root = File::open(prefix).map_err(|e| err(path, format!("cannot open {prefix}: {e}")))?;
    let fd = match open_beneath(&root, rel, OFlag::O_PATH) {
        Err(Errno::ENOENT) if kind == HostPathType::DirectoryOrCreate => {
            make_dirs(&root, rel).map_err(|e| err(path, format!("cannot make it: {e}")))?;
            open_beneath(&root, rel, OFlag::O_PATH)
        }
        r => r,
    };
    let fd = fd.map_err(|e| match e {
        Errno::ELOOP | Errno::EXDEV => {
            err(path, "leads through a symbolic link, which is not followed")
        }
        Errno::ENOENT => err(path, "does not exist"),
        e => err(path, e),
    })?;
    let meta = File::from(fd.try_clone()?).metadata()?;
    let ok = match kind {
        HostPathType::Any => meta.is_dir() || meta.is_file(),
        HostPathType::Directory | HostPathType::DirectoryOrCreate => meta.is_dir(),
        HostPathType::File => meta.is_file(),
    };
    if !ok {
        let want = match kind {
            HostPathType::Any => "a directory or a regular file",
            HostPathType::File => "a regular file",
            _ => "a directory",
        };
        return Err(err(path, format!("is not {want}")));
    }
    Ok(fd)
}

/// Makes the missing directories of `rel` below `root`, one by one below descriptors.
fn make_dirs(root: &File, rel: &str) -> io::Result<()> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for n in 1..=parts.len() {
        if open_beneath(root, &parts[..n].join("/"), OFlag::O_PATH).is_ok() {
            continue;
        }
        let parent = open_beneath(
            root,
            &parts[..n - 1].join("/"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )?;
        let name = CString::new(parts[n - 1])?;
        match nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name.as_c_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Binds the host path onto `target` (its former bind, after a restart of berth, is
/// replaced: the path is resolved again).
pub fn bind(
    policy: &VolumePolicy,
    path: &str,
    kind: HostPathType,
    target: &Path,
) -> io::Result<()> {
    super::mounts::unmount_below(target)?;
    let fd = open(policy, path, kind)?;
    let is_dir = File::from(fd.try_clone()?).metadata()?.is_dir();
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir => {}
        Ok(m) if m.is_dir() => fs::remove_dir(target)?,
        Ok(_) => fs::remove_file(target)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if !target.exists() {
        if is_dir {
            fs::DirBuilder::new().mode(0o711).create(target)?;
        } else {
            File::create(target)?;
        }
    }
    let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(by_fd.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root test: symlinks below the prefix are not followed, nothing above it is reached,
    /// DirectoryOrCreate makes what is missing.
    #[test]
    fn host_paths_stay_below_their_prefix() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("allowed");
        fs::create_dir_all(prefix.join("data")).unwrap();
        fs::write(prefix.join("file"), b"x").unwrap();
        fs::write(tmp.path().join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink(tmp.path(), prefix.join("up")).unwrap();
        std::os::unix::fs::symlink("data", prefix.join("host")).unwrap();
        let p = prefix.to_str().unwrap();
        let policy = VolumePolicy::default().with_host_path_prefixes([p]);
        let at = |rel: &str| format!("{p}/{rel}");
        open(&policy, p, HostPathType::Directory).unwrap();
        open(&policy, &at("data"), HostPathType::Directory).unwrap();
        open(&policy, &at("file"), HostPathType::File).unwrap();
        assert!(open(&policy, &at("file"), HostPathType::Directory).is_err());
        assert!(open(&policy, &at("data"), HostPathType::File).is_err());
        for link in ["up", "up/secret", "host"] {
            let e = open(&policy, &at(link), HostPathType::Any).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{link}: {e}");
        }
        assert!(open(&policy, tmp.path().to_str().unwrap(), HostPathType::Any).is_err());
        assert!(open(&policy, &at("new/dir"), HostPathType::Directory).is_err());
        open(&policy, &at("new/dir"), HostPathType::DirectoryOrCreate).unwrap();
        assert!(prefix.join("new/dir").is_dir());
        assert!(open(&policy, &at("up/made"), HostPathType::DirectoryOrCreate).is_err());
        assert!(!tmp.path().join("made").exists());
    }
}
