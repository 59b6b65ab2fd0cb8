//! Errors of the image store, the registry client, the layer unpacker and the overlay mounts.

use std::io;
use std::path::PathBuf;

use oci_client::errors::OciDistributionError;

/// Why an image could not be pulled, stored, unpacked or mounted.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}")]
    InvalidReference {
        reference: String,
        #[source]
        source: oci_client::ParseError,
    },
    /// The registry refused the account's credentials (or anonymous access) for the image:
    /// the account may not use it, whether or not the node stores it. Worded the same either
    /// way, so it tells nothing about what other accounts pulled.
    #[error("{reference}: the account has no access to this image: {reason}")]
    AccessDenied { reference: String, reason: String },
    #[error("image {reference} is not present and the pull policy is Never")]
    NotPresent { reference: String },
    #[error("registry request for {reference} failed")]
    Registry {
        reference: String,
        #[source]
        source: OciDistributionError,
    },
    /// The registry answered with an error; `message` is what it said.
    #[error("{reference}: registry answered {status} to {what}: {message}")]
    RegistryStatus {
        reference: String,
        what: String,
        status: u16,
        message: String,
    },
    /// The registry (or its token service) could not be reached, after retries.
    #[error("{reference}: cannot reach {url}: {message}")]
    Unreachable {
        reference: String,
        url: String,
        message: String,
    },
    /// The token service refused the credentials or answered nonsense.
    #[error("{reference}: token service {realm} refused: {message}")]
    Token {
        reference: String,
        realm: String,
        message: String,
    },
    /// A manifest or index larger than berth reads (4 MiB).
    #[error("{reference}: manifest is larger than {limit} bytes")]
    ManifestTooLarge { reference: String, limit: u64 },
    /// An image configuration larger than berth reads (4 MiB).
    #[error("{reference}: config {digest} is {size} bytes, more than the {limit} bytes accepted")]
    ConfigTooLarge {
        reference: String,
        digest: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference}: invalid manifest: {message}")]
    Manifest { reference: String, message: String },
    #[error("{reference}: layer {digest} has unsupported media type {media_type:?}")]
    UnsupportedLayer {
        reference: String,
        digest: String,
        media_type: String,
    },
    #[error("blob {digest} of {reference} ended after {actual} of {expected} bytes")]
    BlobTruncated {
        reference: String,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("image {reference} is pinned by {owners:?}")]
    Pinned {
        reference: String,
        owners: Vec<String>,
    },
    #[error("image {reference} is not in the store")]
    Unknown { reference: String },
    #[error("image cache {id:?} does not exist")]
    NoSuchCache { id: String },
    #[error("image cache {id:?} holds no image {reference}")]
    NotInCache { id: String, reference: String },
    #[error("image cache {id:?}: layer {layer} of {reference} is missing from the store")]
    CacheDamaged {
        id: String,
        reference: String,
        layer: PathBuf,
    },
    #[error("invalid image cache id {id:?}")]
    InvalidCacheId { id: String },
    #[error("importing {path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error("unsupported digest {digest:?} in {reference}")]
    UnsupportedDigest { reference: String, digest: String },
    #[error("digest mismatch in {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("downloading blob {digest} of {reference}")]
    Download {
        reference: String,
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest} of {reference} is larger than its descriptor ({size} bytes)")]
    BlobTooLarge {
        reference: String,
        digest: String,
        size: u64,
    },
    #[error("invalid image config {digest} of {reference}")]
    Config {
        reference: String,
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    /// A layer was refused because the image it belongs to unpacks to more than the store's
    /// [`UnpackLimits`](crate::UnpackLimits) allow; nothing of the layer was kept.
    #[error("layer {digest} of {reference} refused: the image unpacks to more than {max} {limit}")]
    UnpackLimit {
        reference: String,
        digest: String,
        limit: UnpackLimit,
        max: u64,
    },
    #[error("unpacking layer {digest} of {reference}: {source}")]
    Unpack {
        reference: String,
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error("corrupt store record {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer path {path} cannot be used in overlay options")]
    UnusableLayerPath { path: PathBuf },
    #[error("overlay options for {target} are {len} bytes, more than a page")]
    MountOptionsTooLong { target: PathBuf, len: usize },
    #[error("mounting overlay on {target}")]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("background unpack task of layer {digest} failed")]
    Task {
        digest: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ImageError {
    /// This error and all its causes, joined by `: `, for events and logs that show one line.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        out
    }

    /// The registry said the image or its repository does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::RegistryStatus { status: 404, .. })
    }

    /// The registry or its token service refused the credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Self::RegistryStatus {
                status: 401 | 403,
                ..
            } | Self::Token { .. }
                | Self::AccessDenied { .. }
        )
    }

    /// A refusal of the registry or its token service as [`ImageError::AccessDenied`], with
    /// only what a refusal of a pull also says (the status, not the request); other errors
    /// as they are.
    pub(crate) fn into_refusal(self) -> Self {
        match self {
            Self::RegistryStatus {
                reference,
                status: status @ (401 | 403),
                ..
            } => {
                let text = reqwest::StatusCode::from_u16(status)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| status.to_string());
                Self::AccessDenied {
                    reference,
                    reason: format!(
                        "the registry answered {text} to its credentials (or to anonymous access \
                         when it gave none for this registry)"
                    ),
                }
            }
            Self::Token {
                reference,
                realm,
                message,
            } => Self::AccessDenied {
                reference,
                reason: format!("the token service {realm} refused: {message}"),
            },
            other => other,
        }
    }

    /// A check of a stored image that ends the call: the registry refused the account, or
    /// could not be reached. Other failures (a tag gone, a registry that does not answer
    /// `HEAD`) leave it to a pull to tell.
    pub(crate) fn is_final_refusal(&self) -> bool {
        matches!(self, Self::AccessDenied { .. } | Self::Unreachable { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The error of unpacking layer `digest` of `reference`; a limit gone past is
    /// [`ImageError::UnpackLimit`].
    pub(crate) fn unpack(reference: &str, digest: &str, source: UnpackError) -> Self {
        match source {
            UnpackError::Limit { limit, max } => Self::UnpackLimit {
                reference: reference.to_owned(),
                digest: digest.to_owned(),
                limit,
                max,
            },
            source => Self::Unpack {
                reference: reference.to_owned(),
                digest: digest.to_owned(),
                source,
            },
        }
    }
}

/// Why a layer archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the layer archive: {0}")]
    Read(#[source] io::Error),
    #[error("entry {path:?} escapes the layer root")]
    Escape { path: String },
    #[error("entry {path:?} goes through {through:?}, which is not a directory")]
    NotADirectory { path: String, through: PathBuf },
    #[error("hard link {path:?} has no target")]
    MissingLinkTarget { path: String },
    #[error("uncompressed layer digest mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The image went past one of its [`UnpackLimits`](crate::UnpackLimits).
    #[error("the image unpacks to more than {max} {limit}")]
    Limit { limit: UnpackLimit, max: u64 },
}

/// Which of the [`UnpackLimits`](crate::UnpackLimits) an image went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpackLimit {
    /// `max_bytes`: bytes written to files.
    Bytes,
    /// `max_entries`: archive entries.
    Entries,
}

impl std::fmt::Display for UnpackLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bytes => "bytes (unpack limit max_bytes)",
            Self::Entries => "entries (unpack limit max_entries)",
        })
    }
}

impl UnpackError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
