//! Image store and registry client of the node agent.
//!
//! [`ImageStore::ensure`] resolves a reference against its registry (anonymous, basic auth or
//! bearer tokens from the registry's token service; HTTPS, plain HTTP or unchecked TLS per
//! host; retried with back-off on transient failures), picks the host platform from an index,
//! downloads the missing layers in parallel while checking their digests, and unpacks each
//! layer once into a directory shared by every image that uses it. [`mount_rootfs`] stacks
//! those directories into the overlay root filesystem of one container.
//!
//! Images in use are pinned by their owners ([`ImageStore::pin`]); [`ImageStore::gc`]
//! collects the rest between disk-use watermarks. Image caches
//! ([`ImageStore::create_cache`]) are pinned sets of images that resolve without a registry.
//! [`ImageStore::import`] loads OCI archives and `docker save` tars.
//!
//! Stored images belong to the accounts that proved they may pull them (the `access`
//! module): a pull, an image cache, or a registry check with the account's own credentials;
//! layers stay shared by digest.

mod access;
mod cache;
mod config;
mod disk;
mod error;
mod gc;
pub mod idmap;
mod import;
mod layer;
mod manifest;
mod mount;
mod pins;
mod pull;
mod reference;
mod registry;
mod store;
pub mod unpack;

#[cfg(feature = "testutil")]
pub mod testutil;

pub use access::DEFAULT_ACCESS_TTL;
pub use cache::CacheInfo;
pub use config::ImageConfig;
pub use error::{ImageError, UnpackError, UnpackLimit};
pub use gc::{GcPolicy, GcReport, ImageInfo};
pub use mount::{mount_rootfs, mount_rootfs_mapped, unmount_rootfs};
pub use reference::{count_held, normalize};
pub use registry::RetryPolicy;
pub use store::{Image, ImageStore, PullEvent, PullOptions, PullProgress};
pub use unpack::UnpackLimits;
