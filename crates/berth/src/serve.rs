//! `berth serve`: opens the state, makes the first account, starts the node agent and the
//! control plane, re-adopts what runs, and serves the ECI API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use berth_control::{Control, LogRequest, NodeClient, NodeError};

use berth_core::{GroupId, GroupRecord, ObservedGroup};
use berth_node::{Agent, Reporter};
use berth_store::{AccessKey, Store};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the ECI API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where berth keeps its database, images, groups and logs.
    #[arg(long, default_value = "/var/lib/berth")]
    state_dir: PathBuf,
    /// Region id reported by the API.
    #[arg(long, default_value = "local")]
    region: String,
    /// Price catalog (TOML: `[default]` and `[region.NAME]` tables of currency, vcpu_second,
    /// memory_gib_second, storage_gib_hour, image_cache_gib_hour, spot_ratio; amounts as
    /// strings). Default: STATE_DIR/prices.toml if it exists, else ECI's published prices in CNY.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// The runtime class of a group that names none (`RuntimeClassName`) and whose account
    /// has no default (`berth admin account set-runtime-classes`): runc or gvisor.
    #[arg(long, default_value = "runc")]
    default_runtime_class: berth_core::RuntimeClass,
    /// API connections served at once (exec and log streams included); further clients wait
    /// in the listen backlog. Each takes an open file the node's containers cannot have.
    #[arg(long, default_value_t = berth_server::DEFAULT_MAX_CONNECTIONS, value_parser = max_connections)]
    max_connections: usize,
    /// Capabilities that `SecurityContext.Capability.Add` may ask for, comma-separated
    /// (default: Docker's default set plus NET_ADMIN and SYS_PTRACE). A create asking for
    /// another is refused with InvalidParameter.
    #[arg(long, value_delimiter = ',')]
    allowed_capabilities: Option<Vec<String>>,
    /// The node's public address: a group created with AutoCreateEip=true gets its declared
    /// ports published on it (CNI portmap) and reports it as its InternetIp. Without it,
    /// AutoCreateEip=true is refused.
    #[arg(long, value_name = "ADDR")]
    public_ip: Option<std::net::IpAddr>,
    /// Host ports groups may publish on, LO-HI: a container's own port number when it is
    /// in the range and free, else the lowest free one. Ports below it (ssh, the API's)
    /// are never handed out; neither is the API port nor a port the host uses.
    #[arg(long, value_name = "LO-HI", default_value = "30000-32767", value_parser = parse_port_range)]
    host_port_range: (u16, u16),
    /// The most ports one group may publish.
    #[arg(long, default_value_t = berth_core::publish::MAX_PER_GROUP, value_parser = clap::value_parser!(usize))]
    max_published_ports: usize,
    /// The most ports the groups of one account may publish together.
    #[arg(long, default_value_t = berth_core::publish::MAX_PER_ACCOUNT, value_parser = clap::value_parser!(usize))]
    max_account_published_ports: usize,
    #[command(flatten)]
    caches: crate::cache_node::CacheArgs,
    #[command(flatten)]
    throttle: crate::throttle_args::ThrottleArgs,
    #[command(flatten)]
    store: crate::store_open::StoreArgs,
    /// File holding the operator's bearer token that opens `/metrics` on the API address
    /// (`Authorization: Bearer <token>`). Without it (and without --metrics-listen)
    /// `/metrics` is refused.
    #[arg(long)]
    metrics_token_file: Option<PathBuf>,
    /// Separate address serving `/metrics` to whoever reaches it (bind it to a trusted
    /// network).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) to serve the API over HTTPS with; the exec and
    /// log-stream URLs handed out are then wss:// and https://.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. It must give other users no access (0600, or 0640
    /// for a group such as ssl-cert); else berth refuses to start.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Leave out the web console (served at /console on the API's address by default;
    /// docs/CONSOLE.md).
    #[arg(long)]
    no_console: bool,
    /// Format of berth's own log: text or json (one object a line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Run as a control-plane replica of a cluster, with no node of its own: groups are
    /// placed on the nodes that joined (`berth node --join`), which call this address under
    /// /node/v1. Needs --store (docs/CLUSTER.md).
    #[arg(long, requires = "store")]
    no_node: bool,
    /// PEM CA certificates a replica trusts for the servers of nodes that speak TLS (`berth
    /// node --tls-cert`); without it, the system's roots. With --no-node.
    #[arg(long, value_name = "FILE", requires = "no_node")]
    node_ca: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) node: crate::node_args::NodeArgs,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(berth_server::tls_server_config(cert, key)?),
        _ => None,
    };
    args.node.check_userns()?;
    // A catalog named by flag is checked before the state directory is touched.
    let explicit_prices = args
        .prices
        .as_deref()
        .map(berth_control::read_prices)
        .transpose()?;
    crate::state_files::prepare(&args.state_dir)?;
    let metrics_token = args
        .metrics_token_file
        .as_deref()
        .map(read_metrics_token)
        .transpose()?;
    let state_dir = args.state_dir.canonicalize()?;
    let store = args.store.open(&state_dir).await?;
    // A shared store: this berth's node runs every group of it, so it must be the only one.
    let node_lease = match &args.store.store {
        Some(_) if !args.no_node => Some(crate::node_lease::take(store.clone(), &state_dir).await?),
        _ => None,
    };
    ensure_account(store.as_ref(), &state_dir).await?;

    let control = Control::new(store.clone(), args.region.clone());
    let (prices, prices_from) = match explicit_prices {
        Some(c) => (c, args.prices.clone()),
        None => berth_control::load_prices(None, &state_dir)?,
    };
    match &prices_from {
        Some(path) => tracing::info!(file = %path.display(), "prices"),
        None => tracing::info!("prices: ECI's published pay-as-you-go prices (CNY)"),
    }
    control.set_prices(prices);
    crate::cache_node::set_quota(&args.caches, &control);
    args.node.images.check()?;
    let capacity = if args.no_node {
        // The nodes' room is theirs to offer; placement decides (`cluster/leader.rs`).
        control.enable_cluster(crate::node_lease::holder_name(&state_dir)?);
        control.set_schedule_policy(berth_control::SchedulePolicy {
            timeout: args.node.capacity.schedule_timeout,
            notice: args.node.capacity.spot_notice,
            ..Default::default()
        });
        control.set_node_classes(berth_control::NodeClasses {
            supported: berth_core::ALL_RUNTIME_CLASSES.to_vec(),
            default: args.default_runtime_class,
        });
        None
    } else {
        Some(local_capacity(&args, &control)?)
    };
    if let Some(caps) = &args.allowed_capabilities {
        for c in caps {
            if berth_runtime::capability_name(c).is_none() {
                anyhow::bail!("--allowed-capabilities: the kernel knows no capability {c:?}");
            }
        }
        let policy = berth_core::CapabilityPolicy::new(caps.iter().map(String::as_str));
        tracing::info!(allowed = %policy.allowed().collect::<Vec<_>>().join(","), "capabilities groups may add");
        control.set_capability_policy(policy);
    }
    let volume_policy = args.node.volume_policy()?;
    control.set_volume_policy(volume_policy.clone());
    if args.max_published_ports > berth_net::MAX_MAPPINGS {
        anyhow::bail!("--max-published-ports: at most {}", berth_net::MAX_MAPPINGS);
    }
    if let Some(ip) = args.public_ip {
        // The groups' addresses are IPv4; and a port is known free only where it can be bound.
        if !ip.is_ipv4() {
            anyhow::bail!("--public-ip {ip}: published ports need an IPv4 address");
        }
        std::net::TcpListener::bind((ip, 0))
            .with_context(|| format!("--public-ip {ip} is not an address of this host"))?;
        tracing::info!(address = %ip, range = ?args.host_port_range, "publishing ports");
    }
    control.set_port_policy(berth_core::PortPolicy {
        address: args.public_ip,
        range: args.host_port_range,
        reserved: std::iter::once(args.listen.port())
            .chain(args.metrics_listen.map(|a| a.port()))
            .collect(),
        max_per_group: args.max_published_ports,
        max_per_account: args.max_account_published_ports,
    });
    spawn_token_sweep(store.clone());
    let (agent, leader) = match capacity {
        Some(capacity) => {
            let agent = start_local_node(
                &args,
                &state_dir,
                &store,
                &control,
                volume_policy,
                &capacity,
            )
            .await?;
            (Some(agent), None)
        }
        None => {
            let trust = match &args.node_ca {
                Some(p) => Some(crate::node_tls::Trust::load(p).context("--node-ca")?),
                None => None,
            };
            control.attach_node(Arc::new(crate::cluster_nodes::ClusterNodes::new(
                &control,
                store.clone(),
                trust,
            )?));
            let n = control.resume().await?;
            tracing::info!(
                groups = n,
                "control-plane replica of a cluster: no node of its own"
            );
            let holder = crate::node_lease::holder_name(&state_dir)?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(control.clone().run_cluster_leader(holder, async move {
                let _ = stop_rx.await;
            }));
            (None, Some((stop_tx, task)))
        }
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut state = berth_server::AppState::new(control);
    if let Some(token) = &metrics_token {
        state = state.with_metrics_token(token);
    }
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for /metrics"))?;
        tracing::info!(address = %addr, "serving /metrics");
        let state = state.clone();
        tokio::spawn(async move {
            let served = berth_server::serve_metrics(listener, state, std::future::pending()).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the /metrics address stopped");
            }
        });
    }
    let mut state = state
        .with_throttle(args.throttle.config())
        .with_max_connections(args.max_connections);
    if tls.is_some() {
        state = state.with_tls();
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %args.listen, scheme, region = %args.region, "serving the ECI API");
    let mut extra = Vec::new();
    if !args.no_console {
        let console = berth_console::Console::new(state.clone(), Default::default());
        extra.push(("/console", berth_console::router(console)));
        tracing::info!(url = %format!("{scheme}://{}/console", args.listen), "serving the web console");
    }
    let lease_lost = node_lease.as_ref().map(|l| l.lost());
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shutdown = {
        let lost = lost.clone();
        async move {
            match lease_lost {
                Some(l) => tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = l => lost.store(true, std::sync::atomic::Ordering::SeqCst),
                },
                None => shutdown_signal().await,
            }
        }
    };
    match tls {
        Some(config) => {
            berth_server::serve_tls(listener, config, state, extra, shutdown).await?;
        }
        None => berth_server::serve_with(listener, state, extra, shutdown).await?,
    }
    if let Some((stop, task)) = leader {
        let _ = stop.send(());
        let _ = task.await;
    }
    if let Some(agent) = agent {
        agent.shutdown().await;
        tracing::info!("stopped; containers keep running and are re-adopted at the next start");
    } else {
        tracing::info!("stopped");
    }
    if lost.load(std::sync::atomic::Ordering::SeqCst) {
        anyhow::bail!("stopped: the in-process node's lease was lost (see above)");
    }
    if let Some(l) = node_lease {
        l.release().await;
    }
    Ok(())
}

/// The room of this machine's node for groups (what `berth serve` alone offers), told to the
/// control plane.
fn local_capacity(
    args: &ServeArgs,
    control: &Control,
) -> anyhow::Result<crate::capacity_args::Capacity> {
    let open_files = crate::open_files::raise()?;
    let slots = crate::open_files::container_slots(
        open_files.limit,
        args.node.netns_pool as u64,
        args.max_connections as u64,
    )?;
    let capacity = args
        .node
        .capacity
        .capacity()?
        .with_container_slots(open_files.limit, slots);
    control.set_schedule_policy(args.node.capacity.policy(&capacity));
    tracing::info!(
        cpu = capacity.allocatable_cpu,
        memory_gib = capacity.allocatable_memory_gib,
        detected_cpu = capacity.detected_cpu,
        detected_memory_gib = capacity.detected_memory_gib,
        container_slots = slots,
        open_files = open_files.limit,
        open_files_at_start = open_files.soft_at_start,
        "capacity for container groups"
    );
    Ok(capacity)
}

/// Starts this machine's node agent in-process, attaches it to the control plane and hands
/// it every recorded group.
async fn start_local_node(
    args: &ServeArgs,
    state_dir: &Path,
    store: &Arc<dyn Store>,
    control: &Arc<Control>,
    volume_policy: berth_core::VolumePolicy,
    capacity: &crate::capacity_args::Capacity,
) -> anyhow::Result<Agent> {
    let reporter = Arc::new(ControlReporter(control.report_queue()));
    let agent = Agent::new(
        args.node.config(
            state_dir,
            Arc::new(crate::seccomp_node::StoreSeccomp::new(Arc::clone(store))),
            Arc::new(berth_node::NoCacheSource),
            volume_policy,
        )?,
        reporter,
    )
    .context("cannot start the node agent")?;
    publish_classes(
        &agent,
        control,
        args.default_runtime_class,
        capacity,
        state_dir,
    )?;
    control.attach_node(Arc::new(LocalNode {
        agent: agent.clone(),
        store: Arc::clone(store),
    }));

    agent.start_sampler(Duration::from_secs(args.node.metrics_interval.max(1)));
    args.node.images.apply(&agent);
    crate::cache_node::start(control).await?;
    let n = control.resume().await?;
    let known: Vec<GroupId> = store
        .all_groups()
        .await?
        .into_iter()
        .map(|g| g.id)
        .collect();
    agent.collect_garbage(&known).await;
    agent.start_netns_pool();
    tracing::info!(groups = n, "resumed container groups");
    Ok(agent)
}

/// berth's own log on stderr, as text or JSON lines; `RUST_LOG` filters it (default: info).
pub(crate) fn init_logging(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

/// `--max-connections`: 1 to 65,536.
fn max_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=65_536).contains(&n) => Ok(n),
        _ => Err(format!("must be a number from 1 to 65536, got {s:?}")),
    }
}

/// The operator's token for `/metrics`: the file's first line, which must not be empty.
fn read_metrics_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the metrics token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the metrics token file {} is empty",
        path.display()
    );
    Ok(token)
}

/// Forgets, every hour, the ClientTokens of groups and caches deleted more than a day ago
/// (deletes sweep too; this covers a server that sees none for a while).
fn spawn_token_sweep(store: Arc<dyn Store>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = store.sweep_client_tokens(chrono::Utc::now()).await {
                tracing::warn!(error = %e, "cannot sweep old client tokens");
            }
        }
    });
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// On the first start, makes an account and writes its key to `credentials.json` (0600).
async fn ensure_account(store: &dyn Store, state_dir: &Path) -> anyhow::Result<()> {
    let path = state_dir.join("credentials.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: serde_json::Value =
            serde_json::from_str(&text).context("credentials.json is not valid JSON")?;
        let id = v["AccessKeyId"]
            .as_str()
            .context("credentials.json lacks AccessKeyId")?;
        let secret = v["AccessKeySecret"]
            .as_str()
            .context("credentials.json lacks AccessKeySecret")?;
        if store.access_key(id).await?.is_none() {
            store
                .create_access_key(&AccessKey {
                    account: "default".into(),
                    access_key_id: id.into(),
                    secret: secret.into(),
                })
                .await?;
        }
        return Ok(());
    }
    let key = crate::keys::new_access_key("default");
    store.create_access_key(&key).await?;
    let body = serde_json::json!({"AccessKeyId": key.access_key_id, "AccessKeySecret": key.secret});
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&body)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    tracing::info!(path = %path.display(), access_key_id = %key.access_key_id, "created an account; its access key is in this file");
    Ok(())
}

/// Where `berth serve` records the runtime classes the node runs and its capacity for groups
/// (`berth admin node`).
pub(crate) fn node_classes_file(state_dir: &Path) -> PathBuf {
    state_dir.join("node").join("runtime-classes.json")
}

/// Tells the control plane which runtime classes the node runs, logs them and writes them for
/// `berth admin node`; the default class must be one of them.
fn publish_classes(
    agent: &Agent,
    control: &Control,
    default: berth_core::RuntimeClass,
    capacity: &crate::capacity_args::Capacity,
    state_dir: &Path,
) -> anyhow::Result<()> {
    let classes = agent.runtime_classes();
    for c in &classes {
        tracing::info!(class = %c.class, runtime = %c.runtime, platform = ?c.platform, "runtime class");
    }
    let supported: Vec<_> = classes.iter().map(|c| c.class).collect();
    if !supported.contains(&default) {
        anyhow::bail!("--default-runtime-class {default}: this node does not run that class");
    }
    let report =
        serde_json::json!({ "default": default, "classes": classes, "capacity": capacity });
    std::fs::write(
        node_classes_file(state_dir),
        serde_json::to_vec_pretty(&report)?,
    )
    .context("cannot write the node's runtime classes")?;
    control.set_node_classes(berth_control::NodeClasses { supported, default });
    Ok(())
}

/// The node agent of this process, as the control plane sees it.
pub(crate) struct LocalNode {
    pub(crate) agent: Agent,
    store: Arc<dyn Store>,
}

#[async_trait]
impl NodeClient for LocalNode {
    async fn apply(&self, rec: GroupRecord) {
        // The record as stored now: a delete or another change may have overtaken this one
        // between its write and this call (a group being deleted is never started again).
        let rec = match self.store.get_group(None, &rec.id).await {
            Ok(Some(cur)) if cur.status == berth_core::GroupStatus::Terminating => return,
            Ok(Some(cur)) => cur,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(group = %rec.id, error = %e, "cannot read the group back; applying it as it was handed over");
                rec
            }
        };
        self.agent.apply(rec).await;
    }

    async fn remove(&self, id: &GroupId, grace: Duration) -> Result<(), NodeError> {
        let spec = self
            .store
            .get_group(None, id)
            .await
            .ok()
            .flatten()
            .map(|r| r.spec);
        self.agent
            .remove(id, spec.as_ref(), grace)
            .await
            .map_err(|e| NodeError::Failed(format!("{e:#}")))
    }

    async fn read_log(&self, id: &GroupId, req: &LogRequest) -> Result<String, NodeError> {
        crate::observe_node::read_log(&self.agent, id, req).await
    }
}

/// Node reports go into the control plane's queue of reports, in order per group.
struct ControlReporter(berth_control::Reports);

impl Reporter for ControlReporter {
    fn report(&self, id: &GroupId, obs: ObservedGroup) {
        self.0.send(id, obs);
    }
}

/// `--host-port-range LO-HI`.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    berth_core::publish::parse_range(text)
        .ok_or_else(|| format!("`{text}` is not LO-HI with 1 <= LO <= HI <= 65535"))
}
