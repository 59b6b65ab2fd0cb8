//! The group's volumes on the host: where each lives, how it is made when the group's
//! sandbox is set up, how a container's mounts of it become binds of its bundle, and how
//! everything is unmounted when the group goes.
//!
//! * An emptyDir on disk is `rw/<id>/.volumes/<name>`, inside the group's subvolume: it
//!   counts against `EphemeralStorage` and goes with the subvolume.
//! * An emptyDir in memory is a tmpfs of its `SizeLimit` (the group's memory when none is
//!   given) mounted on `groups/<id>/volumes/<name>`. Its pages are charged to the memory
//!   cgroup of the container that writes them, so they count against that container's
//!   memory limit (and stay charged to the group's cgroup after it exits).
//! * A ConfigFile volume is `rw/<id>/.volumes/<name>`, written by berth in a temporary
//!   directory renamed into place, in the kubelet's AtomicWriter layout (see [`atomic`]):
//!   an update that changes only its files rewrites them in place, under the running
//!   containers. It is always mounted read-only.
//! * An NFS volume is the export mounted on `groups/<id>/volumes/<name>` (see [`nfs`]).
//! * A host-path volume is bound onto `groups/<id>/volumes/<name>` by its descriptor, resolved
//!   below the operator's prefix without following links (see [`host_path`]).
//!
//! The tenant controls the content of an emptyDir (it may plant symlinks there for a later
//! `SubPath` to follow) and the image (a symlink at a `MountPath`). berth never resolves such
//! a path by name on the host: a `SubPath` is opened with `openat2(RESOLVE_IN_ROOT)` below
//! the volume, missing directories are made one by one below descriptors, and the result is
//! bound by its descriptor (`/proc/self/fd/N`) onto a staging path of berth's own
//! (`groups/<id>/containers/<name>/volumes/<i>`), which the bundle then names. Mount
//! destinations are resolved by the runtime inside the root file system (see
//! `berth_runtime::bundle::mounts`).

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_core::{ContainerSpec, EmptyDirMedium, GroupSpec, Volume, VolumeSource};
use berth_runtime::{Propagation, VolumeBind};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};

use crate::files::GroupDirs;

mod atomic;
mod host_path;
mod mounts;
mod nfs;

use mounts::{mounts_below, unmount_below};

/// How often an open that met a concurrent rename or mount (`EAGAIN`) is tried.
const OPEN_ATTEMPTS: usize = 128;

/// Who owns what berth makes for the group's volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// The group's `FsGroup` owns the volumes: directories are set-group-id (what the
    /// containers make in them belongs to that group too) and config files group-readable.
    pub fs_group: bool,
}

impl Owner {
    /// Mode of a writable volume directory: anyone of the containers may write.
    fn dir_mode(self) -> u32 {
        if self.fs_group {
            0o2777
        } else {
            0o777
        }
    }
}

/// The owner of the group's volumes: the host's root while containers run without a user
/// namespace, the group's mapped root with one; the group is the `FsGroup` (mapped the
/// same way) when the group has one.
pub fn owner(map: Option<berth_image::idmap::IdMap>, fs_group: Option<u32>) -> Owner {
    let base = map.map_or(0, |m| m.host);
    Owner {
        uid: base,
        // Below 2^16 (`MAX_FS_GROUP`), which every group's user namespace maps.
        gid: base + fs_group.unwrap_or(0),
        fs_group: fs_group.is_some(),
    }
}

/// Mode of the directories berth makes to hold volumes: searchable, not listable, by others
/// (the group's own directories above them admit only its user namespace's range, if it has
/// one, and the state directory admits no one else).
const HOLDER_MODE: u32 = 0o711;

fn chown(fd: &impl AsRawFd, o: Owner) -> io::Result<()> {
    nix::unistd::fchown(fd.as_raw_fd(), Some(o.uid.into()), Some(o.gid.into()))
        .map_err(io::Error::from)
}

/// Where a volume lives on the host.
pub fn source(dirs: &GroupDirs, v: &Volume) -> PathBuf {
    match &v.source {
        VolumeSource::EmptyDir {
            medium: EmptyDirMedium::Memory,
            ..
        }
        | VolumeSource::Nfs { .. }
        | VolumeSource::HostPath { .. } => dirs.root.join("volumes").join(&v.name),
        VolumeSource::EmptyDir { .. } | VolumeSource::ConfigFile { .. } => {
            dirs.rw.join(".volumes").join(&v.name)
        }
    }
}

/// Makes every volume of the group that is not there yet (after a restart of berth, the
/// ones made before are kept as they are).
pub fn prepare(
    dirs: &GroupDirs,
    spec: &GroupSpec,
    who: Owner,
    host: &berth_core::VolumePolicy,
) -> io::Result<()> {
    if spec.volumes.is_empty() {
        return Ok(());
    }
    let before = read_prepared(dirs)?;
    for v in &spec.volumes {
        let dir = source(dirs, v);
        let parent = dir.parent().unwrap_or(&dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(HOLDER_MODE)
            .create(parent)?;
        match &v.source {
            VolumeSource::EmptyDir {
                medium,
                size_limit_bytes,
                ..
            } => {
                make_dir(&dir, who)?;
                if *medium == EmptyDirMedium::Memory {
                    let group = (spec.memory * (1u64 << 30) as f64) as u64;
                    mount_tmpfs(&dir, size_limit_bytes.unwrap_or(group), who)?;
                }
            }
            VolumeSource::ConfigFile {
                files,
                default_mode,
            } => {
                if !dir.exists() {
                    atomic::create(&dir, files, *default_mode, who)?;
                } else if before
                    .iter()
                    .any(|o| o.name == v.name && o != v && in_place(o, v, &dir))
                {
                    let pins = atomic::Pins::of(sub_path_mounts(dirs, spec, &v.name));
                    atomic::update(&dir, files, *default_mode, who, &pins)?;
                }
            }
            VolumeSource::Nfs {
                server,
                path,
                read_only,
            } => {
                if !nfs::mounted(&dir)? {
                    fs::DirBuilder::new()
                        .mode(HOLDER_MODE)
                        .create(&dir)
                        .or_else(|e| {
                            if e.kind() == io::ErrorKind::AlreadyExists {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })?;
                }
                nfs::mount(&dir, server, path, *read_only)?;
            }
            VolumeSource::HostPath { path, kind } => {
                host_path::bind(host, path, *kind, &dir)?;
            }
        }
    }
    record_prepared(dirs, spec)
}

/// The volumes as [`prepare`] made them last, in the group's run-time tree.
const PREPARED: &str = "volumes.json";

/// Releases the volumes made for an earlier spec of the group that `spec` changed or no
/// longer has (after UpdateContainerGroup), so that [`prepare`] makes them anew. The
/// containers that mount them are recreated (their revision holds the volumes). Nothing is
/// removed while anything is still mounted below a volume.
pub fn drop_changed(dirs: &GroupDirs, spec: &GroupSpec) -> io::Result<()> {
    let old = read_prepared(dirs)?;
    let kept = |v: &Volume| {
        spec.volumes.contains(v)
            || spec
                .volumes
                .iter()
                .any(|n| n.name == v.name && in_place(v, n, &source(dirs, v)))
    };
    for v in old.iter().filter(|v| !kept(v)) {
        let dir = source(dirs, v);
        let left = match unmount_below(&dir)? {
            0 => Vec::new(),
            _ => mounts_below(&dir)?,
        };
        if !left.is_empty() {
            return Err(io::Error::other(format!(
                "volume {} is still mounted after the unmount, not removed: {}",
                v.name,
                left.join(", ")
            )));
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    if spec.volumes.is_empty() {
        return match fs::remove_file(dirs.root.join(PREPARED)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    Ok(())
}

/// What [`prepare`] made last (nothing before the first time).
fn read_prepared(dirs: &GroupDirs) -> io::Result<Vec<Volume>> {
    match fs::read(dirs.root.join(PREPARED)) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Whether volume `old`, made in `dir`, becomes `new` by writing its files in place: both
/// are ConfigFile volumes of one name (only their files or modes differ) and `dir` has the
/// layout that allows it ([`atomic`]). The containers mounting it keep running.
pub fn in_place(old: &Volume, new: &Volume, dir: &Path) -> bool {
    old.name == new.name
        && matches!(old.source, VolumeSource::ConfigFile { .. })
        && matches!(new.source, VolumeSource::ConfigFile { .. })
        && atomic::is_atomic(dir)
}

/// The staging paths of the containers' `SubPath` mounts of volume `name` (see [`binds`]).
fn sub_path_mounts(dirs: &GroupDirs, spec: &GroupSpec, name: &str) -> Vec<PathBuf> {
    spec.all_containers()
        .flat_map(|c| {
            c.volume_mounts
                .iter()
                .enumerate()
                .filter(|(_, m)| m.name == name && m.sub_path.is_some())
                .map(|(i, _)| dirs.container(&c.name).join("volumes").join(i.to_string()))
        })
        .collect()
}

/// Records what [`prepare`] made, for [`drop_changed`].
fn record_prepared(dirs: &GroupDirs, spec: &GroupSpec) -> io::Result<()> {
    fs::create_dir_all(&dirs.root)?;
    let tmp = dirs.root.join(".volumes.json.tmp");
    fs::write(&tmp, serde_json::to_vec(&spec.volumes)?)?;
    fs::rename(tmp, dirs.root.join(PREPARED))
}

/// An emptyDir: mode 0777 (any user of the containers may write; 02777 with an `FsGroup`),
/// owned by `who`.
fn make_dir(dir: &Path, who: Owner) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        r => r?,
    }
    let f = File::open(dir)?;
    chown(&f, who)?;
    // After the owner: a change of owner clears the set-group-id bit.
    f.set_permissions(fs::Permissions::from_mode(who.dir_mode()))
}

fn mount_tmpfs(dir: &Path, bytes: u64, who: Owner) -> io::Result<()> {
    let here = fs::metadata(dir)?;
    let parent = fs::metadata(dir.join(".."))?;
    if here.dev() != parent.dev() {
        // Mounted before: berth restarted, or an update changed the group's memory, which a
        // memory volume without a SizeLimit follows.
        return resize_tmpfs(dir, bytes);
    }
    let opts = format!(
        "size={bytes},mode={:o},uid={},gid={}",
        who.dir_mode(),
        who.uid,
        who.gid
    );
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(io::Error::from)
}

/// Gives the tmpfs on `dir` the size `bytes` (rounded up to pages, as tmpfs does) unless it
/// has it. A shrink below what the volume holds is refused by the kernel: the volume keeps
/// its size then, and says so in berth's log.
fn resize_tmpfs(dir: &Path, bytes: u64) -> io::Result<()> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    let st = nix::sys::statvfs::statvfs(dir)?;
    let now = st.blocks() * st.fragment_size();
    if now == bytes.div_ceil(page) * page {
        return Ok(());
    }
    let opts = format!("size={bytes}");
    match mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            tracing::warn!(volume = %dir.display(), bytes, "a memory volume holds more than its new size; it keeps its size");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The binds of a container's volume mounts; a `SubPath` is resolved below its volume and
/// staged under `cdir` (its former staging is unmounted first).
pub fn binds(
    dirs: &GroupDirs,
    group: &GroupSpec,
    c: &ContainerSpec,
    cdir: &Path,
    who: Owner,
) -> Result<Vec<VolumeBind>, String> {
    if c.volume_mounts.is_empty() {
        return Ok(Vec::new());
    }
    let staging = cdir.join("volumes");
    // A first start has no staging yet: the mount table (as long as the host has mounts)
    // is read only when there is a former one to take down.
    if fs::symlink_metadata(&staging).is_ok() {
        unmount_below(&staging)
            .and_then(|_| match fs::remove_dir_all(&staging) {
                // Only berth's empty mount points are left once nothing is mounted there.
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .map_err(|e| format!("cannot remove the former volume mounts: {e}"))?;
    }
    let mut out = Vec::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let Some(v) = group.volumes.iter().find(|v| v.name == m.name) else {
            return Err(format!("volume {:?} is not defined in the group", m.name));
        };
        let config = matches!(v.source, VolumeSource::ConfigFile { .. });
        let always_ro = config
            || matches!(
                v.source,
                VolumeSource::Nfs {
                    read_only: true,
                    ..
                }
            );
        let mut src = source(dirs, v);
        if let Some(sub) = &m.sub_path {
            let target = staging.join(i.to_string());
            stage(&src, sub, !always_ro, &target, who)
                .map_err(|e| format!("cannot mount SubPath {sub:?} of volume {:?}: {e}", m.name))?;
            src = target;
        }
        out.push(VolumeBind {
            source: src,
            destination: m.mount_path.clone(),
            read_only: m.read_only || always_ro,
            propagation: match m.propagation {
                berth_core::MountPropagation::HostToContainer => Propagation::Slave,
                _ => Propagation::Private,
            },
        });
    }
    Ok(out)
}

fn how(flags: OFlag, resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV)
}

fn open_in(dir: &impl AsRawFd, rel: &str, h: OpenHow) -> nix::Result<OwnedFd> {
    let mut attempt = 1;
    loop {
        match openat2(dir.as_raw_fd(), rel, h) {
            Err(nix::errno::Errno::EAGAIN) if attempt < OPEN_ATTEMPTS => attempt += 1,
            // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) => return Err(e),
        }
    }
}

/// Resolves `sub` below `volume` as if `volume` were `/` (symlinks planted there cannot leave
/// it), making missing directories when `create`, and binds the result onto `target`.
fn stage(volume: &Path, sub: &str, create: bool, target: &Path, who: Owner) -> io::Result<()> {
    let root = File::open(volume)?;
    let in_root = how(OFlag::O_PATH, ResolveFlag::RESOLVE_IN_ROOT);
    let fd = match open_in(&root, sub, in_root) {
        Err(nix::errno::Errno::ENOENT) if create => {
            let parts: Vec<&str> = sub.split('/').collect();
            for n in 1..=parts.len() {
                let prefix = parts[..n].join("/");
                if open_in(&root, &prefix, in_root).is_ok() {
                    continue;
                }
                let parent = match n {
                    1 => open_in(&root, ".", in_root)?,
                    _ => open_in(&root, &parts[..n - 1].join("/"), in_root)?,
                };
                let name = CString::new(parts[n - 1])?;
                match nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    name.as_c_str(),
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                // Opened again without following anything, to set its mode and owner.
                let made = open_in(
                    &parent,
                    parts[n - 1],
                    how(
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
                    ),
                )?;
                let made = File::from(made);
                chown(&made, who)?;
                made.set_permissions(fs::Permissions::from_mode(who.dir_mode()))?;
            }
            open_in(&root, sub, in_root)?
        }
        r => r?,
    };
    let meta = File::from(fd.try_clone()?).metadata()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(HOLDER_MODE)
        .create(target.parent().unwrap_or(target))?;
    if meta.is_dir() {
        fs::create_dir_all(target)?;
    } else if meta.is_file() {
        File::create(target)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is neither a directory nor a regular file",
        ));
    }
    let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(by_fd.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Whether a volume may be mounted below the group's run-time tree: berth mounts volumes
/// only on `volumes/NAME` (memory, NFS and host-path volumes, see [`source`]) and stages
/// SubPaths only below `containers/NAME/volumes` ([`binds`]); the containers' root
/// filesystems are unmounted before, and no mount made inside a container reaches the host
/// (no volume propagates from the container to the host). A mount point is a directory, so
/// when none of these directories exists nothing of the group's is mounted there.
fn may_hold_mounts(dirs: &GroupDirs) -> io::Result<bool> {
    if fs::symlink_metadata(dirs.root.join("volumes")).is_ok() {
        return Ok(true);
    }
    let containers = match fs::read_dir(dirs.root.join("containers")) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in containers {
        if fs::symlink_metadata(entry?.path().join("volumes")).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Unmounts everything the group's volumes mounted below its run-time tree, and fails when
/// anything is still mounted there: the tree is removed next, and a removal that went
/// through a host path or an NFS export would delete the host's or the server's files.
pub fn release(dirs: &GroupDirs) -> io::Result<()> {
    // Reading the mount table costs as much as the host has mounts (two or more per group
    // running: at 1,000 groups it was a tenth of the CPU of a delete), and most groups mount
    // nothing there: skipped when no place exists where berth mounts a volume.
    if !may_hold_mounts(dirs)? {
        return Ok(());
    }
    // Read once more only when something was mounted there.
    if unmount_below(&dirs.root)? == 0 {
        return Ok(());
    }
    let left = mounts_below(&dirs.root)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "still mounted after the unmount, not removed: {}",
            left.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fs_group_owns_the_volumes_in_the_groups_id_range() {
        assert_eq!(
            owner(None, None),
            Owner {
                uid: 0,
                gid: 0,
                fs_group: false
            }
        );
        let map = berth_image::idmap::IdMap {
            host: 1 << 30,
            count: 65536,
        };
        let o = owner(Some(map), Some(2000));
        assert_eq!((o.uid, o.gid), ((1 << 30), (1 << 30) + 2000));
        assert_eq!(o.dir_mode(), 0o2777);
        assert_eq!(owner(Some(map), None).dir_mode(), 0o777);
    }

    /// Root test: a memory volume follows a new size, and keeps its size when it holds more.
    #[test]
    fn a_memory_volume_is_resized_in_place() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mem");
        make_dir(&dir, owner(None, None)).unwrap();
        let size = |d: &Path| {
            let st = nix::sys::statvfs::statvfs(d).unwrap();
            st.blocks() * st.fragment_size()
        };
        mount_tmpfs(&dir, 1 << 20, owner(None, None)).unwrap();
        assert_eq!(size(&dir), 1 << 20);
        fs::write(dir.join("f"), vec![1u8; 600 << 10]).unwrap();
        mount_tmpfs(&dir, 2 << 20, owner(None, None)).unwrap();
        assert_eq!(size(&dir), 2 << 20);
        assert_eq!(
            fs::read(dir.join("f")).unwrap().len(),
            600 << 10,
            "content kept"
        );
        mount_tmpfs(&dir, 256 << 10, owner(None, None)).unwrap();
        assert_eq!(
            size(&dir),
            2 << 20,
            "a shrink below the content is not made"
        );
        unmount_below(&dir).unwrap();
    }

    /// Root test: with an FsGroup, an emptyDir and a config volume belong to it, set-group-id.
    #[test]
    fn fs_group_volumes_are_set_group_id() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let who = owner(None, Some(2000));
        let dir = tmp.path().join("data");
        make_dir(&dir, who).unwrap();
        let m = fs::metadata(&dir).unwrap();
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o2777, 2000));
        let cfg = tmp.path().join("cfg");
        let file = berth_core::ConfigFile {
            path: "a/b.conf".into(),
            content: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"x"),
            mode: Some(0o400),
        };
        atomic::create(&cfg, &[file], None, who).unwrap();
        let f = fs::metadata(cfg.join("a/b.conf")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.gid()), (0o440, 2000));
        let d = fs::metadata(cfg.join("a")).unwrap();
        assert_eq!((d.mode() & 0o7777, d.gid()), (0o2755, 2000));
    }

    fn config(name: &str, content: &str) -> Volume {
        Volume {
            name: name.into(),
            source: VolumeSource::ConfigFile {
                files: vec![berth_core::ConfigFile {
                    path: "token".into(),
                    content: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        content,
                    ),
                    mode: None,
                }],
                default_mode: None,
            },
        }
    }

    /// Root test: an update that changes only a config volume's files rewrites them in the
    /// same directory (the containers' binds of it see them); a changed emptyDir is new.
    #[test]
    fn new_files_of_a_config_volume_are_written_in_place() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let dirs = crate::files::NodeDirs::new(tmp.path()).group("eci-1");
        let policy = berth_core::VolumePolicy::default();
        let who = owner(None, None);
        let scratch = Volume {
            name: "scratch".into(),
            source: VolumeSource::EmptyDir {
                medium: EmptyDirMedium::Disk,
                size_limit: None,
                size_limit_bytes: None,
            },
        };
        let mut spec = GroupSpec {
            volumes: vec![config("cfg", "one"), scratch.clone()],
            ..Default::default()
        };
        drop_changed(&dirs, &spec).unwrap();
        prepare(&dirs, &spec, who, &policy).unwrap();
        let dir = source(&dirs, &spec.volumes[0]);
        let ino = fs::metadata(&dir).unwrap().ino();
        fs::write(source(&dirs, &scratch).join("kept"), "x").unwrap();
        assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), "one");

        spec.volumes[0] = config("cfg", "two");
        drop_changed(&dirs, &spec).unwrap();
        prepare(&dirs, &spec, who, &policy).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().ino(), ino, "the same directory");
        assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), "two");
        assert!(source(&dirs, &scratch).join("kept").exists(), "others kept");

        // Prepared again unchanged (a restart of berth): nothing is rewritten.
        let data = fs::read_link(dir.join("..data")).unwrap();
        prepare(&dirs, &spec, who, &policy).unwrap();
        assert_eq!(fs::read_link(dir.join("..data")).unwrap(), data);
    }

    /// Root test: a SubPath through a symlink planted in the volume stays inside it, and
    /// missing directories are made.
    #[test]
    fn subpath_stays_in_its_volume() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&vol).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../..", vol.join("up")).unwrap();
        let who = owner(None, None);
        for (i, sub) in ["escape", "up/escape", "new/dir"].iter().enumerate() {
            let target = tmp.path().join("stage").join(i.to_string());
            // Refused (a dangling link inside the volume) or bound inside it: never outside.
            if stage(&vol, sub, true, &target, who).is_ok() {
                assert!(!target.join("secret").exists(), "{sub} reached the host");
                unmount_below(&target).unwrap();
            }
        }
        assert!(vol.join("new/dir").is_dir());
        assert!(!outside.join("new").exists());
    }
}
