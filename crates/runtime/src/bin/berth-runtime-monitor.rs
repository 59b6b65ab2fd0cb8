//! A stand-alone monitor executable (`berth-runtime-monitor <container-dir>`), so the crate's
//! tests and benchmarks need not build the berth binary, which runs the same code as
//! `berth monitor <container-dir>`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-runtime-monitor <container-dir>");
        std::process::exit(2);
    };
    std::process::exit(berth_runtime::monitor_command_main(&dir));
}
