//! The `berth` binary: `berth serve` (control plane and node agent in one process), the
//! hidden per-container `berth monitor`, and the client commands (`run`, `ps`, `logs`, `rm`).

mod cli;
mod serve;

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
    Serve(serve::ServeArgs),
    /// Create a container group running one image.
    Run(cli::RunArgs),
    /// List container groups.
    Ps(cli::PsArgs),
    /// Print the logs of a container of a group.
    Logs(cli::LogsArgs),
    /// Delete container groups.
    Rm(cli::RmArgs),
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
            Command::Serve(a) => serve::run(a).await,
            Command::Run(a) => cli::run(&args.client, a).await,
            Command::Ps(a) => cli::ps(&args.client, a).await,
            Command::Logs(a) => cli::logs(&args.client, a).await,
            Command::Rm(a) => cli::rm(&args.client, a).await,
            Command::Monitor { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    if let Err(e) = res {
        eprintln!("berth: {e:#}");
        std::process::exit(1);
    }
}
