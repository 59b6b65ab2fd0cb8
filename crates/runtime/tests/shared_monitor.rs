//! Root tests of shared monitors (ADR 0018) against the real crun of this host: containers
//! started with one share key run under one monitor process, up to its capacity; each one's
//! output, end and exit record are its own while the others run on; the monitor exits after
//! its last container, and the next start of the key gets a new one. They fail, never skip,
//! when root, crun or busybox is missing.

mod common;

use std::time::{Duration, Instant};

use berth_runtime::{Runtime, Started};
use common::*;

/// Starts containers and exits (src/bin/berth-runtime-starter.rs).
const STARTER: &str = env!("CARGO_BIN_EXE_berth-runtime-starter");

async fn start(rt: &Runtime, f: &Fixture, script: &str, share: &str) -> Started {
    let spec = f.spec(script);
    rt.write_bundle(&f.dir(), &spec).unwrap();
    rt.start_sharing(f.id(), &f.dir(), &f.log(), share)
        .await
        .unwrap()
}

async fn wait_for_line(f: &Fixture, line: &str) {
    let t = Instant::now();
    while !f.log_text().contains(line) {
        assert!(t.elapsed() < TIMEOUT, "no {line:?} in {}", f.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the monitors `pids` have ended (after their last containers).
async fn monitors_end(pids: &[i32]) {
    let t = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            t.elapsed() < TIMEOUT,
            "a shared monitor outlived its containers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[tokio::test]
async fn one_key_shares_a_monitor_and_each_container_ends_on_its_own() {
    let fs: Vec<Fixture> = (0..4).map(|i| Fixture::new(&format!("share{i}"))).collect();
    let rt = fs[0].runtime();
    let a = start(&rt, &fs[0], "echo a; sleep 1000", "acct-a").await;
    let b = start(
        &rt,
        &fs[1],
        "echo b; sleep 0.5; echo b-done >&2; exit 3",
        "acct-a",
    )
    .await;
    let c = start(
        &rt,
        &fs[2],
        "trap 'echo c got TERM; exit 0' TERM; echo c; sleep 1000 & wait",
        "acct-a",
    )
    .await;
    let other = start(&rt, &fs[3], "echo d; sleep 1000", "acct-b").await;
    assert_eq!(a.monitor_pid, b.monitor_pid);
    assert_eq!(a.monitor_pid, c.monitor_pid);
    assert_ne!(
        a.monitor_pid, other.monitor_pid,
        "another key, another monitor"
    );
    assert!(
        cmdline(a.monitor_pid).contains("--shared"),
        "{}",
        cmdline(a.monitor_pid)
    );
    for (f, line) in [
        (&fs[0], "stdout F a\n"),
        (&fs[2], "stdout F c\n"),
        (&fs[3], "stdout F d\n"),
    ] {
        wait_for_line(f, line).await;
    }

    // One ends by itself: its own exit code and log, the others run on under the monitor.
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&b, &fs[1].dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (3, None));
    let log = fs[1].log_text();
    assert!(
        log.contains("stdout F b\n") && log.contains("stderr F b-done\n"),
        "{log}"
    );
    assert!(!fs[0].log_text().contains("b-done"), "{}", fs[0].log_text());
    assert!(alive(a.pid) && alive(c.pid) && alive(a.monitor_pid));
    assert_eq!(rt.adopt(&fs[0].dir()), Some(a.clone()));
    assert!(
        rt.adopt(&fs[1].dir()).is_none(),
        "an ended container is not adopted"
    );

    // Started again in place while the monitor serves the others, as a restart policy does
    // (the exit record removed first): not the monitor's until it starts, then its again.
    std::fs::remove_file(fs[1].dir().join("exit.json")).unwrap();
    assert!(
        rt.adopt(&fs[1].dir()).is_none(),
        "a removed exit record revives nothing"
    );
    rt.delete(fs[1].id()).await.unwrap();
    let b = start(&rt, &fs[1], "echo b2; sleep 1000", "acct-a").await;
    assert_eq!(b.monitor_pid, a.monitor_pid);
    wait_for_line(&fs[1], "stdout F b2\n").await;
    rt.stop(fs[1].id(), Duration::from_secs(1)).await.unwrap();
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&b, &fs[1].dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9));

    // One stopped, one killed: each wait gets its own end.
    rt.stop(fs[2].id(), Duration::from_secs(20)).await.unwrap();
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&c, &fs[2].dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (0, None));
    wait_for_line(&fs[2], "stdout F c got TERM\n").await;
    assert!(alive(a.pid) && alive(a.monitor_pid));
    rt.stop(fs[0].id(), Duration::from_secs(1)).await.unwrap();
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&a, &fs[0].dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));

    // Its last container gone, the monitor goes; the key's next container gets a new one.
    monitors_end(&[a.monitor_pid]).await;
    for f in &fs[..3] {
        delete_and_check(f, &rt).await;
    }
    let again = start(&rt, &fs[1], "echo again; sleep 1000", "acct-a").await;
    assert_ne!(again.monitor_pid, a.monitor_pid);
    wait_for_line(&fs[1], "stdout F again\n").await;
    assert!(
        alive(other.monitor_pid),
        "the other key's monitor is untouched"
    );
    for (f, s) in [(&fs[1], &again), (&fs[3], &other)] {
        rt.stop(f.id(), Duration::from_secs(1)).await.unwrap();
        tokio::time::timeout(TIMEOUT, rt.wait(s, &f.dir()))
            .await
            .unwrap()
            .unwrap();
        delete_and_check(f, &rt).await;
    }
}

#[tokio::test]
async fn a_shared_monitor_takes_sixteen_containers() {
    let fs: Vec<Fixture> = (0..17).map(|i| Fixture::new(&format!("cap{i}"))).collect();
    let rt = fs[0].runtime();
    let mut started = Vec::new();
    for f in &fs {
        started.push(start(&rt, f, "sleep 1000", "acct-cap").await);
    }
    let first = started[0].monitor_pid;
    assert!(started[..16].iter().all(|s| s.monitor_pid == first));
    assert_ne!(
        started[16].monitor_pid, first,
        "the 17th goes to a new monitor"
    );
    for (f, s) in fs.iter().zip(&started) {
        rt.stop(f.id(), Duration::from_millis(100)).await.unwrap();
        let exit = tokio::time::timeout(TIMEOUT, rt.wait(s, &f.dir()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit.signal, Some(9));
        delete_and_check(f, &rt).await;
    }
    monitors_end(&[first, started[16].monitor_pid]).await;
}

/// The process that asked for it gone (and its zygote with it): the shared monitor keeps
/// serving what it has, a new runtime adopts those containers, and the monitor exits after
/// the last.
#[tokio::test]
async fn a_shared_monitor_outlives_the_process_that_asked_for_it() {
    let fs: Vec<Fixture> = (0..2)
        .map(|i| Fixture::new(&format!("outlive{i}")))
        .collect();
    let rt = fs[0].runtime();
    let scripts = [
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        "sleep 1000",
    ];
    let mut cmd = std::process::Command::new(STARTER);
    cmd.arg(CRUN)
        .arg(fs[0].tmp.path().join("state"))
        .arg(MONITOR)
        .args(["--share", "k"]);
    for (f, script) in fs.iter().zip(scripts) {
        rt.write_bundle(&f.dir(), &f.spec(script)).unwrap();
        cmd.arg(f.id()).arg(f.dir()).arg(f.log());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.matches("STARTED ").count() == 2,
        "starter failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = fs[0].runtime();
    let a = fresh
        .adopt(&fs[0].dir())
        .expect("the first is not supervised");
    let b = fresh
        .adopt(&fs[1].dir())
        .expect("the second is not supervised");
    assert_eq!(a.monitor_pid, b.monitor_pid);
    assert!(stdout.contains(&format!("STARTED {} {}", a.pid, a.monitor_pid)));
    wait_for_line(&fs[0], "stdout F tick 5\n").await;
    for (f, s) in fs.iter().zip([&a, &b]) {
        fresh
            .stop(f.id(), Duration::from_millis(100))
            .await
            .unwrap();
        tokio::time::timeout(TIMEOUT, fresh.wait(s, &f.dir()))
            .await
            .unwrap()
            .unwrap();
        delete_and_check(f, &fresh).await;
    }
    monitors_end(&[a.monitor_pid]).await;
}
