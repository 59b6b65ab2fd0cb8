//! The seccomp confinement of a group's containers: its account's, asked before they start.
//! A start waits for the answer; it never goes on under another profile than the account's.

use berth_core::{ContainerState, EventType, GroupRecord};
use berth_runtime::seccomp::Seccomp;
use tokio_util::sync::CancellationToken;

use super::state::GroupState;
use crate::host::Host;

/// Why a container that waits for its account's profile does not start yet.
const WAITING: &str = "CreateContainerConfigError";

/// The account's confinement, asked again with back-off until it comes or the group goes
/// (`None`). Until then the containers wait, and each new failure is an event.
pub async fn account_seccomp(
    host: &Host,
    rec: &GroupRecord,
    state: &GroupState,
    cancel: &CancellationToken,
) -> Option<Seccomp> {
    let mut attempt = 0u32;
    let mut last_error = String::new();
    loop {
        let res = tokio::select! {
            r = host.seccomp.for_group(&rec.id, &rec.account) => r,
            _ = cancel.cancelled() => return None,
        };
        let e = match res {
            Ok(s) => return Some(s),
            Err(e) => e,
        };
        tracing::warn!(group = %rec.id, error = %e, "cannot read the seccomp profile of the group's account; its containers wait");
        if e != last_error {
            let msg = format!("cannot read the seccomp profile of the group's account: {e}");
            state.update(|obs| {
                for c in obs
                    .init_containers
                    .iter_mut()
                    .chain(obs.containers.iter_mut())
                {
                    if c.current.state == berth_core::StateKind::Waiting {
                        c.current = ContainerState::waiting(WAITING);
                        c.current.reason = Some(WAITING.to_string());
                        c.current.message = Some(msg.clone());
                    }
                }
            });
            state.event(EventType::Warning, "Failed", msg, None);
            last_error = e;
        }
        let delay = berth_core::backoff_delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}
