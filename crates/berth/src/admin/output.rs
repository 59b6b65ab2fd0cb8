//! What `berth admin` prints: short text and tables for people, or one JSON or YAML
//! document for scripts (`-o json|yaml`, fields in docs/CLI.md). A new key's JSON is a
//! credentials file as `--credentials` reads it.

use berth_store::{AccessKey, Account, KeyInfo};
use serde_json::{json, Value};

use crate::ui::table::Cell;
use crate::ui::{Format, Table};

pub(super) struct Output {
    format: Format,
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

pub(super) fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `admin account ls -o json|yaml`.
fn accounts_json(list: &[Account]) -> Value {
    json!(list
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
        .collect::<Vec<_>>())
}

/// `admin key ls -o json|yaml`.
fn keys_json(list: &[KeyInfo]) -> Value {
    json!(list
        .iter()
        .map(|k| json!({
            "AccessKeyId": k.access_key_id,
            "Account": k.account,
            "Status": status(k.disabled),
            "CreationTime": time(k.created),
        }))
        .collect::<Vec<_>>())
}

impl Output {
    pub(super) fn new(format: Format) -> Self {
        Self { format }
    }

    /// Prints `v` as JSON or YAML; false for the table format.
    pub(super) fn document(&self, v: Value) -> bool {
        match self.format {
            Format::Table => false,
            Format::Json => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                true
            }
            Format::Yaml => {
                print!("{}", crate::ui::yaml::to_string(&v));
                true
            }
        }
    }

    pub(super) fn account_changed(&self, name: &str, what: &str) {
        if !self.document(json!({"Account": name, "Result": what})) {
            println!("{what} account {name}");
        }
    }

    pub(super) fn accounts(&self, list: &[Account]) {
        if self.document(accounts_json(list)) {
            return;
        }
        let mut t = Table::new(&[
            "NAME", "STATUS", "KEYS", "CREATED", "CPU", "MEMORY", "GROUPS", "CACHES", "STORAGE",
        ]);
        for a in list {
            let q = &a.quota;
            t.row(vec![
                a.name.clone().into(),
                Cell::status(status(a.disabled)),
                a.keys.to_string().into(),
                time(a.created).into(),
                limit(q.cpu).into(),
                limit(q.memory).into(),
                limit(q.groups).into(),
                limit(q.image_caches).into(),
                limit(q.storage).into(),
            ]);
        }
        t.print();
    }

    pub(super) fn new_key(&self, key: &AccessKey) {
        if self.document(json!({
            "Account": key.account,
            "AccessKeyId": key.access_key_id,
            "AccessKeySecret": key.secret,
        })) {
            return;
        }
        println!("Account:         {}", key.account);
        println!("AccessKeyId:     {}", key.access_key_id);
        println!("AccessKeySecret: {}", key.secret);
        eprintln!("berth: the secret is shown only this once; keep it now");
    }

    pub(super) fn keys(&self, list: &[KeyInfo]) {
        if self.document(keys_json(list)) {
            return;
        }
        let mut t = Table::new(&["ACCESS KEY ID", "STATUS", "CREATED"]);
        for k in list {
            t.row(vec![
                k.access_key_id.clone().into(),
                Cell::status(status(k.disabled)),
                time(k.created).into(),
            ]);
        }
        t.print();
    }

    pub(super) fn key_changed(&self, account: &str, id: &str, what: &str) {
        if !self.document(json!({"Account": account, "AccessKeyId": id, "Result": what})) {
            println!("{what} access key {id} of account {account}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn json_shapes() {
        let accounts = [Account {
            name: "team-a".into(),
            disabled: false,
            created: at(),
            keys: 2,
            quota: berth_store::QuotaOverrides {
                cpu: Some(16.0),
                ..Default::default()
            },
            operator: false,
        }];
        let keys = [KeyInfo {
            access_key_id: "LTAI0123456789abcdefghij".into(),
            account: "team-a".into(),
            disabled: true,
            created: at(),
        }];
        let doc = |v: Value| {
            crate::ui::format::document(Format::Json, &v)
                .unwrap()
                .unwrap()
        };
        insta::assert_snapshot!("accounts", doc(accounts_json(&accounts)));
        insta::assert_snapshot!("keys", doc(keys_json(&keys)));
    }
}
