//! Builds the sandbox's pause process (`pause/pause.c`) as a static executable, which the
//! gvisor runtime class writes into the root filesystem of every group's sandbox. A static
//! binary needs nothing from that filesystem; the C compiler and the static C library are
//! build dependencies (Debian: gcc, libc6-dev).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "pause/pause.c";
    println!("cargo:rerun-if-changed={src}");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        status.success(),
        "{cc} -static {src} failed ({status}); a static C library is needed (libc6-dev)"
    );
}
