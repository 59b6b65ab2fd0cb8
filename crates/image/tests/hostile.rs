//! Pulls from a deliberately hostile registry: lying digests and sizes, cut bodies, endless
//! manifests, layers whose entries try to leave the layer root, transient failures. Every
//! attack must be refused with a clear error, leave the host untouched and leave nothing
//! half-written in the store; transient failures must be ridden out; ten concurrent pulls of
//! one image must fetch each layer once.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use berth_core::ImagePullPolicy;
use berth_image::testutil::{build_image, busybox_layer, Compression, Format, TestImage};
use berth_image::{ImageError, ImageStore, PullOptions, RetryPolicy, UnpackError};
use support::hostile::{digest, Answer, Fault, Hostile};

fn opts(server: &Hostile) -> PullOptions {
    PullOptions {
        plain_http: vec![server.addr.clone()],
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    }
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(dir.join("store"))
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
}

/// Nothing half-written: no layer, no scratch, no reference.
fn assert_clean(dir: &Path) {
    for sub in ["layers", "tmp", "refs"] {
        let entries: Vec<_> = fs::read_dir(dir.join("store").join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(entries.is_empty(), "{sub} holds {entries:?}");
    }
}

/// A tar entry written byte for byte, so names the tar crate would refuse get through.
fn raw_entry(
    out: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
    link: &str,
) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(data.len() as u64);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    out.append(&header, data).unwrap();
}

fn one_layer(tar: Vec<u8>) -> TestImage {
    build_image(&[(tar, Compression::Gzip)], &["sh"], Format::Oci).unwrap()
}

fn busybox() -> TestImage {
    one_layer(busybox_layer(&[]).unwrap())
}

async fn pull(
    store: &ImageStore,
    server: &Hostile,
    reference: &str,
) -> Result<berth_image::Image, ImageError> {
    let reference = format!("{}/{reference}", server.addr);
    store.ensure(&reference, &opts(server), &|_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_registries_are_refused() {
    let server = Hostile::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let image = busybox();
    let layer = &image.layers[0];
    let layer_path = format!("evil/blobs/{}", layer.digest);

    // Content that does not match its digest.
    server.image("evil", "v1", &image);
    let mut wrong = layer.data.clone();
    let middle = wrong.len() / 2;
    wrong[middle] ^= 1;
    server.set(
        &layer_path,
        Answer::Ok("application/octet-stream".into(), wrong),
    );
    let err = pull(&store, &server, "evil:v1").await.unwrap_err();
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == layer.digest),
        "{err:?}"
    );
    assert_clean(tmp.path());

    // A body cut short, every time.
    let half = layer.data[..layer.data.len() / 2].to_vec();
    server.set(
        &layer_path,
        Answer::CutShort {
            body: half.clone(),
            claimed: layer.data.len(),
        },
    );
    let err = pull(&store, &server, "evil:v1").await.unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Download { .. } | ImageError::BlobTruncated { .. }
        ),
        "{err:?}"
    );
    assert_clean(tmp.path());
    server.set(
        &layer_path,
        Answer::Ok("application/octet-stream".into(), half),
    );
    let err = pull(&store, &server, "evil:v1").await.unwrap_err();
    assert!(matches!(err, ImageError::BlobTruncated { .. }), "{err:?}");
    assert!(err.to_string().contains("ended after"), "{err}");
    assert_clean(tmp.path());

    // An endless manifest, and one that says it is too large.
    server.set("evil/manifests/endless", Answer::Endless);
    let err = pull(&store, &server, "evil:endless").await.unwrap_err();
    assert!(
        matches!(err, ImageError::ManifestTooLarge { .. }),
        "{err:?}"
    );
    let huge = format!(
        "{{\"schemaVersion\":2,\"pad\":\"{}\"}}",
        "x".repeat(5 << 20)
    );
    server.set(
        "evil/manifests/huge",
        Answer::Ok(
            "application/vnd.oci.image.manifest.v1+json".into(),
            huge.into_bytes(),
        ),
    );
    let err = pull(&store, &server, "evil:huge").await.unwrap_err();
    assert!(
        matches!(err, ImageError::ManifestTooLarge { .. }),
        "{err:?}"
    );

    // A manifest fetched by digest that is not the content of that digest.
    let other = busybox_layer(&[("etc/other", b"x")]).unwrap();
    let other = one_layer(other);
    server.set(
        &format!("evil/manifests/{}", other.manifest.digest),
        Answer::Ok(
            image.manifest.media_type.clone(),
            image.manifest.data.clone(),
        ),
    );
    let err = pull(&store, &server, &format!("evil@{}", other.manifest.digest))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");

    // Descriptors that lie about the layer size, both ways.
    server.set(
        &layer_path,
        Answer::Ok("application/octet-stream".into(), layer.data.clone()),
    );
    for (tag, size) in [("small", 100i64), ("large", layer.data.len() as i64 + 1000)] {
        let manifest = String::from_utf8(image.manifest.data.clone())
            .unwrap()
            .replace(
                &format!("\"size\":{}", layer.data.len()),
                &format!("\"size\":{size}"),
            );
        server.set(
            &format!("evil/manifests/{tag}"),
            Answer::Ok(image.manifest.media_type.clone(), manifest.into_bytes()),
        );
        let err = pull(&store, &server, &format!("evil:{tag}"))
            .await
            .unwrap_err();
        let expected = if tag == "small" {
            matches!(err, ImageError::BlobTooLarge { .. })
        } else {
            matches!(err, ImageError::BlobTruncated { .. })
        };
        assert!(expected, "{tag}: {err:?}");
        assert_clean(tmp.path());
    }

    // A config larger than berth reads, whatever its descriptor says of it.
    let mut big = image.clone();
    big.config.data = format!("{{\"pad\":\"{}\"}}", " ".repeat(5 << 20)).into_bytes();
    big.config.digest = digest(&big.config.data);
    let manifest = String::from_utf8(image.manifest.data.clone())
        .unwrap()
        .replace(&image.config.digest, &big.config.digest)
        .replace(
            &format!("\"size\":{}", image.config.data.len()),
            &format!("\"size\":{}", big.config.data.len()),
        );
    big.manifest.data = manifest.into_bytes();
    big.manifest.digest = digest(&big.manifest.data);
    server.image("evil", "big-config", &big);
    let err = pull(&store, &server, "evil:big-config").await.unwrap_err();
    assert!(
        matches!(&err, ImageError::ConfigTooLarge { digest, limit: 4194304, .. } if *digest == big.config.digest),
        "{err:?}"
    );
    assert_eq!(
        server.count(&format!("evil/blobs/{}", big.config.digest)),
        0
    );

    // Token answers larger than berth reads: stated, and endless.
    for (tag, answer) in [
        (
            "token-huge",
            Answer::Ok("application/json".into(), vec![b' '; (1 << 20) + 1]),
        ),
        ("token-endless", Answer::Endless),
    ] {
        let realm = format!("http://{}/v2/{tag}", server.addr);
        server.set(&format!("evil/manifests/{tag}"), Answer::Challenge(realm));
        server.set(tag, answer);
        let err = pull(&store, &server, &format!("evil:{tag}"))
            .await
            .unwrap_err();
        assert!(matches!(err, ImageError::Token { .. }), "{tag}: {err:?}");
        assert!(
            err.to_string()
                .contains("answer is larger than 1048576 bytes"),
            "{tag}: {err}"
        );
    }
    assert_clean(tmp.path());

    // What the registry says is kept.
    server.set(
        "evil/manifests/gone",
        Answer::Error(
            404,
            "MANIFEST_UNKNOWN".into(),
            "no such tag in repository evil".into(),
        ),
    );
    let err = pull(&store, &server, "evil:gone").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .contains("MANIFEST_UNKNOWN: no such tag in repository evil"),
        "{err}"
    );
    server.set(
        "evil/manifests/denied",
        Answer::Error(
            403,
            "DENIED".into(),
            "requested access to the resource is denied".into(),
        ),
    );
    let err = pull(&store, &server, "evil:denied").await.unwrap_err();
    assert!(
        err.is_unauthorized() && err.to_string().contains("DENIED"),
        "{err}"
    );
    assert_clean(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaping_layers_leave_the_host_untouched() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let server = Hostile::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let store = store(tmp.path());
    let shadow_links = fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
    let outside_s = outside.to_str().unwrap().to_owned();
    type Case<'a> = (&'a str, Vec<(&'a str, tar::EntryType, &'a str)>);
    let cases: Vec<Case> = vec![
        ("dotdot", vec![("../../../pwned", Regular, "")]),
        ("dotdot-deep", vec![("etc/../../pwned", Regular, "")]),
        (
            "through-symlink",
            vec![
                ("evil", Symlink, outside_s.as_str()),
                ("evil/pwned", Regular, ""),
            ],
        ),
        (
            "through-dotdot-symlink",
            vec![("up", Symlink, "../../../../.."), ("up/pwned", Regular, "")],
        ),
        ("hardlink-shadow", vec![("shadow", Link, "/etc/shadow")]),
        (
            "hardlink-dotdot",
            vec![("shadow", Link, "../../../../../../etc/shadow")],
        ),
        (
            "symlink-then-dir",
            vec![("d", Symlink, outside_s.as_str()), ("d/sub", Directory, "")],
        ),
    ];
    for (tag, entries) in cases {
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "etc", Directory, 0o755, b"", "");
        for (name, kind, link) in entries {
            raw_entry(
                &mut b,
                name,
                kind,
                0o644,
                if kind == Regular { b"owned" } else { b"" },
                link,
            );
        }
        let image = one_layer(b.into_inner().unwrap());
        server.image("escape", tag, &image);
        let err = pull(&store, &server, &format!("escape:{tag}"))
            .await
            .unwrap_err();
        let ImageError::Unpack { source, .. } = &err else {
            panic!("{tag}: {err:?}")
        };
        assert!(
            matches!(
                source,
                UnpackError::Escape { .. }
                    | UnpackError::NotADirectory { .. }
                    | UnpackError::MissingLinkTarget { .. }
            ),
            "{tag}: {source:?}"
        );
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "{tag} wrote outside"
        );
        for dir in [
            tmp.path(),
            tmp.path().join("store").as_path(),
            Path::new("/"),
        ] {
            assert!(!dir.join("pwned").exists(), "{tag}: {}", dir.display());
        }
        assert_clean(tmp.path());
    }
    assert_eq!(
        fs::metadata("/etc/shadow").map(|m| m.nlink()).ok(),
        shadow_links
    );

    // Absolute names are kept inside the layer, as container engines do.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "/abs-berth-test", Regular, 0o644, b"inside", "");
    server.image("escape", "absolute", &one_layer(b.into_inner().unwrap()));
    let image = pull(&store, &server, "escape:absolute").await.unwrap();
    assert_eq!(
        fs::read(image.layers[0].join("abs-berth-test")).unwrap(),
        b"inside"
    );
    assert!(!Path::new("/abs-berth-test").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_nodes_and_setuid_are_kept_as_engines_do() {
    use tar::EntryType::{Block, Char, Fifo, Regular};
    let server = Hostile::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, mode, major, minor) in [
        ("dev/null", Char, 0o666, 1, 3),
        ("dev/loop9", Block, 0o660, 7, 9),
        ("run/fifo", Fifo, 0o600, 0, 0),
        ("bin/su", Regular, 0o4755, 0, 0),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        b.append_data(&mut header, name, &[][..]).unwrap();
    }
    server.image("dev", "v1", &one_layer(b.into_inner().unwrap()));
    let image = pull(&store, &server, "dev:v1").await.unwrap();
    let root = &image.layers[0];
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    assert!(fs::symlink_metadata(root.join("dev/loop9"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let su = fs::symlink_metadata(root.join("bin/su")).unwrap();
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o4755,
        "setuid kept with owner 0"
    );
    assert_eq!(su.uid(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_downloads_resumed() {
    let server = Hostile::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let image = busybox();
    server.image("flaky", "v1", &image);
    let layer_path = format!("flaky/blobs/{}", image.layers[0].digest);
    server.fault("flaky/manifests/v1", Fault::Status(503));
    server.fault("flaky/manifests/v1", Fault::Status(502));
    server.fault(
        &layer_path,
        Fault::DropAfter(image.layers[0].data.len() / 3),
    );
    let pulled = pull(&store, &server, "flaky:v1").await.unwrap();
    assert_eq!(pulled.digest, image.manifest.digest);
    assert!(pulled.layers[0].join("bin/busybox").is_file());
    assert_eq!(server.count("flaky/manifests/v1"), 3);
    assert_eq!(server.count(&layer_path), 2, "resumed once");

    // Past the retry budget the last error is reported.
    for _ in 0..3 {
        server.fault("flaky/manifests/v2", Fault::Status(503));
    }
    server.set(
        "flaky/manifests/v2",
        Answer::Ok(
            image.manifest.media_type.clone(),
            image.manifest.data.clone(),
        ),
    );
    let err = pull(&store, &server, "flaky:v2").await.unwrap_err();
    assert!(
        matches!(err, ImageError::RegistryStatus { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_pulls_fetch_each_layer_once() {
    let server = Hostile::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let base = busybox_layer(&[]).unwrap();
    let mut top = tar::Builder::new(Vec::new());
    raw_entry(
        &mut top,
        "etc/motd",
        tar::EntryType::Regular,
        0o644,
        b"hi\n",
        "",
    );
    let image = build_image(
        &[
            (base, Compression::Gzip),
            (top.into_inner().unwrap(), Compression::Zstd),
        ],
        &["sh"],
        Format::Oci,
    )
    .unwrap();
    server.image("many", "v1", &image);
    let reference = format!("{}/many:v1", server.addr);
    let opts = PullOptions {
        policy: ImagePullPolicy::IfNotPresent,
        ..opts(&server)
    };
    let pulls = (0..10).map(|_| store.ensure(&reference, &opts, &|_| {}));
    let results = futures_util::future::join_all(pulls).await;
    for result in results {
        assert_eq!(result.unwrap().digest, image.manifest.digest);
    }
    for layer in &image.layers {
        assert_eq!(
            server.count(&format!("many/blobs/{}", layer.digest)),
            1,
            "{}",
            layer.digest
        );
    }
    assert_eq!(server.count("many/manifests/v1"), 1);
    assert_eq!(digest(&image.manifest.data), image.manifest.digest);
}
