//! Root test: an id-mapped overlay shows the shared layers owned by the group's range and
//! leaves them unchanged on disk.

use std::fs;
use std::os::unix::fs::MetadataExt;

use berth_image::idmap::{user_namespace, IdMap};
use berth_image::{mount_rootfs_mapped, unmount_rootfs, Image, ImageConfig};

#[test]
fn idmapped_overlay_maps_layers_and_owns_upper() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    fs::create_dir_all(layer.join("etc")).unwrap();
    fs::write(layer.join("etc/file"), "x").unwrap();
    std::os::unix::fs::chown(layer.join("etc/file"), Some(0), Some(0)).unwrap();
    let image = Image {
        reference: "test".into(),
        digest: "sha256:00".into(),
        layers: vec![layer.clone()],
        config: ImageConfig::default(),
    };
    let map = IdMap {
        host: 1_500_000_000,
        count: 65536,
    };
    let userns = user_namespace(map).unwrap();
    let dir = tmp.path().join("c");
    let rw = tmp.path().join("rw");
    let rootfs = mount_rootfs_mapped(&image, &dir, &rw, Some((&userns, map))).unwrap();
    let meta = fs::metadata(rootfs.join("etc/file")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (map.host, map.host));
    assert_eq!(fs::metadata(&rootfs).unwrap().uid(), map.host);
    assert_eq!(fs::metadata(rw.join("upper")).unwrap().uid(), map.host);
    // The layer itself is untouched.
    assert_eq!(fs::metadata(layer.join("etc/file")).unwrap().uid(), 0);
    // No id-mapped clone is left mounted on the host.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.matches(layer.to_str().unwrap()).count(), 0);
    unmount_rootfs(&dir).unwrap();
}
