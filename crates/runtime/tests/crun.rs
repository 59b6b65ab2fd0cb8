//! Root tests against the real crun of this host, with a busybox rootfs: logs in CRI format,
//! exit codes, OOM kills, stop, adoption by a new process, and deletion that leaves no cgroup
//! or process behind. They fail, never skip, when root, crun or busybox is missing.

mod common;

use std::time::{Duration, Instant};

use berth_runtime::logs::{self, LogQuery};
use berth_runtime::{CgroupLayout, RuntimeError};
use common::*;

/// Starts a container and exits (src/bin/berth-runtime-starter.rs).
const STARTER: &str = env!("CARGO_BIN_EXE_berth-runtime-starter");

#[tokio::test]
async fn logs_both_streams_in_cri_format() {
    let f = Fixture::new("echo");
    let rt = f.runtime();
    let spec = f.spec("echo $GREETING; echo err >&2; echo quiet > /dev/null");
    let exit = run_to_exit(&f, &rt, &spec).await;
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (0, None, false)
    );
    let text = f.log_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "log: {text}");
    for line in &lines {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert_eq!(ts.len(), 30, "timestamp {ts}");
        assert!(ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok());
        assert!(
            rest == "stdout F hello" || rest == "stderr F err",
            "line {line}"
        );
    }
    assert!(text.contains(" stdout F hello\n") && text.contains(" stderr F err\n"));
    let plain = logs::read(&f.log(), &LogQuery::default()).unwrap();
    assert!(
        plain == "hello\nerr\n" || plain == "err\nhello\n",
        "{plain:?}"
    );
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn reports_exit_code() {
    let f = Fixture::new("exit3");
    let rt = f.runtime();
    let exit = run_to_exit(&f, &rt, &f.spec("exit 3")).await;
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (3, None, false)
    );
    assert_eq!(exit.to_state().reason.as_deref(), Some("Error"));
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn reports_oom_kill() {
    let f = Fixture::new("oom");
    let rt = f.runtime();
    let mut spec = f.spec("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived");
    spec.memory_bytes = Some(32 << 20);
    let exit = run_to_exit(&f, &rt, &spec).await;
    assert!(exit.oom_killed, "{exit:?}, log: {}", f.log_text());
    assert_ne!(exit.exit_code, 0);
    assert!(!f.log_text().contains("survived"));
    assert_eq!(exit.to_state().reason.as_deref(), Some("OOMKilled"));
    let stats = CgroupLayout::detect().unwrap().stats(&f.cgroup()).unwrap();
    assert!(stats.oom_kills >= 1, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, Some(32 << 20));
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn stop_sends_sigterm_first() {
    let f = Fixture::new("term");
    let rt = f.runtime();
    let spec = f.spec("trap 'echo got TERM; exit 0' TERM; echo ready; sleep 1000 & wait");
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    // The shell, as the namespace's init, ignores SIGTERM until its trap is set.
    let t = Instant::now();
    while !f.log_text().contains("stdout F ready") {
        assert!(t.elapsed() < TIMEOUT, "the shell never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second start of a running container is refused, naming the monitor that holds it.
    assert!(matches!(
        rt.start(f.id(), &f.dir(), &f.log()).await,
        Err(RuntimeError::Busy { pid, .. }) if pid == started.monitor_pid
    ));
    // Adoption finds it, as a restarted berth would.
    assert_eq!(rt.adopt_starting(&f.dir()).await, Some(started.clone()));
    let t = Instant::now();
    rt.stop(f.id(), Duration::from_secs(20)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (0, None));
    assert!(f.log_text().contains("stdout F got TERM"));
    assert!(rt.adopt(&f.dir()).is_none());
    // Stopping a stopped container is fine.
    rt.stop(f.id(), Duration::from_secs(1)).await.unwrap();
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn stop_kills_after_grace() {
    let f = Fixture::new("kill");
    let rt = f.runtime();
    let mut spec = f.spec("");
    // As the namespace's init without a handler, sleep ignores SIGTERM.
    spec.args = vec!["sleep".into(), "1000".into()];
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    assert!(alive(started.pid));
    let t = Instant::now();
    rt.stop(f.id(), Duration::from_secs(1)).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn start_failure_carries_runtime_error() {
    let f = Fixture::new("noexec");
    let rt = f.runtime();
    let mut spec = f.spec("");
    spec.args = vec!["/bin/no-such-program".into()];
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let err = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap_err();
    match &err {
        RuntimeError::StartFailed { message, .. } => {
            assert!(message.contains("no-such-program"), "{message}")
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(rt.adopt(&f.dir()).is_none());
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn delete_removes_running_container() {
    let f = Fixture::new("delete");
    let rt = f.runtime();
    let mut spec = f.spec("");
    spec.args = vec!["sleep".into(), "1000".into()];
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    assert!(alive(started.pid));
    assert_eq!(rt.adopt(&f.dir()), Some(started.clone()));
    delete_and_check(&f, &rt).await;
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(!alive(started.pid), "the container's init survived");
    // Its own monitor ends right after recording the exit.
    let t = Instant::now();
    while alive(started.monitor_pid) {
        assert!(t.elapsed() < TIMEOUT, "the monitor survived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rt.adopt(&f.dir()).is_none());
    rt.stop(f.id(), Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn survives_the_process_that_started_it() {
    let f = Fixture::new("adopt");
    let rt = f.runtime();
    let spec =
        f.spec("i=0; while [ $i -lt 12 ]; do echo tick $i; i=$((i+1)); sleep 0.25; done; exit 7");
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let out = std::process::Command::new(STARTER)
        .arg(CRUN)
        .arg(f.tmp.path().join("state"))
        .arg(MONITOR)
        .arg(f.id())
        .arg(f.dir())
        .arg(f.log())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("STARTED "),
        "starter failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The starter is gone; a fresh runtime finds the container through its monitor.
    let fresh = f.runtime();
    let started = fresh.adopt(&f.dir()).expect("the monitor is not running");
    assert!(stdout.contains(&format!("STARTED {}", started.pid)));
    assert!(alive(started.pid));
    // It goes on logging, and each line is in the file as soon as it is written.
    let t = Instant::now();
    while !f.log_text().contains("stdout F tick 3\n") {
        assert!(t.elapsed() < TIMEOUT, "no live log: {}", f.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alive(started.pid), "the container ended too early to test");
    let exit = tokio::time::timeout(TIMEOUT, fresh.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.exit_code, 7);
    let text = logs::read(&f.log(), &LogQuery::default()).unwrap();
    let expected: String = (0..12).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(text, expected);
    delete_and_check(&f, &fresh).await;
}

#[tokio::test]
async fn removing_the_group_cgroup_kills_what_runs_in_it() {
    let f = Fixture::new("rmcg");
    let rt = f.runtime();
    let mut spec = f.spec("");
    spec.args = vec!["sleep".into(), "1000".into()];
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    let layout = CgroupLayout::detect().unwrap();
    layout.remove_cgroup(&f.group_cgroup()).unwrap();
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(!alive(started.pid));
    delete_and_check(&f, &rt).await;
}
