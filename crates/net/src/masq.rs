//! Removal of masquerade rules the bridge plugin can no longer remove itself.
//!
//! The bridge plugin finds a group's addresses for its DEL in the group's
//! namespace; when that namespace is already gone, its per-group NAT chain and
//! POSTROUTING jump stay behind. They carry the comment
//! `name: "<network>" id: "<group>"`, which is how they are found here.

use std::net::IpAddr;

use tokio::process::Command;

use crate::error::NetError;

/// Deletes the group's POSTROUTING jumps and the chains they lead to.
pub async fn remove_leftovers(network: &str, id: &str, ip: IpAddr) -> Result<(), NetError> {
    let tool = if ip.is_ipv4() {
        "iptables"
    } else {
        "ip6tables"
    };
    let listing = run(tool, &["-w", "-t", "nat", "-S", "POSTROUTING"]).await?;
    let comment = format!("name: \"{network}\" id: \"{id}\"");
    let printed = format!("--comment \"name: \\\"{network}\\\" id: \\\"{id}\\\"\"");
    for line in listing.lines().filter(|line| line.contains(&printed)) {
        let mut words = line.split_whitespace();
        let source = words.clone().skip_while(|w| *w != "-s").nth(1);
        let chain = words.by_ref().skip_while(|w| *w != "-j").nth(1);
        let (Some(source), Some(chain)) = (source, chain) else {
            continue;
        };
        let rule = [
            "-w",
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-s",
            source,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            chain,
        ];
        run(tool, &rule).await?;
        if chain.starts_with("CNI-") {
            run(tool, &["-w", "-t", "nat", "-F", chain]).await?;
            run(tool, &["-w", "-t", "nat", "-X", chain]).await?;
        }
        tracing::info!(
            network,
            id,
            chain,
            "removed masquerade rules left by a lost namespace"
        );
    }
    Ok(())
}

async fn run(tool: &'static str, args: &[&str]) -> Result<String, NetError> {
    let out = Command::new(tool)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| NetError::ToolSpawn { tool, source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Tool {
            tool,
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
