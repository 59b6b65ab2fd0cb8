//! The framing of the node protocol's streams (docs/NODE_PROTOCOL.md): an interactive exec
//! relayed between a replica and a node over a WebSocket, each binary message a channel
//! byte and its data.

use serde::{Deserialize, Serialize};

use berth_core::GroupId;

/// Replica → node: bytes for the process's stdin.
pub const STDIN: u8 = 0;
/// Node → replica: bytes the process wrote to stdout (or the terminal).
pub const STDOUT: u8 = 1;
/// Node → replica: bytes the process wrote to stderr.
pub const STDERR: u8 = 2;
/// Replica → node: the terminal's size, columns then rows, each a big-endian u16.
pub const RESIZE: u8 = 3;
/// Node → replica: the exit code, a big-endian i32 (128 + signal when a signal ended it);
/// the last message.
pub const EXIT: u8 = 4;
/// Replica → node: kill the process now.
pub const KILL: u8 = 5;
/// Replica → node: stdin is closed.
pub const STDIN_EOF: u8 = 6;
/// Node → replica: the exec failed (UTF-8 text); the last message.
pub const ERROR: u8 = 7;
/// Node → replica: the process started; the first message unless the start failed.
pub const READY: u8 = 8;

/// `GET /agent/v1/exec-stream?call=HEX`: an interactive exec, its [`ExecStreamCall`] as
/// the lowercase hex of its JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStreamCall {
    pub group: GroupId,
    pub container: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    /// The terminal's first size, `(columns, rows)`.
    pub size: Option<(u16, u16)>,
}

impl ExecStreamCall {
    /// The query of the call.
    pub fn query(&self) -> String {
        format!(
            "call={}",
            hex::encode(serde_json::to_vec(self).unwrap_or_default())
        )
    }

    /// The call of a query made by [`ExecStreamCall::query`].
    pub fn from_query(query: &str) -> Option<Self> {
        let hex_text = query.strip_prefix("call=")?;
        serde_json::from_slice(&hex::decode(hex_text).ok()?).ok()
    }
}

/// One message: the channel byte, then the data.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_goes_through_its_query() {
        let call = ExecStreamCall {
            group: GroupId::from_random([1; 20]),
            container: "c".into(),
            command: vec!["sh".into(), "-c".into(), "echo a&b=c".into()],
            tty: true,
            stdin: true,
            size: Some((80, 24)),
        };
        assert_eq!(ExecStreamCall::from_query(&call.query()), Some(call));
        assert_eq!(ExecStreamCall::from_query("call=zz"), None);
        assert_eq!(ExecStreamCall::from_query("other=1"), None);
        assert_eq!(frame(EXIT, &3i32.to_be_bytes()), [EXIT, 0, 0, 0, 3]);
    }
}
