//! `berth-runtime-starter <runtime> <state-root> <monitor> <id> <container-dir> <log>`: starts
//! one container through [`berth_runtime::Runtime::start`], prints `STARTED <pid>` and exits
//! without waiting for it. The crate's tests run it to check that a container outlives the
//! process that started it.

use std::path::PathBuf;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [runtime, state_root, monitor, id, dir, log] = args.as_slice() else {
        eprintln!(
            "usage: berth-runtime-starter <runtime> <state-root> <monitor> <id> <container-dir> <log>"
        );
        std::process::exit(2);
    };
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
    let id = id.to_string_lossy();
    match tokio.block_on(rt.start(&id, dir, log)) {
        Ok(started) => println!("STARTED {}", started.pid),
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(1);
        }
    }
}
