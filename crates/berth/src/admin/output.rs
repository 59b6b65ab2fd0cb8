//! What `berth admin` prints: short text for people, or one JSON document for scripts
//! (`-o json`). A new key's JSON is a credentials file as `--credentials` reads it.

use berth_store::{AccessKey, Account, KeyInfo};
use serde_json::json;

pub(super) struct Output {
    json: bool,
}

fn status(disabled: bool) -> &'static str {
    if disabled {
        "Disabled"
    } else {
        "Enabled"
    }
}

/// An account's own limit, or `default` (the server's).
fn limit<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "default".to_string(), |v| v.to_string())
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Output {
    pub(super) fn new(format: &str) -> Self {
        Self {
            json: format == "json",
        }
    }

    fn print(&self, v: serde_json::Value) {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }

    pub(super) fn account_changed(&self, name: &str, what: &str) {
        if self.json {
            self.print(json!({"Account": name, "Result": what}));
        } else {
            println!("{what} account {name}");
        }
    }

    pub(super) fn accounts(&self, list: &[Account]) {
        if self.json {
            self.print(json!(list
                .iter()
                .map(|a| json!({
                    "Name": a.name,
                    "Status": status(a.disabled),
                    "Keys": a.keys,
                    "CreationTime": time(a.created),
                    "MaxCpu": a.quota.cpu,
                    "MaxMemory": a.quota.memory,
                    "MaxContainerGroupCount": a.quota.groups,
                    "MaxImageCacheCount": a.quota.image_caches,
                    "MaxEphemeralStorage": a.quota.storage,
                    "Operator": a.operator,
                }))
                .collect::<Vec<_>>()));
            return;
        }
        println!(
            "{:<32}  {:<8}  {:>4}  {:<20}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
            "NAME", "STATUS", "KEYS", "CREATED", "CPU", "MEMORY", "GROUPS", "CACHES", "STORAGE"
        );
        for a in list {
            let q = &a.quota;
            println!(
                "{:<32}  {:<8}  {:>4}  {:<20}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
                a.name,
                status(a.disabled),
                a.keys,
                time(a.created),
                limit(q.cpu),
                limit(q.memory),
                limit(q.groups),
                limit(q.image_caches),
                limit(q.storage)
            );
        }
    }

    pub(super) fn new_key(&self, key: &AccessKey) {
        if self.json {
            self.print(json!({
                "Account": key.account,
                "AccessKeyId": key.access_key_id,
                "AccessKeySecret": key.secret,
            }));
        } else {
            println!("Account:         {}", key.account);
            println!("AccessKeyId:     {}", key.access_key_id);
            println!("AccessKeySecret: {}", key.secret);
            eprintln!("berth: the secret is shown only this once; keep it now");
        }
    }

    pub(super) fn keys(&self, list: &[KeyInfo]) {
        if self.json {
            self.print(json!(list
                .iter()
                .map(|k| json!({
                    "AccessKeyId": k.access_key_id,
                    "Account": k.account,
                    "Status": status(k.disabled),
                    "CreationTime": time(k.created),
                }))
                .collect::<Vec<_>>()));
            return;
        }
        println!("{:<32}  {:<8}  CREATED", "ACCESS KEY ID", "STATUS");
        for k in list {
            println!(
                "{:<32}  {:<8}  {}",
                k.access_key_id,
                status(k.disabled),
                time(k.created)
            );
        }
    }

    pub(super) fn key_changed(&self, account: &str, id: &str, what: &str) {
        if self.json {
            self.print(json!({"Account": account, "AccessKeyId": id, "Result": what}));
        } else {
            println!("{what} access key {id} of account {account}");
        }
    }
}
