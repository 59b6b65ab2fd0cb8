//! The host's mount table as the volumes read it: what is mounted at or below a group's
//! directory, and unmounting it deepest first.

use std::fs;
use std::io;
use std::path::Path;

use nix::mount::{umount2, MntFlags};

/// Unmounts every mount at or below `dir`, deepest first (staged SubPaths, memory volumes);
/// returns how many mount points it found (0: nothing was mounted there, the mount table
/// need not be read again to know it).
pub fn unmount_below(dir: &Path) -> io::Result<usize> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = dir.to_string_lossy().to_string();
    // (mount point, whether it is NFS: forced, so that a dead server is not waited for)
    let mut points: Vec<(String, bool)> = text
        .lines()
        .filter_map(|l| {
            let point = unescape(l.split(' ').nth(4)?);
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?;
            Some((point, fstype.starts_with("nfs")))
        })
        .filter(|(p, _)| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    points.dedup();
    let found = points.len();
    for (p, nfs) in points {
        let flags = if nfs {
            MntFlags::MNT_FORCE | MntFlags::MNT_DETACH
        } else {
            MntFlags::MNT_DETACH
        };
        match umount2(Path::new(&p), flags) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found)
}

/// Mount points at or below `dir`.
pub fn mounts_below(dir: &Path) -> io::Result<Vec<String>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = dir.to_string_lossy().to_string();
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect())
}

/// `\040` and the like of /proc/self/mountinfo.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
