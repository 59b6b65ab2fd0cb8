//! [`Control`]: create, describe, restart, delete and log reading of container groups, and
//! the folding of node reports into group records.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use berth_core::{
    derive_group_status, Event, EventType, GroupId, GroupRecord, GroupSpec, GroupStatus,
    ObservedGroup, RuntimeClass,
};
use berth_store::{GroupFilter, Page, QuotaExceeded, Store, StoreError, TokenKind};
use chrono::Utc;
use rand::RngCore;

use crate::{LogRequest, NodeClient, NodeError};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the container group {0} does not exist")]
    NotFound(String),
    #[error("the container group {id} is {status}; this operation needs it to be {needs}")]
    IncorrectStatus {
        id: String,
        status: &'static str,
        needs: &'static str,
    },
    #[error("the ClientToken was used before with different parameters")]
    TokenMismatch,
    #[error(
        "the container group {0} was changed by another request meanwhile; send the request again"
    )]
    ChangedMeanwhile(String),
    #[error("cannot encode or decode the parameters of a ClientToken")]
    TokenParams(#[from] serde_json::Error),
    #[error("the ClientToken names {0}, which is not a container group id")]
    TokenResource(String),
    #[error("no container named {0} in the group")]
    NoSuchContainer(String),
    #[error("{0}")]
    Node(String),
    #[error("the image cache {0} does not exist")]
    CacheNotFound(String),
    #[error("the image cache {id} is {status}; this operation needs it to be {needs}")]
    CacheIncorrectStatus {
        id: String,
        status: &'static str,
        needs: &'static str,
    },
    #[error("an image cache named {0} exists already")]
    CacheNameTaken(String),
    #[error(
        "the account may hold {limit} image caches and holds {used}, none of which may be evicted"
    )]
    CacheQuotaExceeded { limit: usize, used: usize },
    /// A new group does not fit the account's quota of vCPU, memory or groups.
    #[error("{0}")]
    QuotaExceeded(QuotaExceeded),
    #[error(transparent)]
    CapabilityRefused(#[from] berth_core::CapabilityRefused),
    #[error(transparent)]
    VolumeRefused(#[from] berth_core::VolumeRefused),
    /// The group's ports cannot be published (`AutoCreateEip`).
    #[error(transparent)]
    PublishRefused(#[from] berth_core::PublishRefused),
    /// A bill asked for has too many lines.
    #[error(transparent)]
    TooManyLines(#[from] berth_core::price::TooManyLines),
    /// The account may not use the runtime class the group would get.
    #[error("the account may not run groups in the {class} runtime class (allowed: {allowed})")]
    RuntimeClassForbidden {
        class: RuntimeClass,
        allowed: String,
    },
    /// The node does not run the runtime class the group would get.
    #[error("this node does not run the {0} runtime class (it runs: {1})")]
    RuntimeClassUnsupported(RuntimeClass, String),
    /// A change of tags would leave a resource with more than it may carry.
    #[error("the resource {id} would carry {count} tags; at most {max} are allowed", max = berth_core::MAX_TAGS_PER_RESOURCE)]
    TooManyTags { id: String, count: usize },
    /// A `SpotWithPriceLimit` group whose limit is below the spot price of its size.
    #[error("the SpotPriceLimit {limit} per hour is below the spot price {price} per hour of the group's size")]
    SpotPriceLimitTooLow { limit: String, price: String },
    /// An update makes a group larger than the room the node has for it.
    #[error("the node has no room for the new size: {0}")]
    InsufficientCapacity(berth_core::placement::Short),
    #[error("state store")]
    Store(#[from] StoreError),
}

/// The control plane of one berth installation.
pub struct Control {
    pub(crate) store: Arc<dyn Store>,
    node: OnceLock<Arc<dyn NodeClient>>,
    pub(crate) region: String,
    pub(crate) caches: crate::cache::CacheState,
    capabilities: std::sync::RwLock<berth_core::CapabilityPolicy>,
    volumes: std::sync::RwLock<berth_core::VolumePolicy>,
    /// The operator's rules for published ports; held while a group's ports are chosen and
    /// its record inserted, so two creates never get one port.
    ports: std::sync::Mutex<berth_core::PortPolicy>,
    /// Held by a create from the choice of its published ports to its insert.
    publishing: tokio::sync::Mutex<()>,
    event_hooks: std::sync::RwLock<Vec<EventHook>>,
    /// The unit prices by region (`prices.rs`); replaced whole, read by DescribeContainerGroupPrice.
    prices: std::sync::RwLock<Arc<berth_core::price::PriceCatalog>>,
    /// The runtime classes the node runs and the class of a group that names none when its
    /// account has no default (`berth serve --default-runtime-class`).
    pub(crate) classes: std::sync::RwLock<crate::classes::NodeClasses>,
    /// The node's room: who holds it, who waits (`schedule.rs`).
    pub(crate) scheduler: std::sync::Mutex<crate::schedule::Scheduler>,
    /// Groups whose removal task runs: a repeated delete starts no second one.
    removing: std::sync::Mutex<std::collections::HashSet<GroupId>>,
    /// This control plane, for the tasks it starts from `&self`.
    pub(crate) me: Weak<Control>,
    /// Cluster mode: the wake-ups of node watches and of placement.
    pub(crate) cluster: crate::cluster::Cluster,
}

/// Called with the updated record for every event a node reports.
pub type EventHook = Box<dyn Fn(&GroupRecord, &Event) + Send + Sync>;

impl Control {
    pub fn new(store: Arc<dyn Store>, region: impl Into<String>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            cluster: Default::default(),
            scheduler: Default::default(),
            removing: Default::default(),
            store,
            node: OnceLock::new(),
            region: region.into(),
            caches: Default::default(),
            capabilities: Default::default(),
            volumes: Default::default(),
            ports: Default::default(),
            publishing: Default::default(),
            event_hooks: std::sync::RwLock::new(Vec::new()),
            prices: Default::default(),
            classes: Default::default(),
        })
    }

    /// Sets the price catalog (the default: ECI's published prices, `RegionPrices::builtin`).
    pub fn set_prices(&self, catalog: berth_core::price::PriceCatalog) {
        *self.prices.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
    }

    /// The price catalog in force.
    pub fn prices(&self) -> Arc<berth_core::price::PriceCatalog> {
        self.prices
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets which capabilities groups may add (the default: `capability::DEFAULT_ALLOWED`).
    pub fn set_capability_policy(&self, policy: berth_core::CapabilityPolicy) {
        *self.capabilities.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Sets which volumes reaching outside the group are allowed (the default: none).
    pub fn set_volume_policy(&self, policy: berth_core::VolumePolicy) {
        *self.volumes.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Which volumes reaching outside the group are allowed.
    pub fn volume_policy(&self) -> berth_core::VolumePolicy {
        self.volumes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the rules for published ports (the default publishes none).
    pub fn set_port_policy(&self, policy: berth_core::PortPolicy) {
        *self.ports.lock().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Connects the node agent; done once at start.
    pub fn attach_node(&self, node: Arc<dyn NodeClient>) {
        let _ = self.node.set(node);
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn node(&self) -> Result<&Arc<dyn NodeClient>, ControlError> {
        self.node
            .get()
            .ok_or_else(|| ControlError::Node("no node agent is attached".into()))
    }

    /// Records a new group as Scheduling, places it and returns its id at once.
    pub async fn create(
        self: &Arc<Self>,
        account: &str,
        mut spec: GroupSpec,
        client_token: Option<String>,
    ) -> Result<GroupId, ControlError> {
        self.capabilities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .check(&spec)?;
        self.check_volumes(&spec, None).await?;
        // The request as it came, for a ClientToken's later uses to be compared with.
        let params = match &client_token {
            Some(tok) => {
                let params = crate::idempotency::group_params(&spec)?;
                if let Some(prev) = self
                    .store
                    .find_client_token(account, TokenKind::Group, tok)
                    .await?
                {
                    return crate::idempotency::same_group(prev, &params);
                }
                params
            }
            None => String::new(),
        };
        spec.runtime_class = Some(
            self.decide_runtime_class(account, spec.runtime_class)
                .await?,
        );
        if spec.region_id.is_empty() {
            spec.region_id = self.region.clone();
        }
        let fallback_event = self.fix_spot_price(&mut spec, true)?;
        let (cache_event, auto_cache) = self.choose_image_cache(account, &mut spec).await?;
        let events = NewEvents {
            fallback: fallback_event,
            cache: cache_event,
        };
        let (rec, inserted) = self
            .insert_new(account, spec, client_token, events, &params)
            .await?;
        let id = rec.id.clone();
        if let Some(prev) = inserted {
            self.release(&id);
            return crate::idempotency::same_group(prev, &params);
        }
        // Only a group that was created counts as a match of its cache (a refused or
        // repeated create does not keep an automatic cache from elimination).
        if let Some(cache) = &rec.spec.image_snapshot_id {
            self.cache_matched(cache).await;
        }
        if auto_cache {
            let this = Arc::clone(self);
            let (account, gid, spec) = (account.to_string(), id.clone(), rec.spec.clone());
            tokio::spawn(async move { this.auto_create_image_cache(&account, &gid, &spec).await });
        }
        self.watch_deadline(&rec);
        if rec.waiting {
            self.enqueue(&rec);
        } else if rec.status == GroupStatus::ScheduleFailed {
            self.watch_schedule_failed(&rec);
        } else {
            self.node()?.apply(rec).await;
        }
        Ok(id)
    }

    /// Chooses the group's published ports and inserts its record, under the port lock: of
    /// two creates, the second sees the ports of the first. Returns the record and, when the
    /// ClientToken was claimed before, the earlier group.
    async fn insert_new(
        &self,
        account: &str,
        mut spec: GroupSpec,
        client_token: Option<String>,
        events: NewEvents,
        params: &str,
    ) -> Result<(GroupRecord, Option<berth_store::TokenUse>), ControlError> {
        // From the choice of the ports to the insert: no other create chooses meanwhile.
        let _publishing = self.publishing.lock().await;
        spec.published = None;
        if spec.public_address {
            let groups = self.store.all_groups().await?;
            let held = berth_core::publish::held(groups.iter().map(|g| &g.spec));
            let account_held = groups
                .iter()
                .filter(|g| g.account == account)
                .filter_map(|g| g.spec.published.as_ref())
                .map(|p| p.ports.len())
                .sum();
            let policy = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            let address = policy.address;
            let publication = policy.allocate(&spec, &held, |proto, port| {
                address.is_some_and(|a| crate::ports::host_free(a, proto, port))
            })?;
            policy.within_account(&publication, account_held)?;
            drop(policy);
            spec.published = Some(publication);
        }
        let now = Utc::now();
        let mut bytes = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = GroupId::from_random(bytes);
        let mut rec = GroupRecord {
            client_token,
            ..GroupRecord::new(id.clone(), account, spec, now)
        };
        // The room is decided before the record is written, so that a group placed at once
        // is written with its Scheduled event (one write). A spot group that may fall back
        // and finds no room now is decided again as pay-as-you-go (which may reclaim).
        if let Some(ev) = events.fallback {
            rec.push_event(ev);
        }
        let mut admission = self.admit(&rec);
        if matches!(admission, crate::schedule::Admission::Wait(_))
            && rec.spec.spot.as_ref().is_some_and(|t| t.fallback)
        {
            rec.spec.spot = None;
            rec.push_event(crate::spot::fallback_event(
                "no room for it on the node now",
            ));
            admission = self.admit(&rec);
        }
        match admission {
            // In a cluster the placement on a node says so (`cluster/leader.rs`).
            crate::schedule::Admission::Placed if self.cluster.enabled() => {}
            crate::schedule::Admission::Placed => {
                rec.push_event(crate::schedule::scheduled_event(&id, now))
            }
            crate::schedule::Admission::Wait(short) => {
                rec.waiting = true;
                let timeout = self.schedule_policy().timeout;
                rec.push_event(crate::schedule::waiting_event(&short, timeout, now));
            }
            crate::schedule::Admission::Never(short) => {
                crate::schedule::fail_record(&mut rec, &short, now)
            }
        }
        if let Some(ev) = events.cache {
            rec.push_event(ev);
        }
        // The token is claimed with the insert: of concurrent creates with one token, only one
        // inserts; the others answer its id.
        let limits = self.quota().group_limits();
        let inserted = self
            .store
            .insert_group_claiming(&rec, params, &limits)
            .await
            .map_err(|e| {
                self.release(&id);
                match e {
                    StoreError::QuotaExceeded(q) => ControlError::QuotaExceeded(q),
                    e => e.into(),
                }
            })?;
        Ok((rec, inserted))
    }

    pub async fn get(&self, account: &str, id: &GroupId) -> Result<GroupRecord, ControlError> {
        self.store
            .get_group(Some(account), id)
            .await?
            .ok_or_else(|| ControlError::NotFound(id.to_string()))
    }

    pub async fn list(
        &self,
        account: &str,
        filter: &GroupFilter,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page, ControlError> {
        Ok(self
            .store
            .list_groups(account, filter, limit, token)
            .await?)
    }

    /// Marks the group Terminating and removes it in the background: containers are stopped
    /// with the group's grace period, then the record goes. `grace` (DeleteContainerGroup's
    /// `GracePeriodSeconds`, the pod's deletion grace period) replaces the group's own on the
    /// first delete; a later delete may only shorten it, also for the removal under way,
    /// whose containers are then killed `grace` seconds after this delete at the latest.
    pub async fn delete(
        self: &Arc<Self>,
        account: &str,
        id: &GroupId,
        grace: Option<u64>,
    ) -> Result<(), ControlError> {
        self.get(account, id).await?;
        let mut shortened = None;
        let rec = self
            .store
            .modify_group(id, &mut |r| {
                let first = r.status != GroupStatus::Terminating;
                if first {
                    r.push_event(Event::new(
                        EventType::Normal,
                        "Killing",
                        match grace {
                            Some(g) => format!("Deleting the container group (grace period {g}s)"),
                            None => "Deleting the container group".to_string(),
                        },
                        None,
                        Utc::now(),
                    ));
                }
                if let Some(g) = grace {
                    let own = &mut r.spec.termination_grace_period_secs;
                    shortened = (!first && g < *own).then_some(g);
                    *own = if first { g } else { (*own).min(g) };
                }
                r.status = GroupStatus::Terminating;
            })
            .await?;
        self.unqueue(id);
        let started = self.spawn_removal(rec);
        if let (false, Some(g)) = (started, shortened) {
            self.shorten_removal(id, Duration::from_secs(g));
        }
        Ok(())
    }

    /// Brings the kill of a removal under way forward to `grace` from now: the node takes a
    /// second removal of a group it is removing as that (`NodeClient::remove`).
    fn shorten_removal(self: &Arc<Self>, id: &GroupId, grace: Duration) {
        let this = Arc::clone(self);
        let id = id.clone();
        tokio::spawn(async move {
            let Ok(node) = this.node() else { return };
            if let Err(e) = node.remove(&id, grace).await {
                tracing::warn!(group = %id, error = %e, "cannot shorten the removal's grace period");
            }
        });
    }

    /// Removes the group from its node, then its record. An accepted delete always takes
    /// effect: a failed removal is retried with back-off (the record stays Terminating, so
    /// a restart of berth takes it up again). Returns whether it started one (none when
    /// one is under way).
    pub(crate) fn spawn_removal(self: &Arc<Self>, rec: GroupRecord) -> bool {
        let fresh = self
            .removing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id.clone());
        if !fresh {
            return false;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let grace = Duration::from_secs(rec.spec.termination_grace_period_secs);
            let Ok(node) = this.node() else { return };
            let mut attempt = 0u32;
            loop {
                let res = match node.remove(&rec.id, grace).await {
                    Ok(()) => match this.store.delete_group(&rec.id).await {
                        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                match res {
                    Ok(()) => {
                        tracing::info!(group = %rec.id, "container group deleted");
                        this.release(&rec.id);
                        this.removing
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&rec.id);
                        return;
                    }
                    Err(e) => {
                        let delay = berth_core::setup_backoff(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::error!(group = %rec.id, error = %e, retry_in_s = delay.as_secs(), "removing container group failed");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
        true
    }

    /// Restarts every container of a Pending or Running group. A repeat of a restart with
    /// the same `client_token` is answered without restarting again.
    pub async fn restart(
        &self,
        account: &str,
        id: &GroupId,
        client_token: Option<&str>,
    ) -> Result<(), ControlError> {
        self.get(account, id).await?;
        let mut outcome = Ok(true);
        let rec = self
            .store
            .modify_group(id, &mut |r| {
                outcome = change_allowed(r, client_token, RESTART_REQUEST);
                if !matches!(outcome, Ok(true)) {
                    return;
                }
                r.status = GroupStatus::Restarting;
                r.restart_generation += 1;
                if let Some(t) = client_token {
                    r.push_change_token(t, RESTART_REQUEST);
                }
                r.push_event(Event::new(
                    EventType::Normal,
                    "Restarting",
                    "Restarting the container group",
                    None,
                    Utc::now(),
                ));
            })
            .await?;
        if outcome? {
            self.node()?.apply(rec).await;
        }
        Ok(())
    }

    /// Whether the operator allows `spec`'s volumes that reach outside a group: those of
    /// this machine's node, or in a cluster, those the nodes allow (`berth node
    /// --host-path-prefix`, `--nfs-server`): for a group placed already (`placed`), its node's;
    /// else any node's (placement then goes only to a node that allows them all).
    async fn check_volumes(
        &self,
        spec: &GroupSpec,
        placed: Option<&GroupId>,
    ) -> Result<(), ControlError> {
        let here = self.volume_policy().check(spec);
        if here.is_ok() || !self.in_cluster() {
            return Ok(here?);
        }
        let on = match placed {
            Some(id) => self.store.get_group(None, id).await?.and_then(|r| r.node),
            None => None,
        };
        let nodes = self.store.list_nodes().await?;
        let allowed = nodes
            .iter()
            .filter(|n| on.as_ref().is_none_or(|id| *id == n.id))
            .fold(berth_core::VolumePolicy::default(), |u, n| {
                u.union(&n.offer.volumes)
            });
        Ok(allowed.check(spec)?)
    }

    /// Changes a Pending or Running group from `old` (the spec the change was made from) to
    /// `new`: the group is `Updating` until the node agent has recreated the containers whose
    /// spec changed; the others keep running. A group that grows must fit its account's
    /// quota. `request` identifies the request for a repeat with the same `client_token`,
    /// which is answered without updating again.
    pub async fn update(
        &self,
        account: &str,
        id: &GroupId,
        old: &GroupSpec,
        new: GroupSpec,
        client_token: Option<&str>,
        request: &str,
    ) -> Result<(), ControlError> {
        self.capabilities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .check(&new)?;
        self.check_volumes(&new, Some(id)).await?;
        let mut new = new;
        self.fix_spot_price(&mut new, false)?;
        // The new size holds its room before the record is written; given back if the
        // update is not made.
        let held = self
            .resize(id, crate::schedule::room_of(&new))
            .map_err(ControlError::InsufficientCapacity)?;
        let limits = self.quota().group_limits();
        let mut outcome = Ok(true);
        let res = self
            .store
            .modify_group_within(id, &limits, &mut |r| {
                outcome = change_allowed(r, client_token, request);
                if !matches!(outcome, Ok(true)) {
                    return;
                }
                if r.account != account {
                    outcome = Err(ControlError::NotFound(id.to_string()));
                    return;
                }
                if r.spec != *old {
                    outcome = Err(ControlError::ChangedMeanwhile(id.to_string()));
                    return;
                }
                if let Some(t) = client_token {
                    r.push_change_token(t, request);
                }
                if r.spec == new {
                    outcome = Ok(false);
                    return;
                }
                r.spec = new.clone();
                r.status = GroupStatus::Updating;
                r.restart_generation += 1;
                r.push_event(Event::new(
                    EventType::Normal,
                    "Updating",
                    "Updating the container group",
                    None,
                    Utc::now(),
                ));
            })
            .await;
        let made = matches!((&res, &outcome), (Ok(_), Ok(true)));
        match (made, held) {
            (false, Some(old)) => self.restore_room(id, old),
            // A group that shrank may have made room for a waiter.
            (true, Some(_)) => self.serve_queue(),
            _ => {}
        }
        let rec = match res {
            Err(StoreError::QuotaExceeded(q)) => return Err(ControlError::QuotaExceeded(q)),
            r => r?,
        };
        if outcome? {
            self.node()?.apply(rec).await;
        }
        Ok(())
    }

    /// Log text of one container.
    pub async fn logs(
        &self,
        account: &str,
        id: &GroupId,
        req: &LogRequest,
    ) -> Result<String, ControlError> {
        let rec = self.get(account, id).await?;
        if !rec.spec.all_containers().any(|c| c.name == req.container) {
            return Err(ControlError::NoSuchContainer(req.container.clone()));
        }
        let mut req = req.clone();
        req.restart_count = rec
            .init_containers
            .iter()
            .chain(rec.containers.iter())
            .find(|c| c.name == req.container)
            .map(|c| c.restart_count);
        match self.node()?.read_log(id, &req).await {
            Ok(s) => Ok(s),
            Err(NodeError::NotFound(_)) => Ok(String::new()),
            Err(NodeError::Failed(m)) => Err(ControlError::Node(m)),
        }
    }

    /// Folds a node's report into the group's record.
    pub async fn report(&self, id: &GroupId, obs: ObservedGroup) {
        let res = self
            .store
            .modify_group(id, &mut |r| apply_report(r, &obs))
            .await;
        match res {
            Ok(rec) => self.reported(&rec, &obs),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::error!(group = %id, error = %e, "cannot record the status of a group")
            }
        }
    }

    /// Folds in the report of a node of a cluster if the group is placed on `node`, checked
    /// where the record is changed; `false` when it is not (nothing of the report is kept).
    /// A report of a group deleted meanwhile is dropped.
    pub(crate) async fn report_from(
        &self,
        node: &str,
        id: &GroupId,
        obs: ObservedGroup,
    ) -> Result<bool, StoreError> {
        match self.store.get_group(None, id).await? {
            None => return Ok(true),
            Some(r) if r.node.as_deref() != Some(node) => return Ok(false),
            Some(_) => {}
        }
        let mut placed = false;
        let res = self
            .store
            .modify_group(id, &mut |r| {
                placed = r.node.as_deref() == Some(node);
                if placed {
                    apply_report(r, &obs);
                }
            })
            .await;
        match res {
            Ok(rec) => {
                if placed {
                    self.reported(&rec, &obs);
                }
                Ok(placed)
            }
            Err(StoreError::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// What follows a report written: the room of a finished group freed, the event hooks.
    fn reported(&self, rec: &GroupRecord, obs: &ObservedGroup) {
        if rec.status.is_final() {
            self.release(&rec.id);
        }
        if !obs.events.is_empty() {
            let hooks = self.event_hooks.read().unwrap_or_else(|p| p.into_inner());
            for ev in &obs.events {
                for hook in hooks.iter() {
                    hook(rec, ev);
                }
            }
        }
    }

    /// Registers a function that sees every event nodes report (metrics, audit).
    pub fn on_event(&self, hook: EventHook) {
        self.event_hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Hands every recorded group to the node agent again (at start), finishing deletions that
    /// a crash interrupted.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ControlError> {
        let groups = self.store.all_groups().await?;
        let n = groups.len();
        self.rebuild(&groups);
        self.reclaim_over_limit(&groups);
        for rec in groups {
            if rec.status == GroupStatus::Terminating {
                let _ = self.spawn_removal(rec);
            } else if rec.waiting {
                self.watch_schedule_timeout(&rec);
            } else if rec.status == GroupStatus::ScheduleFailed {
                // Never handed to the node.
                self.watch_schedule_failed(&rec);
            } else {
                // The node first: a deadline that passed while berth was down then ends a
                // group the node runs, and its final record is the last one the node sees
                // (the other way round, this apply could bring the group back after it).
                self.node()?.apply(rec.clone()).await;
                self.watch_deadline(&rec);
            }
        }
        self.serve_queue();
        Ok(n)
    }
}

const RESTART_REQUEST: &str = "restart";

/// Whether a restart or update of `r` may go on (`Ok(true)`), was done already with this
/// token (`Ok(false)`), or may not be done.
fn change_allowed(
    r: &GroupRecord,
    client_token: Option<&str>,
    request: &str,
) -> Result<bool, ControlError> {
    if let Some(t) = client_token {
        match r.change_token(t, request) {
            berth_core::TokenSeen::Same => return Ok(false),
            berth_core::TokenSeen::Other => return Err(ControlError::TokenMismatch),
            berth_core::TokenSeen::New => {}
        }
    }
    if !matches!(r.status, GroupStatus::Pending | GroupStatus::Running) {
        return Err(ControlError::IncorrectStatus {
            id: r.id.to_string(),
            status: r.status.as_str(),
            needs: "Pending or Running",
        });
    }
    Ok(true)
}

/// The record after a node report: container states, address, events, derived status.
pub fn apply_report(r: &mut GroupRecord, obs: &ObservedGroup) {
    let now = Utc::now();
    if obs.intranet_ip.is_some() {
        r.intranet_ip.clone_from(&obs.intranet_ip);
    }
    r.init_containers.clone_from(&obs.init_containers);
    r.containers.clone_from(&obs.containers);
    for ev in &obs.events {
        r.push_event(ev.clone());
    }
    // A finished group stays finished (a report that was on its way when a deadline ended the
    // group does not bring it back to Running).
    if r.status == GroupStatus::Terminating || r.status.is_final() {
        return;
    }
    let next = if obs.failed.is_some() {
        GroupStatus::Failed
    } else if matches!(r.status, GroupStatus::Restarting | GroupStatus::Updating)
        && obs.generation < r.restart_generation
    {
        // From the run the restart or update replaced.
        r.status
    } else if r.status == GroupStatus::Updating
        && obs.containers.iter().any(|c| {
            c.current.state == berth_core::StateKind::Waiting
                && c.current.detail_status.as_deref() == Some("ContainerCreating")
        })
    {
        GroupStatus::Updating
    } else if r.status == GroupStatus::Restarting
        && obs
            .containers
            .iter()
            .all(|c| c.current.state == berth_core::StateKind::Waiting)
    {
        GroupStatus::Restarting
    } else {
        derive_group_status(&r.init_containers, &r.containers, r.spec.restart_policy)
    };
    if next != r.status {
        match next {
            GroupStatus::Succeeded => r.succeeded_time = Some(now),
            GroupStatus::Failed => r.failed_time = Some(now),
            _ => {}
        }
        r.status = next;
    }
}

/// The events a new group is written with besides its scheduling: a spot group created
/// pay-as-you-go before its room is decided, its image cache's after.
struct NewEvents {
    fallback: Option<Event>,
    cache: Option<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{ContainerState, ContainerStatus};

    fn record(status: GroupStatus, generation: u64) -> GroupRecord {
        GroupRecord {
            status,
            restart_generation: generation,
            ..GroupRecord::new(
                GroupId::parse("eci-00000000000000000001").unwrap(),
                "a",
                GroupSpec::default(),
                Utc::now(),
            )
        }
    }

    fn report(generation: u64, state: ContainerState) -> ObservedGroup {
        ObservedGroup {
            containers: vec![ContainerStatus {
                name: "c".into(),
                current: state,
                ..Default::default()
            }],
            generation,
            ..Default::default()
        }
    }

    #[test]
    fn an_update_ends_with_a_report_of_its_own_run_without_containers_being_created() {
        let mut r = record(GroupStatus::Updating, 2);
        // The run the update replaced still reports its running containers.
        apply_report(&mut r, &report(1, ContainerState::running(Utc::now())));
        assert_eq!(r.status, GroupStatus::Updating);
        apply_report(
            &mut r,
            &report(2, ContainerState::waiting("ContainerCreating")),
        );
        assert_eq!(r.status, GroupStatus::Updating);
        apply_report(&mut r, &report(2, ContainerState::running(Utc::now())));
        assert_eq!(r.status, GroupStatus::Running);
    }

    #[test]
    fn a_repeated_change_token_is_done_once_and_another_use_refused() {
        let mut r = record(GroupStatus::Running, 0);
        assert!(matches!(change_allowed(&r, Some("t"), "x"), Ok(true)));
        r.push_change_token("t", "x");
        assert!(matches!(change_allowed(&r, Some("t"), "x"), Ok(false)));
        assert!(matches!(
            change_allowed(&r, Some("t"), "y"),
            Err(ControlError::TokenMismatch)
        ));
        r.status = GroupStatus::Terminating;
        assert!(matches!(
            change_allowed(&r, None, "x"),
            Err(ControlError::IncorrectStatus { .. })
        ));
    }
}
