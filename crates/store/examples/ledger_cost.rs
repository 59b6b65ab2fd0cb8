//! The metering ledger's write cost (ADR 0010): whole group lifecycles (insert, Pending,
//! Running, 20 reports that change nothing billed, Succeeded at the container's exit,
//! Terminating, delete) on a file database, timed per lifecycle and per report.
//!
//!     cargo run --release -p berth-store --example ledger_cost [LIFECYCLES]

use std::time::Instant;

use berth_core::{ContainerState, ContainerStatus, GroupId, GroupRecord, GroupSpec, GroupStatus};
use berth_store::{SqliteStore, Store};
use chrono::Utc;

fn record(n: u32) -> GroupRecord {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    GroupRecord {
        ..GroupRecord::new(
            GroupId::from_random(id),
            "acct",
            GroupSpec {
                name: format!("g{n}"),
                region_id: "local".into(),
                cpu: 2.0,
                memory: 4.0,
                ..Default::default()
            },
            Utc::now(),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("berth.db")).unwrap();
    let (mut life, mut reports, mut report_count) = (0.0f64, 0.0f64, 0u32);
    for i in 0..n {
        let rec = record(i);
        let t = Instant::now();
        s.insert_group(&rec).await.unwrap();
        for status in [GroupStatus::Pending, GroupStatus::Running] {
            s.modify_group(&rec.id, &mut |r| r.status = status)
                .await
                .unwrap();
        }
        let r0 = Instant::now();
        for k in 0..20 {
            s.modify_group(&rec.id, &mut |r| r.restart_generation = k)
                .await
                .unwrap();
        }
        reports += r0.elapsed().as_secs_f64();
        report_count += 20;
        let exit = Utc::now();
        s.modify_group(&rec.id, &mut |r| {
            r.containers = vec![ContainerStatus {
                name: "c".into(),
                current: ContainerState::terminated(0, None, false, Some(exit), exit),
                ..Default::default()
            }];
            r.status = GroupStatus::Succeeded;
        })
        .await
        .unwrap();
        s.modify_group(&rec.id, &mut |r| r.status = GroupStatus::Terminating)
            .await
            .unwrap();
        s.delete_group(&rec.id).await.unwrap();
        life += t.elapsed().as_secs_f64();
    }
    println!(
        "{n} lifecycles: {:.3} ms per lifecycle (26 writes), {:.1} µs per report that changes nothing billed",
        life * 1e3 / f64::from(n),
        reports * 1e6 / f64::from(report_count)
    );
}
