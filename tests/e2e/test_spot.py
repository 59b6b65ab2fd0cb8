"""The node's capacity and preemptible groups (ADR 0012), on a berth of its own whose
capacity is set to 1 vCPU by its flags (bridge berthc0, 10.234.0.0/16): a group that does not
fit waits in Scheduling and is placed when another is deleted, or ends ScheduleFailed at the
schedule timeout with ECI's NoStock event, never billed; a pay-as-you-go group reclaims an
unprotected spot group (SpotDuration=0) after its SpotToBeReleased notice, which ends Expired
and is billed until then at its spot price, while a protected one (SpotDuration=1) survives; a
spot group with StrictSpot=false that finds no room is created pay-as-you-go."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from alibabacloud_eci20180808 import models

import support
from support import BERTH_BIN, REGION, pretty, wait_for, wait_status
from test_ports import call, raw_group

BRIDGE = "berthc0"
SUBNET = "10.234.0.0/16"
TIMEOUT_S = 3
NOTICE_S = 1
# Each group: 0.5 vCPU and 1 GiB; the node holds two.
GROUP_CPU = 0.5
GROUP_MEMORY = 1.0
SLEEP = ["sh", "-c", "while true; do sleep 1; done"]


def detected_cpus() -> float:
    """The CPUs berth detects: those this process may use, within the cgroup's cpu.max."""
    cpus = float(len(os.sched_getaffinity(0)))
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    except FileNotFoundError:
        try:
            quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
            period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
            if quota > 0 and period > 0:
                cpus = min(cpus, quota / period)
        except FileNotFoundError:
            pass
    return cpus


@pytest.fixture(scope="module")
def small(host_ready, images):
    reserve = detected_cpus() - 2 * GROUP_CPU
    args = [
        "--reserve-cpu", str(reserve),
        "--schedule-timeout", f"{TIMEOUT_S}s",
        "--spot-notice", f"{NOTICE_S}s",
    ]
    with support.own_berth("spot", args, bridge=BRIDGE, subnet=SUBNET) as server:
        node = subprocess.run(
            [str(BERTH_BIN), "admin", "--state-dir", str(server.state_dir), "node"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert node.returncode == 0, node.stderr
        capacity = json.loads(node.stdout)["capacity"]
        assert capacity["allocatable_cpu"] == pytest.approx(2 * GROUP_CPU), pretty(capacity)
        assert capacity["schedule_timeout_secs"] == TIMEOUT_S, pretty(capacity)
        yield server


@pytest.fixture
def groups(small, images):
    g = support.Groups(small, images, small.tracker)
    yield g
    g.delete_all()


def create(groups, name: str, **kw) -> str:
    return groups.create(
        name,
        [support.container("c", groups.images.image, SLEEP)],
        cpu=GROUP_CPU,
        memory=GROUP_MEMORY,
        termination_grace_period_seconds=1,
        **kw,
    )


def reasons(client, gid: str) -> list[str]:
    return [e.get("Reason") for e in support.events_of(client, gid)]


def event(client, gid: str, reason: str) -> dict:
    found = [e for e in support.events_of(client, gid) if e.get("Reason") == reason]
    assert found, f"no {reason} event: {pretty(support.events_of(client, gid))}"
    return found[-1]


def events_api(client, gid: str) -> list[str]:
    """The reasons DescribeContainerGroupEvents gives."""
    req = models.DescribeContainerGroupEventsRequest(
        region_id=REGION, container_group_ids=json.dumps([gid])
    )
    data = client.describe_container_group_events(req).body.to_map().get("Data") or []
    return [e.get("Reason") for d in data for e in d.get("Events") or []]


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


def test_a_group_waits_for_room_and_fails_at_the_timeout(small, groups):
    client = small.client()
    first = create(groups, "e2e-cap-first")
    second = create(groups, "e2e-cap-second")
    for gid in (first, second):
        wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=small.diag)
    waiter = create(groups, "e2e-cap-waiter")
    assert support.describe(client, waiter)["Status"] == "Scheduling"
    msg = event(client, waiter, "FailedScheduling")["Message"]
    assert "insufficient cpu" in msg and "0 vCPU" in msg, msg
    # Room frees: the waiter is placed and runs.
    support.delete(client, first)
    wait_status(client, waiter, ["Running"], 60, never=["Failed", "ScheduleFailed"],
                diag=small.diag)
    assert "Scheduled" in reasons(client, waiter)
    # Nobody leaves: the next one fails at the timeout, with what was short, never billed.
    late = create(groups, "e2e-cap-late")
    group = wait_status(client, late, ["ScheduleFailed"], TIMEOUT_S + 10, diag=small.diag)
    assert t(group["FailedTime"]) >= t(group["CreationTime"])
    no_stock = event(client, late, "NoStock")
    assert no_stock["Type"] == "Warning"
    assert "out of stock" in no_stock["Message"] and "cpu" in no_stock["Message"], no_stock
    assert "NoStock" in events_api(client, late)
    assert support.ledger_periods(small.state_dir, late) == []
    # Larger than the whole node: ScheduleFailed at once.
    huge = groups.create(
        "e2e-cap-huge",
        [support.container("c", groups.images.image, SLEEP)],
        cpu=2.0,
        memory=4.0,
    )
    assert support.describe(client, huge)["Status"] == "ScheduleFailed"


def test_a_pay_as_you_go_group_reclaims_an_unprotected_spot_group(small, groups):
    client = small.client()
    exposed = create(groups, "e2e-spot-exposed", spot_strategy="SpotAsPriceGo", spot_duration=0)
    kept = create(groups, "e2e-spot-kept", spot_strategy="SpotAsPriceGo", spot_duration=1)
    for gid in (exposed, kept):
        wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=small.diag)
    raw = raw_group(client, exposed)
    assert (raw["SpotStrategy"], raw["SpotDuration"]) == ("SpotAsPriceGo", 0), pretty(raw)
    assert raw_group(client, kept)["SpotDuration"] == 1
    payg = create(groups, "e2e-spot-payg")
    assert support.describe(client, payg)["Status"] == "Scheduling"
    # The notice comes first, while the group still runs.
    notice = wait_for("the SpotToBeReleased event",
                      lambda: "SpotToBeReleased" in reasons(client, exposed), 10, diag=small.diag)
    assert notice
    assert "SpotToBeReleased" in events_api(client, exposed)
    group = wait_status(client, exposed, ["Expired"], NOTICE_S + 15, diag=small.diag)
    expired = t(group["ExpiredTime"])
    told = t(event(client, exposed, "SpotToBeReleased")["FirstTimestamp"])
    assert expired >= told, (told, expired)
    wait_for(
        "the reclaimed group's container to be terminated",
        lambda: (support.container_of(support.describe(client, exposed), "c").get("CurrentState")
                 or {}).get("Reason") == "Expired",
        15,
        diag=small.diag,
    )
    wait_status(client, payg, ["Running"], 60, never=["Failed", "ScheduleFailed"], diag=small.diag)
    assert support.describe(client, kept)["Status"] == "Running"
    assert "SpotToBeReleased" not in reasons(client, kept)
    # Billed until it expired, at the spot price in force.
    [period] = support.ledger_periods(small.state_dir, exposed)
    assert abs((t(period["ended"]) - expired).total_seconds()) <= 1, (period, expired)
    price = call(client, "DescribeContainerGroupPrice", {
        "Cpu": str(GROUP_CPU), "Memory": str(GROUP_MEMORY), "SpotStrategy": "SpotAsPriceGo",
    })
    spot = price["PriceInfo"]["SpotPrices"]["SpotPrice"][0]["SpotPrice"]
    assert Decimal(period["spot_price"]) == Decimal(str(spot)), (period, spot)
    [payg_period] = support.ledger_periods(small.state_dir, payg)
    assert payg_period["spot_price"] is None
    bill = call(client, "DescribeUsage", {"Since": period["started"]})
    [line] = [l for l in bill["Lines"] if l["Key"] == exposed]
    billed = Decimal(line["BilledSeconds"])
    assert abs(billed - Decimal(str((t(period["ended"]) - t(period["started"])).total_seconds()))) \
        <= 1, pretty(line)


def test_a_spot_group_with_strict_spot_false_runs_pay_as_you_go_when_full(small, groups):
    """StrictSpot=false through the SDK: with the node full of protected groups, the spot
    group is created pay-as-you-go (a SpotFallback event) and waits like one; a strict one
    waits as a spot group."""
    client = small.client()
    full = [create(groups, f"e2e-fb-full-{i}", spot_strategy="SpotAsPriceGo", spot_duration=1)
            for i in range(2)]
    for gid in full:
        wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=small.diag)
    strict = create(groups, "e2e-fb-strict", spot_strategy="SpotAsPriceGo", strict_spot=True)
    raw = raw_group(client, strict)
    assert (raw["Status"], raw["SpotStrategy"]) == ("Scheduling", "SpotAsPriceGo"), pretty(raw)
    assert "SpotFallback" not in reasons(client, strict)
    support.delete(client, strict)
    fell = create(groups, "e2e-fb-fell", spot_strategy="SpotAsPriceGo", strict_spot=False)
    raw = raw_group(client, fell)
    assert (raw["Status"], raw["SpotStrategy"]) == ("Scheduling", "NoSpot"), pretty(raw)
    assert "no room" in event(client, fell, "SpotFallback")["Message"]
    # Protected groups are never reclaimed: it waits (less than the schedule timeout of
    # TIMEOUT_S) until one is deleted, then runs.
    support.delete(client, full[0])
    wait_status(client, fell, ["Running"], 60, never=["Failed", "ScheduleFailed"],
                diag=small.diag)
    [period] = support.ledger_periods(small.state_dir, fell)
    assert period["spot_price"] is None, period
