//! HTTPS for the API address (`berth serve --tls-cert --tls-key`): loads a PEM certificate
//! chain and private key into a rustls server configuration, and accepts TLS connections for
//! axum. Handshakes run in their own tasks (a slow or silent client never holds up the
//! others) and a connection that speaks plain HTTP gets a short ECI-shaped 400 telling it to
//! use HTTPS instead of a bare reset.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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

/// Why the certificate or the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{what} {path} is not valid PEM")]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "the TLS key file {path} can be read by other users (mode {mode:04o}); \
         chmod o-rwx it (0600 or 0640)"
    )]
    KeyReadable { path: PathBuf, mode: u32 },
    #[error("the certificate {cert} and the key {key} do not make a TLS configuration")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1). The key file must give no access to other users (its
/// group may read it, as Debian's `ssl-cert` group does); a key others can read is refused.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config_error = |source| TlsError::Config {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(config_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "the TLS certificate file";
    let pem = read_file(WHAT, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: WHAT,
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            what: WHAT,
            path: path.to_path_buf(),
            expected: "CERTIFICATE",
        });
    }
    Ok(chain)
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
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: WHAT,
            path: path.to_path_buf(),
            expected: "PRIVATE KEY",
        },
        source => TlsError::Pem {
            what: WHAT,
            path: path.to_path_buf(),
            source,
        },
    })
}

/// A TCP listener whose connections come out of a finished TLS handshake.
pub struct TlsListener {
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
                // Out of descriptors and the like: wait a little, as axum does.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp)).await;
            drop(permit);
            match shaken {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Ok(None)) => {
                    tracing::debug!(%peer, "plain HTTP on the HTTPS address refused")
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The TLS stream of `tcp`, or `None` when the client spoke something else (then it was
/// answered with a 400 and the connection closed).
async fn handshake(
    acceptor: &TlsAcceptor,
    mut tcp: TcpStream,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
        tcp.write_all(&need_tls_response()).await?;
        tcp.shutdown().await?;
        return Ok(None);
    }
    acceptor.accept(tcp).await.map(Some)
}

/// The answer to a plain-HTTP request on the HTTPS address, as the Alibaba Cloud gateway
/// words it.
fn need_tls_response() -> Vec<u8> {
    let body = berth_eci::ApiError::new(
        400,
        "InvalidProtocol.NeedSsl",
        "Your request is denied as lack of ssl protect: this endpoint serves HTTPS only",
    )
    .to_body(&crate::request_id(), "")
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json;charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_tls_answer_is_http() {
        let text = String::from_utf8(need_tls_response()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["Code"], "InvalidProtocol.NeedSsl");
    }

    #[test]
    fn missing_and_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Read { .. })
        ));
        std::fs::write(&cert, "not pem\n").unwrap();
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Empty { .. })
        ));
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&key).unwrap_err();
        assert!(
            matches!(e, TlsError::KeyReadable { mode: 0o644, .. }),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read_key(&key), Err(TlsError::Empty { .. })));
    }
}
