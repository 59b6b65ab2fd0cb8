//! `berth-monitor <container-dir>`: the container monitor as its own small executable.
//!
//! `berth serve` starts monitors from it (one serves up to 16 containers of one account, ADR
//! 0018). It runs the same code as `berth monitor`, but
//! links only the monitor: about 0.7 MB of code instead of the 17 MB of the whole berth, so
//! it starts in ~1 ms instead of ~3 ms and each running copy dirties far fewer pages (the
//! relocated data of the full binary alone is 0.6 MB per process). `berth-monitor --zygote`
//! is the process berth forks its monitors from (`monitor::zygote` in berth-runtime).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-monitor <container-dir> | berth-monitor --zygote");
        std::process::exit(2);
    };
    std::process::exit(berth_runtime::monitor_command_main(&dir));
}
