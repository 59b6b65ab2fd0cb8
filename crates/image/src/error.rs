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
    #[error("image {reference} is not present and the pull policy is Never")]
    NotPresent { reference: String },
    #[error("registry request for {reference} failed")]
    Registry {
        reference: String,
        #[source]
        source: OciDistributionError,
    },
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
    #[error("unpacking layer {digest} of {reference}")]
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
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Why a layer archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the layer archive")]
    Read(#[source] io::Error),
    #[error("entry {path:?} escapes the layer root")]
    Escape { path: String },
    #[error("entry {path:?} goes through {through:?}, which is not a directory")]
    NotADirectory { path: String, through: PathBuf },
    #[error("hard link {path:?} has no target")]
    MissingLinkTarget { path: String },
    #[error("uncompressed layer digest mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
