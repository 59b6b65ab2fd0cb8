//! The life of one group on the node: network, images, init containers in order, then the app
//! containers side by side; or, after berth restarted, re-adoption of what kept running.

use std::collections::HashMap;
use std::sync::Arc;

use berth_core::{
    ContainerState, ContainerStatus, GroupRecord, GroupSpec, ObservedGroup, StateKind,
};
use berth_image::Image;
use berth_runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::container::{Adopted, ContainerCtx};
use super::images::pull_images;
use super::sandbox::{sandbox, Sandbox};
use super::shared::SharedSandbox;
use super::state::{waiting, GroupState};
use crate::files::GroupDirs;
use crate::host::Host;

/// Runs a group until it is cancelled or all its containers are done for good.
pub async fn run_group(host: Arc<Host>, rec: GroupRecord, how: Start, cancel: CancellationToken) {
    let fresh = how != Start::Resume;
    let gid = rec.id.to_string();
    let spec = Arc::new(rec.spec.clone());
    let dirs = host.dirs.group(&gid);
    let mut obs = if fresh {
        initial_observed(&spec)
    } else {
        resumed_observed(&rec)
    };
    obs.generation = rec.restart_generation;
    // After an update (or a restart of berth during one): what changed starts afresh.
    let changed = if how == Start::Resume {
        let changed = super::revision::changed_app(&dirs, &spec);
        super::revision::mark_changed(&mut obs, &changed);
        changed
    } else {
        Vec::new()
    };
    // Until the app containers' tasks run (each marks its own start).
    let starting = host.starting();
    let state = GroupState::new(rec.id.clone(), obs, host.reporter.clone());
    state.update(|_| {});
    if fresh {
        host.spares.claim(&dirs);
    }

    // Before any container starts (the gvisor class's sandbox too): stops, adoptions and
    // execs go by this file.
    if let Err(e) = dirs.write_runtime_class(spec.runtime_class()) {
        tracing::error!(group = %gid, error = %e, "cannot record the group's runtime class; its containers do not start");
        return;
    }
    // Network and images are independent: set both up at once. The gvisor class's sandbox
    // boots as soon as the network is there, beside the pulls.
    let began = std::time::Instant::now();
    let hostname = spec.host_name.clone().unwrap_or_else(|| spec.name.clone());
    let net = async {
        // Before the network is attached: a pooled sandbox brings the namespace it runs in.
        super::pooled::take(&host, &gid, &dirs, &spec, how == Start::New).await;
        let gib = spec.ephemeral_storage_gib();
        let r = sandbox(&host, &gid, &dirs, &hostname, gib, &spec, &state, &cancel).await;
        let shared = r
            .as_ref()
            .and_then(|(att, _)| SharedSandbox::of(&host, &gid, &dirs, &spec, att.netns.clone()));
        if let Some(shared) = &shared {
            // A failure is retried by the first container that needs the sandbox.
            if let Err(e) = shared.ensure().await {
                tracing::warn!(group = %gid, error = %e, "cannot start the group's sandbox");
            }
        }
        (r.map(|r| (r, shared)), began.elapsed())
    };
    let images = async {
        super::cache::ensure_cache(&host, &rec, &state, &cancel).await;
        let r = pull_images(&host.images, &spec, &rec.account, &state, &cancel).await;
        (r, began.elapsed())
    };
    // The account's confinement too: asked of the store, or of the control plane on a node
    // of a cluster.
    let seccomp = super::seccomp::account_seccomp(&host, &rec, &state, &cancel);
    // Boxed: the group's task outlives them by the life of its containers and would
    // otherwise keep room for the largest of them (1,000 idle groups).
    let ((attachment, net_took), (images, images_took), seccomp) =
        tokio::join!(Box::pin(net), Box::pin(images), Box::pin(seccomp));
    tracing::debug!(
        group = %gid,
        net_us = net_took.as_micros() as u64,
        images_us = images_took.as_micros() as u64,
        "network and images ready"
    );
    let Some(((attachment, userns), shared)) = attachment else {
        return;
    };
    // Only when the group went before its account's profile came.
    let Some(seccomp) = seccomp else { return };
    // Admission to the account's peers runs beside the start of the containers; the group
    // reaches no other group until it is done (see berth_net's isolation). Its ports are
    // published first, in the same task: both change the group's network record.
    let admit = {
        let host = host.clone();
        let (gid, account) = (gid.clone(), rec.account.clone());
        let (spec, state, cancel) = (spec.clone(), state.clone(), cancel.clone());
        tokio::spawn(async move {
            super::ports::publish(&host.net, &gid, &spec, &state, &cancel).await;
            if let Err(e) = host.net.admit(&gid, &account).await {
                tracing::warn!(group = %gid, error = %e, "cannot admit the group to its account's network");
            }
        })
    };
    // The record as it came is not needed any more: its strings go back now, not when the
    // group ends.
    let account: Arc<str> = Arc::from(rec.account.as_str());
    drop(rec);
    let sandbox = Sandbox {
        attachment,
        userns,
        shared,
    };
    let shared = sandbox.shared.clone();
    run_containers(
        &host, &spec, &gid, &account, &dirs, &state, how, sandbox, images, &seccomp, &cancel,
        starting, &changed,
    )
    .await;
    // Done for good: the sandbox's memory goes back (a cancelled run keeps it for the next).
    if let (Some(shared), false) = (shared, cancel.is_cancelled()) {
        Box::pin(shared.shut_down()).await;
    }
    // Never left running past the group task: a removal follows it.
    let _ = admit.await;
}

/// The init containers in order, then the app containers side by side, until all are done
/// for good or the group goes.
#[allow(clippy::too_many_arguments)]
async fn run_containers(
    host: &Arc<Host>,
    spec: &Arc<GroupSpec>,
    gid: &str,
    account: &Arc<str>,
    dirs: &GroupDirs,
    state: &Arc<GroupState>,
    how: Start,
    sandbox: Sandbox,
    images: Option<HashMap<String, Image>>,
    seccomp: &berth_runtime::seccomp::Seccomp,
    cancel: &CancellationToken,
    starting: crate::host::Starting,
    changed: &[String],
) {
    let fresh = how != Start::Resume;
    let Some(images) = images else { return };

    let ctx = |c: &berth_core::ContainerSpec, init: bool| ContainerCtx {
        host: host.clone(),
        group: spec.clone(),
        gid: gid.to_string(),
        account: account.clone(),
        dirs: dirs.clone(),
        spec: c.clone(),
        image: images[&c.image].clone(),
        init,
        state: state.clone(),
        netns: Some(sandbox.attachment.netns.clone()),
        userns: sandbox.userns.clone(),
        seccomp: seccomp.clone(),
        shared: sandbox.shared.clone(),
        cancel: cancel.clone(),
    };

    if how == Start::Resume {
        Box::pin(super::revision::reconcile(
            host, gid, dirs, spec, state, changed,
        ))
        .await;
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
        let adopted = Box::pin(adopt(host, spec, dirs, state, how, true, &c.name)).await;
        match Box::pin(cx.supervise(adopted)).await {
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
        let adopted = Box::pin(adopt(host, spec, dirs, state, how, false, &c.name)).await;
        tasks.push(tokio::spawn(async move { cx.supervise(adopted).await }));
    }
    drop(starting);
    for t in tasks {
        let _ = t.await;
    }
}

/// What a former berth left of a container: a monitor still running it, or an exit nobody
/// recorded. Both are looked for whatever the record says, since berth may have stopped
/// between spawning a monitor and recording the start, or between an exit and its record.
async fn adopt(
    host: &Host,
    spec: &GroupSpec,
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
    // A class the node no longer runs has no monitor to adopt; the start says why.
    let rt = host.runtime_for(spec.runtime_class()).ok()?;
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
