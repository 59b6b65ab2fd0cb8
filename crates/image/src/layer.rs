//! Downloading one layer into the store: once even when several pulls need it, streamed
//! through a channel into an unpacker on a blocking thread, which works in a scratch
//! directory and renames it into place only when the digest and diff id matched.
//!
//! What a layer unpacks to is charged to the budget of the image being pulled; a layer stored
//! before is charged what it unpacked to then. A layer that takes the image past its limits is
//! removed before anything of it is visible.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{ImageError, UnpackError};
use crate::manifest::Descriptor;
use crate::pull::{sha256_hex, stream_blob, Pull};
use crate::store::LayerInfo;
use crate::unpack::{self, Budget};

/// Progress is reported at least this often per layer.
const PROGRESS_STEP: u64 = 256 << 10;

pub(crate) enum Chunk {
    Data(Bytes),
    /// The whole blob arrived and matched its digest.
    End,
}

/// Downloads and unpacks one layer unless it is already stored. Returns the bytes downloaded.
pub(crate) async fn fetch_layer(
    pull: &Pull<'_>,
    index: usize,
    layer: &Descriptor,
    diff_id: Option<String>,
) -> Result<u64, ImageError> {
    let inner = pull.inner;
    let size = layer.size(&pull.name)?;
    let hex = sha256_hex(&layer.digest).ok_or_else(|| ImageError::UnsupportedDigest {
        reference: pull.name.clone(),
        digest: layer.digest.clone(),
    })?;
    let dir = inner.layer_dir(hex);
    let stored = |pull: &Pull<'_>| {
        charge_stored(pull, hex, &layer.digest)?;
        pull.done.fetch_add(size, Ordering::Relaxed);
        pull.report(index, &layer.digest, size, size, true);
        Ok(0)
    };
    if dir.is_dir() {
        return stored(pull);
    }
    let lock = inner.layer_lock(hex);
    let _guard = lock.lock().await;
    if dir.is_dir() {
        return stored(pull);
    }
    let tmp = inner.temp_dir(hex)?;
    let (tx, rx) = mpsc::channel(16);
    let info_path = inner.layer_info_path(hex);
    let info = LayerInfo {
        digest: layer.digest.clone(),
        compressed_size: size,
        ..LayerInfo::default()
    };
    let budget = pull.budget.clone();
    let unpacker = tokio::task::spawn_blocking(move || {
        unpack_into(rx, tmp, dir, diff_id, info_path, info, &budget)
    });
    let mut layer_bytes = 0u64;
    let mut reported = 0u64;
    let downloaded = stream_blob(pull, layer, size, Some(&tx), |chunk| {
        let len = chunk.len() as u64;
        layer_bytes += len;
        pull.done.fetch_add(len, Ordering::Relaxed);
        if layer_bytes - reported >= PROGRESS_STEP {
            reported = layer_bytes;
            pull.report(index, &layer.digest, layer_bytes, size, false);
        }
    })
    .await;
    if downloaded.is_ok() {
        let _ = tx.send(Chunk::End).await;
    }
    drop(tx);
    let unpacked = unpacker.await.map_err(|source| ImageError::Task {
        digest: layer.digest.clone(),
        source,
    })?;
    let bytes = downloaded?;
    unpacked.map_err(|source| ImageError::unpack(&pull.name, &layer.digest, source))?;
    pull.report(index, &layer.digest, size, size, true);
    Ok(bytes)
}

/// Runs on a blocking thread: unpacks into `tmp`, checks the diff id, records the layer's
/// size, then renames `tmp` to `dir` in one step. On any failure `tmp` is removed, so no half
/// layer is ever visible.
fn unpack_into(
    rx: mpsc::Receiver<Chunk>,
    tmp: PathBuf,
    dir: PathBuf,
    diff_id: Option<String>,
    info_path: PathBuf,
    mut info: LayerInfo,
    budget: &Budget,
) -> Result<(), UnpackError> {
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
        ended: false,
    };
    let result =
        unpack::unpack_layer_within(reader, &tmp, budget).and_then(|unpacked| match diff_id {
            Some(expected) if expected != unpacked.diff_id => Err(UnpackError::DiffIdMismatch {
                expected,
                actual: unpacked.diff_id,
            }),
            _ => Ok(unpacked),
        });
    let unpacked = match result {
        Ok(unpacked) => unpacked,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    info.unpacked_bytes = Some(unpacked.bytes);
    info.entries = Some(unpacked.entries);
    info.size_on_disk = crate::disk::tree_usage(&tmp);
    if let Err(e) = crate::disk::write_json(&info_path, &info) {
        tracing::warn!(error = %e, "layer size not recorded");
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

/// Charges a layer stored before to the pull's budget: what it unpacked to, as recorded, else
/// (a store older than the record) the bytes it takes on disk.
fn charge_stored(pull: &Pull<'_>, hex: &str, digest: &str) -> Result<(), ImageError> {
    let inner = pull.inner;
    let info = crate::disk::read_json::<LayerInfo>(&inner.layer_info_path(hex))
        .ok()
        .flatten();
    let (bytes, entries) = match info {
        Some(LayerInfo {
            unpacked_bytes: Some(bytes),
            entries,
            ..
        }) => (bytes, entries.unwrap_or(0)),
        _ => (inner.layer_size(digest), 0),
    };
    pull.budget
        .charge(bytes, entries)
        .map_err(|source| ImageError::unpack(&pull.name, digest, source))
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
