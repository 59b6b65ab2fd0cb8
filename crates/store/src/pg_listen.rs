//! Word of group writes between replicas on PostgreSQL: every transaction that writes a
//! group's row notifies the channel [`CHANNEL`] (`pg_revision::lock_for_write`), and each
//! replica keeps one connection that listens on it and wakes its node watches at once
//! instead of at their next poll. The connection is made again when it breaks; a wake-up
//! that a break loses is only as late as the poll.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel group writes are told on.
pub(crate) const CHANNEL: &str = "berth_group_writes";

/// Starts listening with `config`; `writes` is notified for every group write committed by
/// any replica. Ends when the last other holder of `writes` is gone.
pub(crate) fn spawn(config: tokio_postgres::Config, writes: Arc<Notify>) {
    let weak = Arc::downgrade(&writes);
    drop(writes);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            if weak.strong_count() == 0 {
                return;
            }
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    delay = Duration::from_millis(200);
                    let listen = async { client.batch_execute(&format!("LISTEN {CHANNEL}")).await };
                    let messages = async {
                        loop {
                            let next = tokio::select! {
                                m = std::future::poll_fn(|cx| connection.poll_message(cx)) => m,
                                // The store was dropped: the connection goes with it.
                                _ = tokio::time::sleep(Duration::from_secs(5)) => {
                                    if weak.strong_count() == 0 {
                                        return;
                                    }
                                    continue;
                                }
                            };
                            match next {
                                Some(Ok(AsyncMessage::Notification(_))) => match weak.upgrade() {
                                    Some(w) => w.notify_waiters(),
                                    None => return,
                                },
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "the store's listening connection broke");
                                    return;
                                }
                                None => return,
                            }
                        }
                    };
                    let (listened, ()) = tokio::join!(listen, messages);
                    if let Err(e) = listened {
                        tracing::warn!(error = %e, "cannot listen for group writes");
                    }
                    // Whatever was told while the connection was down.
                    if let Some(w) = weak.upgrade() {
                        w.notify_waiters();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot connect to listen for group writes");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}
