//! Metering intervals in both stores: open, resize, close, and quantity × seconds.

mod common;
use common::TestStore;

on_both!(intervals_meter_quantity_times_seconds,);
use chrono::{Duration, TimeZone, Utc};

async fn intervals_meter_quantity_times_seconds(s: TestStore) {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let kind = "ImageCacheStorage";
    s.meter_start("acct", kind, "imc-1", 1000, t0)
        .await
        .unwrap();
    // Resized after 10 s: the first interval ends, a new one starts.
    s.meter_start("acct", kind, "imc-1", 3000, t0 + Duration::seconds(10))
        .await
        .unwrap();
    s.meter_stop("imc-1", t0 + Duration::seconds(20))
        .await
        .unwrap();
    s.meter_start("acct", kind, "imc-2", 500, t0 + Duration::seconds(5))
        .await
        .unwrap();
    s.meter_start("other", kind, "imc-3", 7, t0).await.unwrap();

    let to = t0 + Duration::seconds(30);
    let got = s.usage("acct", kind, t0, to).await.unwrap();
    assert_eq!(got.len(), 3);
    let total: u128 = got.iter().map(|u| u.quantity_seconds(t0, to)).sum();
    // 1000×10 + 3000×10 + 500×25 (still open at the end of the window).
    assert_eq!(total, 10_000 + 30_000 + 12_500);
    assert!(got
        .iter()
        .any(|u| u.resource == "imc-2" && u.ended.is_none()));

    // A window that starts later only counts what lies inside it.
    let from = t0 + Duration::seconds(15);
    let part: u128 = s
        .usage("acct", kind, from, to)
        .await
        .unwrap()
        .iter()
        .map(|u| u.quantity_seconds(from, to))
        .sum();
    assert_eq!(part, 3000 * 5 + 500 * 15);
    assert!(s.usage("acct", "Other", t0, to).await.unwrap().is_empty());
}
