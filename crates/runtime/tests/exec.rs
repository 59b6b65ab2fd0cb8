//! Root tests of exec against the real crun of this host: sync output and exit codes,
//! interactive sessions with and without a terminal, resize, timeouts and kill on drop.

mod common;

use std::time::{Duration, Instant};

use berth_runtime::{ExecRequest, RuntimeError};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn req(args: &[&str]) -> ExecRequest {
    ExecRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sync_exec_returns_output_and_exit_code() {
    let f = Fixture::new("xsync");
    let rt = f.runtime();
    let started = start_sleeper(&f, &rt, &mut f.spec("")).await;
    let r = req(&[
        "sh",
        "-c",
        "echo $0 $1; echo $GREETING $EXTRA >&2; exit 3",
        "a",
        "b",
    ]);
    let r = ExecRequest {
        env: vec!["EXTRA=more".into()],
        ..r
    };
    let t = Instant::now();
    let out = rt
        .exec_sync(f.id(), &f.dir(), &r, Duration::from_secs(20))
        .await
        .unwrap();
    let first = t.elapsed();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "hello more\n");
    assert_eq!((out.exit_code, out.truncated), (3, false));
    // Latency of a trivial exec, warm.
    let t = Instant::now();
    for _ in 0..10 {
        let out = rt
            .exec_sync(f.id(), &f.dir(), &req(&["true"]), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(out.exit_code, 0);
    }
    println!(
        "sync exec latency: first {:?}, mean of 10 {:?}",
        first,
        t.elapsed() / 10
    );
    // It runs in the container's cgroup and as its user.
    let out = rt
        .exec_sync(
            f.id(),
            &f.dir(),
            &req(&["sh", "-c", "cat /proc/self/cgroup; id -u; pwd"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&f.cgroup()), "{text}");
    assert!(text.ends_with("0\n/\n"), "{text}");
    // Output is capped, the process is not blocked by it.
    let out = rt
        .exec_sync(
            f.id(),
            &f.dir(),
            &req(&["sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), berth_runtime::SYNC_OUTPUT_CAP);
    assert!(out.truncated && out.stderr == b"done\n");
    // A missing executable is the runtime's failure, with its message.
    let out = rt
        .exec_sync(
            f.id(),
            &f.dir(),
            &req(&["/no-such"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such"));
    assert!(rt.adopt(&f.dir()) == Some(started));
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn sync_exec_times_out_and_kills() {
    let f = Fixture::new("xtimeout");
    let rt = f.runtime();
    start_sleeper(&f, &rt, &mut f.spec("")).await;
    let t = Instant::now();
    let err = rt
        .exec_sync(
            f.id(),
            &f.dir(),
            &req(&["sh", "-c", "sleep 1000"]),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let out = rt
        .exec_sync(f.id(), &f.dir(), &req(&["ps"]), Duration::from_secs(20))
        .await
        .unwrap();
    let ps = String::from_utf8_lossy(&out.stdout);
    assert!(
        !ps.contains("sleep 1000\n") || ps.matches("sleep").count() == 1,
        "{ps}"
    );
    assert!(!ps.contains("sh -c sleep"), "{ps}");
    delete_and_check(&f, &rt).await;
}

/// Reads from `r` until `pred` holds for all that was read, or the deadline passes.
async fn read_until(
    r: &mut berth_runtime::ExecReader,
    out: &mut Vec<u8>,
    pred: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !pred(&String::from_utf8_lossy(out)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, r.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out; read {:?}", String::from_utf8_lossy(out)))
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn interactive_tty_exec_with_resize() {
    let f = Fixture::new("xtty");
    let rt = f.runtime();
    start_sleeper(&f, &rt, &mut f.spec("")).await;
    let r = ExecRequest {
        tty: true,
        stdin: true,
        size: Some((80, 24)),
        ..req(&["sh"])
    };
    let t = Instant::now();
    let mut s = rt.exec_interactive(f.id(), &f.dir(), &r).await.unwrap();
    println!("interactive tty exec: session in {:?}", t.elapsed());
    assert!(s.is_tty() && s.stderr.is_none());
    let mut stdin = s.stdin.take().unwrap();
    let mut stdout = s.stdout.take().unwrap();
    let mut out = Vec::new();
    stdin.write_all(b"stty size; tty\n").await.unwrap();
    read_until(&mut stdout, &mut out, |t| {
        t.contains("24 80") && t.contains("/dev/pts/")
    })
    .await;
    s.resize(100, 40).unwrap();
    stdin
        .write_all(b"echo hi; stty size; exit 5\n")
        .await
        .unwrap();
    read_until(&mut stdout, &mut out, |t| {
        t.contains("\nhi\r\n") && t.contains("40 100")
    })
    .await;
    let code = tokio::time::timeout(TIMEOUT, s.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 5, "{}", String::from_utf8_lossy(&out));
    assert_eq!(s.wait().await.unwrap(), 5);
    // The rest of the output, then end of stream.
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stdout.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn interactive_exec_without_tty() {
    let f = Fixture::new("xcat");
    let rt = f.runtime();
    start_sleeper(&f, &rt, &mut f.spec("")).await;
    let r = ExecRequest {
        stdin: true,
        ..req(&["sh", "-c", "cat; echo bye >&2; exit 4"])
    };
    let t = Instant::now();
    let mut s = rt.exec_interactive(f.id(), &f.dir(), &r).await.unwrap();
    println!("interactive exec (pipes): session in {:?}", t.elapsed());
    assert!(!s.is_tty());
    assert!(matches!(s.resize(1, 1), Err(RuntimeError::NoTerminal)));
    let mut stdin = s.stdin.take().unwrap();
    let mut stdout = s.stdout.take().unwrap();
    let mut stderr = s.stderr.take().unwrap();
    stdin.write_all(b"line one\n").await.unwrap();
    let mut out = Vec::new();
    read_until(&mut stdout, &mut out, |t| t == "line one\n").await;
    stdin.write_all(b"line two\n").await.unwrap();
    drop(stdin);
    read_until(&mut stdout, &mut out, |_| false).await;
    assert_eq!(String::from_utf8_lossy(&out), "line one\nline two\n");
    let mut err = Vec::new();
    read_until(&mut stderr, &mut err, |_| false).await;
    assert_eq!(err, b"bye\n");
    assert_eq!(s.wait().await.unwrap(), 4);
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn dropping_a_session_kills_its_process() {
    let f = Fixture::new("xdrop");
    let rt = f.runtime();
    start_sleeper(&f, &rt, &mut f.spec("")).await;
    for tty in [false, true] {
        let r = ExecRequest {
            tty,
            stdin: true,
            ..req(&["sleep", "777"])
        };
        let s = rt.exec_interactive(f.id(), &f.dir(), &r).await.unwrap();
        let t = Instant::now();
        let pid = loop {
            if let Some(pid) = s.pid() {
                break pid;
            }
            assert!(t.elapsed() < TIMEOUT, "no exec pid");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(alive(pid));
        drop(s);
        let t = Instant::now();
        while alive(pid) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "exec {pid} survived (tty {tty})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // No exec files are left in the bundle.
    let left: Vec<_> = std::fs::read_dir(f.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn tty_exec_in_a_missing_container_fails() {
    let f = Fixture::new("xmissing");
    let rt = f.runtime();
    rt.write_bundle(&f.dir(), &f.spec("true")).unwrap();
    let r = ExecRequest {
        tty: true,
        ..req(&["sh"])
    };
    let err = rt.exec_interactive(f.id(), &f.dir(), &r).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ExecFailed { .. }), "{err:?}");
    let out = rt
        .exec_sync(f.id(), &f.dir(), &req(&["true"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0);
}
