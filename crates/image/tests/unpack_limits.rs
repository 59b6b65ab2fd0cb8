//! Decompression bombs pushed to a real registry: the store's unpack limits cap the bytes
//! written and the entries of one image, summed over its layers (layers stored for other
//! images count too). A layer over a limit is refused with an error naming the limit, the
//! layer and the image, and nothing of it stays in the store.

use std::fs;
use std::io::Read;
use std::path::Path;

use berth_core::ImagePullPolicy;
use berth_image::testutil::{build_image, Compression, Format, Pusher, TestImage, TestRegistry};
use berth_image::{ImageError, ImageStore, PullOptions, UnpackLimit, UnpackLimits};

const MIB: u64 = 1 << 20;

fn opts(registry: &TestRegistry) -> PullOptions {
    PullOptions {
        plain_http: vec![registry.addr.clone()],
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    }
}

/// A tar of one file of `size` zero bytes (a thousandth of it once gzipped).
fn zeros(name: &str, size: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header.set_mtime(1_700_000_000);
    b.append_data(&mut header, name, std::io::repeat(0).take(size))
        .unwrap();
    b.into_inner().unwrap()
}

/// A GNU sparse file of `real` bytes whose archive holds only its last 512.
fn sparse(name: &str, real: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(512);
    header.set_mtime(1_700_000_000);
    {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(real - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(real);
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, name, &[b'x'; 512][..]).unwrap();
    b.into_inner().unwrap()
}

/// A tar of `count` empty files.
fn many(count: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..count {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(0);
        b.append_data(&mut header, format!("f{i}"), &[][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn image(layers: Vec<Vec<u8>>) -> TestImage {
    let layers: Vec<_> = layers.into_iter().map(|t| (t, Compression::Gzip)).collect();
    build_image(&layers, &["sh"], Format::Oci).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Nothing of `layer` in the store: no directory, no size record, no scratch.
fn assert_absent(store: &ImageStore, layer: &str) {
    let hex = layer.trim_start_matches("sha256:");
    assert!(names(&store.root().join("tmp")).is_empty(), "tmp not empty");
    assert!(!names(&store.root().join("layers")).contains(&format!("sha256-{hex}")));
    assert!(!names(&store.root().join("layer-info")).contains(&format!("{hex}.json")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_are_refused_and_leave_nothing() {
    let registry = TestRegistry::start().unwrap();
    let pusher = Pusher::new(&registry.addr, "bomb", None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let limits = UnpackLimits {
        max_bytes: 8 * MIB,
        max_entries: 100,
    };
    let store = ImageStore::open(tmp.path().join("store"))
        .unwrap()
        .with_unpack_limits(limits);
    assert_eq!(store.unpack_limits(), limits);

    // 64 MiB of zeros in a few hundred KiB.
    let zip = image(vec![zeros("zeros", 64 * MIB)]);
    assert!(
        zip.layers[0].data.len() < 1 << 20,
        "{}",
        zip.layers[0].data.len()
    );
    pusher.image("zeros", &zip).await.unwrap();
    // A sparse file: 512 bytes in the archive, 64 MiB once written.
    let holes = image(vec![sparse("holes", 64 * MIB)]);
    pusher.image("sparse", &holes).await.unwrap();
    for (tag, bomb) in [("zeros", &zip), ("sparse", &holes)] {
        let reference = format!("{}/bomb:{tag}", registry.addr);
        let err = store
            .ensure(&reference, &opts(&registry), &|_| {})
            .await
            .unwrap_err();
        let layer = &bomb.layers[0].digest;
        let ImageError::UnpackLimit {
            reference: named,
            digest,
            limit,
            max,
        } = &err
        else {
            panic!("{tag}: {err:?}")
        };
        assert_eq!(
            (named.as_str(), digest, *limit, *max),
            (reference.as_str(), layer, UnpackLimit::Bytes, 8 * MIB)
        );
        let text = err.to_string();
        for part in [layer.as_str(), &reference, "8388608 bytes", "max_bytes"] {
            assert!(text.contains(part), "{tag}: {text}");
        }
        assert_absent(&store, layer);
        assert!(store.lookup(&reference).is_none());
    }

    // Too many entries.
    let crowd = image(vec![many(101)]);
    pusher.image("crowd", &crowd).await.unwrap();
    let reference = format!("{}/bomb:crowd", registry.addr);
    let err = store
        .ensure(&reference, &opts(&registry), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::UnpackLimit { limit: UnpackLimit::Entries, max: 100, digest, .. }
                if *digest == crowd.layers[0].digest
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("100 entries"), "{err}");
    assert_absent(&store, &crowd.layers[0].digest);

    // Just under both limits.
    let fits = image(vec![zeros("zeros", 8 * MIB - 1024), many(98)]);
    pusher.image("fits", &fits).await.unwrap();
    let reference = format!("{}/bomb:fits", registry.addr);
    let pulled = store
        .ensure(&reference, &opts(&registry), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        fs::metadata(pulled.layers[0].join("zeros")).unwrap().len(),
        8 * MIB - 1024
    );
    assert!(pulled.layers[1].join("f97").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_hold_across_the_layers_of_an_image() {
    let registry = TestRegistry::start().unwrap();
    let pusher = Pusher::new(&registry.addr, "sum", None).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store"))
        .unwrap()
        .with_unpack_limits(UnpackLimits {
            max_bytes: 8 * MIB,
            ..UnpackLimits::default()
        });
    let base = zeros("base", 5 * MIB);
    let small = image(vec![base.clone()]);
    pusher.image("small", &small).await.unwrap();
    let small_ref = format!("{}/sum:small", registry.addr);
    store
        .ensure(&small_ref, &opts(&registry), &|_| {})
        .await
        .unwrap();

    // The stored base layer counts for the second image: 5 + 5 MiB is over 8 MiB.
    let big = image(vec![base, zeros("top", 5 * MIB)]);
    assert_eq!(big.layers[0].digest, small.layers[0].digest);
    pusher.image("big", &big).await.unwrap();
    let big_ref = format!("{}/sum:big", registry.addr);
    let err = store
        .ensure(&big_ref, &opts(&registry), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ImageError::UnpackLimit {
                limit: UnpackLimit::Bytes,
                ..
            }
        ),
        "{err:?}"
    );
    assert_absent(&store, &big.layers[1].digest);
    // The other image and its layer are untouched.
    let kept = store.lookup(&small_ref).expect("the first image stays");
    assert_eq!(
        fs::metadata(kept.layers[0].join("base")).unwrap().len(),
        5 * MIB
    );

    // Raised limits let the same image through.
    store.set_unpack_limits(UnpackLimits::default());
    let pulled = store
        .ensure(&big_ref, &opts(&registry), &|_| {})
        .await
        .unwrap();
    assert!(pulled.layers[1].join("top").is_file());
}

#[test]
fn defaults_are_documented_values() {
    let limits = UnpackLimits::default();
    assert_eq!(limits.max_bytes, 10 << 30);
    assert_eq!(limits.max_entries, 1_000_000);
}
