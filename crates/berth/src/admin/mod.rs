//! `berth admin`: the operator's commands on accounts (with their quotas and operator flag),
//! access keys, and a cluster's nodes and join tokens (`nodes.rs`). They work on the state
//! directory (or the `--store` database) itself, whether the server is stopped or running (SQLite lets a second process
//! write; the server reads keys per request, so a change counts at once).

mod node_output;
mod nodes;
mod output;

use std::path::PathBuf;

use std::io::Write as _;

use anyhow::{bail, Context};
use berth_store::{AccountSeccomp, QuotaOverrides, Store};

use output::Output;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// The state directory of the server (running or stopped).
    #[arg(long, global = true, default_value = "/var/lib/berth")]
    state_dir: PathBuf,
    /// Output format: a table (or text) for people, json or yaml for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = crate::ui::Format::Table)]
    output: crate::ui::Format,
    #[command(flatten)]
    store: crate::store_open::StoreArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Accounts: each owns its groups and image caches.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Access keys of an account (an account may have several).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Without a subcommand: the runtime classes this machine's node runs, as the last
    /// `berth serve` found them at its start. With one: a cluster's nodes and join tokens.
    Node(nodes::NodeArgs),
}

#[derive(clap::Subcommand)]
enum AccountCommand {
    /// Make an account (it has no key yet: see `berth admin key create`).
    Create { name: String },
    /// List the accounts.
    Ls,
    /// Refuse every key of the account until it is enabled again.
    Disable { name: String },
    /// Accept the account's keys again.
    Enable { name: String },
    /// Make the account an operator's: its keys may read every account's bill (`berth usage
    /// --account NAME`, or `*` for all). A running server applies it from the next request on.
    Operator {
        name: String,
        /// Take the flag away instead.
        #[arg(long)]
        off: bool,
    },
    /// Set the account's own limits (the others keep theirs; unset ones are the server's
    /// `--max-*` defaults). A running server applies them from the next request on.
    SetQuota {
        name: String,
        /// vCPU its unfinished groups may hold together.
        #[arg(long, value_parser = crate::cache_node::non_negative)]
        cpu: Option<f64>,
        /// GiB of memory its unfinished groups may hold together.
        #[arg(long, value_parser = crate::cache_node::non_negative)]
        memory: Option<f64>,
        /// Unfinished container groups it may hold.
        #[arg(long)]
        groups: Option<u64>,
        /// Image caches it may create (CreateImageCache).
        #[arg(long)]
        image_caches: Option<u32>,
        /// GiB of temporary storage (EphemeralStorage) its unfinished groups may hold
        /// together.
        #[arg(long, value_parser = crate::cache_node::non_negative)]
        storage: Option<f64>,
    },
    /// Set the seccomp profile of the account's containers: a profile file (Docker's JSON
    /// format, checked now), `default` (the built-in profile) or `unconfined` (no filter).
    /// Groups started from now on get it.
    SetSeccomp {
        name: String,
        /// FILE, default or unconfined.
        profile: String,
    },
    /// Print the account's seccomp profile (`default`, `unconfined` or the profile's JSON).
    ShowSeccomp { name: String },
    /// Set the runtime classes (runc, gvisor) the account's groups may use and the class of
    /// a group that names none (`RuntimeClassName`). Creates from now on are checked.
    SetRuntimeClasses {
        name: String,
        /// The allowed classes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<berth_core::RuntimeClass>,
        /// The account's default class (one of --allow); without it, the server's
        /// --default-runtime-class.
        #[arg(long)]
        default: Option<berth_core::RuntimeClass>,
    },
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Make an access key; its secret is printed this once and never again.
    Create {
        #[arg(long)]
        account: String,
    },
    /// List the keys of an account (without secrets).
    Ls {
        #[arg(long)]
        account: String,
    },
    /// Refuse the key until it is enabled again.
    Disable {
        #[arg(long)]
        account: String,
        access_key_id: String,
    },
    /// Accept the key again.
    Enable {
        #[arg(long)]
        account: String,
        access_key_id: String,
    },
    /// Delete the key for good.
    Rm {
        #[arg(long)]
        account: String,
        access_key_id: String,
    },
}

/// Longest account name.
const MAX_ACCOUNT_NAME: usize = 64;

/// An account name: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.
fn check_account_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ACCOUNT_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "account name {name:?} is not 1-{MAX_ACCOUNT_NAME} letters, digits, '.', '_' or '-' \
             starting with a letter or digit"
        );
    }
    Ok(())
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    // Logs go to stderr, so that stdout stays the answer (JSON with `-o json`).
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let out = Output::new(args.output);
    if let AdminCommand::Node(nodes::NodeArgs { command: None }) = args.command {
        return node(&args.state_dir);
    }
    let store = args.store.open(&args.state_dir).await?;
    match args.command {
        AdminCommand::Account(c) => account(store.as_ref(), &out, c).await,
        AdminCommand::Key(c) => key(store.as_ref(), &out, c).await,
        AdminCommand::Node(nodes::NodeArgs { command: Some(c) }) => {
            nodes::run(store.as_ref(), &out, c).await
        }
        AdminCommand::Node(nodes::NodeArgs { command: None }) => node(&args.state_dir),
    }
}

/// Prints the file `berth serve` writes at its start (JSON).
fn node(state_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = crate::serve::node_classes_file(state_dir);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (has berth serve run?)", path.display()))?;
    let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
    Ok(())
}

async fn account(store: &dyn Store, out: &Output, c: AccountCommand) -> anyhow::Result<()> {
    match c {
        AccountCommand::Create { name } => {
            check_account_name(&name)?;
            store.create_account(&name).await?;
            out.account_changed(&name, "created");
        }
        AccountCommand::Ls => out.accounts(&store.list_accounts().await?),
        AccountCommand::Disable { name } => {
            store.set_account_disabled(&name, true).await?;
            out.account_changed(&name, "disabled");
        }
        AccountCommand::Enable { name } => {
            store.set_account_disabled(&name, false).await?;
            out.account_changed(&name, "enabled");
        }
        AccountCommand::Operator { name, off } => {
            store.set_account_operator(&name, !off).await?;
            out.account_changed(
                &name,
                if off {
                    "no longer an operator"
                } else {
                    "made an operator"
                },
            );
        }
        AccountCommand::SetQuota {
            name,
            cpu,
            memory,
            groups,
            image_caches,
            storage,
        } => {
            let quota = QuotaOverrides {
                cpu,
                memory,
                groups,
                image_caches,
                storage,
            };
            if quota == QuotaOverrides::default() {
                bail!("give at least one of --cpu, --memory, --groups, --image-caches, --storage");
            }
            store.set_account_quota(&name, &quota).await?;
            out.account_changed(&name, "quota set");
        }
        AccountCommand::SetSeccomp { name, profile } => {
            let setting = crate::seccomp_node::setting(&profile)?;
            store.set_account_seccomp(&name, &setting).await?;
            let what = match setting {
                AccountSeccomp::Default => "seccomp profile set to the built-in one",
                AccountSeccomp::Unconfined => "seccomp filter removed (unconfined)",
                AccountSeccomp::Profile(_) => "seccomp profile set",
            };
            out.account_changed(&name, what);
        }
        AccountCommand::SetRuntimeClasses {
            name,
            allow,
            default,
        } => {
            let policy = berth_core::RuntimeClassPolicy::new(allow, default)?;
            store.set_account_runtime_classes(&name, &policy).await?;
            out.account_changed(&name, "runtime classes set");
        }
        AccountCommand::ShowSeccomp { name } => {
            if !store.list_accounts().await?.iter().any(|a| a.name == name) {
                bail!("no account named {name}");
            }
            let text = match store.account_seccomp(&name).await? {
                AccountSeccomp::Default => "default".to_string(),
                AccountSeccomp::Unconfined => "unconfined".to_string(),
                AccountSeccomp::Profile(text) => text.trim_end().to_string(),
            };
            // A reader that stops early (`| head`) is not an error.
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    }
    Ok(())
}

async fn key(store: &dyn Store, out: &Output, c: KeyCommand) -> anyhow::Result<()> {
    match c {
        KeyCommand::Create { account } => {
            let key = crate::keys::new_access_key(&account);
            store.add_access_key(&key).await?;
            out.new_key(&key);
        }
        KeyCommand::Ls { account } => out.keys(&store.list_access_keys(&account).await?),
        KeyCommand::Disable {
            account,
            access_key_id,
        } => {
            store
                .set_access_key_disabled(&account, &access_key_id, true)
                .await?;
            out.key_changed(&account, &access_key_id, "disabled");
        }
        KeyCommand::Enable {
            account,
            access_key_id,
        } => {
            store
                .set_access_key_disabled(&account, &access_key_id, false)
                .await?;
            out.key_changed(&account, &access_key_id, "enabled");
        }
        KeyCommand::Rm {
            account,
            access_key_id,
        } => {
            store.delete_access_key(&account, &access_key_id).await?;
            out.key_changed(&account, &access_key_id, "deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_account_name;

    #[test]
    fn account_names() {
        for good in ["a", "team-a", "Team_1.prod", &"x".repeat(64)] {
            assert!(check_account_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_account_name(bad).is_err(), "{bad}");
        }
    }
}
