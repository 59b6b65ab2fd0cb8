//! The node agent's settings, shared by `berth serve` (whose node is in-process) and `berth
//! node` (a node of a cluster): the OCI runtime, gVisor, the network, temporary storage,
//! capacity, user namespaces and sampling, and the [`NodeConfig`] made from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use berth_node::{NodeConfig, SeccompProfiles};
use berth_runtime::{CgroupLayout, RuntimeConfig};

/// The node flags a control-plane replica without a node of its own has no use for, as
/// (argument id, flag).
pub(crate) const NODE_ONLY: &[(&str, &str)] = &[
    ("runtime", "--runtime"),
    ("gvisor_runtime", "--gvisor-runtime"),
    ("gvisor_platform", "--gvisor-platform"),
    ("gvisor_pool", "--gvisor-pool"),
    ("subnet", "--subnet"),
    ("bridge", "--bridge"),
    ("netns_pool", "--netns-pool"),
    ("no_isolation", "--no-isolation"),
    ("blocked_destinations", "--blocked-destination"),
    ("allowed_host_ports", "--allow-host-port"),
    ("nfs_servers", "--nfs-server"),
    ("host_path_prefixes", "--host-path-prefix"),
    ("storage_dir", "--storage-dir"),
    ("storage_size", "--storage-size"),
    ("image_gc_high", "--image-gc-high"),
    ("image_gc_low", "--image-gc-low"),
    ("image_gc_interval", "--image-gc-interval"),
    ("max_image_size", "--max-image-size"),
    ("max_image_entries", "--max-image-entries"),
    ("image_auth_ttl", "--image-auth-ttl"),
    ("reserve_cpu", "--reserve-cpu"),
    ("reserve_memory", "--reserve-memory"),
    ("overcommit_cpu", "--overcommit-cpu"),
    ("overcommit_memory", "--overcommit-memory"),
    ("keep_cgroup_options", "--keep-cgroup-options"),
    ("metrics_interval", "--metrics-interval"),
    ("no_seccomp_precompile", "--no-seccomp-precompile"),
    ("userns", "--userns"),
    ("userns_base", "--userns-base"),
];

/// The flags among the node flags that only the control plane uses: a node of a cluster has
/// no use for them.
pub(crate) const CONTROL_ONLY: &[(&str, &str)] = &[
    ("schedule_timeout", "--schedule-timeout"),
    ("spot_notice", "--spot-notice"),
];

/// Refuses the flags of `flags` given on the command line (`m`: the subcommand's matches),
/// saying why they mean nothing here: a flag accepted and not used is a defect.
pub(crate) fn refuse_given(
    m: &clap::ArgMatches,
    flags: &[(&str, &str)],
    why: &str,
) -> Result<(), String> {
    let given: Vec<&str> = flags
        .iter()
        .filter(|(id, _)| {
            matches!(
                m.try_get_raw(id).ok().flatten().and(m.value_source(id)),
                Some(clap::parser::ValueSource::CommandLine)
            )
        })
        .map(|(_, flag)| *flag)
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(format!("{} {why}", given.join(", ")))
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// OCI runtime binary: crun (default) or runc, by name or path.
    #[arg(long, default_value = "crun")]
    pub(crate) runtime: String,
    /// gVisor's runsc for the `gvisor` runtime class, by name or path. Default: `runsc` when
    /// it is installed, else the node runs no gvisor class; a runsc named here must work.
    #[arg(long, value_name = "PATH")]
    pub(crate) gvisor_runtime: Option<String>,
    /// The platform of gVisor's sentry: ptrace, systrap or kvm. Default: detected (kvm when
    /// a trial sandbox boots on it, systrap when this runsc has it, else ptrace).
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) gvisor_platform: Option<berth_runtime::GvisorPlatform>,
    /// gVisor sandboxes booted ahead of time and handed to the next gvisor groups (each
    /// idle one costs a sentry and a gofer, ~28 MiB); 0 turns the pool off. Only on a node
    /// that runs the gvisor class.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(0..=64))]
    pub(crate) gvisor_pool: u16,
    /// Subnet of the groups' addresses.
    #[arg(long, default_value = "10.213.0.0/16")]
    pub(crate) subnet: String,
    /// Linux bridge the groups are attached to.
    #[arg(long, default_value = "berth0")]
    pub(crate) bridge: String,
    /// Network namespaces kept wired ahead of time, so that starting groups need not wait for
    /// the CNI plugins (0: wire each group when it starts). Each costs ~0.2 MiB of kernel
    /// memory and an address; at most a quarter of the subnet is used.
    #[arg(long, default_value_t = 128)]
    pub(crate) netns_pool: usize,
    /// Leave the bridge open: no nftables isolation of groups from each other (across
    /// accounts), from the host and from link-local addresses.
    #[arg(long)]
    pub(crate) no_isolation: bool,
    /// A destination (IPv4 CIDR) no group may reach, besides 169.254.0.0/16; repeatable.
    #[arg(long = "blocked-destination", value_name = "CIDR")]
    pub(crate) blocked_destinations: Vec<String>,
    /// A port on the host that groups may connect to, as tcp:N or udp:N (e.g. udp:53 for a
    /// resolver on the host); repeatable. By default groups open no connection to the host.
    #[arg(long = "allow-host-port", value_name = "PROTO:PORT")]
    pub(crate) allowed_host_ports: Vec<String>,
    /// NFS servers whose exports groups may mount (`Volume.N.NFSVolume.Server`, host names or
    /// IPv4 addresses as the groups name them), comma-separated or repeated. By default
    /// none: an NFS volume is refused with InvalidParameter, so that no tenant makes the
    /// host mount a server of its choosing.
    #[arg(long = "nfs-server", value_name = "HOST", value_delimiter = ',')]
    pub(crate) nfs_servers: Vec<String>,
    /// A directory of this host below which groups may mount host paths
    /// (`Volume.N.HostPathVolume.Path`); repeatable. It must exist; it is canonicalised
    /// (symlinks resolved once, here) and may not be `/`. By default none: a host-path
    /// volume is refused with InvalidParameter.
    #[arg(long = "host-path-prefix", value_name = "DIR")]
    pub(crate) host_path_prefixes: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) storage: crate::storage_args::StorageArgs,
    #[command(flatten)]
    pub(crate) images: crate::image_args::ImageArgs,
    #[command(flatten)]
    pub(crate) capacity: crate::capacity_args::CapacityArgs,
    /// Leave the cgroup2 mount's options alone. By default berth turns on `favordynmods`
    /// (Linux 6.0+), which makes moving a process into a cgroup fast at a small cost to
    /// fork and exit; the option stays after berth stops.
    #[arg(long)]
    pub(crate) keep_cgroup_options: bool,
    /// Seconds between two samples of the groups' resource usage.
    #[arg(long, default_value_t = 15)]
    pub(crate) metrics_interval: u64,
    /// Let the OCI runtime compile each container's seccomp profile at its start instead of
    /// handing crun a program compiled once per profile (runc always compiles it itself).
    /// For comparison and troubleshooting; costs ~14 ms of every start.
    #[arg(long)]
    pub(crate) no_seccomp_precompile: bool,
    /// Run every new group in a user namespace of its own: container uid/gid 0–65535 map to a
    /// host range of 65,536 ids that no other live group holds (allocated from
    /// --userns-base, kept in `node/userns/` across restarts, freed when the group is
    /// deleted). The image layers are shown to the container through id-mapped mounts, so
    /// its files appear owned by the container's root; container root has no privilege on
    /// the host. Needs crun.
    #[arg(long)]
    pub(crate) userns: bool,
    /// First host id of the user namespace ranges (--userns); ranges are laid out from it
    /// in steps of 65,536 below 2^31. The default, 2^30, lies in systemd's container range,
    /// far above user ids and /etc/subuid ranges.
    #[arg(long, default_value_t = berth_node::DEFAULT_USERNS_BASE, requires = "userns")]
    pub(crate) userns_base: u32,
}

impl NodeArgs {
    /// Refuses `--userns` with a runtime other than crun, before anything is touched.
    pub(crate) fn check_userns(&self) -> anyhow::Result<()> {
        if !self.userns {
            return Ok(());
        }
        berth_node::UsernsConfig {
            base: self.userns_base,
        }
        .ranges()
        .map_err(anyhow::Error::msg)?;
        let (kind, _) = berth_runtime::RuntimeKind::detect(&find_binary(&self.runtime)?)?;
        if kind != berth_runtime::RuntimeKind::Crun {
            return Err(berth_node::NodeError::UsernsRuntime.into());
        }
        Ok(())
    }

    /// The operator's allow-lists of volumes that reach outside the group.
    pub(crate) fn volume_policy(&self) -> anyhow::Result<berth_core::VolumePolicy> {
        for s in &self.nfs_servers {
            let ok = !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                anyhow::bail!("--nfs-server: {s:?} is not a host name or IPv4 address");
            }
        }
        let mut prefixes = Vec::new();
        for p in &self.host_path_prefixes {
            let c = p
                .canonicalize()
                .with_context(|| format!("--host-path-prefix {}", p.display()))?;
            if !c.is_dir() || c == Path::new("/") {
                anyhow::bail!(
                    "--host-path-prefix {}: must be a directory other than /",
                    p.display()
                );
            }
            let s = c
                .to_str()
                .with_context(|| format!("--host-path-prefix {}: not UTF-8", p.display()))?;
            prefixes.push(s.to_string());
        }
        let policy = berth_core::VolumePolicy::default()
            .with_nfs_servers(self.nfs_servers.iter().map(String::as_str))
            .with_host_path_prefixes(prefixes.iter().map(String::as_str));
        if !self.nfs_servers.is_empty() {
            tracing::info!(servers = %policy.nfs_servers().collect::<Vec<_>>().join(","), "NFS servers groups may mount");
        }
        if !prefixes.is_empty() {
            tracing::info!(prefixes = %prefixes.join(","), "host paths groups may mount");
        }
        Ok(policy)
    }

    /// The node agent's configuration under `state_dir`; detects the cgroup layout and,
    /// unless told not to, turns on `favordynmods`.
    pub(crate) fn config(
        &self,
        state_dir: &Path,
        seccomp: Arc<dyn SeccompProfiles>,
        caches: Arc<dyn berth_node::CacheSource>,
        host_paths: berth_core::VolumePolicy,
    ) -> anyhow::Result<NodeConfig> {
        let layout =
            CgroupLayout::detect().context("cannot read the cgroup layout of this host")?;
        tracing::info!(layout = %layout.describe(), "cgroups");
        if self.keep_cgroup_options {
            tracing::info!("cgroup mount options left as they are (--keep-cgroup-options)");
        } else {
            log_dynmods(berth_runtime::favor_dynmods(&layout));
        }
        let binary = find_binary(&self.runtime)?;
        let gvisor = gvisor_config(self)?;
        let monitor = monitor_command()?;
        Ok(NodeConfig {
            root: state_dir.join("node"),
            runtime: RuntimeConfig {
                binary,
                state_root: state_dir.join("runtime"),
                layout,
                monitor_exe: monitor.0,
                monitor_args: monitor.1,
                global_args: Vec::new(),
            },
            gvisor,
            net: berth_net::NetConfig {
                state_dir: state_dir.join("net"),
                netns_dir: state_dir.join("netns"),
                bridge: self.bridge.clone(),
                subnet: self.subnet.clone(),
                pool_size: self.netns_pool,
                isolation: (!self.no_isolation).then(|| {
                    let mut iso = berth_net::IsolationConfig::default();
                    iso.blocked
                        .extend(self.blocked_destinations.iter().cloned());
                    iso.host_ports.clone_from(&self.allowed_host_ports);
                    iso
                }),
                ..berth_net::NetConfig::default()
            },
            storage: Some(self.storage.config(&state_dir.join("node"))?),
            seccomp_precompile: !self.no_seccomp_precompile,
            userns: self.userns.then_some(berth_node::UsernsConfig {
                base: self.userns_base,
            }),
            seccomp,
            caches,
            host_paths,
        })
    }
}

/// The executable (and its leading arguments) that runs a container's monitor: the small
/// `berth-monitor` next to this binary, else this binary's `monitor` command.
pub(crate) fn monitor_command() -> anyhow::Result<(PathBuf, Vec<String>)> {
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let small = exe.with_file_name("berth-monitor");
    if small.is_file() {
        tracing::info!(monitor = %small.display(), "containers are monitored by berth-monitor");
        Ok((small, vec![]))
    } else {
        tracing::info!(
            monitor = %exe.display(),
            "berth-monitor is not next to berth; containers are monitored by `berth monitor`"
        );
        Ok((exe, vec!["monitor".into()]))
    }
}

pub(crate) fn log_dynmods(outcome: berth_runtime::DynmodsOutcome) {
    use berth_runtime::DynmodsOutcome as D;
    match outcome {
        D::Enabled => tracing::info!(
            "remounted the cgroup2 hierarchy with favordynmods: moving a container into its \
             cgroups no longer waits for an RCU grace period (tens of ms per start)"
        ),
        D::AlreadyOn => tracing::info!("the cgroup2 hierarchy already favours dynamic changes"),
        D::NoCgroup2 => tracing::info!(
            "no cgroup2 mount: container starts wait for an RCU grace period when they join \
             their cgroups"
        ),
        D::Failed(e) => tracing::warn!(
            error = %e,
            "cannot turn on favordynmods: container starts wait for an RCU grace period"
        ),
    }
}

/// runsc for the gvisor class: the one named by `--gvisor-runtime`, else `runsc` if installed.
pub(crate) fn gvisor_config(args: &NodeArgs) -> anyhow::Result<Option<berth_node::GvisorConfig>> {
    let binary = match &args.gvisor_runtime {
        Some(name) => find_binary(name)?,
        None => match find_binary("runsc") {
            Ok(b) => b,
            Err(_) => {
                tracing::info!("runsc is not installed: the node runs no gvisor runtime class");
                return Ok(None);
            }
        },
    };
    Ok(Some(berth_node::GvisorConfig {
        binary,
        platform: args.gvisor_platform,
        pool: usize::from(args.gvisor_pool),
    }))
}

pub(crate) fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
                .into_iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("the OCI runtime {name} is not installed (apt-get install {name})")
        })
}
