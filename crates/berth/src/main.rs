//! The `berth` binary: `berth serve` (control plane and node agent in one process), the
//! hidden per-container `berth monitor`, the client commands (`run`, `ps`, `logs`, `rm`,
//! `update`, `restart`, `inspect`, …), `berth virtual-kubelet`
//! and the operator's `berth admin`.

mod admin;
mod cache_cmd;
mod cache_node;
mod capacity_args;
mod cli;
mod cluster_nodes;
mod cluster_streams;
mod events;
mod exec;
mod follow;
mod group_cmd;
mod hints;
mod image_args;
mod image_cmd;
mod keys;
mod node_agent;
mod node_args;
mod node_lease;
mod node_tls;
mod observe_node;
mod open_files;
mod port_forward;
mod profile;
mod ps_cmd;
mod run_flags;
mod seccomp_node;
mod serve;
mod settings;
mod state_files;
mod storage_args;
mod store_open;
mod throttle_args;
mod top;
mod ui;
mod usage_cmd;
mod virtual_kubelet;
mod wait;

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
    #[command(flatten, next_help_heading = "Endpoint and key (client commands)")]
    client: settings::ClientFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server and the node agent of this machine.
    Serve(Box<serve::ServeArgs>),
    /// Run a node agent of a cluster: join a control plane and run the groups it places here.
    Node(Box<node_agent::NodeCmdArgs>),
    /// Create a container group running one image.
    Run(Box<cli::RunArgs>),
    /// List container groups.
    Ps(ps_cmd::PsArgs),
    /// Print the logs of a container of a group.
    Logs(cli::LogsArgs),
    /// Delete container groups.
    Rm(cli::RmArgs),
    /// Change a group's size, restart policy or tags (UpdateContainerGroup).
    Update(group_cmd::UpdateArgs),
    /// Restart every container of groups, keeping their address and volumes.
    Restart(group_cmd::RestartArgs),
    /// The whole group (spec, status, containers, events) as JSON or YAML, or a summary.
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
    /// Print the completion script of a shell (e.g. `berth completion bash >
    /// /etc/bash_completion.d/berth`).
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Per-container monitor (started by berth itself).
    #[command(hide = true)]
    Monitor { dir: std::path::PathBuf },
}

/// One glibc malloc arena for `berth serve`, set before any thread exists. With one arena
/// per thread (glibc's default, up to 8 per core), memory freed by one worker stayed with
/// its arena: over 400 group lifecycles the server's RSS grew 33.6 → 53.2 MB, and after
/// 1,000 groups were deleted it held 190–320 MB; with one arena it grew 29.9 → 33.3 MB.
/// Small allocations still come from each thread's cache without a lock.
fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// How often `berth serve` hands the heap's free pages back to the system.
const MALLOC_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands the free pages of the heap back to the system every [`MALLOC_TRIM_EVERY`]. glibc
/// gives back only the top of the heap by itself: after 500 groups were deleted `berth
/// serve` kept the 57.8 MB it held with them running; `malloc_trim` brought it to 44.3 MB.
/// A trim takes the arena's lock for a few milliseconds at most.
fn spawn_malloc_trim() {
    let spawned = std::thread::Builder::new()
        .name("berth-trim".into())
        .spawn(|| loop {
            std::thread::sleep(MALLOC_TRIM_EVERY);
            // SAFETY: malloc_trim only releases free memory of the allocator.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(e) = spawned {
        eprintln!("berth: no heap trimming: {e}");
    }
}

/// A node flag given to a replica without a node, or a control-plane flag given to a node,
/// would be accepted and do nothing: refused.
fn refuse_meaningless_flags(matches: &clap::ArgMatches) -> Result<(), String> {
    match matches.subcommand() {
        Some(("serve", m)) if m.get_flag("no_node") => node_args::refuse_given(
            m,
            node_args::NODE_ONLY,
            "are the nodes' own: a replica with --no-node runs no node (give them to `berth node`)",
        ),
        Some(("node", m)) => node_args::refuse_given(
            m,
            node_args::CONTROL_ONLY,
            "are the control plane's: give them to the replicas (`berth serve --no-node`)",
        ),
        _ => Ok(()),
    }
}

fn main() {
    // The monitor runs before anything else exists: no threads, no async runtime.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("monitor") {
        let Some(dir) = raw.get(2) else {
            eprintln!("usage: berth monitor DIR");
            std::process::exit(2);
        };
        std::process::exit(berth_runtime::monitor_command_main(dir.as_ref()));
    }
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let args = match <Args as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if let Err(e) = refuse_meaningless_flags(&matches) {
        eprintln!("berth: {e}");
        std::process::exit(2);
    }
    if matches!(args.command, Command::Serve(_) | Command::Node(_)) {
        one_malloc_arena();
        spawn_malloc_trim();
    }
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
    let command = args.command;
    // The client commands' settings: flags and environment over the profile.
    let settings = match &command {
        Command::Serve(_)
        | Command::Node(_)
        | Command::Image(_)
        | Command::Admin(_)
        | Command::Completion { .. }
        | Command::Monitor { .. } => None,
        _ => match args.client.resolve() {
            Ok(s) => Some(s),
            Err(e) => fail(&e, None),
        },
    };
    let res = rt.block_on(async {
        let Some(c) = settings.as_ref() else {
            return match command {
                Command::Serve(a) => serve::run(*a).await,
                Command::Node(a) => node_agent::run(*a).await,
                Command::Image(a) => image_cmd::run(a).await,
                Command::Admin(a) => admin::run(a).await,
                Command::Completion { shell } => {
                    completion(shell, &mut std::io::stdout());
                    Ok(())
                }
                _ => unreachable!("the other commands have settings"),
            };
        };
        match command {
            Command::Run(a) => cli::run(c, *a).await,
            Command::Ps(a) => ps_cmd::ps(c, a).await,
            Command::Logs(a) => cli::logs(c, a).await,
            Command::Rm(a) => cli::rm(c, a).await,
            Command::Update(a) => group_cmd::update(c, a).await,
            Command::Restart(a) => group_cmd::restart(c, a).await,
            Command::Inspect(a) => group_cmd::inspect(c, a).await,
            Command::Exec(a) => match exec::exec(c, a).await {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            },
            Command::PortForward(a) => port_forward::port_forward(c, a).await,
            Command::Top(a) => top::top(c, a).await,
            Command::Events(a) => events::events(c, a).await,
            Command::Cache(cmd) => cache_cmd::run(c, cmd).await,
            Command::Usage(a) => usage_cmd::usage(c, a).await,
            Command::VirtualKubelet(a) => virtual_kubelet::run(c, *a).await,
            Command::Serve(_)
            | Command::Node(_)
            | Command::Image(_)
            | Command::Admin(_)
            | Command::Completion { .. }
            | Command::Monitor { .. } => unreachable!("commands without settings"),
        }
    });
    if let Err(e) = res {
        fail(&e, settings.as_ref());
    }
}

/// Prints `e` with its causes, and the advice of `hints` when there is some; exits 1.
fn fail(e: &anyhow::Error, settings: Option<&settings::ClientArgs>) -> ! {
    eprintln!("{} {e:#}", ui::colour::error_prefix());
    if let Some(h) = hints::hint(e, settings) {
        eprintln!("{} {h}", ui::colour::hint_prefix());
    }
    std::process::exit(1);
}

/// The completion script of `shell` for every command and flag.
fn completion(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Args::command(), "berth", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(argv: &[&str]) -> Result<(), String> {
        let m = <Args as clap::CommandFactory>::command()
            .try_get_matches_from(argv)
            .unwrap();
        refuse_meaningless_flags(&m)
    }

    #[test]
    fn flags_that_mean_nothing_in_a_role_are_refused() {
        // Every node flag named on a replica without a node, each one found by its id.
        let mut argv = vec!["berth", "serve", "--no-node", "--store", "postgres://db/b"];
        let values: &[(&str, &str)] = &[
            ("--runtime", "runc"),
            ("--gvisor-runtime", "runsc"),
            ("--gvisor-platform", "ptrace"),
            ("--gvisor-pool", "1"),
            ("--subnet", "10.1.0.0/16"),
            ("--bridge", "b1"),
            ("--netns-pool", "1"),
            ("--blocked-destination", "10.9.0.0/16"),
            ("--allow-host-port", "udp:53"),
            ("--nfs-server", "nfs.example"),
            ("--host-path-prefix", "/srv"),
            ("--storage-dir", "/srv/s"),
            ("--storage-size", "10"),
            ("--image-gc-high", "90"),
            ("--image-gc-low", "60"),
            ("--image-gc-interval", "60"),
            ("--max-image-size", "1"),
            ("--max-image-entries", "10"),
            ("--image-auth-ttl", "1"),
            ("--reserve-cpu", "1"),
            ("--reserve-memory", "1"),
            ("--overcommit-cpu", "2"),
            ("--overcommit-memory", "2"),
            ("--metrics-interval", "5"),
            ("--userns-base", "200000"),
        ];
        for (flag, value) in values {
            argv.extend([*flag, *value]);
        }
        argv.extend([
            "--no-isolation",
            "--keep-cgroup-options",
            "--no-seccomp-precompile",
            "--userns",
        ]);
        let err = refused(&argv).unwrap_err();
        for (_, flag) in node_args::NODE_ONLY {
            assert!(err.contains(flag), "{flag} not refused: {err}");
        }
        assert!(err.contains("berth node"), "{err}");
        // The control plane's own flags are fine there; and all of them on one machine.
        refused(&[
            "berth",
            "serve",
            "--no-node",
            "--store",
            "postgres://db/b",
            "--schedule-timeout",
            "1m",
            "--spot-notice",
            "10s",
            "--max-cpu",
            "4",
        ])
        .unwrap();
        refused(&[
            "berth",
            "serve",
            "--runtime",
            "runc",
            "--schedule-timeout",
            "1m",
        ])
        .unwrap();
        // A node refuses the control plane's flags.
        let err = refused(&[
            "berth",
            "node",
            "--join",
            "http://r:8080",
            "--spot-notice",
            "10s",
            "--schedule-timeout",
            "1m",
        ])
        .unwrap_err();
        assert!(
            err.starts_with("--schedule-timeout, --spot-notice are the control plane's"),
            "{err}"
        );
        refused(&[
            "berth",
            "node",
            "--join",
            "http://r:8080",
            "--runtime",
            "runc",
        ])
        .unwrap();
    }

    fn script(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        completion(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions() {
        use clap_complete::Shell;
        for (name, shell) in [
            ("bash", Shell::Bash),
            ("zsh", Shell::Zsh),
            ("fish", Shell::Fish),
        ] {
            let text = script(shell);
            // Every command and the new flags are offered.
            for word in ["completion", "inspect", "profile", "wait-timeout", "filter"] {
                assert!(text.contains(word), "{name} lacks {word}");
            }
            insta::assert_snapshot!(format!("completion_{name}"), text);
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
