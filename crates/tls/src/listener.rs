//! A TCP listener for axum whose connections come out of a finished TLS handshake. Each
//! handshake runs in its own task, so a slow or silent client never holds up the others; at
//! most `MAX_HANDSHAKES` run at once and each gets `HANDSHAKE_TIMEOUT`. A listener may carry
//! an answer for a client that speaks plain HTTP to it (its first byte is not a TLS
//! handshake record), written before the connection is closed instead of a bare reset.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// See the module's documentation.
pub struct TlsListener {
    accepted: mpsc::Receiver<Accepted>,
    local: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts TLS on `listener`; a client speaking anything else fails its handshake.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        Self::start(listener, config, None)
    }

    /// As [`TlsListener::new`], and a client whose first byte is not a TLS handshake record
    /// gets `answer` (a whole HTTP response) before its connection is closed.
    pub fn with_plain_answer(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        answer: Vec<u8>,
    ) -> io::Result<Self> {
        Self::start(listener, config, Some(answer.into()))
    }

    fn start(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        plain: Option<Arc<[u8]>>,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let acceptor_task = tokio::spawn(accept_loop(listener, acceptor, plain, tx));
        Ok(Self {
            accepted,
            local,
            acceptor_task,
        })
    }

    /// The address it listens on.
    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop ends only when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    plain: Option<Arc<[u8]>>,
    tx: mpsc::Sender<Accepted>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: wait a little, as axum does.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let plain = plain.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                handshake(&acceptor, plain.as_deref(), tcp),
            )
            .await;
            drop(permit);
            match shaken {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the HTTPS address refused"),
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The TLS stream of `tcp`, or `None` when the client spoke something else and was given
/// `plain` (then the connection is closed).
async fn handshake(
    acceptor: &TlsAcceptor,
    plain: Option<&[u8]>,
    mut tcp: TcpStream,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    if let Some(answer) = plain {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
            tcp.write_all(answer).await?;
            tcp.shutdown().await?;
            return Ok(None);
        }
    }
    acceptor.accept(tcp).await.map(Some)
}
