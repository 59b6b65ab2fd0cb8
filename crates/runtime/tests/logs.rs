//! Root tests of container logs against the real crun of this host: size-based rotation of a
//! chatty container, following a live log, and the last lines of a failed container.

mod common;

use std::time::{Duration, Instant};

use berth_runtime::logs::{self, LogQuery, LogRotation};
use chrono::Utc;
use common::*;

#[tokio::test]
async fn chatty_container_is_rotated_and_read_back() {
    let f = Fixture::new("lrotate");
    let rotation = LogRotation {
        max_bytes: 1 << 20,
        keep: 2,
    };
    let rt = f.runtime().with_log_rotation(Some(rotation));
    // 60000 lines of about 90 bytes: over 5 MB of output, more in CRI form.
    let mut spec = f.spec("seq 1 60000 | sed 's/$/ abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789/'");
    spec.cpu = None;
    let exit = run_to_exit(&f, &rt, &spec).await;
    assert_eq!(exit.exit_code, 0);
    let dir = f.log().parent().unwrap().to_path_buf();
    let mut total = 0;
    let mut names = vec![];
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let len = e.metadata().unwrap().len();
        assert!(len <= rotation.max_bytes, "{:?}: {len}", e.file_name());
        total += len;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(names, ["c.log", "c.log.1", "c.log.2"]);
    assert!(total <= rotation.max_bytes * 3, "{total} bytes kept");
    println!("rotation kept {total} bytes in {names:?}");
    // The tail reads back whole and in order, across the files.
    let text = logs::read(&f.log(), &LogQuery::default()).unwrap();
    let nums: Vec<u32> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(*nums.last().unwrap(), 60000);
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "lines out of order"
    );
    assert!(nums.len() > 20000, "only {} lines kept", nums.len());
    let q = LogQuery {
        tail: Some(3),
        ..Default::default()
    };
    let tail = logs::read(&f.log(), &q).unwrap();
    assert!(
        tail.starts_with("59998 ") && tail.lines().count() == 3,
        "{tail}"
    );
    let t = Instant::now();
    let last = logs::last_lines(&f.log(), 2);
    println!("last_lines over {total} bytes: {:?}", t.elapsed());
    assert!(
        last.starts_with("59999 ") && last.contains("\n60000 "),
        "{last}"
    );
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn follow_sees_new_lines_within_a_second() {
    let f = Fixture::new("lfollow");
    let rt = f.runtime();
    let spec = f.spec(
        "echo before; sleep 1; i=0; while [ $i -lt 8 ]; do echo tick $i; i=$((i+1)); \
         sleep 0.3; done; echo bye >&2",
    );
    rt.write_bundle(&f.dir(), &spec).unwrap();
    // Follow before the log exists.
    let q = LogQuery {
        timestamps: true,
        ..Default::default()
    };
    let mut follower = logs::follow(&f.log(), &q).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    let mut got = vec![];
    let mut worst = Duration::ZERO;
    while got.len() < 9 {
        let line = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("no line within 5 s")
            .unwrap()
            .unwrap();
        let (ts, text) = line.trim_end().split_once(' ').unwrap();
        let ts: chrono::DateTime<Utc> = ts.parse().unwrap();
        let delay = (Utc::now() - ts).to_std().unwrap_or_default();
        worst = worst.max(delay);
        got.push(text.to_string());
    }
    println!("follow: worst delay {worst:?}");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    let expected: Vec<String> = std::iter::once("before".to_string())
        .chain((0..8).map(|i| format!("tick {i}")))
        .collect();
    assert_eq!(got, expected);
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let rest = follower.drain().unwrap();
    assert!(rest.ends_with(" bye\n"), "{rest:?}");
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn last_lines_of_a_failed_container() {
    let f = Fixture::new("llast");
    let rt = f.runtime();
    let spec = f.spec("echo starting; echo 'fatal: no config' >&2; exit 2");
    let exit = run_to_exit(&f, &rt, &spec).await;
    assert_eq!((exit.exit_code, exit.oom_killed), (2, false));
    let last = logs::last_lines(&f.log(), 1);
    assert_eq!(last, "fatal: no config");
    let two = logs::last_lines(&f.log(), 2);
    assert!(two == "starting\nfatal: no config" || two == "fatal: no config\nstarting");
    delete_and_check(&f, &rt).await;
}
