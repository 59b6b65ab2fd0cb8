//! Test servers and helpers shared by the integration tests.

#![allow(dead_code)]

pub mod hostile;

use std::sync::Mutex;

use berth_image::{Image, ImageError, ImageStore, PullEvent, PullOptions};

/// `ImageStore::ensure` with the events it reported.
pub async fn ensure(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
) -> (Result<Image, ImageError>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let result = store
        .ensure(reference, opts, &|e| events.lock().unwrap().push(e))
        .await;
    (result, events.into_inner().unwrap())
}
