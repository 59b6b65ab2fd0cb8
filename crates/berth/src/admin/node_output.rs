//! What `berth admin node …` prints: tables and short text for people, one JSON or YAML
//! document for scripts (`-o json|yaml`, fields in docs/CLI.md).

use berth_core::{JoinToken, NodeInfo};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::output::{time, Output};
use crate::ui::table::Cell;
use crate::ui::Table;

pub(super) struct NodeOutput<'a>(pub(super) &'a Output);

/// Whether groups are placed on the node: `Schedulable`, `Cordoned` or `Draining`.
fn scheduling(n: &NodeInfo) -> &'static str {
    if n.draining {
        "Draining"
    } else if n.cordoned {
        "Cordoned"
    } else {
        "Schedulable"
    }
}

/// `admin node ls -o json|yaml`.
fn nodes_json(list: &[NodeInfo]) -> Value {
    json!(list
        .iter()
        .map(|n| json!({
            "NodeId": n.id,
            "Name": n.name,
            "Address": n.address,
            "State": n.state.as_str(),
            "Cordoned": n.cordoned,
            "Draining": n.draining,
            "CpuMilli": n.offer.capacity.cpu_milli,
            "MemoryMiB": n.offer.capacity.memory_mib,
            "Containers": n.offer.capacity.containers,
            "StorageBytes": n.offer.storage_bytes,
            "StorageFreeBytes": n.offer.storage_free_bytes,
            "RuntimeClasses": n.offer.runtime_classes,
            "Tls": n.offer.tls,
            "Images": n.offer.images.len(),
            "HostPathPrefixes": n.offer.volumes.host_path_prefixes().collect::<Vec<_>>(),
            "NfsServers": n.offer.volumes.nfs_servers().collect::<Vec<_>>(),
            "JoinTime": time(n.joined),
            "LastHeartbeatTime": time(n.last_heartbeat),
        }))
        .collect::<Vec<_>>())
}

/// `admin node token ls -o json|yaml`.
fn tokens_json(list: &[JoinToken], now: DateTime<Utc>) -> Value {
    json!(list
        .iter()
        .map(|t| json!({
            "TokenId": t.id,
            "Description": t.description,
            "CreationTime": time(t.created),
            "ExpireTime": time(t.expires),
            "Expired": t.expires <= now,
        }))
        .collect::<Vec<_>>())
}

impl NodeOutput<'_> {
    pub(super) fn nodes(&self, list: &[NodeInfo]) {
        if self.0.document(nodes_json(list)) {
            return;
        }
        let mut t = Table::new(&[
            "ID",
            "NAME",
            "ADDRESS",
            "STATE",
            "SCHEDULING",
            "CPU",
            "MEMORY",
            "LAST HEARTBEAT",
        ]);
        for n in list {
            let room = n.offer.capacity;
            let cpu = format!("{}", room.cpu_milli as f64 / 1000.0);
            let memory = format!("{} GiB", room.memory_mib as f64 / 1024.0);
            t.row(vec![
                n.id.clone().into(),
                n.name.clone().into(),
                n.address.clone().into(),
                Cell::status(n.state.as_str()),
                scheduling(n).into(),
                cpu.into(),
                memory.into(),
                time(n.last_heartbeat).into(),
            ]);
        }
        t.print();
    }

    pub(super) fn node_changed(&self, n: &NodeInfo, what: &str) {
        if !self
            .0
            .document(json!({"NodeId": n.id, "Name": n.name, "Result": what}))
        {
            println!("{what} node {} ({})", n.name, n.id);
        }
    }

    pub(super) fn new_token(&self, t: &JoinToken, secret: &str) {
        let token = format!("{}.{secret}", t.id);
        if self.0.document(json!({
            "TokenId": t.id,
            "Token": token,
            "ExpireTime": time(t.expires),
        })) {
            return;
        }
        println!("Token:   {token}");
        println!("Expires: {}", time(t.expires));
        eprintln!("berth: the token is shown only this once; keep it now");
    }

    pub(super) fn tokens(&self, list: &[JoinToken], now: DateTime<Utc>) {
        if self.0.document(tokens_json(list, now)) {
            return;
        }
        let mut t = Table::new(&["ID", "DESCRIPTION", "CREATED", "EXPIRES", "EXPIRED"]);
        for k in list {
            t.row(vec![
                k.id.clone().into(),
                k.description.clone().into(),
                time(k.created).into(),
                time(k.expires).into(),
                if k.expires <= now { "yes" } else { "no" }.into(),
            ]);
        }
        t.print();
    }

    pub(super) fn token_removed(&self, id: &str) {
        if !self.0.document(json!({"TokenId": id, "Result": "deleted"})) {
            println!("deleted join token {id}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn json_shapes() {
        let node = NodeInfo {
            id: "node-0123456789abcdef".into(),
            name: "rack1-a".into(),
            address: "10.0.0.5:7070".into(),
            state: berth_core::NodeState::Ready,
            cordoned: true,
            draining: false,
            offer: berth_core::NodeOffer {
                capacity: berth_core::placement::Room {
                    cpu_milli: 8000,
                    memory_mib: 16384,
                    containers: 1000,
                },
                storage_bytes: 1 << 40,
                runtime_classes: vec!["runc".into()],
                ..Default::default()
            },
            joined: at("2026-12-04T12:00:00Z"),
            last_heartbeat: at("2026-12-04T12:05:00Z"),
        };
        let v = nodes_json(&[node]);
        assert_eq!(v[0]["NodeId"], "node-0123456789abcdef");
        assert_eq!(v[0]["State"], "Ready");
        assert_eq!(v[0]["Cordoned"], true);
        assert_eq!(v[0]["CpuMilli"], 8000);
        assert_eq!(v[0]["LastHeartbeatTime"], "2026-12-04T12:05:00Z");
        let token = JoinToken {
            id: "abc123".into(),
            digest: "00".repeat(32),
            description: "ci".into(),
            created: at("2026-12-04T12:00:00Z"),
            expires: at("2026-12-05T12:00:00Z"),
        };
        let before = tokens_json(std::slice::from_ref(&token), at("2026-12-05T11:59:59Z"));
        assert_eq!(before[0]["Expired"], false);
        assert_eq!(before[0]["ExpireTime"], "2026-12-05T12:00:00Z");
        assert!(before[0].get("Digest").is_none(), "no digest is shown");
        let after = tokens_json(&[token], at("2026-12-05T12:00:00Z"));
        assert_eq!(after[0]["Expired"], true);
    }
}
