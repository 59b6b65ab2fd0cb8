//! The network of one node: setup and teardown of container groups.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cache::{self, Record};
use crate::cni::{self, Invocation, Op, IFNAME};
use crate::config::{self, ConfList, NetConfig};
use crate::error::NetError;
use crate::ipam::Addresses;
use crate::isolation::{Isolation, Port};
use crate::masq;
use crate::netns;
use crate::pool::{is_warm, Pool};
use crate::result::{attachment_from_result, Attachment};

/// The longest a group waits to be admitted to its account's network while other groups
/// start.
const ADMIT_DEFER: std::time::Duration = std::time::Duration::from_millis(250);

/// Longest accepted group id.
const MAX_ID_LEN: usize = 200;

/// Wires container groups into the node's bridge network.
#[derive(Debug)]
pub struct Network {
    pub(crate) cfg: NetConfig,
    list: ConfList,
    binaries: HashMap<String, PathBuf>,
    pub(crate) cni_path: String,
    pub(crate) pool: Pool,
    pub(crate) addresses: Addresses,
    isolation: Option<Isolation>,
}

impl Network {
    /// Checks the plugin binaries, prepares the state and namespace directories,
    /// writes the configuration list and installs the subnet's masquerade rule.
    pub fn new(mut cfg: NetConfig) -> Result<Self, NetError> {
        let list = ConfList::from_config(&cfg)?;
        let cap = config::pool_cap(&cfg.subnet).unwrap_or(0);
        if cfg.pool_size > cap {
            tracing::warn!(
                asked = cfg.pool_size,
                cap,
                subnet = %cfg.subnet,
                "namespace pool limited to a quarter of the subnet's addresses"
            );
            cfg.pool_size = cap;
        }
        let binaries = list
            .binaries()
            .into_iter()
            .map(|name| config::find_plugin(&cfg.cni_bin_dirs, &name).map(|path| (name, path)))
            .collect::<Result<HashMap<_, _>, _>>()?;
        for dir in [
            cfg.state_dir.clone(),
            config::ipam_dir(&cfg.state_dir),
            cache::dir(&cfg.state_dir),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| NetError::Io {
                step: "creating network state directory",
                path: dir,
                source,
            })?;
        }
        write_conflist(&cfg, &list)?;
        let addresses = Addresses::load(
            &cfg.subnet,
            &config::addresses_dir(&cfg.state_dir),
            &config::ipam_dir(&cfg.state_dir).join(&cfg.network_name),
        )?;
        tracing::debug!(taken = addresses.taken(), subnet = %cfg.subnet, "address reservations read");
        netns::prepare_dir(&cfg.netns_dir)?;
        masq::ensure_subnet_rule(&cfg.network_name, &cfg.subnet)?;
        let isolation = match &cfg.isolation {
            Some(iso) => {
                let iso = Isolation::new(&cfg.bridge, &cfg.state_dir, iso.clone())?;
                // Replaced in one transaction: what runs stays isolated across the restart.
                let ports: Vec<Port> = cache::ids(&cfg.state_dir)
                    .iter()
                    .filter_map(|id| cache::read(&cfg.state_dir, id))
                    .map(|rec| port_of(&rec))
                    .collect();
                iso.install(&ports)?;
                tracing::info!(bridge = %cfg.bridge, groups = ports.len(), "isolation tables installed");
                Some(iso)
            }
            None => None,
        };
        let cni_path = cfg
            .cni_bin_dirs
            .iter()
            .filter(|dir| dir.is_dir())
            .filter_map(|dir| dir.to_str())
            .collect::<Vec<_>>()
            .join(":");
        Ok(Self {
            cfg,
            list,
            binaries,
            cni_path,
            pool: Pool::default(),
            addresses,
            isolation,
        })
    }

    /// Releases what the network holds for itself — the namespace directory's own mount and
    /// the subnet's masquerade rule — when no namespace is left (call [`Network::drain_pool`]
    /// first). With groups still wired, both stay for them.
    pub fn release(&self) -> Result<(), NetError> {
        let busy = std::fs::read_dir(&self.cfg.netns_dir)
            .map(|mut rd| rd.next().is_some())
            .unwrap_or(false);
        if busy {
            return Ok(());
        }
        masq::remove_subnet_rule(&self.cfg.network_name, &self.cfg.subnet)?;
        crate::portmap::remove_shared_chains(&self.cfg.bridge);
        if let Some(iso) = &self.isolation {
            iso.remove()?;
        }
        netns::release_dir(&self.cfg.netns_dir)
    }

    /// Creates the group's namespace and wires it in; undoes everything on failure.
    pub async fn setup(&self, id: &str) -> Result<Attachment, NetError> {
        validate_id(id)?;
        let path = self.netns_path(id);
        if cache::read(&self.cfg.state_dir, id).is_some() {
            return Err(NetError::AlreadyExists {
                id: id.to_owned(),
                path,
            });
        }
        // Before anything exists on the host: a crash from here on leaves the intent, and
        // the next attach DELs what this ADD may have reserved before it ADDs again.
        cache::write_intent(&self.cfg.state_dir, id, &self.list)?;
        let started = std::time::Instant::now();
        let created = netns::create(path.clone()).await.map_err(|err| match err {
            NetError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                NetError::AlreadyExists {
                    id: id.to_owned(),
                    path: path.clone(),
                }
            }
            other => other,
        });
        if let Err(err) = created {
            let _ = cache::remove_intent(&self.cfg.state_dir, id);
            return Err(err);
        }
        let netns_done = started.elapsed();
        match self.wire(id, &path).await {
            Ok(attachment) => {
                cache::remove_intent(&self.cfg.state_dir, id)?;
                tracing::debug!(
                    id,
                    ip = %attachment.ip,
                    netns_us = netns_done.as_micros() as u64,
                    total_us = started.elapsed().as_micros() as u64,
                    "network set up"
                );
                Ok(attachment)
            }
            Err(err) => {
                tracing::warn!(id, error = %err, "network setup failed, undoing it");
                if let Err(undo) = self.teardown(id).await {
                    tracing::warn!(id, error = %undo, "undoing a failed network setup failed");
                }
                Err(err)
            }
        }
    }

    /// Unwires the group and removes its namespace and cached result.
    ///
    /// Repeating it is fine. When a plugin's DEL fails, the namespace and the
    /// cached result are kept so that a later call can finish the job.
    pub async fn teardown(&self, id: &str) -> Result<(), NetError> {
        validate_id(id)?;
        let own_path = self.netns_path(id);
        let record = cache::read(&self.cfg.state_dir, id);
        let intended = match &record {
            Some(_) => None,
            None => cache::read_intent(&self.cfg.state_dir, id).flatten(),
        };
        let (list, prev, cni_id, live) = match &record {
            Some(rec) => (
                &rec.config,
                Some(&rec.result),
                rec.container_id.as_str(),
                self.live_netns(id, &rec.attachment.netns),
            ),
            None => (
                intended.as_ref().unwrap_or(&self.list),
                None,
                id,
                netns::is_pinned(&own_path).then(|| own_path.clone()),
            ),
        };
        // Plugins refuse a namespace path that is not an nsfs file; without one they still
        // release the address and skip the in-namespace work.
        let inv = Invocation {
            op: Op::Del,
            container_id: cni_id,
            netns: live.as_deref().unwrap_or(Path::new("")),
            cni_path: &self.cni_path,
        };
        if let Some(rec) = &record {
            self.unpublish(id, rec, live.as_deref()).await?;
        }
        if plain_del(list) {
            // Without a namespace there is nothing to remove: the `static` DEL is a no-op.
            if let Some(ns) = live.as_deref() {
                let if_name = record.as_ref().map_or(IFNAME, |rec| rec.if_name.as_str());
                let ns = ns.to_owned();
                let if_name = if_name.to_owned();
                tokio::task::spawn_blocking(move || crate::link::delete_in(&ns, &if_name))
                    .await
                    .map_err(|e| NetError::Io {
                        step: "deleting the group's interface",
                        path: own_path.clone(),
                        source: std::io::Error::other(e),
                    })??;
            }
        } else {
            for plugin in list.plugins.iter().rev() {
                self.run_plugin(list, plugin, inv, prev).await?;
            }
        }
        // After the DEL: until then the address may still be on the namespace's interface.
        self.addresses.release(cni_id)?;
        let mut resync = false;
        if let (Some(iso), Some(rec)) = (&self.isolation, &record) {
            if let Err(e) = iso.forget(&port_of(rec)) {
                tracing::warn!(id, error = %e, "cannot remove the group from the isolation tables; rebuilding them");
                resync = true;
            }
        }
        if let (None, Some(rec)) = (&live, &record) {
            if masquerades(&rec.config) {
                masq::remove_leftovers(&rec.config.name, cni_id, rec.attachment.ip).await?;
            }
        }
        if let Some(rec) = &record {
            let recorded = &rec.attachment.netns;
            if recorded.starts_with(&self.cfg.netns_dir) && recorded != &own_path {
                netns::remove(recorded)?;
            }
        }
        netns::remove(&own_path)?;
        self.drop_held(id);
        cache::remove(&self.cfg.state_dir, id)?;
        cache::remove_intent(&self.cfg.state_dir, id)?;
        if resync {
            self.resync_isolation()?;
        }
        Ok(())
    }

    /// Rebuilds the isolation tables from the records on disk, in one transaction.
    fn resync_isolation(&self) -> Result<(), NetError> {
        let Some(iso) = &self.isolation else {
            return Ok(());
        };
        let ports: Vec<Port> = cache::ids(&self.cfg.state_dir)
            .iter()
            .filter_map(|id| cache::read(&self.cfg.state_dir, id))
            .map(|rec| port_of(&rec))
            .collect();
        iso.install(&ports)
    }

    /// Whether `id` has no record but something of a setup that did not finish: its intent
    /// or its namespace file. [`Network::teardown`] undoes such a setup.
    pub(crate) fn interrupted(&self, id: &str) -> bool {
        cache::read_intent(&self.cfg.state_dir, id).is_some()
            || std::fs::symlink_metadata(self.netns_path(id)).is_ok()
    }

    /// Lets the wired group `id` reach the other groups of `account` (and them it). Until
    /// then it reaches no other group. Repeating it is fine.
    pub async fn admit(&self, id: &str, account: &str) -> Result<(), NetError> {
        validate_id(id)?;
        let Some(iso) = &self.isolation else {
            return Ok(());
        };
        let Some(mut rec) = cache::read(&self.cfg.state_dir, id) else {
            return Err(NetError::NoAddress { id: id.to_owned() });
        };
        let n = iso.account_number(account)?;
        if rec.account == Some(n) {
            return Ok(());
        }
        // Recorded before the elements exist, so that a teardown always finds them.
        rec.account = Some(n);
        cache::write(&self.cfg.state_dir, id, &rec)?;
        iso.enqueue(rec.attachment.ip, n);
        Ok(())
    }

    /// Applies queued admissions, forever: each batch once no group start is in progress
    /// (`starting`, the caller's count), or at the latest [`ADMIT_DEFER`] after it was queued,
    /// so that the nft run does not compete with the starting containers for the CPU.
    pub async fn admit_queued(&self, starting: &std::sync::atomic::AtomicUsize) {
        let Some(iso) = &self.isolation else {
            return std::future::pending().await;
        };
        loop {
            iso.wake.notified().await;
            let queued = std::time::Instant::now();
            while starting.load(std::sync::atomic::Ordering::Relaxed) > 0
                && queued.elapsed() < ADMIT_DEFER
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let res = tokio::task::block_in_place(|| iso.admit_pending());
            if let Err(e) = res {
                // An element left by a group whose removal could not reach nft: start over
                // from the records, which say what is true.
                tracing::warn!(error = %e, "cannot admit groups; rebuilding the isolation tables");
                if let Err(e) = self.resync_isolation() {
                    tracing::error!(error = %e, "cannot rebuild the isolation tables");
                }
            }
        }
    }

    /// The cached attachment of a wired group.
    pub fn attachment(&self, id: &str) -> Option<Attachment> {
        validate_id(id).ok()?;
        cache::read(&self.cfg.state_dir, id).map(|rec| rec.attachment)
    }

    /// Ids of groups that have a namespace file, a cached result or an unfinished setup,
    /// sorted; the pool's own namespaces are not among them.
    pub fn known(&self) -> Vec<String> {
        let mut ids: BTreeSet<String> = cache::ids(&self.cfg.state_dir).into_iter().collect();
        ids.extend(cache::intent_ids(&self.cfg.state_dir));
        if let Ok(entries) = std::fs::read_dir(&self.cfg.netns_dir) {
            ids.extend(
                entries
                    .flatten()
                    .filter_map(|entry| entry.file_name().into_string().ok()),
            );
        }
        ids.into_iter()
            .filter(|id| validate_id(id).is_ok() && !is_warm(id))
            .collect()
    }

    /// Reserves the group's address, runs the ADD with it — berth's own requests for its
    /// own list (`veth`), the plugin chain for any other — and caches its result.
    pub(crate) async fn wire(&self, id: &str, path: &Path) -> Result<Attachment, NetError> {
        let lease = self.addresses.reserve(id)?;
        let list = self.list.with_lease(&lease);
        let inv = Invocation {
            op: Op::Add,
            container_id: id,
            netns: path,
            cni_path: &self.cni_path,
        };
        let result = match crate::veth::Plan::of(&list) {
            // berth's own list: the plugins' requests, made here (`veth`).
            Some(plan) => {
                let netns = path.to_owned();
                tokio::task::spawn_blocking(move || crate::veth::add(&plan, &netns))
                    .await
                    .map_err(|e| NetError::Io {
                        step: "wiring the group's namespace",
                        path: path.to_owned(),
                        source: std::io::Error::other(e),
                    })??
            }
            None => {
                let mut prev: Option<Value> = None;
                for plugin in &list.plugins {
                    if let Some(result) = self.run_plugin(&list, plugin, inv, prev.as_ref()).await?
                    {
                        prev = Some(result);
                    }
                }
                prev.ok_or_else(|| NetError::NoAddress { id: id.to_owned() })?
            }
        };
        let attachment = attachment_from_result(&result, path.to_owned(), IFNAME, &self.cfg.bridge)
            .ok_or_else(|| NetError::NoAddress { id: id.to_owned() })?;
        let record = Record {
            container_id: id.to_owned(),
            if_name: IFNAME.to_owned(),
            config: list,
            result,
            attachment: attachment.clone(),
            account: None,
            portmap: None,
        };
        cache::write(&self.cfg.state_dir, id, &record)?;
        if let Some(iso) = &self.isolation {
            // Recorded first: a teardown after a failure here unbinds the port.
            iso.bind(&port_of(&record))?;
        }
        Ok(attachment)
    }

    pub(crate) async fn run_plugin(
        &self,
        list: &ConfList,
        plugin: &Value,
        inv: Invocation<'_>,
        prev: Option<&Value>,
    ) -> Result<Option<Value>, NetError> {
        let name = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let binary = match self.binaries.get(name) {
            Some(path) => path.clone(),
            None => config::find_plugin(&self.cfg.cni_bin_dirs, name)?,
        };
        let stdin = cni::plugin_config(list, plugin, prev)?;
        cni::run(&binary, name, inv, &stdin).await
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.netns_dir.join(id)
    }
}

fn write_conflist(cfg: &NetConfig, list: &ConfList) -> Result<(), NetError> {
    let path = config::conflist_path(&cfg.state_dir, &cfg.network_name);
    let bytes = serde_json::to_vec_pretty(list).map_err(|source| NetError::Encode {
        what: "cni configuration list",
        source,
    })?;
    let tmp = path.with_extension("conflist.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| NetError::Io {
            step: "writing cni configuration list",
            path,
            source,
        })
}

/// What isolation knows of a wired namespace.
fn port_of(rec: &Record) -> Port {
    Port {
        iface: rec.attachment.interface.clone(),
        ip: rec.attachment.ip,
        mac: rec.mac(),
        account: rec.account,
    }
}

/// Whether the DEL of `list` is only the removal of the group's interface in its namespace:
/// berth's own list (`bridge` with `static` addresses, which berth releases itself), without
/// masquerade or MAC spoof rules to remove. A list an earlier berth recorded (`host-local`)
/// runs its plugins.
fn plain_del(list: &ConfList) -> bool {
    let [bridge] = list.plugins.as_slice() else {
        return false;
    };
    let is = |v: Option<&Value>, want: &str| v.and_then(Value::as_str) == Some(want);
    let on = |key: &str| bridge.get(key).and_then(Value::as_bool) == Some(true);
    is(bridge.get("type"), "bridge")
        && is(bridge.pointer("/ipam/type"), "static")
        && !on("ipMasq")
        && !on("macspoofchk")
}

/// Whether a bridge plugin of the list installs masquerade rules.
fn masquerades(list: &ConfList) -> bool {
    list.plugins.iter().any(|plugin| {
        plugin.get("type").and_then(Value::as_str) == Some("bridge")
            && plugin.get("ipMasq").and_then(Value::as_bool) == Some(true)
    })
}

/// Accepts what CNI accepts as a container id, which is also a safe file name.
pub(crate) fn validate_id(id: &str) -> Result<(), NetError> {
    let invalid = |reason| {
        Err(NetError::InvalidId {
            id: id.to_owned(),
            reason,
        })
    };
    let mut chars = id.chars();
    match chars.next() {
        None => return invalid("empty"),
        Some(first) if !first.is_ascii_alphanumeric() => {
            return invalid("must start with a letter or digit")
        }
        Some(_) => {}
    }
    if id.len() > MAX_ID_LEN {
        return invalid("longer than 200 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return invalid("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("eci-abc123").is_ok());
        assert!(validate_id("a.b_c-1").is_ok());
        for bad in ["", "-a", ".", "..", "a/b", "a b", &"x".repeat(201)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_berths_own_list_skips_the_plugins_on_del() {
        let own = ConfList::from_config(&NetConfig::default()).expect("list");
        assert!(plain_del(&own));
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut list = own.clone();
            edit(&mut list.plugins[0]);
            plain_del(&list)
        };
        assert!(!with(&|b| b["ipMasq"] = Value::Bool(true)));
        assert!(!with(&|b| b["macspoofchk"] = Value::Bool(true)));
        assert!(!with(&|b| b["ipam"]["type"] = Value::from("host-local")));
        assert!(!with(&|b| b["type"] = Value::from("ptp")));
        let mut two = own.clone();
        two.plugins.push(serde_json::json!({"type": "portmap"}));
        assert!(!plain_del(&two));
    }

    #[test]
    fn new_names_the_missing_plugin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = NetConfig {
            state_dir: dir.path().join("state"),
            netns_dir: dir.path().join("netns"),
            cni_bin_dirs: vec![dir.path().join("bin")],
            ..NetConfig::default()
        };
        let err = Network::new(cfg).expect_err("no plugins there");
        assert!(
            matches!(&err, NetError::MissingPlugin { plugin, .. } if plugin == "bridge"),
            "{err}"
        );
    }
}
