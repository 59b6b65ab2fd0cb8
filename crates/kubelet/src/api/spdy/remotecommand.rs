//! Kubernetes' remote command protocol over a SPDY/3.1 connection, relayed to berth's exec
//! WebSocket (spoken with `v5.channel.k8s.io`: 0 stdin, 1 stdout, 2 stderr, 3 status,
//! 4 resize, 255 close).
//!
//! The client opens one stream per channel with SYN_STREAM and a `streamtype` header
//! (`error`, `stdin`, `stdout`, `stderr`, `resize`); each is answered with SYN_REPLY, others
//! are reset. berth's output is relayed once every stream the query asked for is open
//! (error always; stdin, stdout, stderr as asked; resize with a tty from v3 on), which must
//! happen within [`STREAM_WAIT`]. Stdin's data goes to berth and its FIN closes berth's stdin;
//! the resize stream's `{"Width":..,"Height":..}` objects become resize messages. berth's
//! final status goes on the error stream: the `metav1.Status` JSON with v4, its message alone
//! (and nothing on success) before. When berth closes, every stream gets its FIN, then a
//! GOAWAY, and the client's frames are still read (and dropped) until it closes.
//!
//! Flow control: every byte received is given back at once with WINDOW_UPDATE (stream and
//! session), so a peer that honours windows never stalls. The peer's windows are not
//! enforced on what is sent: Kubernetes' SPDY library (spdystream, the API server's and
//! `kubectl`'s) never sends WINDOW_UPDATE, so a sender that waited for one would stop after
//! 64 KiB. The kubelet sends the same way; TCP's own flow control bounds what is in flight.

use std::time::Duration;

use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as BerthMessage;

use super::frame::{self, Frame, PROTOCOL_ERROR};
use super::headers::Deflater;
use super::SpdyError;
use crate::api::backend::Upstream;

/// How long the client has to open the streams it asked for (the kubelet's default).
pub const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long the client has to close the connection after the GOAWAY.
const LINGER: Duration = Duration::from_secs(2);
/// Most streams a client may open on one connection (the protocol needs at most 5).
const MAX_STREAMS: usize = 8;
/// Largest data frame sent, and largest message sent to berth.
const CHUNK: usize = 32 * 1024;
/// Most bytes of an unfinished resize message kept.
const MAX_RESIZE: usize = 4096;

/// The remote command protocol versions served, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SpdyVersion {
    V1,
    V2,
    V3,
    V4,
}

const VERSIONS: [(&str, SpdyVersion); 4] = [
    ("v4.channel.k8s.io", SpdyVersion::V4),
    ("v3.channel.k8s.io", SpdyVersion::V3),
    ("v2.channel.k8s.io", SpdyVersion::V2),
    ("channel.k8s.io", SpdyVersion::V1),
];

impl SpdyVersion {
    pub fn name(self) -> &'static str {
        VERSIONS
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .expect("every version is listed")
    }
}

/// The newest version among the client's `X-Stream-Protocol-Version` headers (repeated or
/// comma-separated); `None` when it sent none (the first protocol, unnamed); an error when
/// none of its versions is served.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<Option<SpdyVersion>, String> {
    let offered: Vec<&str> = headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .take(16)
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    VERSIONS
        .iter()
        .find(|(name, _)| offered.contains(name))
        .map(|(_, v)| Some(*v))
        .ok_or_else(|| {
            format!(
                "no stream protocol in common: offered {}, served {}",
                offered.join(", "),
                VERSIONS.map(|(n, _)| n).join(", ")
            )
        })
}

/// The streams the query asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

const KINDS: [(&str, Kind); 5] = [
    ("error", Kind::Error),
    ("stdin", Kind::Stdin),
    ("stdout", Kind::Stdout),
    ("stderr", Kind::Stderr),
    ("resize", Kind::Resize),
];

/// One stream of the session.
#[derive(Clone, Copy, Debug)]
struct Open {
    id: u32,
    /// A FIN or RST ended our side of it.
    done: bool,
}

/// What to do after a frame.
enum Next {
    Go,
    Stop,
}

struct Session<W> {
    out: W,
    deflater: Deflater,
    version: SpdyVersion,
    wanted: Wanted,
    streams: [Option<Open>; 5],
    last_id: u32,
    opened: usize,
    stdin_closed: bool,
    resize: Vec<u8>,
}

/// Serves the remote command protocol on `io` (the upgraded connection) with berth's exec
/// socket (or an attach's stream), until it or the client ends it; the client has `wait` to
/// open its streams.
pub(crate) async fn serve<IO>(
    io: IO,
    berth: Upstream,
    wanted: Wanted,
    version: SpdyVersion,
    wait: Duration,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (mut frames, reader) = super::read_frames(read);
    let _abort = AbortOnDrop(reader);
    let mut s = Session {
        out: write,
        deflater: Deflater::default(),
        version,
        wanted,
        streams: [None; 5],
        last_id: 0,
        opened: 0,
        stdin_closed: false,
        resize: Vec::new(),
    };
    let Upstream {
        tx: mut berth_tx,
        rx: mut berth_rx,
    } = berth;
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            f = frames.recv() => match f {
                None => break 0,
                Some(Err(e)) => {
                    tracing::debug!("exec over SPDY: {e}");
                    break PROTOCOL_ERROR;
                }
                Some(Ok(f)) => match s.on_frame(f, &mut berth_tx).await {
                    Ok(Next::Go) => {}
                    Ok(Next::Stop) => break 0,
                    Err(e) => {
                        tracing::debug!("exec over SPDY: {e}");
                        break PROTOCOL_ERROR;
                    }
                },
            },
            m = berth_rx.next(), if s.ready() => match m {
                Some(Ok(BerthMessage::Binary(b))) => {
                    if s.on_berth(&b).await.is_err() {
                        break 0;
                    }
                }
                Some(Ok(BerthMessage::Close(_))) | Some(Err(_)) | None => break 0,
                Some(Ok(_)) => {}
            },
            _ = &mut deadline, if !s.ready() => {
                tracing::debug!("exec over SPDY: the client did not open its streams in time");
                break 0;
            }
        }
    };
    let _ = s.finish(status).await;
    let _ = berth_tx.send(BerthMessage::Close(None)).await;
    // The client's frames are read until it closes too: a connection closed with some of them
    // unread is reset, and the reset drops what was still queued to it (the last data, the
    // status, the GOAWAY).
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = frames.recv().await {}
    })
    .await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type BerthSink = std::pin::Pin<
    Box<dyn futures_util::Sink<BerthMessage, Error = crate::api::backend::UpstreamError> + Send>,
>;

async fn to_berth(berth: &mut BerthSink, channel: u8, data: &[u8]) {
    for chunk in data.chunks(CHUNK) {
        let mut m = Vec::with_capacity(chunk.len() + 1);
        m.push(channel);
        m.extend_from_slice(chunk);
        // berth gone: its end is seen on the reading side.
        let _ = berth.send(BerthMessage::Binary(m.into())).await;
    }
}

impl<W: AsyncWrite + Unpin> Session<W> {
    fn slot(kind: Kind) -> usize {
        kind as usize
    }

    fn expected(&self, kind: Kind) -> bool {
        match kind {
            Kind::Error => true,
            Kind::Stdin => self.wanted.stdin,
            Kind::Stdout => self.wanted.stdout,
            Kind::Stderr => self.wanted.stderr,
            Kind::Resize => self.wanted.tty && self.version >= SpdyVersion::V3,
        }
    }

    /// Every stream asked for is open.
    fn ready(&self) -> bool {
        KINDS
            .iter()
            .all(|(_, k)| !self.expected(*k) || self.streams[Self::slot(*k)].is_some())
    }

    fn kind_of(&self, id: u32) -> Option<Kind> {
        KINDS
            .iter()
            .map(|(_, k)| *k)
            .find(|k| self.streams[Self::slot(*k)].is_some_and(|o| o.id == id))
    }

    async fn send(&mut self, f: &Frame) -> Result<(), SpdyError> {
        let bytes = frame::encode(f, &mut self.deflater);
        self.out.write_all(&bytes).await?;
        Ok(())
    }

    async fn on_frame(&mut self, f: Frame, berth: &mut BerthSink) -> Result<Next, SpdyError> {
        match f {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                self.last_id = frame::client_stream(stream, self.last_id)?;
                self.opened += 1;
                let kind = headers
                    .iter()
                    .find(|(n, _)| n == "streamtype")
                    .and_then(|(_, v)| KINDS.iter().find(|(n, _)| n == v))
                    .map(|(_, k)| *k);
                let fresh = |k: &Kind| self.streams[Self::slot(*k)].is_none();
                match kind.filter(|k| self.expected(*k) && fresh(k)) {
                    Some(k) if self.opened <= MAX_STREAMS => {
                        self.streams[Self::slot(k)] = Some(Open {
                            id: stream,
                            done: false,
                        });
                        self.send(&Frame::SynReply { stream, fin: false }).await?;
                        if fin && k == Kind::Stdin {
                            self.close_stdin(berth).await;
                        }
                    }
                    _ => self.send(&frame::refused(stream)).await?,
                }
            }
            Frame::Data { stream, fin, data } => {
                if !data.is_empty() {
                    for f in frame::give_back(stream, data.len()) {
                        self.send(&f).await?;
                    }
                }
                match self.kind_of(stream) {
                    Some(Kind::Stdin) if !self.stdin_closed => {
                        to_berth(berth, 0, &data).await;
                        if fin {
                            self.close_stdin(berth).await;
                        }
                    }
                    Some(Kind::Resize) => self.on_resize(&data, berth).await,
                    _ => {}
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(k) = self.kind_of(stream) {
                    if let Some(o) = &mut self.streams[Self::slot(k)] {
                        o.done = true;
                    }
                    if k == Kind::Stdin {
                        self.close_stdin(berth).await;
                    }
                }
            }
            // Odd ids are the client's pings; even ones would answer pings of ours.
            Frame::Ping(id) if id % 2 == 1 => self.send(&Frame::Ping(id)).await?,
            Frame::GoAway { .. } => return Ok(Next::Stop),
            _ => {}
        }
        Ok(Next::Go)
    }

    async fn close_stdin(&mut self, berth: &mut BerthSink) {
        if !self.stdin_closed {
            self.stdin_closed = true;
            let _ = berth.send(BerthMessage::Binary(vec![255, 0].into())).await;
        }
    }

    /// Relays each whole `{"Width":..,"Height":..}` object of the resize stream.
    async fn on_resize(&mut self, data: &[u8], berth: &mut BerthSink) {
        self.resize.extend_from_slice(data);
        let mut used = 0;
        let mut sizes = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.resize).into_iter::<Value>();
        let bad = loop {
            match it.next() {
                Some(Ok(v)) => {
                    used = it.byte_offset();
                    let dim = |k: &str| v.get(k).and_then(Value::as_u64).filter(|n| *n <= 0xffff);
                    match (dim("Width"), dim("Height")) {
                        (Some(w), Some(h)) => sizes.push(json!({"Width": w, "Height": h})),
                        _ => break true,
                    }
                }
                Some(Err(e)) if e.is_eof() => break false,
                Some(Err(_)) => break true,
                None => break false,
            }
        };
        if bad || self.resize.len() - used > MAX_RESIZE {
            tracing::debug!("exec over SPDY: a malformed resize message is dropped");
            self.resize.clear();
        } else {
            self.resize.drain(..used);
        }
        for s in sizes {
            to_berth(berth, 4, s.to_string().as_bytes()).await;
        }
    }

    /// Relays one of berth's messages to its stream.
    async fn on_berth(&mut self, m: &[u8]) -> Result<(), SpdyError> {
        let Some((&channel, data)) = m.split_first() else {
            return Ok(());
        };
        let kind = match channel {
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Error,
            255 => {
                let k = match data.first() {
                    Some(1) => Kind::Stdout,
                    Some(2) => Kind::Stderr,
                    Some(3) => Kind::Error,
                    _ => return Ok(()),
                };
                return self.fin(k).await;
            }
            _ => return Ok(()),
        };
        let Some(open) = self.streams[Self::slot(kind)].filter(|o| !o.done) else {
            return Ok(());
        };
        let owned;
        let data = if kind == Kind::Error && self.version < SpdyVersion::V4 {
            owned = legacy_error(data);
            owned.as_bytes()
        } else {
            data
        };
        for chunk in data.chunks(CHUNK) {
            self.send(&Frame::Data {
                stream: open.id,
                fin: false,
                data: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    async fn fin(&mut self, kind: Kind) -> Result<(), SpdyError> {
        let slot = Self::slot(kind);
        if let Some(o) = self.streams[slot].filter(|o| !o.done) {
            self.streams[slot] = Some(Open { done: true, ..o });
            self.send(&Frame::Data {
                stream: o.id,
                fin: true,
                data: Vec::new(),
            })
            .await?;
        }
        Ok(())
    }

    /// Ends every stream, then the connection.
    async fn finish(&mut self, status: u32) -> Result<(), SpdyError> {
        for (_, k) in KINDS {
            self.fin(k).await?;
        }
        self.send(&Frame::GoAway {
            last_stream: self.last_id,
            status,
        })
        .await?;
        self.out.flush().await?;
        self.out.shutdown().await?;
        Ok(())
    }
}

/// The error stream's content before v4: the message of a failed status, nothing on
/// success.
fn legacy_error(status: &[u8]) -> String {
    let v: Value = serde_json::from_slice(status).unwrap_or(Value::Null);
    match v.get("status").and_then(Value::as_str) {
        Some("Success") => String::new(),
        _ => v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(status).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_negotiated() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(&h), Ok(None));
        h.append(
            "X-Stream-Protocol-Version",
            "v2.channel.k8s.io".parse().unwrap(),
        );
        h.append(
            "X-Stream-Protocol-Version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(negotiate(&h), Ok(Some(SpdyVersion::V4)));
        let mut h = HeaderMap::new();
        h.append(
            "X-Stream-Protocol-Version",
            "v5.channel.k8s.io, v3.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(negotiate(&h), Ok(Some(SpdyVersion::V3)));
        let mut h = HeaderMap::new();
        h.append(
            "X-Stream-Protocol-Version",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        assert!(negotiate(&h).is_err());
        assert_eq!(SpdyVersion::V4.name(), "v4.channel.k8s.io");
    }

    #[test]
    fn legacy_errors() {
        assert_eq!(legacy_error(br#"{"status":"Success"}"#), "");
        assert_eq!(
            legacy_error(br#"{"status":"Failure","message":"exit 3"}"#),
            "exit 3"
        );
        assert_eq!(legacy_error(b"boom"), "boom");
    }
}
