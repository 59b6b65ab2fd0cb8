//! `berth-runtime-starter <runtime> <state-root> <monitor> [--share KEY] <id> <container-dir>
//! <log> [<id> <container-dir> <log>...]`: starts each container through
//! [`berth_runtime::Runtime::start`] (or `start_sharing` with KEY), prints
//! `STARTED <pid> <monitor-pid>` for each and exits without waiting for them. The crate's
//! tests run it to check that containers outlive the process that started them.

use std::path::PathBuf;

const USAGE: &str = "usage: berth-runtime-starter <runtime> <state-root> <monitor> [--share KEY] \
                     <id> <container-dir> <log> [<id> <container-dir> <log>...]";

fn main() {
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.len() < 3 {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let rest = args.split_off(3);
    let [runtime, state_root, monitor] = args.as_slice() else {
        unreachable!("three arguments were split off")
    };
    let (share, containers) = match rest.first().and_then(|a| a.to_str()) {
        Some("--share") if rest.len() >= 2 => {
            (Some(rest[1].to_string_lossy().into_owned()), &rest[2..])
        }
        _ => (None, &rest[..]),
    };
    if containers.is_empty() || containers.len() % 3 != 0 {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let layout = match berth_runtime::CgroupLayout::detect() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cgroup layout: {e}");
            std::process::exit(1);
        }
    };
    let rt = match berth_runtime::Runtime::new(berth_runtime::RuntimeConfig {
        binary: runtime.clone(),
        state_root: state_root.clone(),
        layout,
        monitor_exe: monitor.clone(),
        monitor_args: vec![],
        global_args: Vec::new(),
    }) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime");
    for c in containers.chunks(3) {
        let (id, dir, log) = (c[0].to_string_lossy(), &c[1], &c[2]);
        let started = match &share {
            Some(key) => tokio.block_on(rt.start_sharing(&id, dir, log, key)),
            None => tokio.block_on(rt.start(&id, dir, log)),
        };
        match started {
            Ok(s) => println!("STARTED {} {}", s.pid, s.monitor_pid),
            Err(e) => {
                eprintln!("start: {e}");
                std::process::exit(1);
            }
        }
    }
}
