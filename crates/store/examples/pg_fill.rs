//! Fills a cluster's PostgreSQL store with copies of one real group, for benchmarks that need
//! many groups behind running replicas (bench/cluster_describe.py): each copy has a new id,
//! its own name and creation time, and is finished (`Succeeded`, placed nowhere), so no
//! replica tries to place or run it. The copies' ids are written one a line to IDS_OUT.
//!
//!     cargo build --release -p berth-store --example pg_fill
//!     pg_fill URL KEY_FILE TEMPLATE_GROUP_ID COUNT IDS_OUT
//!
//! KEY_FILE is the replicas' `--store-key` (records are sealed with it). Inserts go through
//! [`Store::insert_group`] from 8 tasks at once: the same rows, counters and revisions as
//! groups created through the API.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use berth_core::{GroupId, GroupStatus};
use berth_store::{PgStore, Store};
use chrono::{Duration, Utc};
use rand::Rng;

const WRITERS: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, template, count, out] = args.as_slice() else {
        return Err("usage: pg_fill URL KEY_FILE TEMPLATE_GROUP_ID COUNT IDS_OUT".into());
    };
    let count: usize = count.parse()?;
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(url, &PathBuf::from(key)).await?);
    let tid = GroupId::parse(template).ok_or("TEMPLATE_GROUP_ID is not a group id")?;
    let template = store
        .get_group(None, &tid)
        .await?
        .ok_or("no such template group")?;
    let base = Utc::now() - Duration::days(1);
    let mut rng = rand::thread_rng();
    let ids: Vec<GroupId> = (0..count)
        .map(|_| GroupId::from_random(rng.gen()))
        .collect();
    let ids = Arc::new(ids);
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, ids, template) = (store.clone(), ids.clone(), template.clone());
            tokio::spawn(async move {
                for i in (w..ids.len()).step_by(WRITERS) {
                    let mut rec = template.clone();
                    rec.id = ids[i].clone();
                    rec.spec.name = format!("{}-{i}", template.spec.name);
                    rec.creation_time = base + Duration::milliseconds(i as i64);
                    rec.status = GroupStatus::Succeeded;
                    rec.succeeded_time = Some(rec.creation_time + Duration::seconds(1));
                    rec.waiting = false;
                    rec.node = None;
                    rec.client_token = None;
                    store.insert_group(&rec).await?;
                }
                Ok::<_, berth_store::StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    for id in ids.iter() {
        writeln!(f, "{id}")?;
    }
    f.flush()?;
    eprintln!(
        "{count} groups inserted in {secs:.1} s ({:.0}/s)",
        count as f64 / secs
    );
    Ok(())
}
