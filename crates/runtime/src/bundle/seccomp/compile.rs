//! The BPF program of a `linux.seccomp` section, built with libseccomp exactly as crun 1.8
//! builds it (`src/libcrun/seccomp.c`, `libcrun_generate_seccomp`): the same default action
//! and errno, the same architectures, rules in the same order, rules with the default's action
//! left out, unknown syscall names skipped, and a rule comparing one argument twice split into
//! one rule per comparison ([`compile_as_crun`]). [`compile`] adds one thing crun does not
//! ask for: libseccomp's binary-tree layout of the syscall checks (`SCMP_FLTATR_CTL_OPTIMIZE`
//! 2), the same rules in a program that finds a syscall in ~log n comparisons instead of n,
//! which saves ~0.4 ms of every start. crun takes the program from the
//! `run.oci.seccomp_bpf_data` annotation and then skips its own compilation, which costs ~14 ms
//! of every start on the reference host; [`FilterCache`] compiles each distinct section once.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use sha2::{Digest, Sha256};

use crate::error::RuntimeError;

/// EPERM: crun's errno when a profile names none.
const EPERM: i32 = 1;
/// Distinct sections a cache holds before it starts over (a profile × capability sets).
const CACHE_ENTRIES: usize = 256;

fn fail(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::invalid(format!("cannot compile the seccomp profile: {what}: {e}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, RuntimeError> {
    let errno = errno.map_or(EPERM, |e| e as i32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(fail("action", "SCMP_ACT_NOTIFY is not supported"))
        }
    })
}

fn arch(a: Arch) -> Result<ScmpArch, RuntimeError> {
    Ok(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        other => return Err(fail("architecture", format!("{other} is not supported"))),
    })
}

fn compare(index: usize, op: LinuxSeccompOperator, value: u64, two: u64) -> ScmpArgCompare {
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // (arg & value) == valueTwo, as crun passes them to libseccomp.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(index as u32, ScmpCompareOp::MaskedEqual(value), two)
        }
    };
    ScmpArgCompare::new(index as u32, op, value)
}

/// The raw BPF program (`struct sock_filter[]`) of `seccomp`, the rules as crun adds them,
/// laid out as a binary tree.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<u8>, RuntimeError> {
    build(seccomp, true)
}

/// The program crun 1.8 itself builds from `seccomp`, byte for byte.
pub fn compile_as_crun(seccomp: &LinuxSeccomp) -> Result<Vec<u8>, RuntimeError> {
    build(seccomp, false)
}

fn build(seccomp: &LinuxSeccomp, tree: bool) -> Result<Vec<u8>, RuntimeError> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new_filter(default).map_err(|e| fail("init", e))?;
    if tree {
        ctx.set_filter_attr(libseccomp::ScmpFilterAttr::CtlOptimize, 2)
            .map_err(|e| fail("binary tree", e))?;
    }
    for a in seccomp.architectures().iter().flatten() {
        ctx.add_arch(arch(*a)?)
            .map_err(|e| fail("architecture", e))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            // Unknown to this libseccomp (newer than it): crun leaves it out with a warning.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let args = rule.args().as_deref().unwrap_or_default();
            let cmps: Vec<ScmpArgCompare> = args
                .iter()
                .take(6)
                .map(|a| compare(a.index(), a.op(), a.value(), a.value_two().unwrap_or(0)))
                .collect();
            let mut seen = [false; 6];
            let repeated = args.iter().take(6).any(|a| {
                let i = a.index().min(5);
                std::mem::replace(&mut seen[i], true)
            });
            if cmps.is_empty() || !repeated {
                ctx.add_rule_conditional(act, nr, &cmps)
                    .map_err(|e| fail(name, e))?;
            } else {
                for c in &cmps {
                    ctx.add_rule_conditional(act, nr, std::slice::from_ref(c))
                        .map_err(|e| fail(name, e))?;
                }
            }
        }
    }
    let fd = nix::sys::memfd::memfd_create(
        c"berth-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| fail("memfd", e))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&mut file).map_err(|e| fail("export", e))?;
    let mut bpf = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(|e| fail("read back", e))?;
    Ok(bpf)
}

/// Compiled programs by the SHA-256 of their `linux.seccomp` section, base64 as crun's
/// annotation wants them. Shared by every start; a section is compiled once.
#[derive(Debug, Default)]
pub struct FilterCache {
    programs: Mutex<HashMap<[u8; 32], Arc<str>>>,
}

impl FilterCache {
    /// The base64 program of `seccomp`, compiled now or taken from the cache.
    pub fn program(&self, seccomp: &LinuxSeccomp) -> Result<Arc<str>, RuntimeError> {
        let json = serde_json::to_vec(seccomp).map_err(|e| fail("serialise", e))?;
        let key: [u8; 32] = Sha256::digest(&json).into();
        if let Some(p) = self.lock().get(&key) {
            return Ok(p.clone());
        }
        let began = std::time::Instant::now();
        let program: Arc<str> = base64::engine::general_purpose::STANDARD
            .encode(compile(seccomp)?)
            .into();
        tracing::debug!(
            elapsed_us = began.elapsed().as_micros() as u64,
            bytes = program.len(),
            "compiled a seccomp program"
        );
        let mut map = self.lock();
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, program.clone());
        Ok(program)
    }

    /// How many programs are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<str>>> {
        self.programs.lock().unwrap_or_else(|e| e.into_inner())
    }
}
