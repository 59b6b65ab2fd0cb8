//! The life of one group on the node: network, images, init containers in order, then the app
//! containers side by side; or, after berth restarted, re-adoption of what kept running.

use std::collections::HashMap;
use std::sync::Arc;

use berth_core::{
    ContainerState, ContainerStatus, EventType, GroupRecord, GroupSpec, ObservedGroup, StateKind,
};
use berth_image::{Image, PullEvent, PullOptions};
use berth_runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::agent::Inner;
use crate::container::{pull_backoff, Adopted, ContainerCtx};
use crate::files::{error_chain, write_etc, GroupDirs};
use crate::state::{waiting, GroupState};

/// Runs a group until it is cancelled or all its containers are done for good.
pub async fn run_group(inner: Arc<Inner>, rec: GroupRecord, how: Start, cancel: CancellationToken) {
    let fresh = how != Start::Resume;
    let gid = rec.id.to_string();
    let spec = Arc::new(rec.spec.clone());
    let dirs = inner.dirs.group(&gid);
    let mut obs = if fresh {
        initial_observed(&spec)
    } else {
        resumed_observed(&rec)
    };
    obs.generation = rec.restart_generation;
    // After an update (or a restart of berth during one): what changed starts afresh.
    let changed = if how == Start::Resume {
        let changed = crate::revision::changed_app(&dirs, &spec);
        crate::revision::mark_changed(&mut obs, &changed);
        changed
    } else {
        Vec::new()
    };
    // Until the app containers' tasks run (each marks its own start).
    let starting = inner.starting();
    let state = GroupState::new(rec.id.clone(), obs, inner.reporter.clone());
    state.update(|_| {});
    if fresh {
        inner.spares.claim(&dirs);
    }

    // Network and images are independent: set both up at once.
    let began = std::time::Instant::now();
    let hostname = spec.host_name.clone().unwrap_or_else(|| spec.name.clone());
    let net = async {
        let gib = spec.ephemeral_storage_gib();
        let r = sandbox(&inner, &gid, &dirs, &hostname, gib, &spec, &state, &cancel).await;
        (r, began.elapsed())
    };
    let images = async {
        let r = pull_images(&inner, &spec, &rec.account, &state, &cancel).await;
        (r, began.elapsed())
    };
    let ((attachment, net_took), (images, images_took)) = tokio::join!(net, images);
    tracing::debug!(
        group = %gid,
        net_us = net_took.as_micros() as u64,
        images_us = images_took.as_micros() as u64,
        "network and images ready"
    );
    let Some((attachment, userns)) = attachment else {
        return;
    };
    // Admission to the account's peers runs beside the start of the containers; the group
    // reaches no other group until it is done (see berth_net's isolation). Its ports are
    // published first, in the same task: both change the group's network record.
    let admit = {
        let inner = inner.clone();
        let (gid, account) = (gid.clone(), rec.account.clone());
        let (spec, state, cancel) = (spec.clone(), state.clone(), cancel.clone());
        tokio::spawn(async move {
            crate::ports::publish(&inner, &gid, &spec, &state, &cancel).await;
            if let Err(e) = inner.net.admit(&gid, &account).await {
                tracing::warn!(group = %gid, error = %e, "cannot admit the group to its account's network");
            }
        })
    };
    let seccomp = inner
        .seccomp
        .for_account(&rec.account)
        .unwrap_or_else(|e| {
            tracing::warn!(group = %gid, error = %e, "cannot read the account's seccomp profile; the built-in one applies");
            berth_runtime::seccomp::Seccomp::Default
        });
    let sandbox = Sandbox { attachment, userns };
    run_containers(
        &inner, &spec, &gid, &dirs, &state, how, sandbox, images, &seccomp, &cancel, starting,
        &changed,
    )
    .await;
    // Never left running past the group task: a removal follows it.
    let _ = admit.await;
}

/// The init containers in order, then the app containers side by side, until all are done
/// for good or the group goes.
#[allow(clippy::too_many_arguments)]
async fn run_containers(
    inner: &Arc<Inner>,
    spec: &Arc<GroupSpec>,
    gid: &str,
    dirs: &GroupDirs,
    state: &Arc<GroupState>,
    how: Start,
    sandbox: Sandbox,
    images: Option<HashMap<String, Image>>,
    seccomp: &berth_runtime::seccomp::Seccomp,
    cancel: &CancellationToken,
    starting: crate::agent::Starting,
    changed: &[String],
) {
    let fresh = how != Start::Resume;
    let Some(images) = images else { return };

    let ctx = |c: &berth_core::ContainerSpec, init: bool| ContainerCtx {
        inner: inner.clone(),
        group: spec.clone(),
        gid: gid.to_string(),
        dirs: dirs.clone(),
        spec: c.clone(),
        image: images[&c.image].clone(),
        init,
        state: state.clone(),
        netns: Some(sandbox.attachment.netns.clone()),
        userns: sandbox.userns.clone(),
        seccomp: seccomp.clone(),
        cancel: cancel.clone(),
    };

    if how == Start::Resume {
        crate::revision::reconcile(inner, gid, dirs, spec, state, changed).await;
    }

    // Init containers, one after the other, each to completion.
    for c in &spec.init_containers {
        let done = state.container(true, &c.name).is_some_and(|s| {
            s.current.state == StateKind::Terminated && s.current.exit_code == Some(0)
        });
        if done {
            continue;
        }
        let cx = ctx(c, true);
        let adopted = adopt(&inner.runtime, dirs, state, how, true, &c.name).await;
        match cx.supervise(adopted).await {
            Some(0) => {}
            _ => return,
        }
    }

    // App containers, all at once.
    let mut tasks = Vec::new();
    for c in &spec.containers {
        if !fresh {
            let st = state.container(false, &c.name).unwrap_or_default();
            if st.current.state == StateKind::Terminated
                && !berth_core::should_restart(
                    spec.restart_policy,
                    st.current.exit_code.unwrap_or(0),
                )
            {
                continue;
            }
        }
        let cx = ctx(c, false);
        let adopted = adopt(&inner.runtime, dirs, state, how, false, &c.name).await;
        tasks.push(tokio::spawn(async move { cx.supervise(adopted).await }));
    }
    drop(starting);
    for t in tasks {
        let _ = t.await;
    }
}

/// What a group's containers share: its network and, with `--userns`, its user namespace.
struct Sandbox {
    attachment: berth_net::Attachment,
    userns: Option<crate::userns::GroupUserns>,
}

/// The group's network and its /etc files, retried with back-off until they are set up or the
/// group goes (`None`). A failure here is berth's, not the group's: it never fails the group,
/// whatever its restart policy, as kubelet retries a sandbox it could not create.
#[allow(clippy::too_many_arguments)]
async fn sandbox(
    inner: &Arc<Inner>,
    gid: &str,
    dirs: &GroupDirs,
    hostname: &str,
    storage_gib: u32,
    spec: &GroupSpec,
    state: &Arc<GroupState>,
    cancel: &CancellationToken,
) -> Option<(berth_net::Attachment, Option<crate::userns::GroupUserns>)> {
    let mut attempt = 0u32;
    loop {
        let res = size_storage(inner, gid, dirs, storage_gib).and_then(|()| {
            // With user namespaces, the volumes belong to the group's mapped root.
            let map = match &inner.userns {
                Some(u) => Some(
                    u.map(gid)
                        .map_err(|e| format!("cannot set up the group's user namespace: {e}"))?,
                ),
                None => None,
            };
            // An update may have changed or dropped volumes made before.
            crate::volumes::drop_changed(dirs, spec)
                .and_then(|()| {
                    crate::volumes::prepare(
                        dirs,
                        spec,
                        crate::volumes::owner(map),
                        &inner.host_paths,
                    )
                })
                .map_err(|e| format!("cannot set up the group's volumes: {e}"))
        });
        let res = match res {
            Err(msg) => Err(msg),
            // Not cut short when the group goes: its removal must not race a half-done ADD.
            Ok(()) => inner.net.attach(gid).await.map_err(|e| {
                format!(
                    "cannot set up the network of the group: {}",
                    error_chain(&e)
                )
            }),
        };
        let res = res.and_then(|att| {
            let ip = att.ip.to_string();
            write_etc(
                dirs,
                hostname,
                Some(&ip),
                spec.dns_config.as_ref(),
                spec.dns_policy,
                &spec.host_aliases,
            )
            .map(|()| att)
            .map_err(|e| format!("cannot write the group's /etc files: {e}"))
        });
        let res = res.and_then(|att| match &inner.userns {
            None => Ok((att, None)),
            Some(u) => crate::userns::prepare(u, gid, dirs, &att.netns, &spec.sysctls)
                .map(|g| (att, Some(g)))
                .map_err(|e| {
                    format!(
                        "cannot set up the group's user namespace: {}",
                        error_chain(&*e)
                    )
                }),
        });
        let msg = match res {
            Ok((att, userns)) => {
                let ip = att.ip.to_string();
                state.update(|o| o.intranet_ip = Some(ip));
                return Some((att, userns));
            }
            Err(msg) => msg,
        };
        let delay = berth_core::setup_backoff(attempt);
        tracing::error!(group = %gid, error = %msg, retry_in_s = delay.as_secs(), "group sandbox setup failed");
        state.event(
            EventType::Warning,
            "FailedCreatePodSandBox",
            format!("{msg}; retrying in {}s", delay.as_secs()),
            None,
        );
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}

/// Gives the group its sized temporary storage (a spare one taken by `claim`, or a new
/// one) and sets its limit; groups whose writable tree predates the storage keep it.
fn size_storage(inner: &Inner, gid: &str, dirs: &GroupDirs, gib: u32) -> Result<(), String> {
    let Some(storage) = &inner.storage else {
        return Ok(());
    };
    if !dirs.rw.starts_with(storage.root()) {
        return Ok(());
    }
    storage
        .create(gid, u64::from(gib) << 30)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "cannot set up the group's temporary storage: {}",
                error_chain(&e)
            )
        })
}

/// What a former berth left of a container: a monitor still running it, or an exit nobody
/// recorded. Both are looked for whatever the record says, since berth may have stopped
/// between spawning a monitor and recording the start, or between an exit and its record.
async fn adopt(
    rt: &Runtime,
    dirs: &GroupDirs,
    state: &GroupState,
    how: Start,
    init: bool,
    name: &str,
) -> Option<Adopted> {
    if how == Start::Restart {
        // The former run was stopped on purpose; its exit is no news.
        return None;
    }
    let st = state.container(init, name)?;
    let cdir = dirs.container(name);
    if let Some(started) = rt.adopt_starting(&cdir).await {
        tracing::info!(container = %name, pid = started.pid, "re-adopted running container");
        return Some(Adopted::Running(started));
    }
    if how == Start::New {
        return None;
    }
    let exit = Runtime::read_exit(&cdir)?;
    // An exit the record holds already (the current state, or the previous one while a
    // restart waits) is not news.
    let recorded = |s: &ContainerState| {
        s.state == StateKind::Terminated && s.start_time == Some(exit.started_at)
    };
    if recorded(&st.current) || st.previous.as_ref().is_some_and(recorded) {
        return None;
    }
    // It exited while berth was down: the supervisor records the real exit status.
    Some(Adopted::Exited(exit))
}

/// Why a group task starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A group that never ran (or whose first report was lost): fresh states; a monitor
    /// found running is adopted.
    New,
    /// A group that ran before berth restarted: its recorded states; running monitors and
    /// unrecorded exits are adopted.
    Resume,
    /// RestartContainerGroup: every container was stopped; all start afresh.
    Restart,
}

/// Pulls every image of the group, retrying with back-off until it works or the group goes.
/// A stored image serves the group only when its account proved it may pull it (see
/// `berth_image`'s access proofs); what the group resolved once (its pins) it uses again
/// after a restart without asking a registry.
async fn pull_images(
    inner: &Arc<Inner>,
    spec: &GroupSpec,
    account: &str,
    state: &Arc<GroupState>,
    cancel: &CancellationToken,
) -> Option<HashMap<String, Image>> {
    let mut images = HashMap::new();
    let opts_for = |c: &berth_core::ContainerSpec| PullOptions {
        credentials: spec.registry_credentials.clone(),
        plain_http: spec.plain_http_registries.clone(),
        insecure: spec.insecure_registries.clone(),
        policy: c.image_pull_policy,
        account: Some(account.to_owned()),
        pinned_by: Some(spec_owner(state)),
    };
    for c in spec.all_containers() {
        if images.contains_key(&c.image) {
            continue;
        }
        let init = spec.init_containers.iter().any(|i| i.name == c.name);
        if let Some(img) = from_cache(inner, spec, account, &c.image, state, &c.name) {
            images.insert(c.image.clone(), img);
            continue;
        }
        let mut attempt = 0u32;
        loop {
            let st = state.clone();
            let name = c.name.clone();
            let on_event = move |ev: PullEvent| match ev {
                PullEvent::Pulling { reference } => st.event(
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image \"{reference}\""),
                    Some(&name),
                ),
                PullEvent::Pulled {
                    reference,
                    bytes,
                    elapsed,
                    cached,
                    ..
                } => {
                    let msg = if cached {
                        format!("Container image \"{reference}\" already present on machine")
                    } else {
                        format!(
                            "Successfully pulled image \"{reference}\" in {:.3}s ({bytes} bytes)",
                            elapsed.as_secs_f64()
                        )
                    };
                    st.event(EventType::Normal, "Pulled", msg, Some(&name))
                }
            };
            let opts = opts_for(c);
            let res = tokio::select! {
                r = inner.images.ensure(&c.image, &opts, &on_event) => r,
                _ = cancel.cancelled() => return None,
            };
            match res {
                Ok(img) => {
                    // Pinned for as long as the group exists: GC never takes an image in use.
                    if let Err(e) = inner.images.pin_deferred(&spec_owner(state), &img.digest) {
                        tracing::warn!(image = %c.image, error = %e, "cannot pin image");
                    }
                    images.insert(c.image.clone(), img);
                    break;
                }
                Err(e) => {
                    let msg = format!("Failed to pull image \"{}\": {}", c.image, error_chain(&e));
                    let detail = if attempt == 0 {
                        "ErrImagePull"
                    } else {
                        "ImagePullBackOff"
                    };
                    let delay = pull_backoff(attempt);
                    state.set_container(
                        init,
                        &c.name,
                        Some((EventType::Warning, "Failed", msg.clone())),
                        |s| {
                            s.current = ContainerState::waiting(detail);
                            s.current.reason = Some(detail.to_string());
                            s.current.message = Some(msg.clone());
                        },
                    );
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.cancelled() => return None,
                    }
                }
            }
        }
    }
    Some(images)
}

/// The image from the group's image cache (`ImageSnapshotId`), without asking any registry;
/// `None` when the group names no cache or the cache lacks the image (it is pulled then).
fn from_cache(
    inner: &Arc<Inner>,
    spec: &GroupSpec,
    account: &str,
    reference: &str,
    state: &Arc<GroupState>,
    container: &str,
) -> Option<Image> {
    let id = spec.image_snapshot_id.as_deref()?;
    match inner
        .images
        .resolve_from_cache(id, reference, Some(account))
    {
        Ok(img) => {
            if let Err(e) = inner.images.pin_deferred(&spec_owner(state), &img.digest) {
                tracing::warn!(image = %reference, error = %e, "cannot pin image");
            }
            state.event(
                EventType::Normal,
                "Pulled",
                format!("Container image \"{reference}\" already present in image cache {id}"),
                Some(container),
            );
            Some(img)
        }
        Err(e) => {
            tracing::info!(image = %reference, cache = %id, error = %e, "image not served by the image cache; pulling it");
            None
        }
    }
}

fn spec_owner(state: &GroupState) -> String {
    format!("group:{}", state.id())
}

fn initial_observed(spec: &GroupSpec) -> ObservedGroup {
    let app_detail = if spec.init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    ObservedGroup {
        intranet_ip: None,
        init_containers: spec
            .init_containers
            .iter()
            .map(|c| waiting(&c.name, "ContainerCreating"))
            .collect(),
        containers: spec
            .containers
            .iter()
            .map(|c| waiting(&c.name, app_detail))
            .collect(),
        failed: None,
        events: vec![],
        generation: 0,
    }
}

/// The observed state recorded before berth restarted, completed for containers it lacks.
fn resumed_observed(rec: &GroupRecord) -> ObservedGroup {
    let mut fresh = initial_observed(&rec.spec);
    let merge = |fresh: &mut Vec<ContainerStatus>, old: &[ContainerStatus]| {
        for f in fresh.iter_mut() {
            if let Some(o) = old.iter().find(|o| o.name == f.name) {
                *f = o.clone();
            }
        }
    };
    merge(&mut fresh.init_containers, &rec.init_containers);
    merge(&mut fresh.containers, &rec.containers);
    fresh.intranet_ip.clone_from(&rec.intranet_ip);
    fresh
}
