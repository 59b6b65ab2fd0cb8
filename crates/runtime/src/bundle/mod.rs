//! OCI bundle generation: a [`BundleSpec`] becomes `config.json`, with the namespaces, mounts,
//! capabilities, seccomp profile, masked paths and limits that container engines use by
//! default.

pub(crate) mod cgroupfs;
pub mod mounts;
pub mod seccomp;
pub(crate) mod started;
mod userns;

pub use userns::UserMap;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::cgroup::CgroupLayout;
use crate::error::RuntimeError;
use seccomp::{Host, Seccomp};

/// The OCI version written into `config.json`; crun 1.8 and runc 1.1 both accept it.
const OCI_VERSION: &str = "1.0.2-dev";
const CFS_PERIOD: u64 = 100_000;
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The open-files limit of a container's processes, when berth's own hard limit allows it.
const NOFILE: u64 = 1024;

/// [`NOFILE`], or berth's own hard limit when it is lower: the runtime sets the limit after
/// the container's capabilities are in force, so it cannot raise it above what it inherited.
fn container_nofile() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
            return NOFILE;
        }
        NOFILE.min(r.rlim_max)
    })
}

/// Capabilities a container gets unless told otherwise: podman's defaults, which are
/// Docker's and containerd's without NET_RAW (raw sockets: ARP and address spoofing of the
/// neighbours on the bridge), MKNOD and AUDIT_WRITE. Ping still works through unprivileged
/// ICMP sockets ([`PING_GROUP_RANGE`]).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// `net.ipv4.ping_group_range` of every container: any group may open ICMP echo sockets,
/// so ping works without NET_RAW (as podman sets it).
pub const PING_GROUP_RANGE: &str = "0 2147483647";

/// The canonical name of a capability (`sys_admin`, `CAP_SYS_ADMIN` → `SYS_ADMIN`), or `None`
/// when the kernel knows no such capability.
pub fn capability_name(name: &str) -> Option<String> {
    parse_capability(name).ok().map(|c| {
        let text = c.to_string();
        text.strip_prefix("CAP_").unwrap_or(&text).to_string()
    })
}

/// Paths hidden from the container (runc's, containerd's and podman's defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/fs/selinux",
    "/sys/dev/block",
];

/// Paths the container sees read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What one container's bundle holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BundleSpec {
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value` entries; `PATH` is added when missing.
    pub env: Vec<String>,
    /// Absolute; empty means `/`.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups of the process.
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    /// The network namespace to join; `None` gives the container a new, empty one.
    pub netns: Option<PathBuf>,
    /// vCPU, turned into a CFS quota over a 100 ms period (and proportional shares).
    pub cpu: Option<f64>,
    /// Hard memory limit; memory+swap is set to the same value so the container cannot swap.
    pub memory_bytes: Option<u64>,
    pub pids_limit: Option<i64>,
    /// `linux.cgroupsPath`, e.g. `/berth/<group>/<container>`.
    pub cgroup_path: String,
    pub readonly_rootfs: bool,
    /// Capabilities on top of [`DEFAULT_CAPABILITIES`], with or without the `CAP_` prefix.
    pub capability_add: Vec<String>,
    /// Capabilities removed from [`DEFAULT_CAPABILITIES`] before `capability_add` is added
    /// (`ALL` removes them all).
    pub capability_drop: Vec<String>,
    /// `linux.sysctl`: namespaced sysctls the runtime writes in the container's namespaces
    /// (checked by the API; they override [`PING_GROUP_RANGE`]).
    pub sysctls: Vec<(String, String)>,
    /// (host path, container path, read-only) bind mounts, e.g. `/etc/resolv.conf`.
    pub binds: Vec<(PathBuf, String, bool)>,
    /// The seccomp profile, resolved against the container's capabilities.
    pub seccomp: Seccomp,
    /// A user namespace mapping the container's ids to a host range (see [`userns`]).
    pub user_map: Option<UserMap>,
    /// The group's volumes this container mounts.
    pub volumes: Vec<mounts::VolumeBind>,
}

/// The host the profiles are resolved for, read once.
static HOST: std::sync::LazyLock<Host> = std::sync::LazyLock::new(Host::detect);

/// Builds the OCI runtime spec of `spec` for a host with `layout`.
pub fn build_spec(spec: &BundleSpec, layout: &CgroupLayout) -> Result<Spec, RuntimeError> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err(RuntimeError::invalid("the command (args) is empty"));
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if !cwd.starts_with('/') {
        return Err(RuntimeError::invalid(format!(
            "the working directory {cwd:?} is not absolute"
        )));
    }
    if !spec.cgroup_path.starts_with('/') || spec.cgroup_path.split('/').any(|c| c == "..") {
        return Err(RuntimeError::invalid(format!(
            "the cgroup path {:?} must be absolute without '..'",
            spec.cgroup_path
        )));
    }
    if spec.rootfs.as_os_str().is_empty() {
        return Err(RuntimeError::invalid("the rootfs path is empty"));
    }

    let caps = capabilities(&spec.capability_add, &spec.capability_drop)?;
    let seccomp = spec.seccomp.profile().map(|p| p.resolve(&caps, &HOST));
    let mut user = UserBuilder::default().uid(spec.uid).gid(spec.gid);
    if !spec.additional_gids.is_empty() {
        user = user.additional_gids(spec.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user.build().map_err(RuntimeError::Spec)?)
        .args(spec.args.clone())
        .env(environment(&spec.env))
        .cwd(cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(RuntimeError::Spec)?,
        )
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(container_nofile())
            .hard(container_nofile())
            .build()
            .map_err(RuntimeError::Spec)?])
        .no_new_privileges(true)
        .build()
        .map_err(RuntimeError::Spec)?;

    let mut sysctl = std::collections::HashMap::new();
    if spec.netns.is_some() {
        // Per network namespace: it changes nothing outside the group.
        sysctl.insert(
            "net.ipv4.ping_group_range".to_string(),
            PING_GROUP_RANGE.to_string(),
        );
    }
    for (name, value) in &spec.sysctls {
        if name.starts_with("net.") && spec.netns.is_none() {
            return Err(RuntimeError::invalid(format!(
                "sysctl {name} needs the group's network namespace"
            )));
        }
        sysctl.insert(name.clone(), value.clone());
    }
    let mut linux = LinuxBuilder::default()
        .sysctl(sysctl)
        .cgroups_path(PathBuf::from(&spec.cgroup_path))
        .resources(resources(spec, layout)?)
        .namespaces(namespaces(spec, layout)?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(RuntimeError::Spec)?;
    linux.set_seccomp(seccomp);

    let mut spec_builder = SpecBuilder::default()
        .version(OCI_VERSION)
        .root(
            RootBuilder::default()
                .path(spec.rootfs.clone())
                .readonly(spec.readonly_rootfs)
                .build()
                .map_err(RuntimeError::Spec)?,
        )
        .mounts(mounts::with_volumes(mounts(&spec.binds)?, &spec.volumes)?)
        .process(process)
        .linux(linux);
    if !spec.hostname.is_empty() {
        spec_builder = spec_builder.hostname(spec.hostname.clone());
    }
    let mut out = spec_builder.build().map_err(RuntimeError::Spec)?;
    if let Some(map) = spec.user_map {
        userns::apply(&mut out, map)?;
    }
    Ok(out)
}

/// Writes `config.json` into `bundle_dir` atomically, without indentation: the bundle lives
/// on the groups' tmpfs for as long as the container, where every page is memory.
pub(crate) fn write_config(bundle_dir: &Path, spec: &Spec) -> Result<(), RuntimeError> {
    let json = serde_json::to_vec(spec)
        .map_err(|e| RuntimeError::io("serialise the OCI spec for", bundle_dir, e.into()))?;
    crate::files::write_atomic(&bundle_dir.join("config.json"), &json)
}

fn environment(env: &[String]) -> Vec<String> {
    let mut out = env.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    out
}

fn parse_capability(name: &str) -> Result<Capability, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare)
        .map_err(|_| RuntimeError::invalid(format!("unknown capability {name:?}")))
}

/// The default set without `drop` (all of it for `ALL`), plus `add`: what Docker and
/// Kubernetes do with both lists.
pub(crate) fn capabilities(
    add: &[String],
    drop: &[String],
) -> Result<HashSet<Capability>, RuntimeError> {
    let all = drop.iter().any(|d| d.trim().eq_ignore_ascii_case("ALL"));
    let dropped: HashSet<Capability> = if all {
        HashSet::new()
    } else {
        drop.iter()
            .map(|d| parse_capability(d))
            .collect::<Result<_, _>>()?
    };
    let mut out: HashSet<Capability> = if all {
        HashSet::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| parse_capability(c))
            .collect::<Result<HashSet<_>, _>>()?
            .difference(&dropped)
            .copied()
            .collect()
    };
    for a in add {
        out.insert(parse_capability(a)?);
    }
    Ok(out)
}

fn namespaces(
    spec: &BundleSpec,
    layout: &CgroupLayout,
) -> Result<Vec<LinuxNamespace>, RuntimeError> {
    let ns = |typ: LinuxNamespaceType, path: Option<&PathBuf>| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p.clone()),
            None => b,
        }
        .build()
        .map_err(RuntimeError::Spec)
    };
    let mut out = vec![
        ns(LinuxNamespaceType::Pid, None)?,
        ns(LinuxNamespaceType::Ipc, None)?,
        ns(LinuxNamespaceType::Uts, None)?,
        ns(LinuxNamespaceType::Mount, None)?,
        ns(LinuxNamespaceType::Network, spec.netns.as_ref())?,
    ];
    // A cgroup namespace only where the container sees a single hierarchy, as engines do.
    if matches!(layout, CgroupLayout::V2 { .. }) {
        out.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }
    Ok(out)
}

fn resources(
    spec: &BundleSpec,
    layout: &CgroupLayout,
) -> Result<oci_spec::runtime::LinuxResources, RuntimeError> {
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(RuntimeError::Spec)?;
    let mut b = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(cpu) = spec.cpu {
        if !cpu.is_finite() || cpu <= 0.0 || cpu > 1024.0 {
            return Err(RuntimeError::invalid(format!("invalid vCPU count {cpu}")));
        }
        let quota = ((cpu * CFS_PERIOD as f64).round() as i64).max(1000);
        let shares = ((cpu * 1024.0).round() as u64).max(2);
        b = b.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CFS_PERIOD)
                .shares(shares)
                .build()
                .map_err(RuntimeError::Spec)?,
        );
    }
    if let Some(bytes) = spec.memory_bytes {
        let limit = i64::try_from(bytes)
            .ok()
            .filter(|l| *l >= 4 << 20)
            .ok_or_else(|| RuntimeError::invalid(format!("invalid memory limit {bytes}")))?;
        let mut m = LinuxMemoryBuilder::default().limit(limit);
        if layout.swap_accounting() {
            m = m.swap(limit);
        }
        b = b.memory(m.build().map_err(RuntimeError::Spec)?);
    }
    if let Some(pids) = spec.pids_limit {
        if pids == 0 || pids < -1 {
            return Err(RuntimeError::invalid(format!("invalid pids limit {pids}")));
        }
        b = b.pids(
            LinuxPidsBuilder::default()
                .limit(pids)
                .build()
                .map_err(RuntimeError::Spec)?,
        );
    }
    b.build().map_err(RuntimeError::Spec)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, RuntimeError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(RuntimeError::Spec)
}

fn mounts(binds: &[(PathBuf, String, bool)]) -> Result<Vec<Mount>, RuntimeError> {
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ];
    for (host, dest, readonly) in binds {
        if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") {
            return Err(RuntimeError::invalid(format!(
                "bind destination {dest:?} must be absolute without '..'"
            )));
        }
        if !host.is_absolute() {
            return Err(RuntimeError::invalid(format!(
                "bind source {} must be absolute",
                host.display()
            )));
        }
        let mode = if *readonly { "ro" } else { "rw" };
        out.push(mount(
            dest,
            "bind",
            &host.to_string_lossy(),
            &["rbind", "rprivate", "nosuid", "nodev", mode],
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
