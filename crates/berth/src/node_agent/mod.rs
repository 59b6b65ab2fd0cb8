//! `berth node`: a node agent of a cluster (docs/CLUSTER.md). It joins the control plane
//! with a join token (once; the id and key it gets are kept in the state directory), then
//! runs the groups placed on it: it watches them (`watch.rs`), reports what it sees of them
//! (`outbox.rs`), sends a heartbeat with what it offers every few seconds, and serves the
//! control plane's calls (`server.rs`) on `--listen`.

mod caches;
mod identity;
mod link;
mod offer;
mod outbox;
mod seccomp;
mod server;
mod streams;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_control::cluster::protocol::{Heartbeat, JoinRequest, HEARTBEAT_SECS};
use berth_core::node::MAX_NODE_NAME;
use berth_core::NodeOffer;
use berth_node::Agent;

use identity::Identity;
use link::ControlLink;

#[derive(clap::Args)]
pub struct NodeCmdArgs {
    /// The control plane's URLs, comma-separated: the replicas' API addresses (a call that
    /// cannot reach one goes to the next), or a load balancer before them.
    #[arg(long, value_name = "URL[,URL...]")]
    join: String,
    /// A join token (`berth admin node token create`). Needed only for the first start; the
    /// node's id and key are kept in the state directory after it.
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's name (unique in the cluster). Default: the host name.
    #[arg(long)]
    name: Option<String>,
    /// The address of the node's own server, which the control plane calls.
    #[arg(long, default_value = "0.0.0.0:8090")]
    listen: SocketAddr,
    /// The address the control plane reaches `--listen` at (`host:port`). Default:
    /// `--listen`, which must then not be a wildcard address.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// A PEM certificate (chain) for the node's own server: the control plane then calls it
    /// over TLS (and trusts it by `berth serve --node-ca`). With --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (readable by its owner only).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates the node trusts for `https://` --join URLs, besides the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    control_ca: Option<PathBuf>,
    /// Where the node keeps its images, groups, logs and identity.
    #[arg(long, default_value = "/var/lib/berth-node")]
    state_dir: PathBuf,
    #[command(flatten)]
    node: crate::node_args::NodeArgs,
    /// Format of the node's own log: text or json (one object a line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "node".into())
}

/// A node name: 1 to 63 of `[a-z0-9-]`, not starting or ending with `-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    anyhow::ensure!(
        ok,
        "node name {name:?}: 1 to {MAX_NODE_NAME} lowercase letters, digits and '-', not at either end"
    );
    Ok(())
}

pub async fn run(args: NodeCmdArgs) -> anyhow::Result<()> {
    crate::serve::init_logging(&args.log_format);
    args.node.check_userns()?;
    let bases = link::base_urls(&args.join)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(host_name)
        .to_ascii_lowercase();
    check_name(&name)?;
    let advertise = match &args.advertise {
        Some(a) => a.clone(),
        None => {
            anyhow::ensure!(
                !args.listen.ip().is_unspecified(),
                "--listen {} is a wildcard address: say where the control plane reaches it with --advertise",
                args.listen
            );
            args.listen.to_string()
        }
    };
    // TLS first: a bad certificate or CA file stops the node before anything is started.
    let tls = crate::node_tls::server_config(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let trust = match &args.control_ca {
        Some(p) => Some(crate::node_tls::Trust::load(p).context("--control-ca")?),
        None => None,
    };
    crate::state_files::prepare(&args.state_dir)?;
    let state_dir = args.state_dir.canonicalize()?;

    let open_files = crate::open_files::raise()?;
    let slots = crate::open_files::container_slots(
        open_files.limit,
        args.node.netns_pool as u64,
        // The node's server and its links to the control plane.
        64,
    )?;
    let capacity = args
        .node
        .capacity
        .capacity()?
        .with_container_slots(open_files.limit, slots);
    let outbox = Arc::new(outbox::Outbox::default());
    args.node.images.check()?;
    let seccomp = Arc::new(seccomp::ControlSeccomp::default());
    let caches = Arc::new(caches::ControlCaches::default());
    let volumes = args.node.volume_policy()?;
    let agent = Agent::new(
        args.node
            .config(&state_dir, seccomp.clone(), caches.clone(), volumes.clone())?,
        outbox.clone(),
    )
    .context("cannot start the node agent")?;
    let offer = NodeOffer {
        capacity: args.node.capacity.policy(&capacity).capacity,
        runtime_classes: agent
            .runtime_classes()
            .iter()
            .map(|c| c.class.to_string())
            .collect(),
        volumes,
        tls: tls.is_some(),
        ..NodeOffer::default()
    };
    let offer = offer::current(offer, &agent, &state_dir);

    let identity = match Identity::load(&state_dir)? {
        Some(id) if id.name == name => id,
        _ => {
            let token = args.token.clone().context(
                "this node has not joined yet: give it a join token (--token or BERTH_JOIN_TOKEN)",
            )?;
            let reply = link::join(
                &bases,
                &JoinRequest {
                    token,
                    name: name.clone(),
                    address: advertise.clone(),
                    offer: offer.clone(),
                },
                trust.as_ref(),
            )
            .await
            .context("cannot join the control plane")?;
            let id = Identity {
                control: bases.join(","),
                node: reply.node,
                name: name.clone(),
                key: reply.key,
            };
            id.save(&state_dir)?;
            tracing::info!(node = %id.node, name = %name, control = %id.control, "joined the control plane");
            id
        }
    };
    let key = identity.key_bytes()?;
    let link = ControlLink::new(
        bases.clone(),
        identity.node.clone(),
        key.clone(),
        trust.as_ref(),
    )?;
    seccomp.connect(link.clone());
    caches.connect(link.clone());
    tracing::info!(node = %identity.node, name = %name, control = %bases.join(","), cpu_milli = offer.capacity.cpu_milli, memory_mib = offer.capacity.memory_mib, "node agent starting");

    agent.start_sampler(Duration::from_secs(args.node.metrics_interval.max(1)));
    args.node.images.apply(&agent);
    agent.start_netns_pool();
    let desired = Arc::new(watch::Desired::default());
    let (refused_tx, refused_rx) = tokio::sync::mpsc::unbounded_channel();
    let sender = tokio::spawn(outbox.clone().send_loop(link.clone(), refused_tx));
    let watcher = tokio::spawn(
        watch::Watcher::new(agent.clone(), link.clone(), desired.clone()).run(refused_rx),
    );
    let beat = tokio::spawn(heartbeat_loop(
        link.clone(),
        offer,
        agent.clone(),
        state_dir.clone(),
        desired.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %args.listen, advertised = %advertise, tls = tls.is_some(), "serving the control plane's calls");
    let app = server::router(server::NodeServer {
        agent: agent.clone(),
        node: identity.node.clone(),
        key: Arc::new(key),
        nonces: Arc::default(),
        desired,
    });
    match tls {
        Some(config) => {
            axum::serve(berth_tls::TlsListener::new(listener, config)?, app)
                .with_graceful_shutdown(crate::serve::shutdown_signal())
                .await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(crate::serve::shutdown_signal())
                .await?
        }
    }
    for task in [sender, watcher, beat] {
        task.abort();
    }
    agent.shutdown().await;
    tracing::info!("stopped; containers keep running and are re-adopted at the next start");
    Ok(())
}

/// Tells the control plane every few seconds that the node is alive and what it offers
/// (its free storage and stored images as of then).
async fn heartbeat_loop(
    link: ControlLink,
    offer: NodeOffer,
    agent: Agent,
    state_dir: PathBuf,
    desired: Arc<watch::Desired>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(HEARTBEAT_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_state = None;
    loop {
        tick.tick().await;
        let hb = Heartbeat {
            offer: offer::current(offer.clone(), &agent, &state_dir),
            groups: desired.len() as u64,
        };
        match link.heartbeat(&hb).await {
            Ok(reply) => {
                let now = (reply.state, reply.cordoned, reply.draining);
                if last_state != Some(now) {
                    tracing::info!(node = link.node(), state = ?reply.state, cordoned = reply.cordoned, draining = reply.draining, "the control plane sees this node");
                    last_state = Some(now);
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot send the heartbeat");
                last_state = None;
            }
        }
    }
}
