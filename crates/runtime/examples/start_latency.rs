//! Measures `Runtime::start` (bundle written, container running) on this host with a busybox
//! rootfs, and the memory of one monitor (RSS and PSS from `/proc/<pid>/smaps_rollup`).
//!
//! `cargo run --release -p berth-runtime --example start_latency -- [runtime] [runs]`
//! (as root; runtime defaults to /usr/bin/crun). Build the monitor first:
//! `cargo build --release -p berth-runtime --bin berth-runtime-monitor`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::{BundleSpec, CgroupLayout, Runtime, RuntimeConfig};

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    root
}

fn smaps_rollup(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    format!("RSS {} kB, PSS {} kB", field("Rss:"), field("Pss:"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(args.next().unwrap_or_else(|| "/usr/bin/crun".into()));
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let monitor = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("berth-runtime-monitor"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = rootfs(tmp.path());
    let rt = Runtime::new(RuntimeConfig {
        binary: binary.clone(),
        state_root: tmp.path().join("state"),
        layout: CgroupLayout::detect().unwrap(),
        monitor_exe: monitor,
        monitor_args: vec![],
        global_args: Vec::new(),
    })
    .unwrap();
    println!(
        "{} ({}), hides cgroup2: {}",
        binary.display(),
        rt.version(),
        rt.hides_unified()
    );
    let mut times = Vec::new();
    for i in 0..=runs {
        let id = format!("berth-bench-{}-{i}", std::process::id());
        let dir = tmp.path().join(&id);
        let spec = BundleSpec {
            rootfs: rootfs.clone(),
            args: vec!["sleep".into(), "60".into()],
            cwd: "/".into(),
            hostname: "bench".into(),
            cpu: Some(1.0),
            memory_bytes: Some(128 << 20),
            pids_limit: Some(64),
            cgroup_path: format!("/berth-bench/{id}"),
            ..Default::default()
        };
        let t = Instant::now();
        rt.write_bundle(&dir, &spec).unwrap();
        let started = rt.start(&id, &dir, &dir.join("log")).await.unwrap();
        let took = t.elapsed();
        if i == 0 {
            // Warm-up run; measure the monitor of a running container.
            tokio::time::sleep(Duration::from_millis(200)).await;
            println!(
                "monitor pid {}: {}",
                started.monitor_pid,
                smaps_rollup(started.monitor_pid)
            );
        } else {
            times.push(took);
        }
        rt.delete(&id).await.unwrap();
        rt.wait(&started, &dir).await.unwrap();
    }
    let _ = rt.config().layout.remove_cgroup("/berth-bench");
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "start() over {} runs: mean {:.1} ms, median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times.len(),
        mean,
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
