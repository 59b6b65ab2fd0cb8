//! Kubernetes' port-forward protocol (`portforward.k8s.io`) over a SPDY/3.1 connection, each
//! forwarded connection relayed to a berth PortForward WebSocket.
//!
//! The client opens streams in pairs with SYN_STREAM: headers `streamtype` (`error` or
//! `data`), `port` and `requestid`; both streams of a request carry the same id. Once a
//! pair is open, berth is asked for a connection to the port on the pod's loopback; the data
//! stream's bytes go there and what comes back goes out on it. The data stream's FIN ends
//! the sending half (berth's empty message); the port's side closing ends the data stream
//! with a FIN. A connection berth cannot make is reported on the error stream (the
//! kubelet's wording) and both streams end. Many pairs may be open at once, on one
//! connection, each with its own relay; the session loop alone writes frames.
//!
//! Flow control as in `remotecommand.rs`: every byte received is given back at once with
//! WINDOW_UPDATE, and the peer's windows are not waited on.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as BerthMessage;

use super::frame::{self, Frame, PROTOCOL_ERROR};
use super::headers::Deflater;
use super::SpdyError;
use crate::api::backend::{Backend, ExecSocket};

/// The protocol named in `X-Stream-Protocol-Version`.
pub const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// Most streams open at once on one connection (32 forwarded connections).
const MAX_OPEN: usize = 64;
/// Most characters of a `requestid`.
const MAX_REQUEST_ID: usize = 64;
/// Largest data frame sent.
const CHUNK: usize = 32 * 1024;
/// How long the second stream of a pair may take to come.
const PAIR_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Data,
    Error,
}

/// What a relay asks the session loop to send.
enum Out {
    Data {
        stream: u32,
        data: Vec<u8>,
    },
    Fin(u32),
    /// The pair ended: its streams are forgotten.
    Done(String),
}

/// One forwarded connection: its two streams, and the relay's input once it runs.
#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<u32>,
    error: Option<u32>,
    /// Bytes of the data stream for the relay; `None` after the client's FIN.
    input: Option<mpsc::Sender<Vec<u8>>>,
    started: bool,
}

/// Something that opens berth's PortForward WebSocket for a port of the pod's group.
pub(crate) type Dial = std::sync::Arc<dyn Backend>;

/// Serves port forwarding on `io` for berth's group `group` until the client goes.
pub(crate) async fn serve<IO>(io: IO, backend: Dial, group: String, pod: String)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(io);
    let (mut frames, reader) = super::read_frames(read);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let mut s = Session {
        deflater: Deflater::default(),
        pairs: HashMap::new(),
        streams: HashMap::new(),
        last_id: 0,
        backend,
        group,
        pod,
        out_tx,
    };
    let mut tick = tokio::time::interval(PAIR_WAIT);
    tick.tick().await;
    let status = loop {
        tokio::select! {
            f = frames.recv() => match f {
                None => break 0,
                Some(Err(e)) => {
                    tracing::debug!("port forward over SPDY: {e}");
                    break PROTOCOL_ERROR;
                }
                Some(Ok(Frame::GoAway { .. })) => break 0,
                Some(Ok(f)) => {
                    if let Err(e) = s.on_frame(f, &mut write).await {
                        tracing::debug!("port forward over SPDY: {e}");
                        break PROTOCOL_ERROR;
                    }
                }
            },
            Some(o) = out_rx.recv() => {
                if s.on_out(o, &mut write).await.is_err() {
                    break 0;
                }
            }
            _ = tick.tick() => {
                if s.drop_unpaired(&mut write).await.is_err() {
                    break 0;
                }
            }
        }
    };
    reader.abort();
    let goaway = Frame::GoAway {
        last_stream: s.last_id,
        status,
    };
    let _ = write
        .write_all(&frame::encode(&goaway, &mut s.deflater))
        .await;
    let _ = write.shutdown().await;
}

struct Session {
    deflater: Deflater,
    /// By request id.
    pairs: HashMap<String, Pair>,
    /// Stream id → (request id, kind).
    streams: HashMap<u32, (String, Kind)>,
    last_id: u32,
    backend: Dial,
    group: String,
    pod: String,
    out_tx: mpsc::Sender<Out>,
}

impl Session {
    async fn send<W: AsyncWrite + Unpin>(&mut self, w: &mut W, f: &Frame) -> Result<(), SpdyError> {
        w.write_all(&frame::encode(f, &mut self.deflater)).await?;
        Ok(())
    }

    async fn on_frame<W: AsyncWrite + Unpin>(
        &mut self,
        f: Frame,
        w: &mut W,
    ) -> Result<(), SpdyError> {
        match f {
            Frame::SynStream {
                stream, headers, ..
            } => {
                self.last_id = frame::client_stream(stream, self.last_id)?;
                let get = |name: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                };
                let kind = match get("streamtype") {
                    Some("data") => Some(Kind::Data),
                    Some("error") => Some(Kind::Error),
                    _ => None,
                };
                let port = get("port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0);
                let id = get("requestid")
                    .filter(|r| !r.is_empty() && r.len() <= MAX_REQUEST_ID)
                    .map(str::to_string);
                let accepted = match (kind, port, id) {
                    (Some(kind), Some(port), Some(id)) if self.streams.len() < MAX_OPEN => {
                        let pair = self.pairs.entry(id.clone()).or_default();
                        let slot = match kind {
                            Kind::Data => &mut pair.data,
                            Kind::Error => &mut pair.error,
                        };
                        if slot.is_none() && (pair.port == 0 || pair.port == port) {
                            *slot = Some(stream);
                            pair.port = port;
                            self.streams.insert(stream, (id.clone(), kind));
                            Some(id)
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                match accepted {
                    Some(id) => {
                        self.send(w, &Frame::SynReply { stream, fin: false })
                            .await?;
                        self.start_if_paired(&id);
                    }
                    None => self.send(w, &frame::refused(stream)).await?,
                }
            }
            Frame::Data { stream, fin, data } => {
                if !data.is_empty() {
                    for f in frame::give_back(stream, data.len()) {
                        self.send(w, &f).await?;
                    }
                }
                if let Some((id, Kind::Data)) = self.streams.get(&stream).cloned() {
                    if let Some(pair) = self.pairs.get_mut(&id) {
                        if let Some(input) = &pair.input {
                            if !data.is_empty() && input.send(data).await.is_err() {
                                pair.input = None;
                            }
                        }
                        if fin {
                            // Dropping the sender ends the relay's sending half.
                            pair.input = None;
                        }
                    }
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some((id, _)) = self.streams.get(&stream).cloned() {
                    self.forget(&id);
                }
            }
            Frame::Ping(id) if id % 2 == 1 => self.send(w, &Frame::Ping(id)).await?,
            _ => {}
        }
        Ok(())
    }

    /// Starts the relay of a request whose two streams are open.
    fn start_if_paired(&mut self, id: &str) {
        let Some(pair) = self.pairs.get_mut(id) else {
            return;
        };
        let (Some(data), Some(error)) = (pair.data, pair.error) else {
            return;
        };
        if pair.started {
            return;
        }
        pair.started = true;
        let (input_tx, input_rx) = mpsc::channel(16);
        pair.input = Some(input_tx);
        let relay = Relay {
            backend: self.backend.clone(),
            group: self.group.clone(),
            pod: self.pod.clone(),
            port: pair.port,
            id: id.to_string(),
            data,
            error,
            out: self.out_tx.clone(),
        };
        tokio::spawn(relay.run(input_rx));
    }

    async fn on_out<W: AsyncWrite + Unpin>(&mut self, o: Out, w: &mut W) -> Result<(), SpdyError> {
        match o {
            Out::Data { stream, data } => {
                if self.streams.contains_key(&stream) {
                    self.send(
                        w,
                        &Frame::Data {
                            stream,
                            fin: false,
                            data,
                        },
                    )
                    .await?;
                }
            }
            Out::Fin(stream) => {
                if self.streams.contains_key(&stream) {
                    self.send(
                        w,
                        &Frame::Data {
                            stream,
                            fin: true,
                            data: Vec::new(),
                        },
                    )
                    .await?;
                }
            }
            Out::Done(id) => self.forget(&id),
        }
        Ok(())
    }

    fn forget(&mut self, id: &str) {
        if let Some(p) = self.pairs.remove(id) {
            for s in [p.data, p.error].into_iter().flatten() {
                self.streams.remove(&s);
            }
        }
    }

    /// Resets the streams of requests whose second stream has not come in time (checked
    /// every [`PAIR_WAIT`], so a stream waits at most twice that).
    async fn drop_unpaired<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<(), SpdyError> {
        let stale: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| !p.started)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(p) = self.pairs.get(&id) {
                let ids: Vec<u32> = [p.data, p.error].into_iter().flatten().collect();
                for stream in ids {
                    self.send(w, &frame::refused(stream)).await?;
                }
            }
            self.forget(&id);
        }
        Ok(())
    }
}

/// One forwarded connection between its SPDY streams and berth's WebSocket.
struct Relay {
    backend: Dial,
    group: String,
    pod: String,
    port: u16,
    id: String,
    data: u32,
    error: u32,
    out: mpsc::Sender<Out>,
}

impl Relay {
    async fn run(self, mut input: mpsc::Receiver<Vec<u8>>) {
        let ws: ExecSocket = match self.backend.port_forward(&self.group, self.port).await {
            Ok(ws) => ws,
            Err(e) => {
                let msg = format!(
                    "error forwarding port {} to pod {}: {e}",
                    self.port, self.pod
                );
                let _ = self
                    .out
                    .send(Out::Data {
                        stream: self.error,
                        data: msg.into_bytes(),
                    })
                    .await;
                self.end().await;
                return;
            }
        };
        let (mut sink, mut stream) = ws.split();
        let inward = async {
            while let Some(data) = input.recv().await {
                if sink.send(BerthMessage::Binary(data.into())).await.is_err() {
                    return;
                }
            }
            // The client's FIN: berth's empty message ends the sending half.
            let _ = sink.send(BerthMessage::Binary(Vec::new().into())).await;
            std::future::pending::<()>().await;
        };
        let outward = async {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    BerthMessage::Binary(b) => {
                        for chunk in b.chunks(CHUNK) {
                            let d = Out::Data {
                                stream: self.data,
                                data: chunk.to_vec(),
                            };
                            if self.out.send(d).await.is_err() {
                                return;
                            }
                        }
                    }
                    BerthMessage::Close(_) => break,
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = inward => {}
            _ = outward => {}
        }
        self.end().await;
    }

    async fn end(&self) {
        let _ = self.out.send(Out::Fin(self.data)).await;
        let _ = self.out.send(Out::Fin(self.error)).await;
        let _ = self.out.send(Out::Done(self.id.clone())).await;
    }
}
