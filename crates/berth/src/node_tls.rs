//! TLS on the links between a cluster's replicas and its nodes (docs/CLUSTER.md): a node
//! serves its calls over TLS when given a certificate (`berth node --tls-cert --tls-key`)
//! and says so in its offer; replicas then call it over `https`/`wss`, trusting the CA
//! certificates of `--node-ca` (else the system's roots). A node trusts `--control-ca` for
//! `https://` replicas. Calls stay signed with the node's key either way.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// The CA certificates one side trusts for the other.
pub(crate) struct Trust {
    pem: Vec<u8>,
    config: Arc<rustls::ClientConfig>,
}

impl Trust {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let config = crate::exec::ca_config(&pem).with_context(|| path.display().to_string())?;
        Ok(Self { pem, config })
    }

    /// `builder` trusting these CAs too.
    pub(crate) fn http(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = builder;
        for cert in reqwest::Certificate::from_pem_bundle(&self.pem)? {
            builder = builder.add_root_certificate(cert);
        }
        Ok(builder)
    }

    /// A WebSocket connector trusting only these CAs.
    pub(crate) fn connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.config.clone())
    }
}

/// The TLS configuration of a node's server (`--tls-cert`, `--tls-key`), if given.
pub(crate) fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some(berth_server::tls_server_config(c, k)?)),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}
