//! berth's temporary storage: every container group gets a directory of its own whose
//! size is enforced by the kernel — a btrfs subvolume with a quota group limit. Its
//! writable layers, empty-dir volumes and logs live there, so a group that fills it gets
//! `EDQUOT` while the host and the other groups are untouched.
//!
//! One btrfs filesystem holds all of them: one the operator mounted, or a sparse file
//! berth makes once and mounts through a loop device ([`Storage::open`]). Making a
//! group's storage is two ioctls (about 0.1 ms), so nothing needs to be made ahead of
//! time; docs/adr/0008-temporary-storage.md compares the alternatives measured.

mod btrfs;
mod error;
mod loopdev;
mod storage;

pub use error::StorageError;
pub use storage::{Storage, StorageConfig, Usage, MAX_SIZE, MIN_SIZE};
