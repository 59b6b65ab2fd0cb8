//! `berth virtual-kubelet`: joins a Kubernetes cluster as a virtual node whose pods run as
//! berth container groups. It connects to the cluster (`--kubeconfig`, else the in-cluster
//! configuration or `~/.kube/config`) and to berth (the same endpoint and credentials as every
//! other client command), reads the node's capacity from the account's quotas (ListUsage,
//! read again with every status update), then serves the kubelet API (logs, exec, stats, metrics) on the node's daemon port and runs
//! the registration controller (Node, Lease, status) and the pod controller until SIGTERM or
//! SIGINT, when the node is marked NotReady and the command returns. The pods'
//! groups keep running: a virtual kubelet started again adopts them by their pod uid tag.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_client::Client;
use berth_kubelet::api::{ApiConfig, AuthConfig, BerthBackend, KubeletApi, TlsSource};
use berth_kubelet::{
    Capacity, CapacitySource, ClusterDns, NodeConfig, PodConfig, PodController, Registration,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::cli::{client, ClientArgs};

/// The kubelet version the node reports: the Kubernetes minor the API types are built for.
const KUBELET_VERSION: &str = concat!("v1.34.0-berth-", env!("CARGO_PKG_VERSION"));

/// How long open kubelet API streams may go on after the node stopped.
const API_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(clap::Args)]
pub struct VirtualKubeletArgs {
    /// kubeconfig of the cluster; without it the in-cluster configuration (when run in a
    /// pod), else $KUBECONFIG or ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Name of the virtual node.
    #[arg(long, env = "VK_NODE_NAME", default_value = "berth")]
    node_name: String,
    /// The node's address, as the API server reaches its kubelet API (`InternalIP`, and the
    /// pods' `status.hostIP`); default: the local address of the route to the API server.
    #[arg(long, env = "VKUBELET_POD_IP")]
    node_ip: Option<IpAddr>,
    /// Port of the kubelet API (`daemonEndpoints.kubeletEndpoint.port`).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Address the kubelet API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// PEM certificate chain of the kubelet API; without it (and --tls-private-key-file) a
    /// self-signed certificate for the node's name and address is made at start.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file (readable by its owner only).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// CA whose client certificates authenticate to the kubelet API (the API server's
    /// kubelet client certificate); bearer tokens are reviewed by the API server.
    #[arg(long, conflicts_with = "anonymous_auth")]
    client_ca_file: Option<PathBuf>,
    /// Serve the kubelet API to anyone without authentication or authorization: only for an
    /// address nothing but the API server can reach.
    #[arg(long)]
    anonymous_auth: bool,
    /// The cluster's DNS server for `dnsPolicy: ClusterFirst` pods (repeatable); without it
    /// such pods use the node's resolver, as the kubelet does without `--cluster-dns`.
    #[arg(long = "cluster-dns")]
    cluster_dns: Vec<IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Seconds between two full lists of the node's groups (changes are followed every
    /// second in between; this finds groups deleted outside the cluster).
    #[arg(long, default_value_t = berth_kubelet::SWEEP_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    full_resync_period: u64,
    /// Most pods reconciled at once (one reconcile per pod at a time).
    #[arg(long, default_value_t = berth_kubelet::POD_SYNC_WORKERS as u64,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pod_sync_workers: u64,
    /// Least seconds between two readings of a running pod's ConfigMaps and Secrets for its
    /// volumes (the kubelet's sync frequency); a change reaches the files within about this
    /// and the full resync period.
    #[arg(long, default_value_t = berth_kubelet::VOLUME_RESYNC.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    volume_resync_period: u64,
    /// Seconds between two status updates of the Node, each with its capacity read again
    /// from the account's quotas (ListUsage).
    #[arg(long, default_value_t = berth_kubelet::STATUS_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    node_status_update_period: u64,
}

/// The node's name must be a DNS subdomain: it is the Node's and the Lease's name.
fn check_node_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    anyhow::ensure!(
        ok,
        "--node-name {name:?} is not a DNS subdomain (lower-case letters, digits, '-' and '.')"
    );
    Ok(())
}

async fn kube_config(a: &VirtualKubeletArgs) -> anyhow::Result<kube::Config> {
    let opts = KubeConfigOptions {
        context: a.context.clone(),
        ..Default::default()
    };
    let config = match &a.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .with_context(|| format!("the kubeconfig {} cannot be used", path.display()))?
        }
        None if a.context.is_some() => kube::Config::from_kubeconfig(&opts)
            .await
            .context("the kubeconfig cannot be used")?,
        None => kube::Config::infer()
            .await
            .context("no cluster: pass --kubeconfig, set KUBECONFIG, or run in a pod")?,
    };
    Ok(config)
}

/// The local address the kernel would use to reach the API server: connecting a UDP socket
/// sends nothing.
fn local_address_towards(url: &http::Uri) -> anyhow::Result<IpAddr> {
    let host = url
        .host()
        .context("the cluster's URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_u16().unwrap_or(443);
    let sock = UdpSocket::bind(("0.0.0.0", 0)).or_else(|_| UdpSocket::bind(("::", 0)))?;
    sock.connect((host, port))
        .with_context(|| format!("no route to the API server {host}:{port}"))?;
    Ok(sock.local_addr()?.ip())
}

/// The node's capacity: the account's limits.
async fn capacity(berth: &Client, region: &str) -> anyhow::Result<Capacity> {
    let v = berth
        .call("ListUsage", &[("RegionId".into(), region.to_string())])
        .await
        .context("reading the account's quotas (ListUsage)")?;
    let attrs = v["Attributes"]
        .as_object()
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    Ok(Capacity::from_usage(&attrs))
}

/// The account's quotas, read again with every status update of the node.
struct Usage {
    berth: Client,
    region: String,
}

#[async_trait::async_trait]
impl CapacitySource for Usage {
    async fn read(&self) -> Result<Capacity, String> {
        capacity(&self.berth, &self.region)
            .await
            .map_err(|e| format!("{e:#}"))
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub async fn run(c: &ClientArgs, a: VirtualKubeletArgs) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    check_node_name(&a.node_name)?;
    let berth = client(c)?;
    let config = kube_config(&a).await?;
    let node_ip = match a.node_ip {
        Some(ip) => ip,
        None => local_address_towards(&config.cluster_url)?,
    };
    let kube = kube::Client::try_from(config).context("cannot make a client of the cluster")?;
    let cap = capacity(&berth, &c.region).await?;
    tracing::info!(node = %a.node_name, %node_ip, cpu = cap.cpu, memory_gib = cap.memory_gib, pods = cap.pods, "joining the cluster");

    let cluster_dns = (!a.cluster_dns.is_empty()).then(|| ClusterDns {
        servers: a.cluster_dns.iter().map(IpAddr::to_string).collect(),
        domain: a.cluster_domain.clone(),
    });
    let tls = match (&a.tls_cert_file, &a.tls_private_key_file) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::SelfSigned {
            names: vec![a.node_name.clone(), node_ip.to_string()],
        },
    };
    let auth = if a.anonymous_auth {
        tracing::warn!("the kubelet API allows every request (--anonymous-auth)");
        AuthConfig::Anonymous
    } else {
        AuthConfig::Delegated {
            client: kube.clone(),
            client_ca: a.client_ca_file.clone(),
        }
    };
    let backend = BerthBackend::new(berth.clone(), c.ca_pem()?.as_deref())
        .context("berth's client for the kubelet API")?;
    let listen = SocketAddr::new(a.address, a.kubelet_port);

    let registration = Registration::new(
        kube.clone(),
        NodeConfig {
            name: a.node_name.clone(),
            internal_ip: node_ip.to_string(),
            kubelet_port: i32::from(a.kubelet_port),
            kubelet_version: KUBELET_VERSION.into(),
        },
    )
    .with_status_interval(std::time::Duration::from_secs(a.node_status_update_period));
    let berth_for_usage = berth.clone();
    let pods = PodController::new(
        kube,
        berth,
        PodConfig {
            node_name: a.node_name.clone(),
            host_ip: node_ip.to_string(),
            cluster_dns,
            full_resync: std::time::Duration::from_secs(a.full_resync_period),
            workers: a.pod_sync_workers as usize,
            volume_resync: std::time::Duration::from_secs(a.volume_resync_period),
        },
    );
    let api = KubeletApi::bind(
        ApiConfig {
            listen,
            node_name: a.node_name.clone(),
            tls,
            auth,
        },
        Arc::new(backend),
        pods.known_pods(),
    )
    .await
    .context("the kubelet API")?;
    tracing::info!(address = %api.local_addr(), "serving the kubelet API");
    let (stop, stopped) = watch::channel(false);
    let api = {
        let mut stopped = stopped.clone();
        tokio::spawn(api.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    };
    let usage = Usage {
        berth: berth_for_usage,
        region: c.region.clone(),
    };
    let reg = {
        let stopped = stopped.clone();
        async move { registration.run(cap, &usage, stopped).await }
    };
    let ctl = async move { pods.run(stopped).await };
    let signal = async move {
        let r = shutdown_signal().await;
        tracing::info!("stopping: marking the node NotReady");
        let _ = stop.send(true);
        r
    };
    let ((), (), r) = tokio::join!(reg, ctl, signal);
    // Open log follows and exec sessions get a moment to end, then are cut.
    match tokio::time::timeout(API_DRAIN, api).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the kubelet API"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the kubelet API's task"),
        Err(_) => tracing::info!("kubelet API streams still open at exit were cut"),
    }
    r
}
