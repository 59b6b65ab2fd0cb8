//! The `berth` binary: `berth serve` (control plane and node agent in one process), the
//! hidden per-container `berth monitor`, the client commands (`run`, `ps`, `logs`, `rm`,
//! `update`, `restart`, `inspect`, …), `berth virtual-kubelet`
//! and the operator's `berth admin`.

mod admin;
mod cache_cmd;
mod cache_node;
mod capacity_args;
mod cli;
mod events;
mod exec;
mod follow;
mod group_cmd;
mod image_cmd;
mod keys;
mod observe_node;
mod port_forward;
mod run_flags;
mod seccomp_node;
mod serve;
mod state_files;
mod storage_args;
mod throttle_args;
mod top;
mod usage_cmd;
mod virtual_kubelet;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Elastic Container Instance on your own machines"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: cli::ClientArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server and the node agent of this machine.
    Serve(Box<serve::ServeArgs>),
    /// Create a container group running one image.
    Run(Box<cli::RunArgs>),
    /// List container groups.
    Ps(cli::PsArgs),
    /// Print the logs of a container of a group.
    Logs(cli::LogsArgs),
    /// Delete container groups.
    Rm(cli::RmArgs),
    /// Change a group's size, restart policy or tags (UpdateContainerGroup).
    Update(group_cmd::UpdateArgs),
    /// Restart every container of groups, keeping their address and volumes.
    Restart(group_cmd::RestartArgs),
    /// The whole group (spec, status, containers, events) as JSON or YAML.
    Inspect(group_cmd::InspectArgs),
    /// Run a command in a container of a group (-it: interactive, with a terminal).
    Exec(exec::ExecArgs),
    /// Forward local ports to ports on a group's own loopback.
    PortForward(port_forward::PortForwardArgs),
    /// Live CPU and memory use of the running groups.
    Top(top::TopArgs),
    /// Events of a container group.
    Events(events::EventsArgs),
    /// Image caches (through the API).
    #[command(subcommand)]
    Cache(cache_cmd::CacheCommand),
    /// The bill of an account (DescribeUsage): usage and exact amounts by group, day or tag.
    Usage(usage_cmd::UsageArgs),
    /// Images stored on this node (on the state directory).
    Image(image_cmd::ImageArgs),
    /// Join a Kubernetes cluster as a virtual node whose pods run as container groups.
    VirtualKubelet(Box<virtual_kubelet::VirtualKubeletArgs>),
    /// Accounts and access keys (on the state directory; the server may be running).
    Admin(admin::AdminArgs),
    /// Per-container monitor (started by berth itself).
    #[command(hide = true)]
    Monitor { dir: std::path::PathBuf },
}

fn main() {
    // The monitor runs before anything else exists: no threads, no async runtime.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("monitor") {
        let Some(dir) = raw.get(2) else {
            eprintln!("usage: berth monitor DIR");
            std::process::exit(2);
        };
        std::process::exit(berth_runtime::monitor_main(std::path::Path::new(dir)));
    }
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let res = rt.block_on(async move {
        match args.command {
            Command::Serve(a) => serve::run(*a).await,
            Command::Run(a) => cli::run(&args.client, *a).await,
            Command::Ps(a) => cli::ps(&args.client, a).await,
            Command::Logs(a) => cli::logs(&args.client, a).await,
            Command::Rm(a) => cli::rm(&args.client, a).await,
            Command::Update(a) => group_cmd::update(&args.client, a).await,
            Command::Restart(a) => group_cmd::restart(&args.client, a).await,
            Command::Inspect(a) => group_cmd::inspect(&args.client, a).await,
            Command::Exec(a) => match exec::exec(&args.client, a).await {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            },
            Command::PortForward(a) => port_forward::port_forward(&args.client, a).await,
            Command::Top(a) => top::top(&args.client, a).await,
            Command::Events(a) => events::events(&args.client, a).await,
            Command::Cache(c) => cache_cmd::run(&args.client, c).await,
            Command::Usage(a) => usage_cmd::usage(&args.client, a).await,
            Command::Image(a) => image_cmd::run(a).await,
            Command::VirtualKubelet(a) => virtual_kubelet::run(&args.client, *a).await,
            Command::Admin(a) => admin::run(a),
            Command::Monitor { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    if let Err(e) = res {
        eprintln!("berth: {e:#}");
        std::process::exit(1);
    }
}
