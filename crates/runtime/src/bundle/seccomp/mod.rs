//! Seccomp profiles: Docker's profile format (the default in `default.json`, see the README
//! beside it, or an operator's per-account profile), checked when it is read, and turned into
//! the `linux.seccomp` section of one container by its bounding capabilities, the host's
//! architecture and kernel, as Docker does.

mod compile;

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder,
};
use serde::{Deserialize, Serialize};

pub use compile::{compile, compile_as_crun, FilterCache};

/// The largest profile berth reads (Docker's default is ~15 KiB).
pub const MAX_PROFILE_BYTES: usize = 256 * 1024;
/// Most rules a profile may have (Docker's default has 35).
const MAX_RULES: usize = 4096;
/// The kernel passes six arguments to a system call.
const MAX_ARGS: usize = 6;

const DEFAULT_JSON: &str = include_str!("default.json");

static DEFAULT: LazyLock<Arc<Profile>> = LazyLock::new(|| {
    Arc::new(Profile::parse(DEFAULT_JSON.as_bytes()).expect("the built-in profile is valid"))
});

/// A profile that cannot be used, with what is wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the profile is {0} bytes, more than the {MAX_PROFILE_BYTES} allowed")]
    TooLarge(usize),
    #[error("the profile is not a seccomp profile")]
    Json(#[from] serde_json::Error),
    #[error("the profile is invalid: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ProfileError {
    ProfileError::Invalid(msg.into())
}

/// The seccomp confinement of a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Seccomp {
    /// The built-in profile ([`Profile::builtin`]).
    #[default]
    Default,
    /// An operator's profile.
    Profile(Arc<Profile>),
    /// No filter at all; only when the operator asked for it.
    Unconfined,
}

impl Seccomp {
    /// The profile to apply, `None` when unconfined.
    pub fn profile(&self) -> Option<Arc<Profile>> {
        match self {
            Seccomp::Default => Some(Profile::builtin()),
            Seccomp::Profile(p) => Some(p.clone()),
            Seccomp::Unconfined => None,
        }
    }
}

/// A seccomp profile in Docker's format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    /// The errno's name, which containers-common writes beside `defaultErrnoRet`; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    architectures: Vec<Arch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    arch_map: Vec<ArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// The architectures a filter covers on a host of `architecture`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

/// One rule: an action for some syscalls, maybe only for some arguments, maybe only under
/// some conditions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    /// The errno's name (containers-common); not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<Arg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    includes: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    excludes: Option<Condition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Arg {
    index: usize,
    value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

/// When a rule applies (`includes`: all of these hold) or not (`excludes`: any holds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_kernel: Option<String>,
}

/// What a profile is resolved against: the host's architecture (Docker's name: `amd64`,
/// `arm64`…) and kernel version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub arch: String,
    pub kernel: (u32, u32),
}

impl Host {
    /// This host.
    pub fn detect() -> Self {
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| kernel_version(&u.release().to_string_lossy()))
            .unwrap_or((0, 0));
        Self {
            arch: native_arch().to_string(),
            kernel,
        }
    }
}

/// Docker's name of the architecture berth was built for (Go's, with `x86` for 386).
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loongarch64",
        "mips64" if cfg!(target_endian = "little") => "mipsel64",
        "mips64" => "mips64",
        other => other,
    }
}

/// The seccomp architecture of a Docker architecture name.
fn seccomp_arch(native: &str) -> Option<Arch> {
    Some(match native {
        "x86" => Arch::ScmpArchX86,
        "amd64" => Arch::ScmpArchX86_64,
        "arm" => Arch::ScmpArchArm,
        "arm64" => Arch::ScmpArchAarch64,
        "loongarch64" => Arch::ScmpArchLoongarch64,
        "mips64" => Arch::ScmpArchMips64,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

/// `6.1.0-18-amd64` → (6, 1).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Profile {
    /// The built-in default profile (`default.json`).
    pub fn builtin() -> Arc<Profile> {
        DEFAULT.clone()
    }

    /// Reads and checks a profile: its size, its JSON, its actions, operators, arguments,
    /// capabilities and kernel versions. A profile that passes can be applied by crun and runc.
    pub fn parse(bytes: &[u8]) -> Result<Profile, ProfileError> {
        if bytes.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge(bytes.len()));
        }
        let p: Profile = serde_json::from_slice(bytes)?;
        p.check()?;
        Ok(p)
    }

    /// Compiles the profile as a container with the default capabilities gets it on this
    /// host, as crun would: a profile that passes can be applied.
    pub fn check_compiles(&self) -> Result<(), crate::RuntimeError> {
        let caps = super::capabilities(&[], &[])?;
        compile(&self.resolve(&caps, &Host::detect())).map(|_| ())
    }

    fn check(&self) -> Result<(), ProfileError> {
        check_action(self.default_action, self.default_errno_ret, "defaultAction")?;
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(invalid(
                "both 'architectures' and 'archMap' are given; use one of them",
            ));
        }
        if self.syscalls.len() > MAX_RULES {
            return Err(invalid(format!(
                "{} syscall rules, more than the {MAX_RULES} allowed",
                self.syscalls.len()
            )));
        }
        for (i, r) in self.syscalls.iter().enumerate() {
            let at = format!("syscalls[{i}]");
            if r.name.is_some() && !r.names.is_empty() {
                return Err(invalid(format!(
                    "{at}: both 'name' and 'names' are given; use one of them"
                )));
            }
            let names = r.all_names();
            if names.is_empty() || names.iter().any(|n| n.is_empty()) {
                return Err(invalid(format!("{at}: a rule needs syscall names")));
            }
            if let Some(bad) = names
                .iter()
                .find(|n| !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Err(invalid(format!("{at}: {bad:?} is not a syscall name")));
            }
            check_action(r.action, r.errno_ret, &at)?;
            let args = r.args.as_deref().unwrap_or_default();
            if args.len() > MAX_ARGS {
                return Err(invalid(format!(
                    "{at}: {} argument comparisons, at most {MAX_ARGS}",
                    args.len()
                )));
            }
            if let Some(a) = args.iter().find(|a| a.index >= MAX_ARGS) {
                return Err(invalid(format!(
                    "{at}: argument index {} (a syscall has arguments 0 to 5)",
                    a.index
                )));
            }
            for c in [&r.includes, &r.excludes].into_iter().flatten() {
                for cap in c.caps.iter().flatten() {
                    if crate::bundle::capability_name(cap).is_none() || !cap.starts_with("CAP_") {
                        return Err(invalid(format!(
                            "{at}: {cap:?} is not a capability (write CAP_SYS_ADMIN and the like)"
                        )));
                    }
                }
                if let Some(k) = &c.min_kernel {
                    if kernel_version(k).is_none() || !k.starts_with(|ch: char| ch.is_ascii_digit())
                    {
                        return Err(invalid(format!(
                            "{at}: minKernel {k:?} is not a kernel version like \"4.8\""
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The `linux.seccomp` of a container with bounding set `caps` on `host`, as Docker
    /// builds it: the architectures of the host's `archMap` entry, and the rules whose
    /// `includes` all hold and none of whose `excludes` does.
    pub fn resolve(&self, caps: &HashSet<Capability>, host: &Host) -> LinuxSeccomp {
        let caps: HashSet<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
        let mut architectures = self.architectures.clone();
        if let Some(native) = seccomp_arch(&host.arch) {
            if let Some(m) = self.arch_map.iter().find(|m| m.architecture == native) {
                architectures.push(m.architecture);
                architectures.extend(m.sub_architectures.iter().flatten().copied());
            }
        }
        let syscalls: Vec<LinuxSyscall> = self
            .syscalls
            .iter()
            .filter(|r| r.applies(&caps, host))
            .map(Rule::to_oci)
            .collect();
        let mut b = LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .syscalls(syscalls);
        if let Some(e) = self.default_errno_ret {
            b = b.default_errno_ret(e);
        }
        if !architectures.is_empty() {
            b = b.architectures(architectures);
        }
        if !self.flags.is_empty() {
            b = b.flags(self.flags.clone());
        }
        b.build()
            .expect("every field of the seccomp section is set")
    }
}

fn check_action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    at: &str,
) -> Result<(), ProfileError> {
    if action == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(format!(
            "{at}: SCMP_ACT_NOTIFY needs a seccomp agent, which berth does not run"
        )));
    }
    if errno.is_some()
        && !matches!(
            action,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    {
        return Err(invalid(format!(
            "{at}: an errno is given for an action that returns none"
        )));
    }
    if errno.is_some_and(|e| e > 4095) {
        return Err(invalid(format!(
            "{at}: errno {} is out of range",
            errno.unwrap_or(0)
        )));
    }
    Ok(())
}

impl Rule {
    fn all_names(&self) -> Vec<&str> {
        match &self.name {
            Some(n) => vec![n.as_str()],
            None => self.names.iter().map(String::as_str).collect(),
        }
    }

    fn applies(&self, caps: &HashSet<String>, host: &Host) -> bool {
        if let Some(ex) = &self.excludes {
            if ex.arches.iter().flatten().any(|a| *a == host.arch)
                || ex.caps.iter().flatten().any(|c| caps.contains(c))
                || ex
                    .min_kernel
                    .as_deref()
                    .and_then(kernel_version)
                    .is_some_and(|k| host.kernel >= k)
            {
                return false;
            }
        }
        if let Some(inc) = &self.includes {
            if inc
                .arches
                .as_ref()
                .is_some_and(|a| !a.is_empty() && !a.contains(&host.arch))
                || inc.caps.iter().flatten().any(|c| !caps.contains(c))
                || inc
                    .min_kernel
                    .as_deref()
                    .and_then(kernel_version)
                    .is_some_and(|k| host.kernel < k)
            {
                return false;
            }
        }
        true
    }

    fn to_oci(&self) -> LinuxSyscall {
        let mut b = LinuxSyscallBuilder::default()
            .names(
                self.all_names()
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>(),
            )
            .action(self.action);
        if let Some(e) = self.errno_ret {
            b = b.errno_ret(e);
        }
        if let Some(args) = &self.args {
            b = b.args(
                args.iter()
                    .map(|a| {
                        let b = LinuxSeccompArgBuilder::default()
                            .index(a.index)
                            .value(a.value)
                            .op(a.op);
                        match a.value_two {
                            Some(two) => b.value_two(two),
                            None => b,
                        }
                        .build()
                        .expect("every field of an argument is set")
                    })
                    .collect::<Vec<_>>(),
            );
        }
        b.build().expect("every field of a syscall rule is set")
    }
}

#[cfg(test)]
mod tests;
