//! The probes and the PostStart hook of one run of a container, with Kubernetes' semantics:
//! the PostStart hook runs first (the container is not Ready before it is done; failing it
//! kills the container), the startup probe holds the others back until it passes (failing it
//! kills the container), the readiness probe drives `Ready` (without one the container is
//! Ready once started), and failing the liveness probe kills the container, which its
//! restart policy then restarts. Every kill runs the PreStop hook first.
//!
//! The checks run as one future beside the wait for the container's exit
//! ([`super::ContainerCtx::wait`]), so they end with the run.

use std::convert::Infallible;
use std::time::Duration;

use berth_core::{EventType, Probe, Streak};
use chrono::Utc;
use tokio::time::{Instant, MissedTickBehavior};

use super::ContainerCtx;
use crate::group::handler::{self, Target};

/// The longest a PostStart hook may take (Kubernetes sets none; the grace period bounds it
/// here, at least this much).
const MIN_HOOK_TIMEOUT: Duration = Duration::from_secs(1);

/// Watches the run that started at `started_at`; `fresh` when berth started it now (a run
/// adopted after a restart of berth does not run its PostStart hook again). Never returns:
/// it is dropped when the run ends.
pub async fn watch(
    cx: &ContainerCtx,
    started_at: chrono::DateTime<Utc>,
    fresh: bool,
) -> Infallible {
    let spec = &cx.spec;
    let nothing = spec.post_start.is_none()
        && spec.startup_probe.is_none()
        && spec.liveness_probe.is_none()
        && spec.readiness_probe.is_none();
    if cx.init || nothing {
        if !cx.init {
            set_ready(cx, true, None);
        }
        return std::future::pending().await;
    }
    // Boxed: a container without probes or hooks waits without room for them.
    Box::pin(watch_probes(cx, started_at, fresh)).await
}

/// [`watch`] of a container with a PostStart hook or probes.
async fn watch_probes(
    cx: &ContainerCtx,
    started_at: chrono::DateTime<Utc>,
    fresh: bool,
) -> Infallible {
    let spec = &cx.spec;
    let target = Target::of(&cx.host, &cx.gid, &spec.name);
    // Measured from the container's start, also for an adopted run.
    let since_start = (Utc::now() - started_at).to_std().unwrap_or_default();
    let start = Instant::now()
        .checked_sub(since_start)
        .unwrap_or_else(Instant::now);

    if let (Some(h), true) = (&spec.post_start, fresh) {
        let timeout = grace(cx).max(MIN_HOOK_TIMEOUT);
        if let Err(e) = target.run(h, timeout).await {
            cx.state.event(
                EventType::Warning,
                "FailedPostStartHook",
                format!("PostStart hook of container {} failed: {e}", spec.name),
                Some(&spec.name),
            );
            return kill(cx, &target, "its PostStart hook").await;
        }
    }
    if let Some(p) = &spec.startup_probe {
        let mut ticks = Ticks::new(p, start);
        let mut streak = Streak::new();
        loop {
            ticks.next().await;
            let res = target.run(&p.handler, secs(p.timeout_secs)).await;
            match streak.push(res.is_ok(), p) {
                Some(true) => break,
                Some(false) => {
                    unhealthy(cx, "Startup", res.err());
                    return kill(cx, &target, "startup probe").await;
                }
                None => {}
            }
        }
    }
    if spec.readiness_probe.is_none() {
        set_ready(cx, true, None);
    }
    let liveness = async {
        let Some(p) = &spec.liveness_probe else {
            return std::future::pending().await;
        };
        let mut ticks = Ticks::new(p, start);
        let mut streak = Streak::new();
        loop {
            ticks.next().await;
            let res = target.run(&p.handler, secs(p.timeout_secs)).await;
            if streak.push(res.is_ok(), p) == Some(false) {
                unhealthy(cx, "Liveness", res.err());
                return kill(cx, &target, "liveness probe").await;
            }
        }
    };
    let readiness = async {
        let Some(p) = &spec.readiness_probe else {
            return std::future::pending().await;
        };
        let mut ticks = Ticks::new(p, start);
        let mut streak = Streak::new();
        loop {
            ticks.next().await;
            let res = target.run(&p.handler, secs(p.timeout_secs)).await;
            if let Some(ready) = streak.push(res.is_ok(), p) {
                set_ready(cx, ready, res.err());
            }
        }
    };
    tokio::select! {
        never = liveness => never,
        never = readiness => never,
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}

fn grace(cx: &ContainerCtx) -> Duration {
    Duration::from_secs(cx.group.termination_grace_period_secs)
}

/// The probe's schedule: the initial delay from the container's start, then every period.
struct Ticks {
    interval: tokio::time::Interval,
}

impl Ticks {
    fn new(p: &Probe, start: Instant) -> Self {
        let first = start + Duration::from_secs(u64::from(p.initial_delay_secs));
        let mut interval = tokio::time::interval_at(first, secs(p.period_secs));
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval }
    }

    async fn next(&mut self) {
        self.interval.tick().await;
    }
}

/// Sets `Ready` when it changes; a container that stops being ready gets an event.
fn set_ready(cx: &ContainerCtx, ready: bool, why: Option<String>) {
    let name = &cx.spec.name;
    let now = cx.state.container(false, name).map(|c| c.ready);
    if now == Some(ready) && why.is_none() {
        return;
    }
    let event = why.map(|e| {
        (
            EventType::Warning,
            "Unhealthy",
            format!("Readiness probe failed: {e}"),
        )
    });
    cx.state
        .set_container(false, name, event, |c| c.ready = ready);
}

fn unhealthy(cx: &ContainerCtx, which: &str, why: Option<String>) {
    cx.state.event(
        EventType::Warning,
        "Unhealthy",
        format!("{which} probe failed: {}", why.unwrap_or_default()),
        Some(&cx.spec.name),
    );
}

/// Kills the container (PreStop hook, SIGTERM, SIGKILL after the grace period) because of
/// `cause`; its exit then ends the run, and the restart policy decides what follows.
async fn kill(cx: &ContainerCtx, target: &Target, cause: &str) -> Infallible {
    let name = &cx.spec.name;
    cx.state.set_container(
        false,
        name,
        Some((
            EventType::Normal,
            "Killing",
            format!("Container {name} failed {cause}, will be restarted"),
        )),
        |c| c.ready = false,
    );
    if let Some(e) = handler::stop(target, Some(&cx.spec), grace(cx)).await {
        cx.state.event(
            EventType::Warning,
            "FailedPreStopHook",
            format!("PreStop hook of container {name} failed: {e}"),
            Some(name),
        );
    }
    std::future::pending().await
}
