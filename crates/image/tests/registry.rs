//! Pulls from a real Debian `docker-registry` on loopback, unpacks, mounts the overlay rootfs
//! and runs busybox in it. Needs root, `/usr/bin/docker-registry` and `/usr/bin/busybox`; fails
//! when any is missing.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_core::{ImagePullPolicy, RegistryCredential};
use berth_image::testutil::{
    build_busybox, build_image, build_index, busybox_layer, Compression, Format, Pusher,
    TestRegistry,
};
use berth_image::{mount_rootfs, unmount_rootfs, ImageError, ImageStore, PullEvent, PullOptions};

mod support;
use support::ensure;

fn plain(registry: &TestRegistry, policy: ImagePullPolicy) -> PullOptions {
    PullOptions {
        plain_http: vec![registry.addr.clone()],
        policy,
        ..PullOptions::default()
    }
}

fn pulled(events: &[PullEvent]) -> (u64, bool) {
    match events.last() {
        Some(PullEvent::Pulled { bytes, cached, .. }) => (*bytes, *cached),
        other => panic!("no Pulled event: {other:?}"),
    }
}

fn sh(rootfs: &Path, script: &str) -> String {
    let out = Command::new("chroot")
        .arg(rootfs)
        .args(["/bin/sh", "-c", script])
        .output()
        .expect("chroot runs");
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_busybox_mounts_and_caches() {
    let registry = TestRegistry::start().unwrap();
    let digest = berth_image::testutil::push_busybox(
        &registry.addr,
        "busybox",
        "latest",
        &[("etc/motd", b"hello from berth\n")],
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let reference = format!("{}/busybox:latest", registry.addr);

    let started = Instant::now();
    let (image, events) = ensure(
        &store,
        &reference,
        &plain(&registry, ImagePullPolicy::IfNotPresent),
    )
    .await;
    let image = image.unwrap();
    eprintln!("busybox pull+unpack: {:?}", started.elapsed());
    assert!(matches!(&events[0], PullEvent::Pulling { reference: r } if *r == reference));
    let (bytes, cached) = pulled(&events);
    assert!(bytes > 500_000 && !cached, "{events:?}");
    assert_eq!(image.reference, reference);
    assert_eq!(image.digest, digest);
    assert_eq!(image.layers.len(), 1);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert!(image.config.env[0].starts_with("PATH="));

    // The overlay rootfs runs busybox and keeps writes in the container's upper layer.
    let container = tmp.path().join("c1");
    let rootfs = mount_rootfs(&image, &container, &container).unwrap();
    assert_eq!(rootfs, container.join("rootfs"));
    assert!(fs::symlink_metadata(rootfs.join("bin/sh"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        mount_rootfs(&image, &container, &container).unwrap(),
        rootfs,
        "mounting twice is a no-op"
    );
    assert_eq!(sh(&rootfs, "cat /etc/motd"), "hello from berth\n");
    sh(
        &rootfs,
        "echo changed > /etc/motd; rm /bin/ls; mkdir -p /run/x",
    );
    assert!(container.join("upper/run/x").is_dir());
    let hidden = fs::symlink_metadata(container.join("upper/bin/ls")).unwrap();
    assert!(
        hidden.file_type().is_char_device(),
        "deleting from a lower layer leaves a whiteout"
    );
    assert_eq!(
        fs::read(image.layers[0].join("etc/motd")).unwrap(),
        b"hello from berth\n"
    );

    // Busy mount: detached lazily; unmount is idempotent.
    let busy = fs::File::open(rootfs.join("bin/busybox")).unwrap();
    unmount_rootfs(&container).unwrap();
    assert!(!is_mounted(&rootfs));
    drop(busy);
    unmount_rootfs(&container).unwrap();
    unmount_rootfs(&tmp.path().join("never-mounted")).unwrap();
    assert!(!rootfs.join("bin/sh").exists());
    assert!(
        container.join("upper/run/x").is_dir(),
        "unmount removes nothing"
    );

    // IfNotPresent and Never use the local copy, also after reopening the store.
    let (again, events) = ensure(
        &store,
        &reference,
        &plain(&registry, ImagePullPolicy::IfNotPresent),
    )
    .await;
    assert_eq!(again.unwrap(), image);
    assert_eq!(pulled(&events), (0, true));
    assert_eq!(events.len(), 1);
    let reopened = ImageStore::open(tmp.path().join("store")).unwrap();
    assert_eq!(reopened.lookup(&reference), Some(image.clone()));
    let (never, _) = ensure(
        &reopened,
        &reference,
        &plain(&registry, ImagePullPolicy::Never),
    )
    .await;
    assert_eq!(never.unwrap(), image);

    // Always asks the registry again but downloads nothing already stored.
    let (always, events) = ensure(
        &reopened,
        &reference,
        &plain(&registry, ImagePullPolicy::Always),
    )
    .await;
    assert_eq!(always.unwrap(), image);
    assert!(matches!(events[0], PullEvent::Pulling { .. }));
    assert_eq!(pulled(&events), (0, false));

    // Never with nothing stored fails without asking.
    let missing = format!("{}/busybox:other", registry.addr);
    let (result, events) = ensure(
        &reopened,
        &missing,
        &plain(&registry, ImagePullPolicy::Never),
    )
    .await;
    assert!(
        matches!(result, Err(ImageError::NotPresent { .. })),
        "{result:?}"
    );
    assert!(events.is_empty());
    assert!(reopened.lookup(&missing).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_are_matched_by_host() {
    let registry = TestRegistry::start_with(Some(("berth", "s3cret"))).unwrap();
    let pusher = Pusher::new(&registry.addr, "private/busybox", Some(("berth", "s3cret")))
        .await
        .unwrap();
    let digest = pusher
        .image("v1", &build_busybox(&[]).unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let reference = format!("{}/private/busybox:v1", registry.addr);

    let anonymous = plain(&registry, ImagePullPolicy::Always);
    let (result, _) = ensure(&store, &reference, &anonymous).await;
    let err = result.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(err.to_string().contains("UNAUTHORIZED"), "{err}");

    let login = |server: &str, password: &str| PullOptions {
        credentials: vec![
            RegistryCredential {
                server: "other.example.com".into(),
                user_name: "berth".into(),
                password: "s3cret".into(),
            },
            RegistryCredential {
                server: server.into(),
                user_name: "berth".into(),
                password: password.into(),
            },
        ],
        ..plain(&registry, ImagePullPolicy::Always)
    };
    let (result, _) = ensure(&store, &reference, &login(&registry.addr, "wrong")).await;
    let err = result.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    let server = format!("http://{}/", registry.addr);
    let (image, _) = ensure(&store, &reference, &login(&server, "s3cret")).await;
    assert_eq!(image.unwrap().digest, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_compressions_manifest_formats_and_indexes() {
    let registry = TestRegistry::start().unwrap();
    let pusher = Pusher::new(&registry.addr, "formats", None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let opts = plain(&registry, ImagePullPolicy::IfNotPresent);
    let base = busybox_layer(&[("etc/base", b"base\n"), ("opt/old/file", b"old\n")]).unwrap();

    // One tag per layer compression and manifest schema.
    for (tag, compression, format) in [
        ("plain", Compression::None, Format::Oci),
        ("gzip", Compression::Gzip, Format::Oci),
        ("zstd", Compression::Zstd, Format::Oci),
        ("docker", Compression::Gzip, Format::Docker),
    ] {
        let image = build_image(&[(base.clone(), compression)], &["sh"], format).unwrap();
        let digest = pusher.image(tag, &image).await.unwrap();
        let reference = format!("{}/formats:{tag}", registry.addr);
        let (pulled, _) = ensure(&store, &reference, &opts).await;
        let pulled = pulled.unwrap_or_else(|e| panic!("{tag}: {e:?}"));
        assert_eq!(pulled.digest, digest, "{tag}");
        assert_eq!(
            fs::read(pulled.layers[0].join("etc/base")).unwrap(),
            b"base\n",
            "{tag}"
        );
    }

    // Two layers: the upper one deletes a file and makes a directory opaque.
    let mut upper = tar::Builder::new(Vec::new());
    use berth_image::testutil::append;
    use tar::EntryType::Regular;
    append(&mut upper, "etc/.wh.base", Regular, 0o644, &[], None).unwrap();
    append(
        &mut upper,
        "opt/old/.wh..wh..opq",
        Regular,
        0o644,
        &[],
        None,
    )
    .unwrap();
    append(&mut upper, "opt/old/new", Regular, 0o644, b"new\n", None).unwrap();
    let upper = upper.into_inner().unwrap();
    let image = build_image(
        &[
            (base.clone(), Compression::Gzip),
            (upper, Compression::Gzip),
        ],
        &["sh"],
        Format::Oci,
    )
    .unwrap();
    pusher.image("layered", &image).await.unwrap();
    let (layered, _) = ensure(&store, &format!("{}/formats:layered", registry.addr), &opts).await;
    let layered = layered.unwrap();
    assert_eq!(layered.layers.len(), 2);
    let container = tmp.path().join("layered");
    let rootfs = mount_rootfs(&layered, &container, &container).unwrap();
    let listing = sh(
        &rootfs,
        "ls /opt/old; test -e /etc/base && echo present; cat /etc/passwd | head -1",
    );
    unmount_rootfs(&container).unwrap();
    assert_eq!(listing, "new\nroot:x:0:0:root:/root:/bin/sh\n");

    // An index: linux/amd64 is picked over linux/arm64.
    let amd64 = build_image(
        &[(
            busybox_layer(&[("arch", b"amd64")]).unwrap(),
            Compression::Gzip,
        )],
        &["sh"],
        Format::Oci,
    )
    .unwrap();
    let arm64 = build_image(
        &[(
            busybox_layer(&[("arch", b"arm64")]).unwrap(),
            Compression::Gzip,
        )],
        &["sh"],
        Format::Oci,
    )
    .unwrap();
    pusher
        .image(&arm64.manifest.digest.replace(':', "-"), &arm64)
        .await
        .unwrap();
    pusher
        .image(&amd64.manifest.digest.replace(':', "-"), &amd64)
        .await
        .unwrap();
    pusher
        .manifest(
            "multi",
            &build_index(&[(&arm64, "arm64"), (&amd64, "amd64")]),
        )
        .await
        .unwrap();
    let (multi, _) = ensure(&store, &format!("{}/formats:multi", registry.addr), &opts).await;
    let multi = multi.unwrap();
    assert_eq!(multi.digest, amd64.manifest.digest);
    assert_eq!(fs::read(multi.layers[0].join("arch")).unwrap(), b"amd64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blobs_are_refused() {
    let registry = TestRegistry::start().unwrap();
    let pusher = Pusher::new(&registry.addr, "bad", None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let layer = busybox_layer(&[]).unwrap();
    for (tag, compression) in [("gzip", Compression::Gzip), ("plain", Compression::None)] {
        let image = build_image(&[(layer.clone(), compression)], &["sh"], Format::Oci).unwrap();
        pusher.image(tag, &image).await.unwrap();
        // Same size, one byte different: only the digest can tell.
        let blob = registry.blob_path(&image.layers[0].digest);
        let mut data = fs::read(&blob).unwrap();
        let middle = data.len() / 2;
        data[middle] ^= 0xff;
        fs::write(&blob, data).unwrap();

        let reference = format!("{}/bad:{tag}", registry.addr);
        let (result, _) = ensure(
            &store,
            &reference,
            &plain(&registry, ImagePullPolicy::Always),
        )
        .await;
        match result {
            Err(ImageError::DigestMismatch { expected, .. }) => {
                assert_eq!(expected, image.layers[0].digest, "{tag}")
            }
            other => panic!("{tag}: corrupt layer accepted: {other:?}"),
        }
        assert_eq!(fs::read_dir(tmp.path().join("layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
        assert!(store.lookup(&reference).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_share_layers() {
    let registry = TestRegistry::start().unwrap();
    let pusher = Pusher::new(&registry.addr, "shared", None).await.unwrap();
    let layer = busybox_layer(&[]).unwrap();
    for (tag, cmd) in [("a", "true"), ("b", "false")] {
        let image =
            build_image(&[(layer.clone(), Compression::Gzip)], &[cmd], Format::Oci).unwrap();
        pusher.image(tag, &image).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let opts = plain(&registry, ImagePullPolicy::IfNotPresent);
    let a = format!("{}/shared:a", registry.addr);
    let b = format!("{}/shared:b", registry.addr);
    let ((ra, ea), (rb, eb)) = tokio::join!(ensure(&store, &a, &opts), ensure(&store, &b, &opts));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.layers, rb.layers);
    assert_ne!(ra.config.cmd, rb.config.cmd);
    let (bytes_a, _) = pulled(&ea);
    let (bytes_b, _) = pulled(&eb);
    assert!(
        (bytes_a == 0) != (bytes_b == 0),
        "layer downloaded exactly once: {bytes_a} {bytes_b}"
    );
    assert_eq!(fs::read_dir(tmp.path().join("layers")).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_tls_registry_needs_to_be_listed() {
    let registry = TestRegistry::start_tls().unwrap();
    let pusher = Pusher::new_insecure_tls(&registry.addr, "tls")
        .await
        .unwrap();
    let digest = pusher
        .image("latest", &build_busybox(&[]).unwrap())
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/tls:latest", registry.addr);

    let checked = PullOptions::default();
    let store = ImageStore::open(tmp.path())
        .unwrap()
        .with_retry(berth_image::RetryPolicy {
            attempts: 1,
            ..Default::default()
        });
    let (result, _) = ensure(&store, &reference, &checked).await;
    assert!(
        matches!(result, Err(ImageError::Unreachable { .. })),
        "{result:?}"
    );
    let insecure = PullOptions {
        insecure: vec![registry.addr.clone()],
        ..PullOptions::default()
    };
    let (image, _) = ensure(&store, &reference, &insecure).await;
    assert_eq!(image.unwrap().digest, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_layout_copied_by_skopeo() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let digest =
        berth_image::testutil::build_busybox_layout(&layout, &[("etc/motd", b"layout\n")]).unwrap();
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/layout:latest", registry.addr))
        .output()
        .expect("skopeo runs");
    assert!(out.status.success(), "{out:?}");
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let reference = format!("{}/layout:latest", registry.addr);
    let (image, _) = ensure(
        &store,
        &reference,
        &plain(&registry, ImagePullPolicy::IfNotPresent),
    )
    .await;
    let image = image.unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(
        fs::read(image.layers[0].join("etc/motd")).unwrap(),
        b"layout\n"
    );
}
