//! Resolving a reference against its registry and downloading what is missing: manifest
//! (index → linux/amd64), config, and layers in parallel, each layer once even when several
//! pulls need it, hashed while it streams into the unpacker.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::try_join_all;
use futures_util::StreamExt;
use oci_client::client::{linux_amd64_resolver, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::{ImageError, UnpackError};
use crate::reference::{host_listed, registry_host};
use crate::store::{Inner, PullOptions, Record};
use crate::{config, unpack};

/// Registry clients are kept per host, transport and login, so connections and bearer tokens
/// are reused between pulls.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    host: String,
    plain_http: bool,
    insecure: bool,
    login: Option<(String, String)>,
}

/// Resolves `reference`, fetches its config and missing layers. Returns the record to store
/// and the number of compressed layer bytes downloaded.
pub(crate) async fn pull(
    inner: &Inner,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(Record, u64), ImageError> {
    let name = reference.whole();
    let registry_err = |source: OciDistributionError| ImageError::Registry {
        reference: name.clone(),
        source,
    };
    let (client, auth) = client_for(inner, reference, opts).map_err(registry_err)?;
    let (manifest, digest) = client
        .pull_image_manifest(reference, &auth)
        .await
        .map_err(registry_err)?;

    let blob = fetch_config(&client, reference, &manifest.config).await?;
    let parsed = config::parse(&blob).map_err(|source| ImageError::Config {
        reference: name.clone(),
        digest: manifest.config.digest.clone(),
        source,
    })?;
    // Diff ids are checked only when the config lists one per layer.
    let diff_ids = (parsed.diff_ids.len() == manifest.layers.len()).then_some(&parsed.diff_ids);

    let fetches = manifest.layers.iter().enumerate().map(|(i, layer)| {
        let diff_id = diff_ids.map(|ids| ids[i].clone());
        fetch_layer(inner, &client, reference, layer, diff_id)
    });
    let bytes = try_join_all(fetches).await?.into_iter().sum();

    let record = Record {
        reference: name,
        digest,
        config_digest: manifest.config.digest.clone(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        config: parsed.config,
    };
    Ok((record, bytes))
}

fn client_for(
    inner: &Inner,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<(Client, RegistryAuth), OciDistributionError> {
    let host = registry_host(reference.registry());
    let login = opts
        .credentials
        .iter()
        .find(|c| registry_host(&c.server) == host)
        .map(|c| (c.user_name.clone(), c.password.clone()));
    let auth = match &login {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let key = ClientKey {
        plain_http: host_listed(&opts.plain_http, &host),
        insecure: host_listed(&opts.insecure, &host),
        host,
        login,
    };
    let mut clients = inner
        .clients
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(client) = clients.get(&key) {
        return Ok((client.clone(), auth));
    }
    let config = ClientConfig {
        protocol: if key.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: key.insecure,
        platform_resolver: Some(Box::new(linux_amd64_resolver)),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    };
    let client = Client::try_from(config)?;
    clients.insert(key, client.clone());
    Ok((client, auth))
}

/// The hex part of a `sha256:` digest, refusing anything that is not 64 lowercase hex digits
/// (it becomes a directory name).
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then_some(hex)
}

fn verify(reference: &str, expected: &str, actual: &[u8]) -> Result<(), ImageError> {
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

/// Largest configuration blob accepted; real ones are a few KiB.
const MAX_CONFIG_BYTES: u64 = 32 << 20;

/// Downloads the configuration blob into memory, bounded and digest-checked.
async fn fetch_config(
    client: &Client,
    reference: &Reference,
    descriptor: &OciDescriptor,
) -> Result<Vec<u8>, ImageError> {
    let name = reference.whole();
    let too_large = |size| ImageError::BlobTooLarge {
        reference: name.clone(),
        digest: descriptor.digest.clone(),
        size,
    };
    let limit = match u64::try_from(descriptor.size) {
        Ok(size) if size > MAX_CONFIG_BYTES => return Err(too_large(size)),
        Ok(size) if size > 0 => size,
        _ => MAX_CONFIG_BYTES,
    };
    let mut stream = client
        .pull_blob_stream(reference, descriptor)
        .await
        .map_err(|source| ImageError::Registry {
            reference: name.clone(),
            source,
        })?;
    let mut blob = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| download_error(&name, &descriptor.digest, source))?;
        if (blob.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        blob.extend_from_slice(&chunk);
    }
    verify(&name, &descriptor.digest, &Sha256::digest(&blob))?;
    Ok(blob)
}

enum Chunk {
    Data(Bytes),
    /// The whole blob arrived and matched its digest.
    End,
}

/// Downloads and unpacks one layer unless it is already stored. Returns the bytes downloaded.
async fn fetch_layer(
    inner: &Inner,
    client: &Client,
    reference: &Reference,
    layer: &OciDescriptor,
    diff_id: Option<String>,
) -> Result<u64, ImageError> {
    let name = reference.whole();
    let hex = sha256_hex(&layer.digest).ok_or_else(|| ImageError::UnsupportedDigest {
        reference: name.clone(),
        digest: layer.digest.clone(),
    })?;
    let dir = inner.layer_dir(hex);
    if dir.is_dir() {
        return Ok(0);
    }
    let lock = inner.layer_lock(hex);
    let _guard = lock.lock().await;
    if dir.is_dir() {
        return Ok(0);
    }
    let tmp = inner.temp_dir(hex)?;
    let (tx, rx) = mpsc::channel(16);
    let unpacker = tokio::task::spawn_blocking(move || unpack_into(rx, tmp, dir, diff_id));
    let downloaded = download(client, reference, layer, tx).await;
    let unpacked = unpacker.await.map_err(|source| ImageError::Task {
        digest: layer.digest.clone(),
        source,
    })?;
    let bytes = downloaded?;
    unpacked.map_err(|source| ImageError::Unpack {
        reference: name,
        digest: layer.digest.clone(),
        source,
    })?;
    Ok(bytes)
}

/// Streams the blob into `tx`, hashing it; sends `End` only when the digest matches, so the
/// unpacker never keeps content that failed verification.
async fn download(
    client: &Client,
    reference: &Reference,
    layer: &OciDescriptor,
    tx: mpsc::Sender<Chunk>,
) -> Result<u64, ImageError> {
    let mut tx = Some(tx);
    let name = reference.whole();
    let mut stream = client
        .pull_blob_stream(reference, layer)
        .await
        .map_err(|source| ImageError::Registry {
            reference: name.clone(),
            source,
        })?;
    let limit = u64::try_from(layer.size).ok().filter(|size| *size > 0);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| download_error(&name, &layer.digest, source))?;
        bytes += chunk.len() as u64;
        if let Some(size) = limit.filter(|size| bytes > *size) {
            return Err(ImageError::BlobTooLarge {
                reference: name,
                digest: layer.digest.clone(),
                size,
            });
        }
        hasher.update(&chunk);
        if let Some(sender) = &tx {
            if sender.send(Chunk::Data(chunk)).await.is_err() {
                // The unpacker failed; finish hashing so a corrupt blob is reported as such.
                tx = None;
            }
        }
    }
    verify(&name, &layer.digest, &hasher.finalize())?;
    if let Some(sender) = tx {
        let _ = sender.send(Chunk::End).await;
    }
    Ok(bytes)
}

fn download_error(reference: &str, digest: &str, source: io::Error) -> ImageError {
    let mismatch = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<oci_client::errors::DigestError>());
    if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) = mismatch
    {
        return ImageError::DigestMismatch {
            reference: reference.to_owned(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    ImageError::Download {
        reference: reference.to_owned(),
        digest: digest.to_owned(),
        source,
    }
}

/// Runs on a blocking thread: unpacks into `tmp`, checks the diff id, then renames `tmp` to
/// `dir` in one step. On any failure `tmp` is removed, so no half layer is ever visible.
fn unpack_into(
    rx: mpsc::Receiver<Chunk>,
    tmp: PathBuf,
    dir: PathBuf,
    diff_id: Option<String>,
) -> Result<(), UnpackError> {
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
        ended: false,
    };
    let result = unpack::unpack_layer(reader, &tmp).and_then(|actual| match diff_id {
        Some(expected) if expected != actual => {
            Err(UnpackError::DiffIdMismatch { expected, actual })
        }
        _ => Ok(()),
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            if dir.is_dir() {
                // Another process stored the same layer meanwhile.
                Ok(())
            } else {
                Err(UnpackError::io("renaming", &tmp, e))
            }
        }
    }
}

/// Blocking reader over the chunks of a download. Ends only at `End`; a download that stops
/// without it reads as an error.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(data)) => self.current = data,
                Some(Chunk::End) => self.ended = true,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "layer download stopped",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
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
