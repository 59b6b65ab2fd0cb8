//! Root tests of cgroup and network statistics against real containers: CPU use under a
//! 0.5-core limit, memory growth, and interface counters read inside the container's netns.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_runtime::{net_stats, CgroupLayout, ExecRequest};
use common::*;

/// The tests of this file measure CPU and memory: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn busy_loop_under_half_a_core_reads_half_a_core() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::new("scpu");
    let rt = f.runtime();
    let layout = CgroupLayout::detect().unwrap();
    let spec = f.spec("while :; do :; done");
    rt.write_bundle(&f.dir(), &spec).unwrap();
    rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The limit caps the loop; other load on the host can only starve it, so a window that
    // reads low is sampled again (at most three windows of 3 s).
    let mut readings = vec![];
    let (before, after) = loop {
        let before = layout.stats(&f.cgroup()).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = layout.stats(&f.cgroup()).unwrap();
        let cores = after.cpu_cores_since(&before);
        println!("busy loop under 0.5 cores: {cores:.3} cores; {after:?}");
        assert!(cores <= 0.55, "{cores} cores: the limit does not hold");
        readings.push(cores);
        if (cores - 0.5).abs() <= 0.05 || readings.len() == 3 {
            break (before, after);
        }
    };
    assert!(
        readings.iter().any(|c| (c - 0.5).abs() <= 0.05),
        "{readings:?} cores"
    );
    assert_eq!(after.cpu_limit_cores, Some(0.5));
    assert!(after.throttled_periods > before.throttled_periods);
    assert_eq!(after.memory_limit_bytes, Some(256 << 20));
    assert!(after.pids >= 1);
    // The group's cgroup sums its containers.
    let group = layout.stats(&f.group_cgroup()).unwrap();
    assert!(group.cpu_usage_ns >= after.cpu_usage_ns);
    // Cost of one reading.
    let t = Instant::now();
    for _ in 0..100 {
        layout.stats(&f.cgroup()).unwrap();
    }
    println!("stats read: mean of 100 {:?}", t.elapsed() / 100);
    delete_and_check(&f, &rt).await;
    assert!(matches!(
        layout.stats(&f.cgroup()),
        Err(berth_runtime::RuntimeError::NoCgroup { .. })
    ));
}

#[tokio::test]
async fn memory_grows_when_the_container_allocates() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::new("smem");
    let rt = f.runtime();
    let layout = CgroupLayout::detect().unwrap();
    // The loop keeps the shell (and its 60 MB variable) alive: a last simple command would
    // replace it through exec.
    let spec = f.spec(
        "echo ready; read go < /tmp/go; x=$(head -c 60000000 /dev/zero | tr '\\0' a); \
         echo grown; while :; do sleep 1; done",
    );
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let rootfs_fifo = f.tmp.path().join("rootfs/tmp/go");
    assert!(std::process::Command::new("mkfifo")
        .arg(&rootfs_fifo)
        .status()
        .unwrap()
        .success());
    rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    wait_for_log(&f, "stdout F ready").await;
    let small = layout.stats(&f.cgroup()).unwrap();
    std::fs::write(&rootfs_fifo, "go\n").unwrap();
    wait_for_log(&f, "stdout F grown").await;
    let big = layout.stats(&f.cgroup()).unwrap();
    println!("before {small:?}\nafter {big:?}");
    assert!(
        big.memory_rss_bytes >= small.memory_rss_bytes + (50 << 20),
        "rss {} -> {}",
        small.memory_rss_bytes,
        big.memory_rss_bytes
    );
    assert!(big.memory_working_set_bytes >= small.memory_working_set_bytes + (50 << 20));
    assert!(big.memory_usage_bytes >= big.memory_working_set_bytes);
    delete_and_check(&f, &rt).await;
}

async fn wait_for_log(f: &Fixture, needle: &str) {
    let t = Instant::now();
    while !f.log_text().contains(needle) {
        assert!(t.elapsed() < TIMEOUT, "no {needle:?} in {}", f.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn network_counters_come_from_the_container_namespace() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::new("snet");
    let rt = f.runtime();
    // busybox's ping needs a raw socket (it has no ICMP datagram sockets), which the default
    // capabilities no longer give; bringing `lo` up needs NET_ADMIN.
    let mut spec = f.spec("");
    spec.capability_add = vec!["NET_RAW".into(), "NET_ADMIN".into()];
    let started = start_sleeper(&f, &rt, &mut spec).await;
    let netns = PathBuf::from(format!("/proc/{}/ns/net", started.pid));
    let before = net_stats(&netns).unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!((before[0].name.as_str(), before[0].rx_packets), ("lo", 0));
    let req = ExecRequest {
        args: vec![
            "sh".into(),
            "-c".into(),
            "ip link set lo up && ping -c 3 -i 0.2 127.0.0.1".into(),
        ],
        ..Default::default()
    };
    let out = rt
        .exec_sync(f.id(), &f.dir(), &req, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let t = Instant::now();
    let after = net_stats(&netns).unwrap();
    println!("net stats read: {:?}; {after:?}", t.elapsed());
    assert!(
        after[0].rx_packets >= 6 && after[0].tx_bytes > 0,
        "{after:?}"
    );
    // The host's own namespace is another one.
    let host = net_stats(std::path::Path::new("/proc/self/ns/net")).unwrap();
    assert!(host.iter().any(|i| i.name == "lo"));
    delete_and_check(&f, &rt).await;
}
