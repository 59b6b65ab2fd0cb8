"""berth driven by the official Alibaba Cloud ECI Python SDKs (V2 "Tea" SDK and the legacy one)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, container, container_of, init_container, pretty, wait_for

TICKER = ["sh", "-c", "while true; do echo tick; sleep 1; done"]
PULL_FAILURE = re.compile(r"unauthori[sz]ed|authentication required|\b401\b", re.I)


def group_ids(client) -> list[str]:
    return sorted(g["ContainerGroupId"] for g in support.list_groups(client))


def reasons(events: list[dict]) -> set[str]:
    return {e.get("Reason") for e in events}


# ----------------------------------------------------------------------------- regions


def test_describe_regions(client):
    body = client.describe_regions(models.DescribeRegionsRequest(region_id=REGION)).body.to_map()
    regions = [r.get("RegionId") for r in body.get("Regions") or []]
    assert REGION in regions, pretty(body)
    assert body.get("RequestId"), pretty(body)


# ----------------------------------------------------------------------------- a running group

WEB_NAME = "e2e-web"


@pytest.fixture(scope="module")
def web(berth, images, tracker):
    """A Running group: init container, an httpd and a ticker. Deleted after the module."""
    g = support.Groups(berth, images, tracker)
    client = berth.client()
    gid = g.create(
        WEB_NAME,
        [
            container("web", images.image, ["httpd", "-f", "-p", "80", "-h", "/www"]),
            container("ticker", images.image, TICKER),
        ],
        init_containers=[init_container("init", images.image, ["sh", "-c", "echo init-done"])],
        restart_policy="Always",
    )
    group = support.wait_status(client, gid, ["Running"], timeout=60, never=["Failed"])
    yield gid, group
    g.delete_all()


def test_group_reaches_running(client, web):
    gid, group = web
    assert group["ContainerGroupName"] == WEB_NAME
    assert group.get("RestartPolicy") == "Always"
    assert {c["Name"] for c in group.get("Containers") or []} == {"web", "ticker"}, pretty(group)
    for name in ("web", "ticker"):
        c = container_of(group, name)
        assert (c.get("CurrentState") or {}).get("State") == "Running", pretty(group)
    init = container_of(group, "init", init=True)
    state = init.get("CurrentState") or {}
    assert state.get("State") == "Terminated" and state.get("ExitCode") == 0, pretty(group)


def test_intranet_ip_serves_index_page(client, web):
    gid, group = web
    ip = group.get("IntranetIp")
    assert ip and not ip.startswith("127."), pretty(group)
    page = wait_for(
        f"http://{ip}/ to answer",
        lambda: support.http_get(f"http://{ip}/"),
        timeout=15,
    )
    assert "berth test page" in page


def test_logs_of_app_and_init_containers(client, web):
    gid, _ = web
    text = wait_for(
        "ticker to log three ticks",
        lambda: (t := support.logs(client, gid, "ticker")).count("tick") >= 3 and t,
        timeout=20,
    )
    assert set(text.split()) == {"tick"}, repr(text)
    init_log = support.logs(client, gid, "init")
    assert "init-done" in init_log, repr(init_log)


def test_log_tail_limit_bytes_timestamps(client, web):
    gid, _ = web
    wait_for(
        "three ticks",
        lambda: support.logs(client, gid, "ticker").count("tick") >= 3,
        timeout=20,
    )

    tail = support.logs(client, gid, "ticker", tail=2)
    assert tail.splitlines() == ["tick", "tick"], repr(tail)

    limited = support.logs(client, gid, "ticker", limit_bytes=7)
    assert 0 < len(limited.encode()) <= 7, repr(limited)
    assert limited in "tick\n" * 3, repr(limited)

    stamped = support.logs(client, gid, "ticker", tail=3, timestamps=True)
    lines = stamped.splitlines()
    assert len(lines) == 3, repr(stamped)
    now = datetime.now(timezone.utc)
    previous = None
    for line in lines:
        ts = support.parse_timestamp(line)
        assert ts is not None, f"no RFC 3339 timestamp at the start of {line!r}"
        assert line.rstrip().endswith(" tick"), repr(line)
        assert now - timedelta(minutes=5) <= ts <= now + timedelta(seconds=5), line
        assert previous is None or ts >= previous, f"timestamps go backwards: {lines}"
        previous = ts


def test_events_of_running_group(client, web):
    gid, _ = web
    events = support.events_of(client, gid)
    got = reasons(events)
    missing = [r for r in ("Scheduled", "Created", "Started") if r not in got]
    assert not missing, f"missing events {missing}:\n{pretty(events)}"
    assert got & {"Pulled", "Pulling"}, f"no Pulled/Pulling event:\n{pretty(events)}"
    for e in events:
        assert e.get("Type") in ("Normal", "Warning"), pretty(e)


def test_describe_status_and_events_apis(client, web):
    gid, _ = web
    ids = json.dumps([gid])

    status = client.describe_container_group_status(
        models.DescribeContainerGroupStatusRequest(region_id=REGION, container_group_ids=ids)
    ).body.to_map()
    data = [d for d in status.get("Data") or [] if d.get("ContainerGroupId") == gid]
    assert len(data) == 1, pretty(status)
    assert data[0].get("Status") == "Running", pretty(data[0])
    pod = data[0].get("PodStatus") or {}
    assert pod.get("Phase") == "Running", pretty(data[0])
    names = {c.get("Name") for c in pod.get("ContainerStatuses") or []}
    assert {"web", "ticker"} <= names, pretty(data[0])

    events = client.describe_container_group_events(
        models.DescribeContainerGroupEventsRequest(region_id=REGION, container_group_ids=ids)
    ).body.to_map()
    data = [d for d in events.get("Data") or [] if d.get("ContainerGroupId") == gid]
    assert len(data) == 1, pretty(events)
    assert "Started" in reasons(data[0].get("Events") or []), pretty(data[0])


def test_describe_status_since_second_lists_what_changed(client, web, groups, images):
    """SinceSecond reads the groups whose record changed lately, whatever their events."""
    gid, _ = web
    time.sleep(3)
    fresh = groups.create("since-second", [container("c", images.image, ["sleep", "3600"])])
    support.wait_status(client, fresh, ["Running"], 60)
    status = client.describe_container_group_status(
        models.DescribeContainerGroupStatusRequest(region_id=REGION, since_second=2, limit=200)
    ).body.to_map()
    ids = {d["ContainerGroupId"] for d in status.get("Data") or []}
    assert fresh in ids and gid not in ids, pretty(status)
    assert status["TotalCount"] == len(ids), pretty(status)


def test_describe_filters_by_name_and_status(client, web):
    gid, _ = web
    by_name = support.list_groups(client, container_group_name=WEB_NAME)
    assert [g["ContainerGroupId"] for g in by_name] == [gid], pretty(by_name)
    assert support.list_groups(client, container_group_name="e2e-no-such-name") == []

    running = [g["ContainerGroupId"] for g in support.list_groups(client, status="Running")]
    assert gid in running
    succeeded = support.list_groups(client, status="Succeeded")
    assert gid not in [g["ContainerGroupId"] for g in succeeded]
    assert all(g.get("Status") == "Succeeded" for g in succeeded), pretty(succeeded)


def test_describe_pagination(client, web, groups, images):
    gid, _ = web
    other = groups.create("e2e-page", [container("sleeper", images.image, ["sleep", "3600"])])
    seen: list[str] = []
    token = None
    totals = set()
    for _ in range(50):
        body = client.describe_container_groups(
            models.DescribeContainerGroupsRequest(region_id=REGION, limit=1, next_token=token)
        ).body.to_map()
        page = body.get("ContainerGroups") or []
        assert len(page) <= 1, pretty(body)
        seen += [g["ContainerGroupId"] for g in page]
        totals.add(body.get("TotalCount"))
        token = body.get("NextToken")
        if not token:
            break
    else:
        pytest.fail("NextToken never ran out")
    assert len(seen) == len(set(seen)), f"a group came twice: {seen}"
    assert {gid, other} <= set(seen), seen
    assert len(totals) == 1 and totals.pop() == len(seen), (totals, seen)


# ----------------------------------------------------------------------------- restarts and exits


def test_on_failure_restarts_with_back_off(runtime_class, client, groups, images):
    script = 'echo run $(cut -d" " -f1 /proc/uptime); exit 3'
    gid = groups.create(
        "e2e-onfailure",
        [container("crash", images.image, ["sh", "-c", script])],
        restart_policy="OnFailure",
    )
    created = time.monotonic()

    def restart_count() -> int:
        group = support.describe(client, gid)
        return (container_of(group, "crash").get("RestartCount") or 0) if group else 0

    def diag() -> str:
        return pretty(support.describe(client, gid, with_event=True))

    wait_for("RestartCount >= 1", lambda: restart_count() >= 1, 30, 0.25, diag)
    first = time.monotonic()
    # Back-off before the first restart is 10s; the container itself exits at once.
    assert first - created >= 7, f"restarted after {first - created:.1f}s: no back-off"

    group = support.describe(client, gid)
    crash = container_of(group, "crash")
    previous = crash.get("PreviousState") or {}
    assert previous.get("State") == "Terminated", pretty(crash)
    assert previous.get("ExitCode") == 3, pretty(crash)
    assert previous.get("Reason") == "Error", pretty(crash)

    wait_for(
        "a BackOff event",
        lambda: "BackOff" in reasons(support.events_of(client, gid)),
        10,
        diag=diag,
    )

    current = wait_for(
        "the restarted container's output",
        lambda: "run" in (t := support.logs(client, gid, "crash")) and t,
        10,
        diag=diag,
    )
    last = support.logs(client, gid, "crash", last_time=True)
    assert "run" in last, repr(last)
    assert last.count("run") == 1 and current.count("run") == 1, (last, current)
    assert last != current, f"LastTime=True returned the current run's log: {last!r}"

    wait_for("RestartCount >= 2", lambda: restart_count() >= 2, 40, 0.25, diag)
    second = time.monotonic()
    # The second back-off (20s) is longer than the first (10s).
    assert second - first >= 15, f"second restart {second - first:.1f}s after the first"


def test_never_groups_succeed_or_fail(runtime_class, client, groups, images):
    ok = groups.create("e2e-exit0", [container("main", images.image, ["sh", "-c", "exit 0"])])
    bad = groups.create("e2e-exit7", [container("main", images.image, ["sh", "-c", "exit 7"])])

    group = support.wait_status(client, ok, ["Succeeded"], 60, never=["Failed"])
    state = container_of(group, "main").get("CurrentState") or {}
    assert state.get("State") == "Terminated" and state.get("ExitCode") == 0, pretty(group)
    assert container_of(group, "main").get("RestartCount") == 0, pretty(group)

    group = support.wait_status(client, bad, ["Failed"], 60, never=["Succeeded"])
    state = container_of(group, "main").get("CurrentState") or {}
    assert state.get("State") == "Terminated" and state.get("ExitCode") == 7, pretty(group)
    assert container_of(group, "main").get("RestartCount") == 0, pretty(group)


# ----------------------------------------------------------------------------- private registry


def test_private_registry_with_credentials(client, groups, images):
    gid = groups.create(
        "e2e-private",
        [container("main", images.private_image, ["sleep", "3600"])],
        private=True,
        credentials=True,
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"])


def test_private_registry_without_credentials(client, groups, images):
    gid = groups.create(
        "e2e-private-nocreds",
        [container("main", images.unpulled_private_image, ["sleep", "3600"])],
        private=True,
    )
    seen_status: list[str] = []

    def pull_failure() -> str | None:
        group = support.describe(client, gid, with_event=True)
        assert group is not None, f"{gid} vanished"
        status = group.get("Status")
        seen_status.append(status)
        assert status not in ("Running", "Succeeded"), f"ran without credentials:\n{pretty(group)}"
        texts = [f"{e.get('Reason')}: {e.get('Message')}" for e in group.get("Events") or []]
        for c in group.get("Containers") or []:
            for key in ("CurrentState", "PreviousState"):
                s = c.get(key) or {}
                texts.append(f"{s.get('Reason')}: {s.get('Message')}")
        hits = [t for t in texts if PULL_FAILURE.search(t)]
        return hits[0] if hits else None

    hit = wait_for(
        "an image pull failure naming the registry's error",
        pull_failure,
        40,
        1,
        lambda: pretty(support.describe(client, gid, with_event=True)),
    )
    assert hit
    # It stays that way.
    time.sleep(2)
    assert pull_failure(), seen_status


# ----------------------------------------------------------------------------- bad input


def _expect_client_error(call, status: int | tuple[int, ...]) -> ClientException:
    __tracebackhide__ = True
    with pytest.raises(ClientException) as info:
        call()
    exc = info.value
    statuses = status if isinstance(status, tuple) else (status,)
    assert exc.status_code in statuses, f"status {exc.status_code}, {exc.code}: {exc.message}"
    assert exc.code, f"error without Code: {exc.data}"
    assert exc.request_id, f"error without RequestId: {exc.data}"
    return exc


def test_missing_container_is_rejected(client, images):
    before = group_ids(client)
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name="e2e-bad-missing",
        restart_policy="Never",
        plain_http_registry=images.registry,
    )
    exc = _expect_client_error(lambda: client.create_container_group(req), 400)
    assert exc.code.startswith("Missing"), exc.code
    assert group_ids(client) == before


def test_bad_restart_policy_is_rejected(client, images):
    before = group_ids(client)
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name="e2e-bad-policy",
        restart_policy="Sometimes",
        container=[container("main", images.image, ["sleep", "1"])],
        plain_http_registry=images.registry,
    )
    exc = _expect_client_error(lambda: client.create_container_group(req), 400)
    assert exc.code.startswith("InvalidParameter"), exc.code
    assert group_ids(client) == before


def test_delete_unknown_group_is_404(client):
    before = group_ids(client)
    _expect_client_error(lambda: support.delete(client, "eci-" + "0" * 20), 404)
    assert group_ids(client) == before


def test_wrong_secret_is_rejected(berth, client, images):
    before = group_ids(client)
    bad = berth.client(secret="not-the-secret")
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name="e2e-bad-secret",
        restart_policy="Never",
        container=[container("main", images.image, ["sleep", "1"])],
        plain_http_registry=images.registry,
    )
    exc = _expect_client_error(lambda: bad.create_container_group(req), (400, 403))
    assert exc.code == "SignatureDoesNotMatch", exc.code
    assert ":" in (exc.data or {}).get("Message", ""), "the legacy SDK needs a ':' in the message"
    assert group_ids(client) == before


# ----------------------------------------------------------------------------- other clients


def test_legacy_sdk_describe(berth, client, web):
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkeci.request.v20180808.DescribeContainerGroupsRequest import (
        DescribeContainerGroupsRequest,
    )

    gid, _ = web
    creds = berth.credentials()
    legacy = AcsClient(
        creds["AccessKeyId"], creds["AccessKeySecret"], REGION, port=berth.port, timeout=60
    )
    req = DescribeContainerGroupsRequest()
    req.set_endpoint("127.0.0.1")
    req.set_protocol_type("http")
    req.set_ContainerGroupIds(json.dumps([gid]))
    body = json.loads(legacy.do_action_with_exception(req))
    assert [g["ContainerGroupId"] for g in body.get("ContainerGroups") or []] == [gid], pretty(body)
    assert body["ContainerGroups"][0]["ContainerGroupName"] == WEB_NAME


def test_v2_signature_describe(berth, client, web):
    gid, _ = web
    v2 = berth.client(signature_algorithm="v2")
    assert group_ids(v2) == group_ids(client)
    assert support.describe(v2, gid)["ContainerGroupName"] == WEB_NAME


# ----------------------------------------------------------------------------- delete


def test_delete_removes_group_and_host_state(runtime_class, berth, client, groups, images):
    # The shell stays the container's process (found by its marker) and exits on SIGTERM.
    script = f"trap 'exit 0' TERM; : e2e-delete-{int(time.time() * 1000)}; sleep 3600 & wait"
    veths_before = support.bridge_ports()
    gid = groups.create(
        "e2e-delete",
        [container("main", images.image, ["sh", "-c", script])],
        termination_grace_period_seconds=30,
        restart_policy="Always",
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    if runtime_class == "gvisor":
        # The shell runs on gVisor's kernel: what the host sees is the group's sandbox.
        pids = wait_for("the group's sandbox", lambda: support.pids_in_cgroup(f"/berth/{gid}"), 10)
    else:
        pids = wait_for("the container's shell", lambda: support.pids_matching(script), 10)
    veth = support.group_veth(berth.state_dir, gid)
    assert veth and veth in support.bridge_ports(), f"no veth of {gid} on {support.BRIDGE}"
    # The group may have taken over a pooled namespace whose veth was already there.
    veths_before = [v for v in veths_before if v != veth]

    deleted = time.monotonic()
    support.delete(client, gid)
    wait_for(
        f"{gid} to disappear",
        lambda: support.describe(client, gid) is None,
        60,
        diag=berth.diag,
    )
    assert gid not in group_ids(client)
    took = time.monotonic() - deleted
    assert took < 20, f"delete took {took:.0f}s although the container exits on SIGTERM"
    assert not [p for p in pids if support.pid_alive(p)], f"processes {pids} survived delete"
    support.assert_no_leftovers(berth.state_dir, [gid], veths_allowed=veths_before)
    assert veth not in support.bridge_ports(), f"veth {veth} of {gid} left on the bridge"
