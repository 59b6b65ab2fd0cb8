//! The world of the root tests: a busybox rootfs, a runtime state root and a container
//! directory per test, with helpers to run containers and check that nothing is left behind.
//! Everything here fails, never skips, when root, crun or busybox is missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_runtime::{BundleSpec, CgroupLayout, Runtime, RuntimeConfig, Started};

pub const CRUN: &str = "/usr/bin/crun";
pub const BUSYBOX: &str = "/usr/bin/busybox";
pub const MONITOR: &str = env!("CARGO_BIN_EXE_berth-runtime-monitor");
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One test's world: a busybox rootfs, a runtime state root and a container directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub name: String,
}

impl Fixture {
    pub fn new(name: &str) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "these tests need root");
        assert!(Path::new(CRUN).exists(), "{CRUN} is missing");
        assert!(Path::new(BUSYBOX).exists(), "{BUSYBOX} is missing");
        let tmp = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(rootfs.join("etc/resolv.conf"), "").unwrap();
        std::fs::create_dir_all(tmp.path().join("c")).unwrap();
        Self {
            tmp,
            name: format!("berth-test-{}-{name}", std::process::id()),
        }
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(RuntimeConfig {
            binary: CRUN.into(),
            state_root: self.tmp.path().join("state"),
            layout: CgroupLayout::detect().unwrap(),
            monitor_exe: MONITOR.into(),
            monitor_args: vec![],
            global_args: Vec::new(),
        })
        .unwrap()
    }

    pub fn id(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("c")
    }

    pub fn log(&self) -> PathBuf {
        self.tmp.path().join("logs/c.log")
    }

    /// The cgroup of the test's group; the container's is `<group>/c`.
    pub fn group_cgroup(&self) -> String {
        format!("/{}", self.name)
    }

    pub fn cgroup(&self) -> String {
        format!("{}/c", self.group_cgroup())
    }

    pub fn spec(&self, script: &str) -> BundleSpec {
        let hosts = self.tmp.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        BundleSpec {
            rootfs: self.tmp.path().join("rootfs"),
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec!["GREETING=hello".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "box".into(),
            netns: None,
            cpu: Some(0.5),
            memory_bytes: Some(256 << 20),
            pids_limit: Some(64),
            cgroup_path: self.cgroup(),
            readonly_rootfs: false,
            capability_add: vec![],
            capability_drop: vec![],
            sysctls: vec![],
            binds: vec![(hosts, "/etc/hosts".into(), true)],
            seccomp: Default::default(),
            user_map: None,
            volumes: Vec::new(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Asserts that no hierarchy holds the container's cgroup, then removes the group's.
    pub fn assert_cgroups_gone(&self, layout: &CgroupLayout) {
        let rel = self.cgroup();
        let mut left = vec![];
        for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = entry.path().join(rel.trim_start_matches('/'));
            if p.exists() {
                left.push(p);
            }
        }
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
        layout.remove_cgroup(&self.group_cgroup()).unwrap();
    }
}

impl Drop for Fixture {
    /// Leaves nothing behind even when the test failed half-way: kills what runs in the
    /// group's cgroups and removes them (the runtime state goes with the temporary dir).
    fn drop(&mut self) {
        if let Ok(layout) = CgroupLayout::detect() {
            let _ = layout.remove_cgroup(&self.group_cgroup());
        }
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

pub async fn run_to_exit(
    f: &Fixture,
    rt: &Runtime,
    spec: &BundleSpec,
) -> berth_runtime::ExitStatus {
    rt.write_bundle(&f.dir(), spec).unwrap();
    let started = rt.start(f.id(), &f.dir(), &f.log()).await.unwrap();
    assert!(started.pid > 0 && started.monitor_pid > 0);
    let exit = tokio::time::timeout(TIMEOUT, rt.wait(&started, &f.dir()))
        .await
        .expect("the container did not exit in time")
        .unwrap();
    assert_eq!(Runtime::read_exit(&f.dir()), Some(exit.clone()));
    assert!(exit.finished_at >= exit.started_at);
    exit
}

pub async fn delete_and_check(f: &Fixture, rt: &Runtime) {
    rt.delete(f.id()).await.unwrap();
    // Idempotent.
    rt.delete(f.id()).await.unwrap();
    f.assert_cgroups_gone(&CgroupLayout::detect().unwrap());
}

/// Starts a container that sleeps until it is deleted.
pub async fn start_sleeper(f: &Fixture, rt: &Runtime, spec: &mut BundleSpec) -> Started {
    spec.args = vec!["sleep".into(), "1000".into()];
    rt.write_bundle(&f.dir(), spec).unwrap();
    rt.start(f.id(), &f.dir(), &f.log()).await.unwrap()
}
