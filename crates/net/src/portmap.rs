//! Published ports: the CNI `portmap` plugin, run alone for a group whose namespace is
//! already wired (from the pool or not), with the chain's result as `prevResult`.
//!
//! The plugin's configuration is written into the group's record before its ADD runs, under
//! the group's id (not the pool name the namespace was wired under), so that a teardown —
//! after a delete, a failed ADD or a crash — runs the DEL that removes exactly the plugin's
//! rules for the group (its `CNI-DN-…` chain and the jumps to it). A restarted berth finds
//! the record and leaves the rules, which stayed in the kernel, as they are.
//!
//! With `snat` the plugin masquerades connections to a published port made from the host
//! itself (from 127.0.0.1 too: it sets `route_localnet` on the bridge), so the group answers
//! to the bridge's gateway address, which the isolation tables let through as the host's.
//! What the plugin shares between groups — the `CNI-HOSTPORT-*` chains and the jumps of the
//! nat table's built-in chains to them — is removed with the network's other host state when
//! no group is left ([`remove_shared_chains`]).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::cache::{self, Record};
use crate::cni::{Invocation, Op};
use crate::config::ConfList;
use crate::error::NetError;
use crate::network::{validate_id, Network};

/// The most ports one group may have published.
pub const MAX_MAPPINGS: usize = 64;

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address the port is published on.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    /// UDP, else TCP.
    pub udp: bool,
}

/// The plugin's configuration for `ports`.
fn plugin_conf(ports: &[PortMapping]) -> Value {
    let mappings: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": if p.udp { "udp" } else { "tcp" },
                "hostIP": p.host_ip.to_string(),
            })
        })
        .collect();
    json!({
        "type": "portmap",
        "capabilities": { "portMappings": true },
        "snat": true,
        "runtimeConfig": { "portMappings": mappings },
    })
}

impl Network {
    /// Publishes `ports` of the wired group `id` (none: unpublishes). Repeating it with the
    /// same ports changes nothing; on failure nothing of it is left.
    pub async fn publish(&self, id: &str, ports: &[PortMapping]) -> Result<(), NetError> {
        validate_id(id)?;
        if ports.len() > MAX_MAPPINGS {
            return Err(NetError::InvalidConfig {
                reason: format!(
                    "{} published ports asked, at most {MAX_MAPPINGS}",
                    ports.len()
                ),
            });
        }
        let Some(mut rec) = cache::read(&self.cfg.state_dir, id) else {
            return Err(NetError::NoAddress { id: id.to_owned() });
        };
        let conf = (!ports.is_empty()).then(|| plugin_conf(ports));
        if rec.portmap == conf {
            return Ok(());
        }
        let netns = self.live_netns(id, &rec.attachment.netns);
        if rec.portmap.is_some() {
            self.unpublish(id, &rec, netns.as_deref()).await?;
            rec.portmap = None;
            cache::write(&self.cfg.state_dir, id, &rec)?;
        }
        let Some(conf) = conf else {
            return Ok(());
        };
        // Recorded first: whatever happens next, a teardown runs the DEL.
        rec.portmap = Some(conf);
        cache::write(&self.cfg.state_dir, id, &rec)?;
        if let Err(err) = self.run_portmap(Op::Add, id, &rec, netns.as_deref()).await {
            tracing::warn!(id, error = %err, "publishing the group's ports failed, undoing it");
            if let Err(undo) = self.unpublish(id, &rec, netns.as_deref()).await {
                tracing::warn!(id, error = %undo, "undoing a failed publication failed");
                return Err(err);
            }
            rec.portmap = None;
            cache::write(&self.cfg.state_dir, id, &rec)?;
            return Err(err);
        }
        Ok(())
    }

    /// Runs the portmap DEL of a record that has published ports; safe to repeat.
    pub(crate) async fn unpublish(
        &self,
        id: &str,
        rec: &Record,
        netns: Option<&Path>,
    ) -> Result<(), NetError> {
        if rec.portmap.is_none() {
            return Ok(());
        }
        self.run_portmap(Op::Del, id, rec, netns).await
    }

    async fn run_portmap(
        &self,
        op: Op,
        id: &str,
        rec: &Record,
        netns: Option<&Path>,
    ) -> Result<(), NetError> {
        let Some(conf) = &rec.portmap else {
            return Ok(());
        };
        let list = ConfList {
            cni_version: rec.config.cni_version.clone(),
            name: rec.config.name.clone(),
            plugins: vec![conf.clone()],
        };
        let inv = Invocation {
            op,
            container_id: id,
            netns: netns.unwrap_or(Path::new("")),
            cni_path: &self.cni_path,
        };
        self.run_plugin(&list, conf, inv, Some(&rec.result))
            .await
            .map(|_| ())
    }
}

/// The chains the portmap plugin shares between all its containers.
const SHARED_PREFIX: &str = "CNI-HOSTPORT-";

/// Removes what the portmap plugin shares between containers — its `CNI-HOSTPORT-*` chains
/// of the nat table and the built-in chains' jumps to them — when no container has a port
/// mapped any more (the `CNI-HOSTPORT-DNAT` chain is empty), and turns `route_localnet` of
/// the bridge off again. Called when no group is left; failures are logged.
pub(crate) fn remove_shared_chains(bridge: &str) {
    for (save, restore) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        let Ok(out) = Command::new(save)
            .args(["-t", "nat"])
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let Some(script) = shared_removal(&String::from_utf8_lossy(&out.stdout)) else {
            continue;
        };
        if let Err(e) = restore_noflush(restore, &script) {
            tracing::warn!(error = %e, "cannot remove the portmap plugin's shared chains");
        }
    }
    let knob = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    if !bridge.contains('/') && Path::new(&knob).exists() {
        let _ = std::fs::write(&knob, "0");
    }
}

/// The `iptables-restore --noflush` script that removes the shared chains of `save` (the nat
/// table as `iptables-save` prints it), or `None` when there are none or some container
/// still has a mapping.
fn shared_removal(save: &str) -> Option<String> {
    let chains: Vec<&str> = save
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with(SHARED_PREFIX))
        .collect();
    if chains.is_empty() {
        return None;
    }
    let in_use = save.lines().any(|l| {
        l.starts_with(&format!("-A {SHARED_PREFIX}DNAT "))
            || l.starts_with("-A CNI-DN-")
            || l.starts_with(":CNI-DN-")
    });
    if in_use {
        return None;
    }
    let mut script = String::from("*nat\n");
    for line in save.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let jumps_to_shared = rule
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "-j" && w[1].starts_with(SHARED_PREFIX));
        let chain = rule.split_whitespace().next().unwrap_or("");
        if jumps_to_shared && !chain.starts_with(SHARED_PREFIX) {
            script.push_str(&format!("-D {rule}\n"));
        }
    }
    for c in &chains {
        script.push_str(&format!("-F {c}\n"));
    }
    for c in &chains {
        script.push_str(&format!("-X {c}\n"));
    }
    script.push_str("COMMIT\n");
    Some(script)
}

fn restore_noflush(binary: &str, script: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut child = Command::new(binary)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{binary} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_become_the_plugins_runtime_config() {
        let conf = plugin_conf(&[PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 30080,
            container_port: 80,
            udp: false,
        }]);
        assert_eq!(conf["type"], "portmap");
        assert_eq!(conf["snat"], true);
        let m = &conf["runtimeConfig"]["portMappings"][0];
        assert_eq!(
            (
                &m["hostPort"],
                &m["containerPort"],
                &m["protocol"],
                &m["hostIP"]
            ),
            (
                &json!(30080),
                &json!(80),
                &json!("tcp"),
                &json!("127.0.0.1")
            )
        );
    }

    const SHARED: &str = "*nat\n\
        :PREROUTING ACCEPT [0:0]\n\
        :OUTPUT ACCEPT [0:0]\n\
        :POSTROUTING ACCEPT [0:0]\n\
        :CNI-HOSTPORT-DNAT - [0:0]\n\
        :CNI-HOSTPORT-MASQ - [0:0]\n\
        :CNI-HOSTPORT-SETMARK - [0:0]\n\
        -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
        -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
        -A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ\n\
        -A POSTROUTING -s 10.0.0.0/16 -j MASQUERADE\n\
        -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE\n\
        -A CNI-HOSTPORT-SETMARK -j MARK --set-xmark 0x2000/0x2000\n\
        COMMIT\n";

    #[test]
    fn idle_shared_chains_are_removed_with_their_jumps() {
        let script = shared_removal(SHARED).expect("something to remove");
        assert!(script.contains("-D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n"));
        assert!(script.contains(
            "-D POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ\n"
        ));
        assert!(!script.contains("MASQUERADE\n-D") && !script.contains("10.0.0.0/16"));
        assert!(script.contains("-X CNI-HOSTPORT-SETMARK\n"));
        assert!(script.ends_with("COMMIT\n"));
    }

    #[test]
    fn chains_in_use_or_absent_stay() {
        let busy = SHARED.replace(
            "COMMIT",
            "-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-abc\nCOMMIT",
        );
        assert!(shared_removal(&busy).is_none());
        assert!(shared_removal("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").is_none());
    }
}
