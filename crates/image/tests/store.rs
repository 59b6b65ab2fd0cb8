//! The store's bookkeeping against a real Debian `docker-registry`: pins, listing, removal,
//! garbage collection between watermarks, pull progress, imports of OCI and docker-save
//! archives, and image caches that resolve with the registry stopped.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use berth_core::ImagePullPolicy;
use berth_image::testutil::{
    append, build_image, busybox_layer, Compression, Format, Pusher, TestRegistry,
};
use berth_image::{GcPolicy, ImageError, ImageStore, PullOptions};

fn plain(registry: &TestRegistry) -> PullOptions {
    PullOptions {
        plain_http: vec![registry.addr.clone()],
        policy: ImagePullPolicy::IfNotPresent,
        ..PullOptions::default()
    }
}

/// Pushes `repo:tag` made of the shared busybox layer and a small top layer holding `name`.
async fn push(registry: &TestRegistry, tag: &str, extra: &[u8]) -> String {
    let mut top = tar::Builder::new(Vec::new());
    append(
        &mut top,
        &format!("etc/{tag}"),
        tar::EntryType::Regular,
        0o644,
        extra,
        None,
    )
    .unwrap();
    let layers = [
        (busybox_layer(&[]).unwrap(), Compression::Gzip),
        (top.into_inner().unwrap(), Compression::Gzip),
    ];
    let image = build_image(&layers, &["sh"], Format::Oci).unwrap();
    Pusher::new(&registry.addr, "app", None)
        .await
        .unwrap()
        .image(tag, &image)
        .await
        .unwrap();
    format!("{}/app:{tag}", registry.addr)
}

fn layer_count(root: &Path) -> usize {
    fs::read_dir(root.join("layers")).unwrap().count()
}

fn squeeze() -> GcPolicy {
    GcPolicy {
        high_watermark_pct: 50,
        low_watermark_pct: 0,
        capacity_bytes: Some(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_listing_removal_and_collection() {
    let registry = TestRegistry::start().unwrap();
    let (a, b, c) = (
        push(&registry, "a", b"a").await,
        push(&registry, "b", b"b").await,
        push(&registry, "c", &[7u8; 300_000]).await,
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let mut digests = Vec::new();
    for reference in [&a, &b] {
        digests.push(
            store
                .ensure(reference, &plain(&registry), &|_| {})
                .await
                .unwrap()
                .digest,
        );
    }
    let progress = Mutex::new(Vec::new());
    let image_c = store
        .ensure_with_progress(&c, &plain(&registry), &|_| {}, &|p| {
            progress.lock().unwrap().push(p.clone())
        })
        .await
        .unwrap();
    let progress = progress.into_inner().unwrap();
    let last = progress.last().unwrap();
    assert_eq!((last.bytes, last.layers), (last.total_bytes, 2), "{last:?}");
    assert_eq!(
        progress.iter().filter(|p| p.layer_done).count(),
        2,
        "one completion per layer"
    );
    assert!(progress
        .iter()
        .all(|p| p.layer_bytes <= p.layer_size && p.bytes <= p.total_bytes));
    assert_eq!(
        layer_count(&root),
        4,
        "busybox layer shared by three images"
    );

    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].reference, c, "most recently used first");
    assert!(listed
        .iter()
        .all(|i| i.size_bytes > 1_000_000 && i.pinned_by.is_empty() && !i.imported));

    // A pinned image cannot be removed; removing another keeps the layers still in use.
    store.pin("group-1", &digests[0]).unwrap();
    assert!(matches!(
        store.pin("group-1", "sha256:nope"),
        Err(ImageError::Unknown { .. })
    ));
    let err = store.remove(&a).await.unwrap_err();
    assert!(
        matches!(&err, ImageError::Pinned { owners, .. } if owners == &["group-1"]),
        "{err:?}"
    );
    let freed = store.remove(&b).await.unwrap();
    assert!(freed > 0 && freed < 100_000, "only b's top layer: {freed}");
    assert_eq!(layer_count(&root), 3);
    assert!(store.lookup(&b).is_none());
    assert!(matches!(
        store.remove(&b).await,
        Err(ImageError::Unknown { .. })
    ));

    // Pins survive a restart; below the high watermark nothing is collected.
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(
        store
            .list()
            .unwrap()
            .iter()
            .find(|i| i.reference == a)
            .unwrap()
            .pinned_by,
        vec!["group-1"]
    );
    let relaxed = GcPolicy {
        high_watermark_pct: 100,
        low_watermark_pct: 90,
        capacity_bytes: Some(u64::MAX / 200),
    };
    let report = store.gc(&relaxed).await.unwrap();
    assert!(
        report.removed_images.is_empty() && report.removed_layers == 0,
        "{report:?}"
    );
    let fs_report = store.gc(&GcPolicy::default()).await.unwrap();
    assert!(fs_report.usage_before_pct <= 100);

    // Over the watermark: unpinned images go, pinned ones and their layers stay.
    let report = store.gc(&squeeze()).await.unwrap();
    assert_eq!(report.removed_images, vec![c.clone()]);
    assert_eq!(report.removed_layers, 1);
    assert!(store.lookup(&a).is_some() && store.lookup(&c).is_none());
    assert!(!image_c.layers[1].exists() && image_c.layers[0].exists());

    store.unpin("group-1").unwrap();
    let report = store.gc(&squeeze()).await.unwrap();
    assert_eq!(report.removed_images, vec![a.clone()]);
    assert_eq!(layer_count(&root), 0);
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_resolve_with_the_registry_stopped() {
    let registry = TestRegistry::start().unwrap();
    let (a, b) = (
        push(&registry, "a", b"a").await,
        push(&registry, "b", b"b").await,
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let both = vec![a.clone(), b.clone()];
    let c1 = store
        .create_cache("c1", &both, &plain(&registry))
        .await
        .unwrap();
    assert_eq!(
        c1.images
            .iter()
            .map(|i| i.reference.clone())
            .collect::<Vec<_>>(),
        both
    );
    assert!(c1.size_bytes > 1_000_000);
    let c2 = store
        .create_cache("c2", std::slice::from_ref(&a), &plain(&registry))
        .await
        .unwrap();
    assert!(c2.size_bytes < c1.size_bytes);
    assert!(matches!(
        store.create_cache("../x", &both, &plain(&registry)).await,
        Err(ImageError::InvalidCacheId { .. })
    ));
    drop(registry);

    assert_eq!(store.match_cache(&both).unwrap().as_deref(), Some("c1"));
    assert_eq!(
        store
            .match_cache(std::slice::from_ref(&a))
            .unwrap()
            .as_deref(),
        Some("c2"),
        "tie: newest"
    );
    assert_eq!(
        store.match_cache(&["other/image:1".to_owned()]).unwrap(),
        None
    );

    // Collection spares cached images even when nothing else uses them.
    let report = store.gc(&squeeze()).await.unwrap();
    assert_eq!(report.removed_layers, 0, "{report:?}");
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.caches().unwrap().len(), 2);
    let image = store.resolve_from_cache("c1", &b, None).unwrap();
    assert_eq!(fs::read(image.layers[1].join("etc/b")).unwrap(), b"b");
    assert!(matches!(
        store.resolve_from_cache("c2", &b, None),
        Err(ImageError::NotInCache { .. })
    ));

    store.delete_cache("c1").unwrap();
    assert!(matches!(
        store.resolve_from_cache("c1", &a, None),
        Err(ImageError::NoSuchCache { .. })
    ));
    assert!(matches!(
        store.delete_cache("c1"),
        Err(ImageError::NoSuchCache { .. })
    ));
    store.gc(&squeeze()).await.unwrap();
    assert!(
        store.resolve_from_cache("c2", &a, None).is_ok(),
        "c2 still holds a"
    );
    assert_eq!(layer_count(&root), 2);
    store.delete_cache("c2").unwrap();
    store.gc(&squeeze()).await.unwrap();
    assert_eq!(layer_count(&root), 0);
}

fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_oci_and_docker_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let never_reached = PullOptions {
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    };

    // OCI archive whose index names only a tag: it must be imported under a name.
    let layout = tmp.path().join("layout");
    let digest =
        berth_image::testutil::build_busybox_layout(&layout, &[("etc/motd", b"air\n")]).unwrap();
    let archive = tmp.path().join("oci.tar");
    tar_dir(&layout, &archive);
    let err = store.import(&archive).await.unwrap_err();
    assert!(err.to_string().contains("no name"), "{err}");
    let image = store
        .import_as(&archive, "registry.invalid/air/busybox:1")
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    let resolved = store
        .ensure("registry.invalid/air/busybox:1", &never_reached, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        resolved, image,
        "imported images resolve before any pull, even with Always"
    );
    assert_eq!(
        fs::read(image.layers[0].join("etc/motd")).unwrap(),
        b"air\n"
    );
    assert!(store.list().unwrap()[0].imported);

    // docker save: manifest.json, an uncompressed layer tar, a config named by its digest.
    let save = tmp.path().join("save");
    fs::create_dir_all(save.join("abc")).unwrap();
    let layer = busybox_layer(&[("etc/saved", b"saved\n")]).unwrap();
    let diff_id = berth_image::testutil::sha256(&layer);
    fs::write(save.join("abc/layer.tar"), &layer).unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).to_string();
    let config_hex = berth_image::testutil::sha256(config.as_bytes())
        .trim_start_matches("sha256:")
        .to_owned();
    fs::write(save.join(format!("{config_hex}.json")), &config).unwrap();
    let manifest = serde_json::json!([{"Config": format!("{config_hex}.json"), "RepoTags": ["air/tool:v2"], "Layers": ["abc/layer.tar"]}]);
    fs::write(save.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = tmp.path().join("save.tar");
    tar_dir(&save, &archive);
    let images = store.import(&archive).await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].reference, "docker.io/air/tool:v2");
    assert_eq!(images[0].config.cmd, vec!["sh"]);
    let resolved = store
        .ensure("air/tool:v2", &never_reached, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        fs::read(resolved.layers[0].join("etc/saved")).unwrap(),
        b"saved\n"
    );

    // A tampered blob is refused and leaves nothing behind.
    fs::write(
        save.join("abc/layer.tar"),
        busybox_layer(&[("etc/evil", b"x")]).unwrap(),
    )
    .unwrap();
    tar_dir(&save, &archive);
    let err = store.import_as(&archive, "air/tool:v3").await.unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path().join("store/tmp")).unwrap().count(),
        0
    );
    assert!(store.lookup("air/tool:v3").is_none());
}

/// Work in progress that a crash left (a layer half unpacked, an import half read) is
/// discarded when the store is opened again, and never served as a layer.
#[test]
fn work_cut_short_by_a_crash_is_discarded_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    // Where a layer is unpacked before it is renamed into place.
    let partial = root.join("tmp/0123abcd-0");
    fs::create_dir_all(partial.join("usr/bin")).unwrap();
    fs::write(partial.join("usr/bin/half"), b"half a file").unwrap();
    drop(store);

    let _reopened = ImageStore::open(&root).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    let layers = root.join("layers");
    let served = fs::read_dir(&layers).map(|rd| rd.count()).unwrap_or(0);
    assert_eq!(served, 0, "nothing half made became a layer");
}
