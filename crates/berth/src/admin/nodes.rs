//! `berth admin node …`: the nodes of a cluster and the join tokens they join with, worked on
//! in the store directly (docs/CLUSTER.md). Without a subcommand, `berth admin node` prints
//! the runtime classes of this machine's node, as it always did.

use anyhow::{bail, Context};
use berth_core::{JoinToken, NodeInfo, NodeRecord};
use berth_store::{Store, StoreError, MAX_TOKEN_DESCRIPTION};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::node_output::NodeOutput;
use super::output::Output;

#[derive(clap::Args)]
pub(super) struct NodeArgs {
    #[command(subcommand)]
    pub(super) command: Option<NodeCommand>,
}

#[derive(clap::Subcommand)]
pub(super) enum NodeCommand {
    /// Join tokens: a node agent joins the control plane with one.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the nodes that joined.
    Ls,
    /// Place no new group on the node (its groups keep running).
    Cordon { node: String },
    /// Place groups on the node again (ends a drain too).
    Uncordon { node: String },
    /// Cordon the node and have its groups placed elsewhere.
    Drain { node: String },
    /// Forget the node; refused while unfinished groups are placed on it.
    Rm {
        node: String,
        /// Forget it even so (its groups stay placed on a node that is gone).
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Subcommand)]
pub(super) enum TokenCommand {
    /// Make a join token; it is printed (ID.SECRET) this once and never again.
    Create {
        /// How long it may be used: 1m to 30d (s, m, h, d).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// What it is for (at most 200 bytes).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the join tokens (without secrets).
    Ls,
    /// Delete a join token: no node joins with it any more.
    Rm { id: String },
}

/// Shortest and longest life of a join token, in seconds.
const MIN_TTL: u64 = 60;
const MAX_TTL: u64 = 30 * 86_400;
/// Letters of a token's id and secret.
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN_ID_LEN: usize = 6;
const TOKEN_SECRET_LEN: usize = 16;

/// `n` characters of [`TOKEN_ALPHABET`] from the operating system's CSPRNG.
fn random_text(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())] as char)
        .collect()
}

/// SHA-256 of a token's secret, lowercase hex: what the store keeps of it.
pub(crate) fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The TTL in seconds, within [`MIN_TTL`]..=[`MAX_TTL`].
fn token_ttl(ttl: &str) -> anyhow::Result<u64> {
    let secs = crate::follow::parse_duration(ttl)?;
    if !(MIN_TTL..=MAX_TTL).contains(&secs) {
        bail!("--ttl {ttl} is not between 1m and 30d");
    }
    Ok(secs)
}

/// A new token (not yet stored) and its secret.
fn new_token(ttl_secs: u64, description: &str) -> (JoinToken, String) {
    let secret = random_text(TOKEN_SECRET_LEN);
    // The store keeps times to the millisecond.
    let now = chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default();
    let token = JoinToken {
        id: random_text(TOKEN_ID_LEN),
        digest: secret_digest(&secret),
        description: description.to_string(),
        created: now,
        expires: now + chrono::Duration::seconds(ttl_secs as i64),
    };
    (token, secret)
}

pub(super) async fn run(store: &dyn Store, out: &Output, c: NodeCommand) -> anyhow::Result<()> {
    let out = NodeOutput(out);
    match c {
        NodeCommand::Token(t) => token(store, &out, t).await,
        NodeCommand::Ls => {
            out.nodes(&store.list_nodes().await?);
            Ok(())
        }
        NodeCommand::Cordon { node } => {
            let info = change(store, &node, |n| n.cordoned = true).await?;
            out.node_changed(&info, "cordoned");
            Ok(())
        }
        NodeCommand::Uncordon { node } => {
            let info = change(store, &node, |n| {
                n.cordoned = false;
                n.draining = false;
            })
            .await?;
            out.node_changed(&info, "uncordoned");
            Ok(())
        }
        NodeCommand::Drain { node } => {
            let info = change(store, &node, |n| {
                n.cordoned = true;
                n.draining = true;
            })
            .await?;
            out.node_changed(&info, "draining");
            Ok(())
        }
        NodeCommand::Rm { node, force } => {
            let found = find(store, &node).await?;
            let id = &found.info.id;
            let placed = store
                .placed_usage()
                .await?
                .into_iter()
                .find(|u| &u.node == id)
                .map_or(0, |u| u.groups);
            if placed > 0 && !force {
                bail!(
                    "node {} ({id}) has {placed} unfinished group(s) placed on it; drain it \
                     first, or give --force",
                    found.info.name
                );
            }
            if !store.delete_node(id).await? {
                bail!("node {node} was removed meanwhile");
            }
            out.node_changed(&found.info, "removed");
            Ok(())
        }
    }
}

async fn token(store: &dyn Store, out: &NodeOutput<'_>, c: TokenCommand) -> anyhow::Result<()> {
    match c {
        TokenCommand::Create { ttl, description } => {
            let ttl = token_ttl(&ttl)?;
            if description.len() > MAX_TOKEN_DESCRIPTION
                || description.chars().any(char::is_control)
            {
                bail!(
                    "--description is at most {MAX_TOKEN_DESCRIPTION} bytes without control \
                     characters"
                );
            }
            // A new id that is taken (one in two billion) is drawn again.
            for _ in 0..5 {
                let (token, secret) = new_token(ttl, &description);
                match store.create_join_token(&token).await {
                    Ok(()) => {
                        out.new_token(&token, &secret);
                        return Ok(());
                    }
                    Err(StoreError::JoinTokenExists(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            bail!("no free join token id was found");
        }
        TokenCommand::Ls => {
            out.tokens(&store.list_join_tokens().await?, chrono::Utc::now());
            Ok(())
        }
        TokenCommand::Rm { id } => {
            if !store.delete_join_token(&id).await? {
                bail!("no join token {id}");
            }
            out.token_removed(&id);
            Ok(())
        }
    }
}

/// The node named `node`, or whose id it is.
async fn find(store: &dyn Store, node: &str) -> anyhow::Result<NodeRecord> {
    if let Some(n) = store.get_node(node).await? {
        return Ok(n);
    }
    store
        .node_by_name(node)
        .await?
        .with_context(|| format!("no node named {node} or with that id"))
}

/// Changes the node named `node` (or whose id it is) with `f`.
async fn change(
    store: &dyn Store,
    node: &str,
    mut f: impl FnMut(&mut NodeInfo) + Send,
) -> anyhow::Result<NodeInfo> {
    let id = find(store, node).await?.info.id;
    store
        .modify_node(&id, &mut f)
        .await?
        .with_context(|| format!("node {node} was removed meanwhile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_shape_and_bounds() {
        let (a, secret) = new_token(3600, "ci");
        let (b, _) = new_token(3600, "ci");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 6);
        assert_eq!(secret.len(), 16);
        assert!(format!("{}{secret}", a.id)
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(a.digest, secret_digest(&secret));
        assert_ne!(a.digest, secret);
        assert_eq!((a.expires - a.created).num_seconds(), 3600);
        // The SHA-256 of "abc".
        assert_eq!(
            secret_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_ttl("24h").unwrap(), 86_400);
        assert_eq!(token_ttl("1m").unwrap(), 60);
        assert_eq!(token_ttl("30d").unwrap(), MAX_TTL);
        for bad in ["59s", "31d", "0", "1y", "x"] {
            assert!(token_ttl(bad).is_err(), "{bad}");
        }
    }

    fn node(n: u8, name: &str) -> NodeRecord {
        let now = chrono::Utc::now();
        NodeRecord {
            info: NodeInfo {
                id: format!("node-{n:0>16}"),
                name: name.into(),
                address: "10.0.0.1:7070".into(),
                state: berth_core::NodeState::Ready,
                cordoned: false,
                draining: false,
                offer: Default::default(),
                joined: now,
                last_heartbeat: now,
            },
            key: vec![n; 32],
        }
    }

    /// Cordon, drain and uncordon by name or id; rm refused while a group runs on the node,
    /// unless forced; unknown names are errors.
    #[tokio::test]
    async fn nodes_are_cordoned_drained_and_removed() {
        let store = berth_store::SqliteStore::in_memory().unwrap();
        let out = Output::new(crate::ui::Format::Json);
        let (a, b) = (node(1, "rack-a"), node(2, "rack-b"));
        store.upsert_node(&a).await.unwrap();
        store.upsert_node(&b).await.unwrap();
        let get = |id: &str| {
            let id = id.to_string();
            let store = &store;
            async move { store.get_node(&id).await.unwrap().unwrap().info }
        };
        let cmd = |c: NodeCommand| run(&store, &out, c);
        cmd(NodeCommand::Cordon {
            node: "rack-a".into(),
        })
        .await
        .unwrap();
        let n = get(&a.info.id).await;
        assert!(n.cordoned && !n.draining);
        cmd(NodeCommand::Drain {
            node: b.info.id.clone(),
        })
        .await
        .unwrap();
        let n = get(&b.info.id).await;
        assert!(n.cordoned && n.draining);
        cmd(NodeCommand::Uncordon {
            node: "rack-b".into(),
        })
        .await
        .unwrap();
        let n = get(&b.info.id).await;
        assert!(!n.cordoned && !n.draining);
        assert!(cmd(NodeCommand::Cordon {
            node: "rack-z".into()
        })
        .await
        .is_err());
        // A running group on rack-a: rm refused, then forced.
        let group = berth_core::GroupRecord {
            node: Some(a.info.id.clone()),
            ..berth_core::GroupRecord::new(
                berth_core::GroupId::from_random([1; 20]),
                "acct",
                berth_core::GroupSpec {
                    name: "g".into(),
                    region_id: "local".into(),
                    cpu: 1.0,
                    memory: 1.0,
                    ..Default::default()
                },
                chrono::Utc::now(),
            )
        };
        store.insert_group(&group).await.unwrap();
        let rm = |force| NodeCommand::Rm {
            node: "rack-a".into(),
            force,
        };
        let err = cmd(rm(false)).await.unwrap_err().to_string();
        assert!(err.contains("1 unfinished group"), "{err}");
        assert!(store.get_node(&a.info.id).await.unwrap().is_some());
        cmd(rm(true)).await.unwrap();
        assert!(store.get_node(&a.info.id).await.unwrap().is_none());
        assert!(cmd(rm(true)).await.is_err());
        // No group on rack-b: removed at once.
        cmd(NodeCommand::Rm {
            node: "rack-b".into(),
            force: false,
        })
        .await
        .unwrap();
        assert!(store.list_nodes().await.unwrap().is_empty());
    }
}
