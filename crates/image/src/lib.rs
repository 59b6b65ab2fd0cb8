//! Image store and registry client of the node agent.
//!
//! [`ImageStore::ensure`] resolves a reference against its registry (anonymous or basic auth,
//! HTTPS, plain HTTP or unchecked TLS per host), picks linux/amd64 from an index, downloads the
//! missing layers in parallel while checking their digests, and unpacks each layer once into a
//! directory shared by every image that uses it. [`mount_rootfs`] stacks those directories into
//! the overlay root filesystem of one container.

mod config;
mod error;
mod mount;
mod pull;
mod reference;
mod store;
pub mod unpack;

#[cfg(feature = "testutil")]
pub mod testutil;

pub use config::ImageConfig;
pub use error::{ImageError, UnpackError};
pub use mount::{mount_rootfs, unmount_rootfs};
pub use reference::normalize;
pub use store::{Image, ImageStore, PullEvent, PullOptions};
