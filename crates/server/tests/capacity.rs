//! The node's capacity over the signed API (ADR 0012): a group that does not fit waits in
//! Scheduling and is placed when room frees, fails ScheduleFailed at the timeout or at once
//! when larger than the node; a pay-as-you-go group reclaims an unprotected spot group
//! after its notice (Expired, its billed period closed then), a protected one survives; an
//! update that does not fit is refused; the accounting is rebuilt at a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_control::SchedulePolicy;
use berth_core::placement::Room;
use berth_core::{GroupId, GroupStatus};
use common::{p, serve_with, NullNode, Served};
use serde_json::Value;

fn policy(cpu: f64, timeout_ms: u64, notice_ms: u64) -> SchedulePolicy {
    SchedulePolicy {
        capacity: Room::of(cpu, cpu * 2.0).with_containers(u64::MAX),
        timeout: Duration::from_millis(timeout_ms),
        notice: Duration::from_millis(notice_ms),
        failed_kept: Duration::from_secs(3600),
    }
}

async fn create(s: &Served, name: &str, cpu: &str, extra: &[(&str, &str)]) -> GroupId {
    let mem = format!("{}", cpu.parse::<f64>().unwrap() * 2.0);
    let mut params = vec![
        ("RegionId", "local"),
        ("ContainerGroupName", name),
        ("Cpu", cpu),
        ("Memory", mem.as_str()),
        ("Container.1.Name", "c"),
        ("Container.1.Image", "busybox"),
    ];
    params.extend_from_slice(extra);
    let v = s
        .client
        .call("CreateContainerGroup", &p(&params))
        .await
        .unwrap();
    GroupId::parse(v["ContainerGroupId"].as_str().unwrap()).unwrap()
}

async fn describe(s: &Served, id: &GroupId) -> Value {
    let ids = format!("[\"{id}\"]");
    let v = s
        .client
        .call(
            "DescribeContainerGroups",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupIds", &ids),
                ("WithEvent", "true"),
            ]),
        )
        .await
        .unwrap();
    v["ContainerGroups"][0].clone()
}

fn reasons(g: &Value) -> Vec<String> {
    g["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Reason"].as_str().unwrap().to_string())
        .collect()
}

/// Marks a group Running as a node's report would (the null node runs nothing).
async fn running(s: &Served, id: &GroupId) {
    s.control
        .store()
        .modify_group(id, &mut |r| r.status = GroupStatus::Running)
        .await
        .unwrap();
}

async fn wait_for(s: &Served, id: &GroupId, status: &str) -> Value {
    for _ in 0..100 {
        let g = describe(s, id).await;
        if g["Status"] == status {
            return g;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never became {status}: {}", describe(s, id).await);
}

#[tokio::test]
async fn a_group_waits_for_room_and_fails_at_the_timeout_or_at_once() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(2.0, 1500, 100));
    let a = create(&s, "ga", "2", &[]).await;
    let b = create(&s, "gb", "1", &[]).await;
    let g = describe(&s, &b).await;
    assert_eq!(g["Status"], "Scheduling");
    let ev = &g["Events"][0];
    assert_eq!(ev["Reason"], "FailedScheduling");
    assert_eq!(ev["Type"], "Warning");
    let msg = ev["Message"].as_str().unwrap();
    assert!(msg.contains("insufficient cpu and memory"), "{msg}");
    assert!(msg.contains("0 vCPU, 0 GiB free of 2 vCPU, 4 GiB"), "{msg}");
    // Deleting the first makes room: the waiter is placed.
    s.client
        .call(
            "DeleteContainerGroup",
            &p(&[("RegionId", "local"), ("ContainerGroupId", a.as_str())]),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        if reasons(&describe(&s, &b).await).contains(&"Scheduled".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        reasons(&describe(&s, &b).await),
        ["FailedScheduling", "Scheduled"]
    );
    let used = s.control.capacity_use();
    assert_eq!((used.holders, used.waiting), (1, 0));
    assert_eq!(used.used, Room::of(1.0, 2.0).with_containers(1));
    // Larger than the node: ScheduleFailed at once, never billed.
    let huge = create(&s, "huge", "4", &[]).await;
    let g = describe(&s, &huge).await;
    assert_eq!(g["Status"], "ScheduleFailed");
    assert_eq!(reasons(&g), ["NoStock"]);
    assert!(g["Events"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("needs 4 vCPU, 8 GiB"));
    // Waits, then fails at the timeout with what was short.
    let late = create(&s, "late", "2", &[]).await;
    assert_eq!(describe(&s, &late).await["Status"], "Scheduling");
    let g = wait_for(&s, &late, "ScheduleFailed").await;
    assert_eq!(reasons(&g), ["FailedScheduling", "NoStock"]);
    assert!(g["Events"][1]["Message"]
        .as_str()
        .unwrap()
        .contains("insufficient cpu"));
    assert!(s
        .control
        .store()
        .group_ledger(&late)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.control.capacity_use().waiting, 0);
    // A ScheduleFailed group can be deleted, and is deleted by berth after a while.
    let mut short_kept = policy(2.0, 1500, 100);
    short_kept.failed_kept = Duration::from_millis(200);
    s.control.set_schedule_policy(short_kept);
    let gone = create(&s, "gone", "4", &[]).await;
    assert_eq!(describe(&s, &gone).await["Status"], "ScheduleFailed");
    for _ in 0..100 {
        if s.control
            .store()
            .get_group(None, &gone)
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s
        .control
        .store()
        .get_group(None, &gone)
        .await
        .unwrap()
        .is_none());
    s.client
        .call(
            "DeleteContainerGroup",
            &p(&[("RegionId", "local"), ("ContainerGroupId", late.as_str())]),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pay_as_you_go_group_reclaims_an_unprotected_spot_group() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(2.0, 5000, 300));
    let spot = [("SpotStrategy", "SpotAsPriceGo"), ("SpotDuration", "0")];
    let open = create(&s, "open", "1", &spot).await;
    let protected = create(
        &s,
        "protected",
        "1",
        &[
            ("SpotStrategy", "SpotWithPriceLimit"),
            ("SpotPriceLimit", "1"),
            ("SpotDuration", "1"),
        ],
    )
    .await;
    running(&s, &open).await;
    running(&s, &protected).await;
    let g = describe(&s, &open).await;
    assert_eq!(g["SpotStrategy"], "SpotAsPriceGo");
    assert_eq!(g["SpotDuration"], 0);
    let g = describe(&s, &protected).await;
    assert_eq!(g["SpotStrategy"], "SpotWithPriceLimit");
    assert_eq!(g["SpotPriceLimit"], 1.0);
    assert_eq!(g["SpotDuration"], 1);
    // A spot waiter reclaims nothing.
    let spot_waiter = create(&s, "spot-waiter", "1", &spot).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reasons(&describe(&s, &open).await).contains(&"SpotToBeReleased".to_string()));
    s.client
        .call(
            "DeleteContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupId", spot_waiter.as_str()),
            ]),
        )
        .await
        .unwrap();
    let payg = create(&s, "payg", "1", &[]).await;
    assert_eq!(describe(&s, &payg).await["Status"], "Scheduling");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let g = describe(&s, &open).await;
    assert_eq!(g["Status"], "Running", "told before it is reclaimed");
    assert!(reasons(&g).contains(&"SpotToBeReleased".to_string()), "{g}");
    let g = wait_for(&s, &open, "Expired").await;
    assert!(reasons(&g).contains(&"SpotReleased".to_string()));
    let expired = g["ExpiredTime"].as_str().unwrap().to_string();
    assert!(!expired.is_empty());
    // The waiter got the room; the protected one survives.
    for _ in 0..100 {
        if reasons(&describe(&s, &payg).await).contains(&"Scheduled".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reasons(&describe(&s, &payg).await).contains(&"Scheduled".to_string()));
    assert_eq!(describe(&s, &protected).await["Status"], "Running");
    // Billed until it expired, at its spot price.
    let ledger = s.control.store().group_ledger(&open).await.unwrap();
    assert_eq!(ledger.len(), 1);
    let price = s.control.prices().default_prices().clone();
    let q = berth_core::price::quote(
        &price,
        berth_core::Size {
            cpu: 1.0,
            memory: 2.0,
        },
        30,
    );
    assert_eq!(
        ledger[0].spot_price.as_deref(),
        Some(q.spot_hour.to_string().as_str())
    );
    let ended = ledger[0].ended.unwrap();
    let expired = chrono::DateTime::parse_from_rfc3339(&expired).unwrap();
    assert!(
        (ended - expired.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            <= 1
    );
}

#[tokio::test]
async fn a_price_limit_below_the_spot_price_and_an_update_that_does_not_fit_are_refused() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(2.0, 5000, 100));
    let e = s
        .client
        .call(
            "CreateContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupName", "too-cheap"),
                ("Cpu", "2"),
                ("Memory", "4"),
                ("Container.1.Name", "c"),
                ("Container.1.Image", "busybox"),
                ("SpotStrategy", "SpotWithPriceLimit"),
                ("SpotPriceLimit", "0.001"),
            ]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SpotPriceLimit"), "{e}");
    assert_eq!(s.control.capacity_use().holders, 0);
    let a = create(&s, "ga", "1", &[]).await;
    running(&s, &a).await;
    let e = s
        .client
        .call(
            "UpdateContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupId", a.as_str()),
                ("Cpu", "4"),
                ("Memory", "8"),
            ]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("NoStock"), "{e}");
    assert_eq!(
        s.control.capacity_use().used,
        Room::of(1.0, 2.0).with_containers(1)
    );
    s.client
        .call(
            "UpdateContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupId", a.as_str()),
                ("Cpu", "2"),
                ("Memory", "4"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        s.control.capacity_use().used,
        Room::of(2.0, 4.0).with_containers(1)
    );
}

#[tokio::test]
async fn the_accounting_is_rebuilt_at_a_restart() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(2.0, 60_000, 100));
    let a = create(&s, "ga", "2", &[]).await;
    let b = create(&s, "gb", "1", &[]).await;
    let c = create(&s, "gc", "1", &[]).await;
    let d = create(&s, "gd", "1", &[]).await;
    s.control
        .store()
        .modify_group(&d, &mut |r| r.status = GroupStatus::Succeeded)
        .await
        .unwrap();
    // Another control plane on the same store.
    let again = berth_control::Control::new(s.control.store().clone(), "local");
    again.set_schedule_policy(policy(2.0, 60_000, 100));
    again.attach_node(Arc::new(NullNode));
    again.resume().await.unwrap();
    let used = again.capacity_use();
    assert_eq!((used.holders, used.waiting), (1, 2), "{used:?}");
    assert_eq!(used.used, Room::of(2.0, 4.0).with_containers(1));
    // The waiters keep their order: b first.
    again.delete("acct", &a, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rec = again.store().get_group(None, &b).await.unwrap().unwrap();
    assert!(!rec.waiting);
    let rec = again.store().get_group(None, &c).await.unwrap().unwrap();
    assert!(!rec.waiting, "both fit in the room a left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_share_the_last_room() {
    let s = Arc::new(serve_with(Arc::new(NullNode)).await);
    s.control.set_schedule_policy(policy(2.0, 60_000, 100));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            create(&s, &format!("race-{i}"), "1", &[]).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let mut placed = 0;
    for id in &ids {
        let rec = s.control.store().get_group(None, id).await.unwrap();
        placed += usize::from(!rec.unwrap().waiting);
    }
    assert_eq!(placed, 2);
    let used = s.control.capacity_use();
    assert_eq!((used.holders, used.waiting), (2, 10), "{used:?}");
    assert_eq!(used.used, Room::of(2.0, 4.0).with_containers(2));
}

#[tokio::test]
async fn a_spot_group_whose_limit_the_new_price_passes_is_reclaimed_at_start() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(4.0, 60_000, 100));
    let limited = [
        ("SpotStrategy", "SpotWithPriceLimit"),
        ("SpotPriceLimit", "0.1"),
    ];
    let open = create(
        &s,
        "open",
        "1",
        &[limited[0], limited[1], ("SpotDuration", "0")],
    )
    .await;
    let kept = create(
        &s,
        "kept",
        "1",
        &[limited[0], limited[1], ("SpotDuration", "1")],
    )
    .await;
    let payg = create(&s, "payg", "1", &[]).await;
    for id in [&open, &kept, &payg] {
        running(&s, id).await;
    }
    // The catalog changes: the spot price of 1 vCPU and 2 GiB goes from 0.0661608 to 0.220536.
    let dear = berth_control::parse_prices("[default]\nspot_ratio = \"1\"\n").unwrap();
    let again = berth_control::Control::new(s.control.store().clone(), "local");
    again.set_prices(dear);
    again.set_schedule_policy(policy(4.0, 60_000, 100));
    again.attach_node(Arc::new(NullNode));
    again.resume().await.unwrap();
    let status = async |id: &GroupId| again.store().get_group(None, id).await.unwrap().unwrap();
    for _ in 0..100 {
        if status(&open).await.status == GroupStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rec = status(&open).await;
    assert_eq!(rec.status, GroupStatus::Expired);
    let msg = &rec
        .events
        .iter()
        .find(|e| e.reason == "SpotToBeReleased")
        .unwrap()
        .message;
    assert!(msg.contains("above its SpotPriceLimit 0.1"), "{msg}");
    // Protected for an hour yet; pay-as-you-go groups are never reclaimed.
    for id in [&kept, &payg] {
        let rec = status(id).await;
        assert_eq!(rec.status, GroupStatus::Running);
        assert!(rec.events.iter().all(|e| e.reason != "SpotToBeReleased"));
    }
}

/// `StrictSpot=false`: a spot group that finds no room, or whose limit is below the price, is
/// created pay-as-you-go (and then reclaims like one); a strict one waits or is refused.
#[tokio::test]
async fn a_spot_group_that_may_fall_back_runs_pay_as_you_go() {
    let s = serve_with(Arc::new(NullNode)).await;
    s.control.set_schedule_policy(policy(2.0, 5000, 200));
    let open = [("SpotStrategy", "SpotAsPriceGo"), ("SpotDuration", "0")];
    let fallback = [
        ("SpotStrategy", "SpotAsPriceGo"),
        ("SpotDuration", "0"),
        ("StrictSpot", "false"),
    ];
    // With room, the fallback changes nothing: a spot group.
    let first = create(&s, "first", "1", &fallback).await;
    let g = describe(&s, &first).await;
    assert_eq!(g["SpotStrategy"], "SpotAsPriceGo");
    assert!(!reasons(&g).contains(&"SpotFallback".to_string()), "{g}");
    let second = create(&s, "second", "1", &open).await;
    running(&s, &first).await;
    running(&s, &second).await;
    // No room: a strict one waits and reclaims nothing.
    let strict = create(
        &s,
        "strict",
        "1",
        &[open[0], open[1], ("StrictSpot", "true")],
    )
    .await;
    let g = describe(&s, &strict).await;
    assert_eq!(
        (g["Status"].as_str(), g["SpotStrategy"].as_str()),
        (Some("Scheduling"), Some("SpotAsPriceGo"))
    );
    s.client
        .call(
            "DeleteContainerGroup",
            &p(&[("RegionId", "local"), ("ContainerGroupId", strict.as_str())]),
        )
        .await
        .unwrap();
    // One that may fall back becomes pay-as-you-go and reclaims the cheapest spot group.
    let fell = create(&s, "fell", "1", &fallback).await;
    let g = describe(&s, &fell).await;
    assert_eq!(g["SpotStrategy"], "NoSpot", "{g}");
    assert_eq!(g["SpotDuration"], 0);
    assert!(reasons(&g).contains(&"SpotFallback".to_string()), "{g}");
    let mut expired = 0;
    for _ in 0..100 {
        expired = 0;
        for id in [&first, &second] {
            if describe(&s, id).await["Status"] == "Expired" {
                expired += 1;
            }
        }
        if expired > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(expired, 1, "exactly one spot group gives way");
    for _ in 0..100 {
        if reasons(&describe(&s, &fell).await).contains(&"Scheduled".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reasons(&describe(&s, &fell).await).contains(&"Scheduled".to_string()));
    // Billed at the pay-as-you-go price.
    running(&s, &fell).await;
    let ledger = s.control.store().group_ledger(&fell).await.unwrap();
    assert!(ledger.iter().all(|l| l.spot_price.is_none()), "{ledger:?}");

    // A limit below the price: refused when strict, pay-as-you-go when not.
    let cheap = [
        ("SpotStrategy", "SpotWithPriceLimit"),
        ("SpotPriceLimit", "0.001"),
    ];
    let e = s
        .client
        .call(
            "CreateContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupName", "too-cheap"),
                ("Cpu", "0.25"),
                ("Memory", "0.5"),
                ("Container.1.Name", "c"),
                ("Container.1.Image", "busybox"),
                cheap[0],
                cheap[1],
            ]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SpotPriceLimit"), "{e}");
    let id = create(
        &s,
        "cheap",
        "0.25",
        &[cheap[0], cheap[1], ("StrictSpot", "false")],
    )
    .await;
    let g = describe(&s, &id).await;
    assert_eq!(g["SpotStrategy"], "NoSpot", "{g}");
    let ev = g["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Reason"] == "SpotFallback")
        .unwrap();
    assert!(
        ev["Message"]
            .as_str()
            .unwrap()
            .contains("below the spot price"),
        "{ev}"
    );

    // StrictSpot without a spot strategy is refused by name.
    let e = s
        .client
        .call(
            "CreateContainerGroup",
            &p(&[
                ("RegionId", "local"),
                ("ContainerGroupName", "not-spot"),
                ("Container.1.Name", "c"),
                ("Container.1.Image", "busybox"),
                ("StrictSpot", "false"),
            ]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("StrictSpot"), "{e}");
}

#[tokio::test]
async fn container_slots_bound_the_node_as_cpu_and_memory_do() {
    let s = serve_with(Arc::new(NullNode)).await;
    let mut bounded = policy(8.0, 60_000, 100);
    bounded.capacity = bounded.capacity.with_containers(3);
    s.control.set_schedule_policy(bounded);
    // Two containers and an init container: three slots, the whole node.
    let two = create(
        &s,
        "two",
        "1",
        &[
            ("Container.2.Name", "d"),
            ("Container.2.Image", "busybox"),
            ("InitContainer.1.Name", "i"),
            ("InitContainer.1.Image", "busybox"),
        ],
    )
    .await;
    assert_eq!(s.control.capacity_use().used.containers, 3);
    let next = create(&s, "next", "1", &[]).await;
    let g = describe(&s, &next).await;
    assert_eq!(g["Status"], "Scheduling");
    let msg = g["Events"][0]["Message"].as_str().unwrap().to_string();
    assert!(msg.contains("insufficient container slots"), "{msg}");
    assert!(
        msg.contains("needs 1 vCPU, 2 GiB, 1 container slot,"),
        "{msg}"
    );
    assert!(
        msg.contains("free of 8 vCPU, 16 GiB, 3 container slots"),
        "{msg}"
    );
    // Larger than the node's slots: refused at once.
    let mut params = vec![
        ("InitContainer.1.Name", "i"),
        ("InitContainer.1.Image", "busybox"),
    ];
    let names: Vec<String> = (2..=4).map(|i| format!("Container.{i}.Name")).collect();
    let images: Vec<String> = (2..=4).map(|i| format!("Container.{i}.Image")).collect();
    let values = ["d", "e", "f"];
    for i in 0..3 {
        params.push((names[i].as_str(), values[i]));
        params.push((images[i].as_str(), "busybox"));
    }
    let huge = create(&s, "huge", "1", &params).await;
    assert_eq!(describe(&s, &huge).await["Status"], "ScheduleFailed");
    // The slots of a deleted group go to the waiter.
    s.client
        .call(
            "DeleteContainerGroup",
            &p(&[("RegionId", "local"), ("ContainerGroupId", two.as_str())]),
        )
        .await
        .unwrap();
    for _ in 0..100 {
        if reasons(&describe(&s, &next).await).contains(&"Scheduled".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        reasons(&describe(&s, &next).await),
        ["FailedScheduling", "Scheduled"]
    );
    assert_eq!(s.control.capacity_use().used.containers, 1);
}
