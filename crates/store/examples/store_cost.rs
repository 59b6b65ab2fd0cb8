//! What the store's common calls cost on SQLite and on PostgreSQL with many groups: inserts
//! per second (8 tasks at once), the create path with its quota check, get by id, the first
//! page of a listing (all of an account's groups, by status, by tag), an access key check,
//! and the calls of a cluster's nodes (a page of a node's groups by revision, the store's
//! revision, what placed groups hold), each timed call by call (p50 and p99). The groups are
//! spread over [`NODES`] nodes.
//!
//!     cargo run --release -p berth-store --example store_cost [GROUPS] [postgres://URL]
//!
//! Without a URL, a PostgreSQL server of its own is started from Debian's binaries in a
//! temporary directory (as root, as the `postgres` user) and stopped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::{GroupId, GroupRecord, GroupSpec, GroupStatus, Tag};
use berth_store::{AccessKey, GroupFilter, GroupLimits, PgStore, SqliteStore, Store, KEY_FILE};
use chrono::Utc;

#[path = "../tests/common/server.rs"]
mod server;

/// Tasks inserting at once.
const WRITERS: u32 = 8;
/// Nodes the groups are placed on.
const NODES: u32 = 16;

fn node_id(n: u32) -> String {
    format!("node-{:0>16}", n % NODES)
}

fn record(n: u32) -> GroupRecord {
    let mut id = [0u8; 20];
    let mut rest = n;
    for b in id.iter_mut().take(8) {
        *b = (rest % 36) as u8;
        rest /= 36;
    }
    let mut rec = GroupRecord::new(
        GroupId::from_random(id),
        "acct",
        GroupSpec {
            name: format!("web-{n}"),
            region_id: "local".into(),
            cpu: 1.0,
            memory: 2.0,
            tags: vec![Tag {
                key: "env".into(),
                value: if n.is_multiple_of(10) { "prod" } else { "dev" }.into(),
            }],
            ..Default::default()
        },
        Utc::now(),
    );
    rec.node = Some(node_id(n));
    // One in ten runs; the others finished.
    rec.status = if n.is_multiple_of(10) {
        GroupStatus::Running
    } else {
        GroupStatus::Succeeded
    };
    rec
}

/// p50 and p99 of `times`, in µs.
fn pcts(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (at(0.50).as_secs_f64() * 1e6, at(0.99).as_secs_f64() * 1e6)
}

async fn timed<F, Fut>(n: u32, mut f: F) -> (f64, f64)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        times.push(t.elapsed());
    }
    pcts(times)
}

async fn measure(name: &str, s: Arc<dyn Store>, groups: u32) {
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut n = w;
                while n < groups {
                    s.insert_group(&record(n)).await.unwrap();
                    n += WRITERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name}: {groups} inserts in {secs:.1} s: {:.0} inserts/s ({WRITERS} tasks)",
        f64::from(groups) / secs
    );
    let limits = GroupLimits::UNLIMITED;
    let (p50, p99) = timed(200, |i| {
        let s = &s;
        async move {
            let rec = record(groups + i);
            s.insert_group_claiming(&rec, "", &limits).await.unwrap();
        }
    })
    .await;
    println!(
        "{name}: create with quota check, at {groups} groups: p50 {p50:.0} µs, p99 {p99:.0} µs"
    );
    let (p50, p99) = timed(2000, |i| {
        let s = &s;
        async move {
            let id = record((i * 7919) % groups).id;
            assert!(s.get_group(Some("acct"), &id).await.unwrap().is_some());
        }
    })
    .await;
    println!("{name}: get by id: p50 {p50:.0} µs, p99 {p99:.0} µs");
    let filters = [
        ("all", GroupFilter::default()),
        (
            "Running",
            GroupFilter {
                status: Some(GroupStatus::Running),
                ..Default::default()
            },
        ),
        (
            "tag env=prod",
            GroupFilter {
                tags: vec![("env".into(), Some("prod".into()))],
                ..Default::default()
            },
        ),
        (
            "newest first",
            GroupFilter {
                newest_first: true,
                ..Default::default()
            },
        ),
    ];
    for (what, filter) in filters {
        let (p50, p99) = timed(300, |_| {
            let (s, filter) = (&s, &filter);
            async move {
                let page = s.list_groups("acct", filter, 20, None).await.unwrap();
                assert_eq!(page.groups.len(), 20);
                assert!(page.total >= 20);
            }
        })
        .await;
        println!("{name}: first page of 20 ({what}): p50 {p50:.0} µs, p99 {p99:.0} µs");
    }
    s.create_access_key(&AccessKey {
        account: "acct".into(),
        access_key_id: "AKBENCH".into(),
        secret: "secret".into(),
    })
    .await
    .unwrap();
    let (p50, p99) = timed(2000, |_| {
        let s = &s;
        async move {
            assert!(s.check_access_key("AKBENCH").await.unwrap().unwrap().active);
        }
    })
    .await;
    println!("{name}: access key check: p50 {p50:.0} µs, p99 {p99:.0} µs");
    let (p50, p99) = timed(300, |i| {
        let s = &s;
        async move {
            let page = s.node_groups(&node_id(i), 0, 100).await.unwrap();
            assert_eq!(page.groups.len(), 100);
        }
    })
    .await;
    println!("{name}: a node's first 100 groups by revision: p50 {p50:.0} µs, p99 {p99:.0} µs");
    let (p50, p99) = timed(300, |i| {
        let s = &s;
        async move {
            let now = s.group_revision().await.unwrap();
            let page = s.node_groups(&node_id(i), now, 100).await.unwrap();
            assert!(page.groups.is_empty());
        }
    })
    .await;
    println!("{name}: store revision, then a node's page with nothing new: p50 {p50:.0} µs, p99 {p99:.0} µs");
    let (p50, p99) = timed(50, |_| {
        let s = &s;
        async move {
            // Running groups (one in ten, every n divisible by 10) are on the even nodes.
            assert_eq!(s.placed_usage().await.unwrap().len(), NODES as usize / 2);
        }
    })
    .await;
    println!("{name}: what placed groups hold, per node: p50 {p50:.0} µs, p99 {p99:.0} µs");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let groups: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let url = match args.next() {
        Some(url) => url,
        None => server::new_database().await,
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("berth.db")).unwrap();
    measure("sqlite", Arc::new(sqlite), groups).await;
    let pg_dir = tempfile::tempdir().unwrap();
    let pg = PgStore::connect(&url, &pg_dir.path().join(KEY_FILE))
        .await
        .unwrap();
    measure("postgres", Arc::new(pg), groups).await;
}
