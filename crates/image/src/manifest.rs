//! Image manifests and indexes (OCI and Docker schema 2) read from a registry: bounded in
//! size, digest-checked, validated descriptor by descriptor, and an index narrowed to the
//! host's platform.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::pull::sha256_hex;
use crate::registry::{error_chain, is_transient_body_error, RegistryClient, Scope};

/// Largest manifest or index accepted; real ones are a few KiB.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// More layers than overlayfs can stack is not an image that can run.
const MAX_LAYERS: usize = 500;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor as a manifest lists it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

impl Descriptor {
    /// The size, refused when negative.
    pub fn size(&self, reference: &str) -> Result<u64, ImageError> {
        u64::try_from(self.size)
            .map_err(|_| invalid(reference, format!("negative size of {}", self.digest)))
    }
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(flatten)]
    descriptor: Descriptor,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

/// A platform image manifest.
#[derive(Clone, Debug)]
pub(crate) struct Manifest {
    /// Digest of the manifest itself.
    pub digest: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

enum Parsed {
    Image(Manifest),
    Index(Vec<IndexEntry>),
}

fn invalid(reference: &str, message: impl Into<String>) -> ImageError {
    ImageError::Manifest {
        reference: reference.to_owned(),
        message: message.into(),
    }
}

/// The architecture name OCI uses for this host.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Fetches the manifest `tag_or_digest` names, following an index to the host's platform.
pub(crate) async fn resolve(
    client: &RegistryClient,
    scope: &Scope<'_>,
    tag_or_digest: &str,
) -> Result<Manifest, ImageError> {
    let expected = tag_or_digest
        .starts_with("sha256:")
        .then_some(tag_or_digest);
    let body = fetch(client, scope, tag_or_digest).await?;
    match parse(scope.reference, &body, expected)? {
        Parsed::Image(manifest) => Ok(manifest),
        Parsed::Index(entries) => {
            let chosen = pick_platform(&entries, host_architecture()).ok_or_else(|| {
                invalid(
                    scope.reference,
                    format!("the index has no image for linux/{}", host_architecture()),
                )
            })?;
            let body = fetch(client, scope, &chosen).await?;
            match parse(scope.reference, &body, Some(&chosen))? {
                Parsed::Image(manifest) => Ok(manifest),
                Parsed::Index(_) => {
                    Err(invalid(scope.reference, "an index points to another index"))
                }
            }
        }
    }
}

/// Whether the login of `scope` (or anonymous access) may read manifest `tag_or_digest`: one
/// `HEAD`, nothing downloaded.
pub(crate) async fn check(
    client: &RegistryClient,
    scope: &Scope<'_>,
    tag_or_digest: &str,
) -> Result<(), ImageError> {
    client
        .head(scope, &format!("manifests/{tag_or_digest}"), ACCEPTED)
        .await
}

/// Reads a manifest from local content (an image archive): `read` returns the blob of a
/// digest. Follows an index to the host's platform.
pub(crate) fn resolve_local(
    reference: &str,
    digest: &str,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, ImageError>,
) -> Result<Manifest, ImageError> {
    let body = read(digest)?;
    match parse(reference, &body, Some(digest))? {
        Parsed::Image(manifest) => Ok(manifest),
        Parsed::Index(entries) => {
            let chosen = pick_platform(&entries, host_architecture()).ok_or_else(|| {
                invalid(
                    reference,
                    format!("the index has no image for linux/{}", host_architecture()),
                )
            })?;
            let body = read(&chosen)?;
            match parse(reference, &body, Some(&chosen))? {
                Parsed::Image(manifest) => Ok(manifest),
                Parsed::Index(_) => Err(invalid(reference, "an index points to another index")),
            }
        }
    }
}

async fn fetch(
    client: &RegistryClient,
    scope: &Scope<'_>,
    tag_or_digest: &str,
) -> Result<Vec<u8>, ImageError> {
    let too_large = || ImageError::ManifestTooLarge {
        reference: scope.reference.to_owned(),
        limit: MAX_MANIFEST_BYTES,
    };
    let path = format!("manifests/{tag_or_digest}");
    let mut attempt = 0;
    loop {
        let mut response = client.get(scope, &path, ACCEPTED, 0).await?;
        if response
            .content_length()
            .is_some_and(|len| len > MAX_MANIFEST_BYTES)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let error = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > MAX_MANIFEST_BYTES {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if is_transient_body_error(&e) => break e,
                Err(e) => {
                    return Err(ImageError::Unreachable {
                        reference: scope.reference.to_owned(),
                        url: path.clone(),
                        message: error_chain(&e),
                    })
                }
            }
        };
        attempt += 1;
        if attempt >= client.retry().attempts {
            return Err(ImageError::Unreachable {
                reference: scope.reference.to_owned(),
                url: path,
                message: error_chain(&error),
            });
        }
        tokio::time::sleep(client.retry().delay(attempt - 1)).await;
    }
}

fn parse(reference: &str, body: &[u8], expected: Option<&str>) -> Result<Parsed, ImageError> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    if let Some(expected) = expected {
        if expected != digest {
            return Err(ImageError::DigestMismatch {
                reference: reference.to_owned(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| invalid(reference, e.to_string()))?;
    if raw.schema_version != Some(2) {
        return Err(invalid(
            reference,
            format!("schema version {:?} is not supported", raw.schema_version),
        ));
    }
    let media_type = raw.media_type.unwrap_or_default();
    if let Some(entries) = raw.manifests {
        if !media_type.is_empty() && media_type != OCI_INDEX && media_type != DOCKER_LIST {
            return Err(invalid(
                reference,
                format!("unsupported media type {media_type}"),
            ));
        }
        for entry in &entries {
            check_descriptor(reference, &entry.descriptor)?;
        }
        return Ok(Parsed::Index(entries));
    }
    if !media_type.is_empty() && media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(invalid(
            reference,
            format!("unsupported media type {media_type}"),
        ));
    }
    let config = raw
        .config
        .ok_or_else(|| invalid(reference, "no config descriptor"))?;
    let layers = raw.layers.unwrap_or_default();
    if layers.len() > MAX_LAYERS {
        return Err(invalid(
            reference,
            format!(
                "{} layers, at most {MAX_LAYERS} are supported",
                layers.len()
            ),
        ));
    }
    for descriptor in layers.iter().chain([&config]) {
        check_descriptor(reference, descriptor)?;
    }
    Ok(Parsed::Image(Manifest {
        digest,
        config,
        layers,
    }))
}

fn check_descriptor(reference: &str, descriptor: &Descriptor) -> Result<(), ImageError> {
    if sha256_hex(&descriptor.digest).is_none() {
        return Err(ImageError::UnsupportedDigest {
            reference: reference.to_owned(),
            digest: descriptor.digest.clone(),
        });
    }
    descriptor.size(reference).map(|_| ())
}

fn pick_platform(entries: &[IndexEntry], arch: &str) -> Option<String> {
    let matching = |e: &&IndexEntry| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    // arm64 images may say v8 or nothing; prefer the exact default.
    let preferred = entries.iter().filter(matching).find(|e| {
        let variant = e.platform.as_ref().and_then(|p| p.variant.as_deref());
        arch != "arm64" || matches!(variant, None | Some("v8"))
    });
    preferred
        .or_else(|| entries.iter().find(matching))
        .map(|e| e.descriptor.digest.clone())
}

/// Whether a layer of this media type is a tar archive the unpacker reads.
pub(crate) fn is_layer_type(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.diff.tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    #[test]
    fn parses_and_validates() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]}}"#,
            d('a'),
            d('b')
        );
        let Parsed::Image(m) = parse("r", body.as_bytes(), None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(m.layers.len(), 1);
        let wrong = parse("r", body.as_bytes(), Some(&d('c')));
        assert!(matches!(wrong, Err(ImageError::DigestMismatch { .. })));
        let negative = body.replace("\"size\":3", "\"size\":-1");
        assert!(matches!(
            parse("r", negative.as_bytes(), None),
            Err(ImageError::Manifest { .. })
        ));
        let escaping = body.replace(&d('b'), "sha256:../../etc/passwd");
        assert!(matches!(
            parse("r", escaping.as_bytes(), None),
            Err(ImageError::UnsupportedDigest { .. })
        ));
        assert!(parse("r", br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse("r", b"not json", None).is_err());
    }

    #[test]
    fn picks_the_host_platform() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}},
              {{"digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let Parsed::Index(entries) = parse("r", body.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(pick_platform(&entries, "amd64"), Some(d('c')));
        assert_eq!(pick_platform(&entries, "arm64"), Some(d('a')));
        assert_eq!(pick_platform(&entries, "s390x"), None);
    }
}
