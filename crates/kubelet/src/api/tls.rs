//! TLS of the kubelet API: the serving certificate from PEM files (the kubelet's
//! `--tls-cert-file`/`--tls-private-key-file`) or generated self-signed for the node's names
//! (as the kubelet does without them), client certificates verified against an optional CA
//! (`--client-ca-file`; a client without one may still send a bearer token), and a listener
//! whose handshakes are bounded in time and number. [`Peer`] carries the verified client
//! certificate's user (CN) and groups (O) to the handlers.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// Most groups (O) read from a client certificate.
const MAX_CERT_GROUPS: usize = 32;

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum TlsSource {
    /// A PEM certificate chain (leaf first) and its PEM private key; the key file must not be
    /// readable by other users.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate generated at start, signed by itself, for these DNS names and IP
    /// addresses (the node's name and address). Clients must be told to trust it (the API
    /// server's `--kubelet-certificate-authority` unset, metrics-server's
    /// `--kubelet-insecure-tls`).
    SelfSigned { names: Vec<String> },
}

/// Why the TLS configuration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no usable PEM {expected}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error(
        "the TLS key file {path} can be read by other users (mode {mode:04o}); chmod o-rwx it"
    )]
    KeyReadable { path: PathBuf, mode: u32 },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("the TLS configuration cannot be made: {0}")]
    Config(String),
}

/// The rustls configuration and the serving leaf certificate (DER).
pub(crate) fn server_config(
    source: &TlsSource,
    client_ca: Option<&Path>,
) -> Result<(Arc<rustls::ServerConfig>, Vec<u8>), TlsError> {
    let (chain, key) = match source {
        TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
        TlsSource::SelfSigned { names } => self_signed(names)?,
    };
    let leaf = chain[0].to_vec();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_chain(path)? {
                roots.add(cert).map_err(|_| TlsError::Pem {
                    what: "the client CA file",
                    path: path.to_path_buf(),
                    expected: "CA CERTIFICATE",
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), leaf))
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn self_signed(names: &[String]) -> Result<Pair, TlsError> {
    if names.is_empty() {
        return Err(TlsError::Generate("no name to certify".into()));
    }
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    Ok((vec![ck.cert.der().clone()], key.into()))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "the certificate file";
    let pem = read_file(WHAT, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty());
    chain.ok_or_else(|| TlsError::Pem {
        what: WHAT,
        path: path.to_path_buf(),
        expected: "CERTIFICATE",
    })
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "the TLS key file";
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        what: WHAT,
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(TlsError::KeyReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let pem = read_file(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
        what: WHAT,
        path: path.to_path_buf(),
        expected: "PRIVATE KEY",
    })
}

/// The user and groups of a verified client certificate: its subject's first CN and its Os.
pub(crate) fn certificate_identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .take(MAX_CERT_GROUPS)
        .collect();
    Some((user, groups))
}

/// The connection a request came on.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// From the client certificate, verified against the client CA.
    pub identity: Option<(String, Vec<String>)>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let identity = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| certificate_identity(leaf));
        Self {
            addr: *stream.remote_addr(),
            identity,
        }
    }
}

/// A TCP listener whose connections come out of a finished TLS handshake.
pub(crate) struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(Self {
            accepted,
            local,
            acceptor_task,
        })
    }

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
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match shaken {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
