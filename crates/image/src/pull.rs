//! Resolving a reference against its registry and downloading what is missing: manifest
//! (index → host platform), config, and layers in parallel, each layer once even when several
//! pulls need it, hashed while it streams into the unpacker, resumed after a broken
//! connection, with progress reported per layer.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join_all;
use oci_client::Reference;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config;
use crate::error::ImageError;
use crate::manifest::{self, Descriptor};
use crate::registry::{error_chain, is_transient_body_error, Login, RegistryClient, Scope};
use crate::store::{Inner, PullOptions, PullProgress, Record};
use crate::unpack::Budget;

/// Registry clients are kept per host and transport, so connections and tokens are reused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    host: String,
    plain_http: bool,
    insecure: bool,
}

/// Largest configuration blob accepted, as for manifests; real ones are a few KiB.
pub(crate) const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// One pull in progress: where from, as whom, and whom to tell.
pub(crate) struct Pull<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) client: Arc<RegistryClient>,
    pub(crate) name: String,
    pub(crate) repository: String,
    pub(crate) login: Option<Login>,
    pub(crate) progress: &'a (dyn Fn(&PullProgress) + Send + Sync),
    pub(crate) total: u64,
    pub(crate) done: AtomicU64,
    pub(crate) layers: usize,
    /// What the image's layers unpack to, against the store's limits.
    pub(crate) budget: Arc<Budget>,
}

impl Pull<'_> {
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            reference: &self.name,
            repository: &self.repository,
            login: self.login.as_ref(),
        }
    }

    pub(crate) fn report(
        &self,
        index: usize,
        digest: &str,
        layer_bytes: u64,
        layer_size: u64,
        done: bool,
    ) {
        (self.progress)(&PullProgress {
            reference: self.name.clone(),
            layer: index,
            layers: self.layers,
            digest: digest.to_owned(),
            layer_bytes,
            layer_size,
            bytes: self.done.load(Ordering::Relaxed),
            total_bytes: self.total,
            layer_done: done,
        });
    }
}

/// Resolves `reference`, fetches its config and missing layers. Returns the record to store
/// and the number of compressed layer bytes downloaded.
pub(crate) async fn pull(
    inner: &Inner,
    reference: &Reference,
    opts: &PullOptions,
    progress: &(dyn Fn(&PullProgress) + Send + Sync),
) -> Result<(Record, u64), ImageError> {
    let name = reference.whole();
    let (client, login) = inner.client_for(reference, opts)?;
    let mut pull = Pull {
        inner,
        client,
        name: name.clone(),
        repository: reference.repository().to_owned(),
        login,
        progress,
        total: 0,
        done: AtomicU64::new(0),
        layers: 0,
        budget: Arc::new(Budget::new(inner.unpack_limits())),
    };
    let tag_or_digest = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_owned();
    let manifest = manifest::resolve(&pull.client, &pull.scope(), &tag_or_digest).await?;
    for layer in &manifest.layers {
        if !manifest::is_layer_type(&layer.media_type) {
            return Err(ImageError::UnsupportedLayer {
                reference: name,
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            });
        }
        pull.total += layer.size(&name)?;
    }
    pull.layers = manifest.layers.len();

    let blob = fetch_config(&pull, &manifest.config).await?;
    let parsed = config::parse(&blob).map_err(|source| ImageError::Config {
        reference: name.clone(),
        digest: manifest.config.digest.clone(),
        source,
    })?;
    // Diff ids are checked only when the config lists one per layer.
    let diff_ids = (parsed.diff_ids.len() == manifest.layers.len()).then_some(&parsed.diff_ids);

    let fetches = manifest.layers.iter().enumerate().map(|(i, layer)| {
        let diff_id = diff_ids.map(|ids| ids[i].clone());
        crate::layer::fetch_layer(&pull, i, layer, diff_id)
    });
    let bytes = try_join_all(fetches).await?.into_iter().sum();

    let record = Record {
        reference: name,
        digest: manifest.digest,
        config_digest: manifest.config.digest.clone(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        config: parsed.config,
        imported: false,
    };
    Ok((record, bytes))
}

/// Whether the login `opts` give for the reference's registry (or anonymous access) may read
/// the manifest the reference names: one `HEAD`, nothing stored.
pub(crate) async fn check(
    inner: &Inner,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(), ImageError> {
    let (client, login) = inner.client_for(reference, opts)?;
    let name = reference.whole();
    let scope = Scope {
        reference: &name,
        repository: reference.repository(),
        login: login.as_ref(),
    };
    let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest");
    manifest::check(&client, &scope, tag_or_digest).await
}

impl Inner {
    /// The client for the reference's registry and the login to use there: the request's
    /// credentials first, then, for the operator's own requests only (no account), the
    /// node's.
    fn client_for(
        &self,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<(Arc<RegistryClient>, Option<Login>), ImageError> {
        use crate::reference::{host_listed, registry_host};
        let host = registry_host(reference.registry());
        let node = if opts.account.is_none() {
            self.node_credentials()
        } else {
            Vec::new()
        };
        let login = opts
            .credentials
            .iter()
            .chain(node.iter())
            .find(|c| registry_host(&c.server) == host)
            .map(|c| Login {
                user: c.user_name.clone(),
                password: c.password.clone(),
            });
        let key = ClientKey {
            plain_http: host_listed(&opts.plain_http, &host),
            insecure: host_listed(&opts.insecure, &host),
            host,
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok((client.clone(), login));
        }
        let client = Arc::new(RegistryClient::new(
            &key.host,
            key.plain_http,
            key.insecure,
            self.retry(),
        )?);
        clients.insert(key, client.clone());
        Ok((client, login))
    }
}

/// The hex part of a `sha256:` digest, refusing anything that is not 64 lowercase hex digits
/// (it becomes a directory name).
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then_some(hex)
}

pub(crate) fn verify(reference: &str, expected: &str, actual: &[u8]) -> Result<(), ImageError> {
    let actual = format!("sha256:{}", hex::encode(actual));
    if actual == expected {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            reference: reference.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// Downloads the configuration blob into memory, bounded (its descriptor's size, at most
/// [`MAX_CONFIG_BYTES`]; the download never goes past the descriptor's size) and
/// digest-checked.
async fn fetch_config(pull: &Pull<'_>, descriptor: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let size = descriptor.size(&pull.name)?;
    if size > MAX_CONFIG_BYTES {
        return Err(ImageError::ConfigTooLarge {
            reference: pull.name.clone(),
            digest: descriptor.digest.clone(),
            size,
            limit: MAX_CONFIG_BYTES,
        });
    }
    let mut blob = Vec::new();
    stream_blob(pull, descriptor, size, None, |chunk| {
        blob.extend_from_slice(chunk)
    })
    .await?;
    Ok(blob)
}

/// Streams blob `descriptor` (exactly `size` bytes) to `on_chunk` and into `tx`, resuming from
/// where it broke off after a transient failure, and checks its digest. When the receiver of
/// `tx` is gone (a failed unpack) the blob is still read and checked, so corruption is
/// reported as such.
pub(crate) async fn stream_blob(
    pull: &Pull<'_>,
    descriptor: &Descriptor,
    size: u64,
    tx: Option<&mpsc::Sender<crate::layer::Chunk>>,
    mut on_chunk: impl FnMut(&Bytes),
) -> Result<u64, ImageError> {
    let name = &pull.name;
    let path = format!("blobs/{}", descriptor.digest);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut feeding = true;
    let mut attempt = 0;
    let retry = pull.client.retry();
    loop {
        let mut response = pull.client.get(&pull.scope(), &path, &[], received).await?;
        // A registry that ignores the range sends everything again: skip what we have.
        let mut skip = if response.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            0
        } else {
            received
        };
        let failure = loop {
            match response.chunk().await {
                Ok(Some(mut chunk)) => {
                    if skip > 0 {
                        let n = skip.min(chunk.len() as u64);
                        skip -= n;
                        let _ = chunk.split_to(n as usize);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    received += chunk.len() as u64;
                    if received > size {
                        return Err(ImageError::BlobTooLarge {
                            reference: name.clone(),
                            digest: descriptor.digest.clone(),
                            size,
                        });
                    }
                    hasher.update(&chunk);
                    on_chunk(&chunk);
                    if let Some(tx) = tx.filter(|_| feeding) {
                        feeding = tx.send(crate::layer::Chunk::Data(chunk)).await.is_ok();
                    }
                }
                Ok(None) if received < size => {
                    break ImageError::BlobTruncated {
                        reference: name.clone(),
                        digest: descriptor.digest.clone(),
                        expected: size,
                        actual: received,
                    }
                }
                Ok(None) => {
                    verify(name, &descriptor.digest, &hasher.finalize())?;
                    return Ok(received);
                }
                Err(e) if is_transient_body_error(&e) => {
                    break ImageError::Download {
                        reference: name.clone(),
                        digest: descriptor.digest.clone(),
                        source: io::Error::other(error_chain(&e)),
                    }
                }
                Err(e) => {
                    return Err(ImageError::Download {
                        reference: name.clone(),
                        digest: descriptor.digest.clone(),
                        source: io::Error::other(error_chain(&e)),
                    })
                }
            }
        };
        attempt += 1;
        if attempt >= retry.attempts {
            return Err(failure);
        }
        tracing::debug!(digest = %descriptor.digest, received, error = %failure, "resuming blob download");
        tokio::time::sleep(retry.delay(attempt - 1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_sha256_hex() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&ok), Some("a".repeat(64).as_str()));
        assert_eq!(sha256_hex("sha256:../../etc"), None);
        assert_eq!(sha256_hex(&format!("sha512:{}", "a".repeat(64))), None);
        assert_eq!(sha256_hex(&format!("sha256:{}", "A".repeat(64))), None);
    }
}
