//! The end of a WebSocket as RFC 6455 (section 7.1.1) has it: after the server's Close, the
//! client's messages are read and dropped until its Close or the end of the connection, for
//! at most a bound, and only then is the connection closed.
//!
//! Closing a TCP connection with anything of the peer's still unread makes the kernel answer
//! with a reset instead of a FIN, and a reset throws away what was still queued to send: the
//! last output of an exec, its status on channel 3, the Close itself. A client that sent one
//! more message (stdin after the command had already read what it needed, say) would then see
//! the connection reset instead of the end of the session.

use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Stream, StreamExt};

/// How long the client has to answer the server's Close.
const LINGER: Duration = Duration::from_secs(2);

/// Reads `input` until the client's Close, its end or an error, or until [`LINGER`] passed.
pub async fn drain<S, E>(input: &mut S)
where
    S: Stream<Item = Result<Message, E>> + Unpin,
{
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(m)) = input.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
