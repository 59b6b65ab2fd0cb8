//! HTTPS for the API address (`berth serve --tls-cert --tls-key`): loads a PEM certificate
//! chain and private key into a rustls server configuration, and accepts TLS connections for
//! axum (`berth_tls::TlsListener`: handshakes in their own tasks, bounded). A connection
//! that speaks plain HTTP gets a short ECI-shaped 400 telling it to
//! use HTTPS instead of a bare reset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use berth_tls::{PemError, TlsListener};

/// Why the certificate or the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] PemError),
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
    let chain = berth_tls::read_chain("the TLS certificate file", cert)?;
    let key_der = berth_tls::read_key(key)?;
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

/// The answer to a plain-HTTP request on the HTTPS address, as the Alibaba Cloud gateway
/// words it.
pub(crate) fn need_tls_response() -> Vec<u8> {
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
    fn missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsError::Pem(PemError::Read { .. }))
        ));
    }
}
