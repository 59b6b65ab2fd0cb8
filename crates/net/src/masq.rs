//! Masquerading of the groups' outbound traffic.
//!
//! berth installs one `nat POSTROUTING` rule for its whole subnet when the
//! network opens ([`ensure_subnet_rule`]) and removes it when the network is
//! released with no group left. Groups wired by older configurations (the
//! bridge plugin's `ipMasq`, one chain per group) are still undone: the plugin
//! finds a group's addresses for its DEL in the group's namespace, and when
//! that namespace is already gone its chain and POSTROUTING jump stay behind.
//! They carry the comment `name: "<network>" id: "<group>"`, which is how
//! [`remove_leftovers`] finds them.

use std::net::IpAddr;

use tokio::process::Command;

/// The rule's comment, which also tells berth's rules for different subnets apart.
fn subnet_comment(network: &str, subnet: &str) -> String {
    format!("berth network {network} {subnet}")
}

/// `iptables` or `ip6tables`, for the address family of `subnet`.
fn tool_for(subnet: &str) -> &'static str {
    if subnet.contains(':') {
        "ip6tables"
    } else {
        "iptables"
    }
}

/// The rule, after the `-C`/`-A`/`-D` and chain arguments.
fn subnet_rule(network: &str, subnet: &str) -> Vec<String> {
    [
        "-s",
        subnet,
        "!",
        "-d",
        subnet,
        "-m",
        "comment",
        "--comment",
        &subnet_comment(network, subnet),
        "-j",
        "MASQUERADE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_sync(tool: &'static str, op: &str, network: &str, subnet: &str) -> Result<bool, NetError> {
    let mut args = vec!["-w".to_owned(), "-t".into(), "nat".into(), op.into()];
    args.push("POSTROUTING".into());
    args.extend(subnet_rule(network, subnet));
    let out = std::process::Command::new(tool)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| NetError::ToolSpawn { tool, source })?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // `-C` and `-D` exit with 1 when the rule is not there.
    if op != "-A" && out.status.code() == Some(1) {
        return Ok(false);
    }
    Err(NetError::Tool {
        tool,
        args: args.join(" "),
        stderr,
    })
}

/// Masquerades traffic from `subnet` to anywhere outside it, once; repeating it is fine.
pub fn ensure_subnet_rule(network: &str, subnet: &str) -> Result<(), NetError> {
    let tool = tool_for(subnet);
    if !run_sync(tool, "-C", network, subnet)? {
        run_sync(tool, "-A", network, subnet)?;
        tracing::info!(
            network,
            subnet,
            "installed the masquerade rule of the subnet"
        );
    }
    Ok(())
}

/// Removes the subnet's masquerade rule (every copy of it); a missing rule is fine.
pub fn remove_subnet_rule(network: &str, subnet: &str) -> Result<(), NetError> {
    let tool = tool_for(subnet);
    while run_sync(tool, "-D", network, subnet)? {}
    Ok(())
}

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
