//! The built-in profile resolved for containers with and without the capabilities that open
//! its conditional rules, the checks of operators' profiles, and the compiled programs.

use super::*;
use crate::bundle::capabilities;

fn host(arch: &str) -> Host {
    Host {
        arch: arch.into(),
        kernel: (6, 1),
    }
}

fn resolve(add: &[&str], host: &Host) -> LinuxSeccomp {
    let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
    Profile::builtin().resolve(&capabilities(&add, &[]).unwrap(), host)
}

/// The rules of `sec` that name `name`.
fn rules<'a>(sec: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
    sec.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect()
}

/// Whether `name` is allowed whatever its arguments.
fn allowed(sec: &LinuxSeccomp, name: &str) -> bool {
    rules(sec, name)
        .iter()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
}

/// Whether no rule names `name` at all: the default action (EPERM) answers it.
fn denied(sec: &LinuxSeccomp, name: &str) -> bool {
    rules(sec, name).is_empty()
}

const NAMESPACE_FLAGS: u64 = 0x7E02_0000;

#[test]
fn the_builtin_profile_denies_by_default_with_eperm() {
    let sec = resolve(&[], &host("amd64"));
    assert_eq!(sec.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(sec.default_errno_ret(), Some(1));
    assert_eq!(
        sec.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
    );
    for ok in [
        "read",
        "execve",
        "clock_nanosleep",
        "arch_prctl",
        "modify_ldt",
        "ptrace",
    ] {
        assert!(allowed(&sec, ok), "{ok} should be allowed");
    }
    for no in [
        "keyctl",
        "add_key",
        "request_key",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "fsopen",
        "open_by_handle_at",
        "init_module",
        "kexec_load",
        "io_uring_setup",
        "userfaultfd",
        "kcmp",
        "pidfd_getfd",
        "reboot",
        "syslog",
        "settimeofday",
        "iopl",
    ] {
        assert!(denied(&sec, no), "{no} should fall to the default action");
    }
}

#[test]
fn clone_needs_cap_sys_admin_for_namespace_flags() {
    let sec = resolve(&[], &host("amd64"));
    let clone = rules(&sec, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    let args = clone[0].args().as_ref().unwrap();
    assert_eq!(args.len(), 1);
    assert_eq!(args[0].index(), 0);
    assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(args[0].value(), NAMESPACE_FLAGS);
    assert_eq!(args[0].value_two().unwrap_or(0), 0);
    // clone3 gets ENOSYS, so libc falls back to clone and its checked flags.
    let clone3 = rules(&sec, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3[0].errno_ret(), Some(38));

    let admin = resolve(&["SYS_ADMIN"], &host("amd64"));
    for ok in [
        "clone", "clone3", "mount", "umount2", "unshare", "setns", "bpf", "syslog",
    ] {
        assert!(allowed(&admin, ok), "{ok} should be allowed with SYS_ADMIN");
    }
    assert!(rules(&admin, "clone3")
        .iter()
        .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
    assert!(rules(&admin, "clone").iter().all(|r| r.args().is_none()));
    // The keyring is not namespaced: no capability opens it.
    for no in ["keyctl", "add_key", "request_key"] {
        assert!(denied(&admin, no), "{no}");
    }
}

#[test]
fn capabilities_open_their_syscalls() {
    let amd64 = host("amd64");
    for (cap, calls) in [
        (
            "SYS_PTRACE",
            &["kcmp", "pidfd_getfd", "process_madvise"][..],
        ),
        ("SYS_CHROOT", &["chroot"]),
        ("SYS_TIME", &["settimeofday", "clock_settime"]),
        (
            "SYS_MODULE",
            &["init_module", "finit_module", "delete_module"],
        ),
        ("SYS_RAWIO", &["iopl", "ioperm"]),
        ("SYS_BOOT", &["reboot"]),
        ("SYS_NICE", &["mbind", "set_mempolicy"]),
        ("BPF", &["bpf"]),
        ("PERFMON", &["perf_event_open"]),
        ("SYSLOG", &["syslog"]),
        ("DAC_READ_SEARCH", &["open_by_handle_at"]),
    ] {
        let without = resolve(&[], &amd64);
        let with = resolve(&[cap], &amd64);
        for call in calls {
            assert!(
                !allowed(&without, call) || cap == "SYS_CHROOT",
                "{call} without {cap}"
            );
            assert!(allowed(&with, call), "{call} with {cap}");
        }
    }
    // The default set has SYS_CHROOT, so chroot is allowed as in Docker.
    assert!(allowed(&resolve(&[], &amd64), "chroot"));
}

#[test]
fn ptrace_waits_for_a_kernel_that_checks_seccomp_after_it() {
    let old = Host {
        arch: "amd64".into(),
        kernel: (4, 4),
    };
    assert!(denied(&resolve(&[], &old), "ptrace"));
    assert!(allowed(&resolve(&["SYS_PTRACE"], &old), "ptrace"));
    assert!(allowed(&resolve(&[], &host("amd64")), "process_vm_readv"));
}

#[test]
fn socket_and_personality_keep_their_argument_rules() {
    let sec = resolve(&[], &host("amd64"));
    let socket: Vec<(LinuxSeccompOperator, u64)> = rules(&sec, "socket")
        .iter()
        .map(|r| {
            let a = r.args().as_ref().unwrap();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].index(), 0);
            (a[0].op(), a[0].value())
        })
        .collect();
    // AF_ALG (38) and AF_VSOCK (40) are the gaps.
    assert_eq!(
        socket,
        vec![
            (LinuxSeccompOperator::ScmpCmpLt, 38),
            (LinuxSeccompOperator::ScmpCmpEq, 39),
            (LinuxSeccompOperator::ScmpCmpGt, 40),
        ]
    );
    let personas: Vec<u64> = rules(&sec, "personality")
        .iter()
        .map(|r| r.args().as_ref().unwrap()[0].value())
        .collect();
    assert_eq!(personas, vec![0, 8, 0x20000, 0x20008, 0xffff_ffff]);
}

#[test]
fn rules_follow_the_host_architecture() {
    let arm = resolve(&[], &host("arm64"));
    assert_eq!(
        arm.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
    );
    assert!(denied(&arm, "arch_prctl"));
    assert!(allowed(&arm, "set_tls"));
    let s390 = resolve(&[], &host("s390x"));
    let clone = rules(&s390, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
    assert!(allowed(&resolve(&[], &host("amd64")), "arch_prctl"));
}

#[test]
fn profiles_are_checked_when_read() {
    let ok = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"defaultErrno":"ENOSYS",
        "architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":null,"comment":"",
                     "includes":{},"excludes":{}},
                    {"name":"write","action":"SCMP_ACT_ERRNO","errnoRet":1,"errno":"EPERM"}]}"#;
    let p = Profile::parse(ok.as_bytes()).unwrap();
    let sec = p.resolve(&capabilities(&[], &[]).unwrap(), &host("amd64"));
    assert_eq!(sec.syscalls().as_ref().unwrap().len(), 2);
    assert_eq!(
        sec.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64][..])
    );

    for (text, says) in [
        ("[]", "not a seccomp profile"),
        (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "unknown variant"),
        (r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "seccomp agent"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#,
            "returns none",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscals":[]}"#,
            "unknown field",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
               "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
            "both 'architectures' and 'archMap'",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
            "needs syscall names",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#,
            "both 'name' and 'names'",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a b"],"action":"SCMP_ACT_ERRNO"}]}"#,
            "not a syscall name",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            "argument index 6",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#,
            "unknown variant",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW",
               "includes":{"caps":["SYS_ADMIN"]}}]}"#,
            "not a capability",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ALLOW",
               "includes":{"minKernel":"new"}}]}"#,
            "not a kernel version",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":5}]}"#,
            "returns none",
        ),
    ] {
        let e = Profile::parse(text.as_bytes()).unwrap_err();
        let err = match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
        assert!(err.contains(says), "{text}: {err}");
    }
    let big = vec![b' '; MAX_PROFILE_BYTES + 1];
    assert!(matches!(
        Profile::parse(&big),
        Err(ProfileError::TooLarge(_))
    ));
}

#[test]
fn the_builtin_profile_survives_a_round_trip() {
    let text = serde_json::to_vec(&*Profile::builtin()).unwrap();
    assert_eq!(Profile::parse(&text).unwrap(), *Profile::builtin());
}

#[test]
fn compiled_programs_are_cached_per_section() {
    let sec = resolve(&[], &host(native_arch()));
    let bpf = compile(&sec).unwrap();
    // struct sock_filter is 8 bytes.
    assert!(
        bpf.len() > 8 * 100 && bpf.len().is_multiple_of(8),
        "{}",
        bpf.len()
    );
    assert!(
        compile(&sec).unwrap() == bpf,
        "the same section compiles the same"
    );
    let admin = resolve(&["SYS_ADMIN"], &host(native_arch()));
    assert!(compile(&admin).unwrap() != bpf);

    let cache = FilterCache::default();
    let a = cache.program(&sec).unwrap();
    let b = cache.program(&sec).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    cache.program(&admin).unwrap();
    assert_eq!(cache.len(), 2);
    Profile::builtin().check_compiles().unwrap();
}

/// Runs a classic BPF seccomp program over one `struct seccomp_data` (nr, arch, ip, args) and
/// returns its verdict. Knows the instructions libseccomp emits.
fn run_bpf(prog: &[u8], data: &[u8; 64]) -> u32 {
    let insns: Vec<(u16, u8, u8, u32)> = prog
        .chunks_exact(8)
        .map(|i| {
            (
                u16::from_ne_bytes([i[0], i[1]]),
                i[2],
                i[3],
                u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
            )
        })
        .collect();
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let (code, jt, jf, k) = insns[pc];
        pc += 1;
        let jump = |cond: bool| if cond { jt as usize } else { jf as usize };
        match code {
            0x20 => {
                let o = k as usize;
                a = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            0x54 => a &= k,
            0x05 => pc += k as usize,
            0x15 => pc += jump(a == k),
            0x25 => pc += jump(a > k),
            0x35 => pc += jump(a >= k),
            0x45 => pc += jump(a & k != 0),
            0x06 => return k,
            other => panic!("instruction {other:#x} at {}", pc - 1),
        }
    }
}

#[test]
fn the_binary_tree_decides_as_crun_s_program() {
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const X32_BIT: u32 = 0x4000_0000;
    // Arguments that the argument rules tell apart (clone flags, address families,
    // personalities), in the first two arguments at once.
    let values: [u64; 8] = [0, 17, 38, 39, 40, 0x20008, 0x1000_0011, 0xffff_ffff];
    // Every syscall number of x86_64, x32 and i386 this kernel has, and a foreign arch.
    let mut cases: Vec<(u32, u32)> = Vec::new();
    for nr in 0..470u32 {
        cases.extend([(X86_64, nr), (X86_64, nr | X32_BIT), (I386, nr)]);
    }
    cases.extend([(0xdead_beef, 0), (0xdead_beef, 56)]);
    for add in [&[][..], &["SYS_ADMIN"][..]] {
        let sec = resolve(add, &host("amd64"));
        let tree = compile(&sec).unwrap();
        let linear = compile_as_crun(&sec).unwrap();
        for &(arch, nr) in &cases {
            for v in values {
                let mut data = [0u8; 64];
                data[0..4].copy_from_slice(&nr.to_ne_bytes());
                data[4..8].copy_from_slice(&arch.to_ne_bytes());
                data[16..24].copy_from_slice(&v.to_ne_bytes());
                data[24..32].copy_from_slice(&v.to_ne_bytes());
                let (t, l) = (run_bpf(&tree, &data), run_bpf(&linear, &data));
                assert_eq!(t, l, "caps +{add:?} arch {arch:#x} nr {nr} args {v:#x}");
            }
        }
    }
    // The interpreter is right about what it decides: read is allowed, keyctl (250) gets
    // EPERM, clone (56) with CLONE_NEWUSER too.
    let sec = resolve(&[], &host("amd64"));
    let prog = compile(&sec).unwrap();
    let verdict = |nr: u32, arg0: u64| {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&X86_64.to_ne_bytes());
        data[16..24].copy_from_slice(&arg0.to_ne_bytes());
        run_bpf(&prog, &data)
    };
    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    assert_eq!(verdict(0, 0), ALLOW);
    assert_eq!(verdict(250, 0), EPERM);
    assert_eq!(verdict(56, 17), ALLOW);
    assert_eq!(verdict(56, 0x1000_0011), EPERM);
}
