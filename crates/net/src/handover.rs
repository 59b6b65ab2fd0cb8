//! A wired namespace handed from one owner to another: a gVisor sandbox booted ahead of time
//! (by the node's sandbox pool) runs in the namespace wired for the pool's name, and a running
//! sandbox cannot change its network, so the group that takes the sandbox must get exactly
//! that namespace ([`Network::hand_over`]), as a group takes a pool namespace over.
//!
//! The steps are those of a takeover from the namespace pool: the group's pin is made first,
//! then the record changes owner in one rename (from then on the namespace is the group's),
//! then the former pin goes. Repeating the hand-over after a crash finishes what was left.

use crate::cache;
use crate::error::NetError;
use crate::netns;
use crate::network::{validate_id, Network};
use crate::pool::{is_warm, rename_sandbox};
use crate::result::Attachment;

impl Network {
    /// Gives the namespace wired for `from` to `to` and returns `to`'s wiring. Done already
    /// (the record is `to`'s), it only removes a pin of `from` that is left.
    pub fn hand_over(&self, from: &str, to: &str) -> Result<Attachment, NetError> {
        for id in [from, to] {
            validate_id(id)?;
            if is_warm(id) {
                return Err(NetError::InvalidId {
                    id: id.to_owned(),
                    reason: "names starting with `warm-` belong to the namespace pool",
                });
            }
        }
        let state = &self.cfg.state_dir;
        let (old, new) = (self.netns_path(from), self.netns_path(to));
        let Some(mut rec) = cache::read(state, from) else {
            let done = cache::read(state, to).ok_or_else(|| NetError::NoAddress {
                id: from.to_owned(),
            })?;
            netns::remove(&old)?;
            let mut att = done.attachment;
            att.netns = new;
            return Ok(att);
        };
        if cache::read(state, to).is_some() {
            return Err(NetError::AlreadyExists {
                id: to.to_owned(),
                path: new,
            });
        }
        if !netns::is_pinned(&old) {
            return Err(NetError::NoAddress {
                id: from.to_owned(),
            });
        }
        // A pin of `to` from a hand-over cut short is made again.
        netns::remove(&new)?;
        netns::bind(&old, &new)?;
        if let Err(e) = cache::rename(state, from, to) {
            let _ = netns::remove(&new);
            return Err(e);
        }
        if let Err(e) = netns::remove(&old) {
            tracing::warn!(from, to, error = %e, "cannot remove the former pin of a handed-over namespace");
        }
        rec.attachment.netns = new.clone();
        rename_sandbox(&mut rec.result, &old, &new);
        if let Err(e) = cache::write(state, to, &rec) {
            tracing::warn!(id = to, error = %e, "cannot rewrite the handed-over network record");
        }
        Ok(rec.attachment)
    }
}
