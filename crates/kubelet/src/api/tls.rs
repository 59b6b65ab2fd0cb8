//! TLS of the kubelet API: the serving certificate from PEM files (the kubelet's
//! `--tls-cert-file`/`--tls-private-key-file`) or generated self-signed for the node's names
//! (as the kubelet does without them), client certificates verified against an optional CA
//! (`--client-ca-file`; a client without one may still send a bearer token), served by
//! `berth_tls::TlsListener` (handshakes bounded in time and number). [`Peer`] carries the verified client
//! certificate's user (CN) and groups (O) to the handlers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use berth_tls::PemError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

pub(crate) use berth_tls::TlsListener;

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
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("the client CA file {path} holds a certificate that is no CA certificate")]
    ClientCa { path: PathBuf },
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
        TlsSource::Files { cert, key } => (
            berth_tls::read_chain("the certificate file", cert)?,
            berth_tls::read_key(key)?,
        ),
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
            for cert in berth_tls::read_chain("the client CA file", path)? {
                roots.add(cert).map_err(|_| TlsError::ClientCa {
                    path: path.to_path_buf(),
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
