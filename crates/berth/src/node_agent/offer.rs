//! What a node offers as of now: its fixed offer (capacity, runtime classes, volumes) with
//! the temporary storage it has free and the images it stores, sent at the join and with
//! every heartbeat.

use std::path::Path;

use berth_core::node::{MAX_NODE_IMAGES, MAX_NODE_IMAGE_REF};
use berth_core::NodeOffer;
use berth_node::Agent;

/// Bytes in all and free of the filesystem holding `path`.
fn space(path: &Path) -> Option<(u64, u64)> {
    let fs = nix::sys::statvfs::statvfs(path).ok()?;
    let block = fs.fragment_size() as u64;
    Some((
        (fs.blocks() as u64).saturating_mul(block),
        (fs.blocks_available() as u64).saturating_mul(block),
    ))
}

/// `base` with the storage and images of now.
pub(crate) fn current(mut base: NodeOffer, agent: &Agent, state_dir: &Path) -> NodeOffer {
    // The groups' storage is a sparse file on the state directory's filesystem (or a
    // filesystem of the operator's): what is free is the least of both.
    if let Some((total, free)) = agent.storage_root().as_deref().and_then(space) {
        let host_free = space(state_dir).map_or(free, |(_, f)| f);
        base.storage_bytes = total;
        base.storage_free_bytes = free.min(host_free);
    }
    base.images = agent
        .recent_images(MAX_NODE_IMAGES)
        .into_iter()
        .filter(|r| r.len() <= MAX_NODE_IMAGE_REF)
        .collect();
    base
}
