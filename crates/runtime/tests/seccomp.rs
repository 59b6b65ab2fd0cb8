//! Root tests of the built-in seccomp profile: berth builds the program crun builds itself,
//! byte for byte (and hands crun the same rules laid out as a binary tree), and a busybox
//! container is confined the same way under
//! crun with either program and under runc, by busybox applets and by a static probe of raw
//! syscalls (`seccomp_probe.c`, built with the host's `cc`). They fail, never skip, when root,
//! crun, runc, busybox or a C compiler with a static libc is missing.

mod common;

use std::path::Path;

use berth_runtime::seccomp::{compile_as_crun, Seccomp};
use berth_runtime::{CgroupLayout, Runtime, RuntimeConfig};
use common::*;

const RUNC: &str = "/usr/sbin/runc";

/// Prints `name=0` for each probe whose syscall was refused with EPERM, and whether a filter
/// is on and ordinary work goes on.
const PROBES: &str = "\
grep -q '^Seccomp:[[:space:]]*2' /proc/self/status; echo filtered=$?; \
unshare -U true 2>&1 | grep -q 'Operation not permitted'; echo userns=$?; \
unshare -m true 2>&1 | grep -q 'Operation not permitted'; echo mountns=$?; \
mkdir -p /mnt; mount -t tmpfs none /mnt 2>&1 | grep -qi 'permi'; echo mount=$?; \
sleep 0 && echo work=0";

/// What the probe prints under the default profile (with the default capabilities): EPERM for
/// every denied call, whatever the kernel would have said.
const PROBE_DENIED: &[&str] = &[
    "keyctl=Operation not permitted",
    "add_key=Operation not permitted",
    "request_key=Operation not permitted",
    "bpf=Operation not permitted",
    "perf_event_open=Operation not permitted",
    "unshare_user=Operation not permitted",
    "clone_newns=Operation not permitted",
    "socket_vsock=Operation not permitted",
    "socket_inet=ok",
    "personality=Operation not permitted",
];

/// Builds the probe into the fixture's rootfs as /bin/probe.
fn build_probe(f: &Fixture) {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seccomp_probe.c");
    let out = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(f.tmp.path().join("rootfs/bin/probe"))
        .arg(src)
        .output()
        .expect("a C compiler (cc) is needed to build the seccomp probe");
    assert!(
        out.status.success(),
        "cc -static failed (libc6-dev?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The probe's lines, with the answer to an unknown syscall number apart.
async fn raw_probe(f: &Fixture, rt: &Runtime, seccomp: Seccomp) -> (Vec<String>, String) {
    let mut spec = f.spec("/bin/probe");
    spec.seccomp = seccomp;
    let exit = run_to_exit(f, rt, &spec).await;
    assert_eq!(exit.exit_code, 0, "log: {}", f.log_text());
    let out = berth_runtime::logs::read(&f.log(), &Default::default()).unwrap();
    delete_and_check(f, rt).await;
    std::fs::remove_file(f.log()).unwrap();
    assert!(out.contains("getpid=ok\n"), "{out}");
    let unknown = out
        .lines()
        .find_map(|l| l.strip_prefix("unknown="))
        .unwrap_or_default()
        .to_string();
    let lines = out
        .lines()
        .filter(|l| !l.starts_with("unknown=") && !l.starts_with("getpid="))
        .map(String::from)
        .collect();
    (lines, unknown)
}

fn runtime(f: &Fixture, binary: &str) -> Runtime {
    assert!(Path::new(binary).exists(), "{binary} is missing");
    Runtime::new(RuntimeConfig {
        binary: binary.into(),
        state_root: f.tmp.path().join("state"),
        layout: CgroupLayout::detect().unwrap(),
        monitor_exe: MONITOR.into(),
        monitor_args: vec![],
        global_args: Vec::new(),
    })
    .unwrap()
}

async fn probe(f: &Fixture, rt: &Runtime, seccomp: Seccomp) -> String {
    let mut spec = f.spec(PROBES);
    spec.seccomp = seccomp;
    let exit = run_to_exit(f, rt, &spec).await;
    assert_eq!(exit.exit_code, 0, "log: {}", f.log_text());
    let out = berth_runtime::logs::read(&f.log(), &Default::default()).unwrap();
    delete_and_check(f, rt).await;
    std::fs::remove_file(f.log()).unwrap();
    out
}

const CONFINED: &str = "filtered=0\nuserns=0\nmountns=0\nmount=0\nwork=0\n";

#[tokio::test]
async fn berth_compiles_the_rules_as_crun_does() {
    let f = Fixture::new("sc-same");
    let rt = runtime(&f, CRUN).with_seccomp_precompile(false);
    assert!(!rt.seccomp_precompiled());
    let mut spec = f.spec("sleep 1000");
    spec.seccomp = Seccomp::Default;
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let config: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(f.dir().join("config.json")).unwrap()).unwrap();
    assert!(!config
        .annotations()
        .iter()
        .flatten()
        .any(|(k, _)| k == berth_runtime::SECCOMP_BPF_ANNOTATION));
    let section = config.linux().as_ref().unwrap().seccomp().clone().unwrap();
    rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    let by_crun = std::fs::read(f.tmp.path().join("state").join(f.id()).join("seccomp.bpf"))
        .expect("crun keeps the program it loaded in its state directory");
    let by_berth = compile_as_crun(&section).unwrap();
    assert!(
        by_crun == by_berth,
        "crun's program ({} bytes) differs from berth's ({} bytes)",
        by_crun.len(),
        by_berth.len()
    );
    delete_and_check(&f, &rt).await;
}

#[tokio::test]
async fn a_precompiled_program_replaces_the_section_and_confines_execs_too() {
    let f = Fixture::new("sc-exec");
    let rt = runtime(&f, CRUN);
    assert!(rt.seccomp_precompiled());
    let mut spec = f.spec("");
    spec.seccomp = Seccomp::Default;
    rt.write_bundle(&f.dir(), &spec).unwrap();
    let read_config = || -> oci_spec::runtime::Spec {
        serde_json::from_slice(&std::fs::read(f.dir().join("config.json")).unwrap()).unwrap()
    };
    let has_program = |c: &oci_spec::runtime::Spec| {
        c.annotations()
            .iter()
            .flatten()
            .any(|(k, _)| k == berth_runtime::SECCOMP_BPF_ANNOTATION)
    };
    let config = read_config();
    assert!(has_program(&config));
    assert!(
        config.linux().as_ref().unwrap().seccomp().is_none(),
        "the section stays beside the program"
    );
    let started = start_sleeper(&f, &rt, &mut spec).await;
    // Once the container runs, crun holds the program: the bundle no longer does.
    let config = read_config();
    assert!(!has_program(&config), "the program stays in the bundle");
    assert!(config.linux().as_ref().unwrap().seccomp().is_none());
    assert!(
        std::fs::metadata(f.dir().join("config.json"))
            .unwrap()
            .len()
            < 8192
    );
    // crun keeps the program for the container's execs, which it reads from its state.
    let req = berth_runtime::ExecRequest {
        args: ["sh", "-c", PROBES].iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let out = rt
        .exec_sync(f.id(), &f.dir(), &req, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), CONFINED);
    delete_and_check(&f, &rt).await;
    // Once the monitor is gone (a live one refuses the start first), the bundle without its
    // program never runs again: it would run unconfined.
    rt.wait(&started, &f.dir()).await.unwrap();
    let again = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap_err();
    assert!(
        again.to_string().contains("write the bundle anew"),
        "{again}"
    );
    assert!(
        !f.tmp.path().join("state").join(f.id()).exists(),
        "crun ran it"
    );
}

#[tokio::test]
async fn the_default_profile_confines_under_crun_with_either_program() {
    let f = Fixture::new("sc-crun");
    let rt = runtime(&f, CRUN);
    assert!(rt.seccomp_precompiled());
    assert_eq!(probe(&f, &rt, Seccomp::Default).await, CONFINED);
    let rt = runtime(&f, CRUN).with_seccomp_precompile(false);
    assert_eq!(probe(&f, &rt, Seccomp::Default).await, CONFINED);
    // Without a filter, the user namespace is open to the container's root: the profile,
    // not the capabilities, closes it.
    let open = probe(&f, &rt, Seccomp::Unconfined).await;
    assert!(
        open.starts_with("filtered=1\nuserns=1\n"),
        "unconfined: {open}"
    );

    build_probe(&f);
    for precompiled in [true, false] {
        let rt = runtime(&f, CRUN).with_seccomp_precompile(precompiled);
        let (lines, unknown) = raw_probe(&f, &rt, Seccomp::Default).await;
        assert_eq!(lines, PROBE_DENIED, "precompiled: {precompiled}");
        // crun answers a syscall newer than the filter with the default action.
        assert_eq!(unknown, "Operation not permitted");
    }
    let (lines, unknown) = raw_probe(&f, &rt, Seccomp::Unconfined).await;
    assert!(lines.iter().any(|l| l == "keyctl=ok"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "unshare_user=ok"), "{lines:?}");
    assert_eq!(unknown, "Function not implemented");
}

#[tokio::test]
async fn the_default_profile_confines_under_runc() {
    let f = Fixture::new("sc-runc");
    let rt = runtime(&f, RUNC);
    assert!(!rt.seccomp_precompiled());
    assert_eq!(probe(&f, &rt, Seccomp::Default).await, CONFINED);
    build_probe(&f);
    let (lines, unknown) = raw_probe(&f, &rt, Seccomp::Default).await;
    assert_eq!(lines, PROBE_DENIED);
    // runc answers syscall numbers above the filter's highest with ENOSYS.
    assert_eq!(unknown, "Function not implemented");
}
