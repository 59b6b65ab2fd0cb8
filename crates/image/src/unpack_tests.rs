//! Unpack tests over archives built in the test (run as root: whiteouts are device nodes).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::*;

/// Archive builder that writes raw names, so hostile paths can be expressed.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(name: &str, kind: EntryType, mode: u32, size: usize) -> Header {
        let mut h = Header::new_gnu();
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size as u64);
        h
    }

    fn add(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add(
            Self::header(name, EntryType::Regular, 0o644, data.len()),
            data,
        )
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.add(Self::header(name, EntryType::Directory, 0o755, 0), &[])
    }

    fn link(&mut self, name: &str, kind: EntryType, target: &str) -> &mut Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        h.set_link_name_literal(target).unwrap();
        self.add(h, &[])
    }

    /// A pax header whose records apply to the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = [b" ", key.as_bytes(), b"=", value, b"\n"].concat();
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len = len.to_string().len() + body.len();
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.extend_from_slice(&body);
        }
        let h = Self::header("././@PaxHeader", EntryType::XHeader, 0o644, data.len());
        self.add(h, &data)
    }

    fn build(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

fn unpack(archive: &[u8]) -> (tempfile::TempDir, Result<String, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layer");
    fs::create_dir(&root).unwrap();
    let result = unpack_layer(archive, &root);
    (dir, result)
}

fn is_whiteout(path: &Path) -> bool {
    let m = fs::symlink_metadata(path).unwrap();
    m.file_type().is_char_device() && m.rdev() == 0
}

#[test]
fn whiteouts_become_char_devices() {
    let archive = Tar::new()
        .file(".wh.gone", &[])
        .dir("etc/")
        .file("etc/.wh.passwd", &[])
        .file("deep/er/.wh.x", &[])
        .build();
    let (dir, result) = unpack(&archive);
    result.unwrap();
    let root = dir.path().join("layer");
    assert!(is_whiteout(&root.join("gone")));
    assert!(is_whiteout(&root.join("etc/passwd")));
    assert!(is_whiteout(&root.join("deep/er/x")));
    assert!(!root.join(".wh.gone").exists());
}

#[test]
fn opaque_marker_sets_xattr() {
    let archive = Tar::new()
        .dir("usr/")
        .file("usr/.wh..wh..opq", &[])
        .file("usr/kept", b"k")
        .file("new/.wh..wh..opq", &[])
        .file(".wh..wh.plnk", &[])
        .build();
    let (dir, result) = unpack(&archive);
    result.unwrap();
    let root = dir.path().join("layer");
    for d in ["usr", "new"] {
        let value = xattr::get(root.join(d), OPAQUE_XATTR).unwrap();
        assert_eq!(value.as_deref(), Some(&b"y"[..]), "{d}");
    }
    assert_eq!(fs::read(root.join("usr/kept")).unwrap(), b"k");
    assert!(xattr::get(&root, OPAQUE_XATTR).unwrap().is_none());
}

#[test]
fn parent_dir_components_are_refused() {
    for name in ["../evil", "a/../../evil", "./.."] {
        let archive = Tar::new().file(name, b"x").build();
        let (dir, result) = unpack(&archive);
        assert!(
            matches!(result, Err(UnpackError::Escape { .. })),
            "{name}: {result:?}"
        );
        assert!(!dir.path().join("evil").exists());
    }
}

#[test]
fn absolute_paths_stay_inside() {
    let archive = Tar::new().file("/etc/abs", b"x").build();
    let (dir, result) = unpack(&archive);
    result.unwrap();
    assert_eq!(fs::read(dir.path().join("layer/etc/abs")).unwrap(), b"x");
}

#[test]
fn nothing_is_written_through_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_owned();
    for through in [target.as_str(), "../..", "."] {
        let archive = Tar::new()
            .link("link", EntryType::Symlink, through)
            .file("link/planted", b"x")
            .build();
        let (dir, result) = unpack(&archive);
        assert!(
            matches!(result, Err(UnpackError::NotADirectory { .. })),
            "{through}: {result:?}"
        );
        assert!(!outside.path().join("planted").exists());
        assert!(!dir.path().join("planted").exists());
    }
    // A whiteout through a symlink is refused as well.
    let archive = Tar::new()
        .link("link", EntryType::Symlink, &target)
        .file("link/.wh.x", &[])
        .build();
    assert!(unpack(&archive).1.is_err());
    assert!(!outside.path().join("x").exists());
}

#[test]
fn hard_links_stay_inside() {
    let archive = Tar::new()
        .link("escape", EntryType::Link, "../../../etc/passwd")
        .build();
    assert!(matches!(
        unpack(&archive).1,
        Err(UnpackError::Escape { .. })
    ));

    let archive = Tar::new()
        .link("nothing", EntryType::Link, "missing")
        .build();
    assert!(matches!(
        unpack(&archive).1,
        Err(UnpackError::MissingLinkTarget { .. })
    ));

    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let archive = Tar::new()
        .link("link", EntryType::Symlink, outside.path().to_str().unwrap())
        .link("stolen", EntryType::Link, "link/secret")
        .build();
    assert!(matches!(
        unpack(&archive).1,
        Err(UnpackError::NotADirectory { .. })
    ));
}

#[test]
fn keeps_metadata_links_and_nodes() {
    let mut t = Tar::new();
    let mut h = Tar::header("bin/tool", EntryType::Regular, 0o4755, 3);
    h.set_uid(1000);
    h.set_gid(2000);
    h.set_mtime(1_234_567_890);
    t.add(h, b"abc");
    t.pax(&[
        ("SCHILY.xattr.user.note", b"hello"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
    ]);
    t.file("bin/with-xattr", b"x");
    t.link("bin/hard", EntryType::Link, "bin/tool");
    t.link("bin/soft", EntryType::Symlink, "/bin/tool");
    let mut h = Tar::header("dev/null", EntryType::Char, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    t.add(h, &[]);
    t.add(Tar::header("run/fifo", EntryType::Fifo, 0o600, 0), &[]);
    let mut h = Tar::header("data/", EntryType::Directory, 0o750, 0);
    h.set_mtime(1_111_111_111);
    t.add(h, &[]);
    t.file("data/child", b"c");
    let archive = t.build();

    let (dir, result) = unpack(&archive);
    let diff_id = result.unwrap();
    assert_eq!(
        diff_id,
        format!("sha256:{}", hex::encode(Sha256::digest(&archive)))
    );
    let root = dir.path().join("layer");

    let tool = fs::symlink_metadata(root.join("bin/tool")).unwrap();
    assert_eq!((tool.uid(), tool.gid()), (1000, 2000));
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(tool.mtime(), 1_234_567_890);
    assert_eq!(fs::read(root.join("bin/tool")).unwrap(), b"abc");
    assert_eq!(
        fs::metadata(root.join("bin/hard")).unwrap().ino(),
        tool.ino()
    );

    let note = xattr::get(root.join("bin/with-xattr"), "user.note").unwrap();
    assert_eq!(note.as_deref(), Some(&b"hello"[..]));
    let redirect = xattr::get(root.join("bin/with-xattr"), "trusted.overlay.redirect").unwrap();
    assert!(
        redirect.is_none(),
        "overlay xattrs from the image are dropped"
    );

    assert_eq!(
        fs::read_link(root.join("bin/soft")).unwrap(),
        Path::new("/bin/tool")
    );
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o777, 0o666);
    assert!(fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let data = fs::metadata(root.join("data")).unwrap();
    assert_eq!(data.mtime(), 1_111_111_111);
    assert_eq!(data.mode() & 0o7777, 0o750);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let archive = Tar::new()
        .file("a", b"file")
        .dir("a/")
        .file("a/inner", b"i")
        .dir("b/")
        .file("b/x", b"x")
        .file("b", b"now a file")
        .file("c", b"old")
        .file("c", b"new")
        .build();
    let (dir, result) = unpack(&archive);
    result.unwrap();
    let root = dir.path().join("layer");
    assert_eq!(fs::read(root.join("a/inner")).unwrap(), b"i");
    assert_eq!(fs::read(root.join("b")).unwrap(), b"now a file");
    assert_eq!(fs::read(root.join("c")).unwrap(), b"new");
}

#[test]
fn reads_gzip_zstd_and_plain() {
    let archive = Tar::new().dir("d/").file("d/f", b"content").build();
    let expected = format!("sha256:{}", hex::encode(Sha256::digest(&archive)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&archive).unwrap();
    let gz = gz.finish().unwrap();
    let zst = ruzstd::encoding::compress_to_vec(
        &archive[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    for input in [archive.clone(), gz, zst] {
        let (dir, result) = unpack(&input);
        assert_eq!(result.unwrap(), expected);
        assert_eq!(fs::read(dir.path().join("layer/d/f")).unwrap(), b"content");
    }
}

#[test]
fn truncated_or_garbage_input_fails_cleanly() {
    let archive = Tar::new().file("f", &[7u8; 5000]).build();
    let (_dir, result) = unpack(&archive[..1000]);
    assert!(result.is_err());
    let (_dir, result) = unpack(&[0x1f, 0x8b, 1, 2, 3]);
    assert!(result.is_err());
    let (_dir, result) = unpack(&[0x28, 0xb5, 0x2f, 0xfd, 9, 9]);
    assert!(result.is_err());
}

#[test]
fn long_names_and_trailing_data_are_bounded() {
    // A GNU long name past 1 MiB: tar would read all of it into memory.
    let mut long = Tar::new();
    let name = vec![b'a'; (1 << 20) + 4096];
    long.add(
        Tar::header("././@LongLink", EntryType::GNULongName, 0o644, name.len()),
        &name,
    );
    long.file("x", b"x");
    let (_dir, result) = unpack(&long.build());
    let err = result.unwrap_err();
    assert!(
        matches!(err, UnpackError::Read(_)) && err.to_string().contains("bytes of tar headers"),
        "{err:?}"
    );

    // Names of a few KiB and a tar's usual zero padding are fine.
    let mut fine = tar::Builder::new(Vec::new());
    let name = "d/".repeat(1500) + "file";
    let mut h = Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    fine.append_data(&mut h, &name, &b"short"[..]).unwrap();
    let mut archive = fine.into_inner().unwrap();
    archive.extend_from_slice(&[0; 10240]);
    let (dir, result) = unpack(&archive);
    result.unwrap();
    assert_eq!(
        fs::read(dir.path().join("layer").join(&name)).unwrap(),
        b"short"
    );

    // Megabytes after the end of the archive are not read to the end.
    let mut archive = Tar::new().file("x", b"x").build();
    archive.extend(std::iter::repeat_n(0u8, (1 << 20) + 4096));
    let (_dir, result) = unpack(&archive);
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("after the end of the archive"),
        "{err}"
    );
}

#[test]
fn the_budget_counts_written_bytes_and_entries() {
    let archive = Tar::new()
        .dir("etc/")
        .file("etc/a", &[7; 3000])
        .file("b", &[1; 5])
        .build();
    let dir = tempfile::tempdir().unwrap();
    let budget = Budget::new(UnpackLimits::default());
    let unpacked = unpack_layer_within(&archive[..], dir.path(), &budget).unwrap();
    assert_eq!((unpacked.bytes, unpacked.entries), (3005, 3));
    assert_eq!(unpacked.diff_id, unpack(&archive).1.unwrap());

    // A budget shared by layers: what one spent is gone for the next.
    let budget = Budget::new(UnpackLimits {
        max_bytes: 4000,
        max_entries: 10,
    });
    budget.charge(1000, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer_within(&archive[..], dir.path(), &budget).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::Limit {
                limit: UnpackLimit::Bytes,
                max: 4000
            }
        ),
        "{err:?}"
    );
    let budget = Budget::new(UnpackLimits {
        max_bytes: 4000,
        max_entries: 2,
    });
    let dir = tempfile::tempdir().unwrap();
    let err = unpack_layer_within(&archive[..], dir.path(), &budget).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::Limit {
                limit: UnpackLimit::Entries,
                max: 2
            }
        ),
        "{err:?}"
    );
}
