//! Pull + unpack throughput: a ~200 MB two-layer image (one layer of incompressible bytes,
//! one of compressible text, both gzip) pushed to a loopback Debian `docker-registry`, then
//! pulled by berth's `ImageStore` (into an empty store), `podman pull` (after `podman rmi`)
//! and `skopeo copy docker://… oci:DIR` (into an empty directory; no unpack), and
//! `ctr images pull --plain-http` (unpacked into containerd's overlayfs snapshotter),
//! alternating, three rounds each. Prints each run and the medians.
//!
//! ctr needs a running containerd: the example starts none but takes the address of its
//! socket from `BERTH_BENCH_CONTAINERD` (bench/run.py starts a containerd of its own for the
//! run and sets it). Without it, ctr is not measured and the example says so. Each ctr round
//! pulls in a namespace of its own, removed after it with `ctr images rm --sync` (containerd
//! shares blobs across namespaces; the synchronous garbage collection removes content and
//! snapshots, so the next round downloads and unpacks again).
//!
//! `cargo run --release -p berth-image --example pull_bench`

use std::process::Command;
use std::time::{Duration, Instant};

use berth_core::ImagePullPolicy;
use berth_image::testutil::{append, build_image, Compression, Format, Pusher, TestRegistry};
use berth_image::{ImageStore, PullOptions};

const ROUNDS: usize = 3;

/// The address of a containerd socket for `ctr --address`.
const CONTAINERD_ENV: &str = "BERTH_BENCH_CONTAINERD";

/// Fast deterministic noise (xorshift64*), incompressible for gzip.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn layers() -> Vec<(Vec<u8>, Compression)> {
    let mut random = tar::Builder::new(Vec::new());
    for i in 0..10 {
        let data = noise(10 << 20, i + 1);
        append(
            &mut random,
            &format!("data/blob{i}"),
            tar::EntryType::Regular,
            0o644,
            &data,
            None,
        )
        .unwrap();
    }
    let mut text = tar::Builder::new(Vec::new());
    for i in 0..1000 {
        let data: String = (0..3000)
            .map(|l| format!("file {i} line {l}: the quick brown fox\n"))
            .collect();
        let data = &data.as_bytes()[..100 << 10];
        append(
            &mut text,
            &format!("usr/share/doc/f{i}.txt"),
            tar::EntryType::Regular,
            0o644,
            data,
            None,
        )
        .unwrap();
    }
    vec![
        (random.into_inner().unwrap(), Compression::Gzip),
        (text.into_inner().unwrap(), Compression::Gzip),
    ]
}

fn run(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// `ctr --address ADDRESS --namespace NAMESPACE …`.
fn ctr(address: &str, namespace: &str) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.args(["--address", address, "--namespace", namespace]);
    cmd
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let registry = TestRegistry::start().expect("registry starts");
    let layers = layers();
    let uncompressed: usize = layers.iter().map(|(l, _)| l.len()).sum();
    let image = build_image(&layers, &["sh"], Format::Oci).unwrap();
    let compressed: usize = image.layers.iter().map(|l| l.data.len()).sum();
    Pusher::new(&registry.addr, "bench", None)
        .await
        .unwrap()
        .image("v1", &image)
        .await
        .unwrap();
    let reference = format!("{}/bench:v1", registry.addr);
    println!(
        "image {reference}: {} MB in layer tars, {} MB compressed",
        uncompressed >> 20,
        compressed >> 20
    );

    let scratch = tempfile::Builder::new()
        .prefix("berth-bench")
        .tempdir_in("/var/tmp")
        .unwrap();
    let containerd = std::env::var(CONTAINERD_ENV).ok().filter(|a| !a.is_empty());
    if containerd.is_none() {
        println!("ctr not measured: {CONTAINERD_ENV} (a containerd socket) is not set");
    }
    let (mut berth, mut podman, mut skopeo) = (Vec::new(), Vec::new(), Vec::new());
    let mut ctr_times = Vec::new();
    let opts = PullOptions {
        plain_http: vec![registry.addr.clone()],
        policy: ImagePullPolicy::Always,
        ..PullOptions::default()
    };
    for round in 0..ROUNDS {
        let dir = scratch.path().join(format!("store{round}"));
        let store = ImageStore::open(&dir).unwrap();
        let started = Instant::now();
        store.ensure(&reference, &opts, &|_| {}).await.unwrap();
        berth.push(started.elapsed());
        std::fs::remove_dir_all(&dir).unwrap();

        let _ = Command::new("podman")
            .args(["rmi", "-f", &reference])
            .output();
        podman.push(run(Command::new("podman").args([
            "pull",
            "-q",
            "--tls-verify=false",
            &reference,
        ])));
        let _ = Command::new("podman")
            .args(["rmi", "-f", &reference])
            .output();

        let oci = scratch.path().join(format!("oci{round}"));
        skopeo.push(run(Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:v1", oci.display()))));
        std::fs::remove_dir_all(&oci).unwrap();

        let mut ctr_line = String::new();
        if let Some(address) = &containerd {
            let namespace = format!("pull-bench-{}-{round}", std::process::id());
            let took =
                run(ctr(address, &namespace).args(["images", "pull", "--plain-http", &reference]));
            let _ = ctr(address, &namespace)
                .args(["images", "rm", "--sync", &reference])
                .output();
            let _ = ctr(address, "default")
                .args(["namespaces", "rm", &namespace])
                .output();
            ctr_line = format!("  ctr {:.3}s", took.as_secs_f64());
            ctr_times.push(took);
        }
        println!(
            "round {round}: berth {:.3}s  podman {:.3}s  skopeo {:.3}s{ctr_line}",
            berth[round].as_secs_f64(),
            podman[round].as_secs_f64(),
            skopeo[round].as_secs_f64()
        );
    }
    let (b, p, s) = (median(berth), median(podman), median(skopeo));
    let ctr_median = if ctr_times.is_empty() {
        String::new()
    } else {
        let c = median(ctr_times);
        format!(
            " | ctr pull {:.3}s ({:.2}x berth)",
            c.as_secs_f64(),
            c.as_secs_f64() / b.as_secs_f64()
        )
    };
    println!(
        "median of {ROUNDS}: berth pull+unpack {:.3}s | podman pull {:.3}s ({:.2}x berth) | skopeo copy (no unpack) {:.3}s ({:.2}x berth){ctr_median}",
        b.as_secs_f64(),
        p.as_secs_f64(),
        p.as_secs_f64() / b.as_secs_f64(),
        s.as_secs_f64(),
        s.as_secs_f64() / b.as_secs_f64()
    );
}
