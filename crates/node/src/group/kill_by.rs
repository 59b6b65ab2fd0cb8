//! When a group's containers are killed at the latest while it is removed: a time that a
//! later removal may only bring forward (see `agent::removals`), and the wait for it.

use tokio::sync::watch;
use tokio::time::Instant;

/// When a removal's containers get SIGKILL at the latest; it only ever comes sooner.
pub type KillBy = watch::Receiver<Instant>;

/// Waits until the time `by` says, once it is sooner than `deadline` (the time the removal
/// began with); never otherwise. A time brought forward during the wait is followed.
pub async fn brought_forward(mut by: KillBy, deadline: Instant) {
    loop {
        let at = *by.borrow_and_update();
        let until = async {
            if at < deadline {
                tokio::time::sleep_until(at).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            () = until => return,
            changed = by.changed() => {
                if changed.is_err() {
                    // No later removal can come: the last time stays.
                    if at < deadline {
                        tokio::time::sleep_until(at).await;
                        return;
                    }
                    return std::future::pending().await;
                }
            }
        }
    }
}
