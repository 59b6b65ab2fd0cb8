"""ActiveDeadlineSeconds: a group still active past its deadline ends Failed with reason
DeadlineExceeded, its containers stopped and not restarted; the deadline holds across a crash
of berth."""

from __future__ import annotations

import time

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import container, container_of, pretty, wait_for


def sleeper(tag: str) -> list[str]:
    # A no-op `:` command names the shell, so ps can find it.
    return ["sh", "-c", f": {tag}; while true; do sleep 1; done"]


def test_a_group_past_its_deadline_fails_and_its_containers_stop(berth, client, groups, images):
    tag = f"e2e-deadline-{int(time.time() * 1000)}"
    created = time.monotonic()
    gid = groups.create(
        "e2e-deadline",
        [container("c", images.image, sleeper(tag))],
        restart_policy="Always",
        active_deadline_seconds=4,
        termination_grace_period_seconds=1,
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    assert support.pids_matching(f"-c : {tag}"), "the container's shell does not run"
    group = support.wait_status(client, gid, ["Failed"], 60, diag=berth.diag)
    assert time.monotonic() - created >= 3.5, "the group failed before its deadline"

    # The container shows Terminated once it is stopped (SIGTERM, the grace period, SIGKILL).
    def terminated():
        g = support.describe(client, gid)
        c = container_of(g, "c")
        return c if (c.get("CurrentState") or {}).get("State") == "Terminated" else None

    c = wait_for("the container to be terminated", terminated, 15)
    assert c["CurrentState"].get("Reason") == "DeadlineExceeded", pretty(c)
    reasons = [e.get("Reason") for e in support.events_of(client, gid)]
    assert "DeadlineExceeded" in reasons, reasons
    wait_for("the container's processes to end", lambda: not support.pids_matching(f"-c : {tag}"), 15)
    # Failed is final: RestartPolicy=Always does not bring it back.
    time.sleep(2)
    again = support.describe(client, gid)
    assert again["Status"] == "Failed", pretty(again)
    assert container_of(again, "c").get("RestartCount", 0) == c.get("RestartCount", 0)


def test_the_deadline_holds_across_a_crash_of_berth(berth, client, groups, images):
    tag = f"e2e-deadline-crash-{int(time.time() * 1000)}"
    gid = groups.create(
        "e2e-deadline-crash",
        [container("c", images.image, sleeper(tag))],
        active_deadline_seconds=5,
        termination_grace_period_seconds=1,
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    berth.kill()
    try:
        # The deadline passes while berth is down; the container keeps running meanwhile.
        time.sleep(6)
        assert support.pids_matching(f"-c : {tag}"), "the container died with berth"
    finally:
        berth.start()
    support.wait_status(client, gid, ["Failed"], 30, diag=berth.diag)
    wait_for("the container's processes to end", lambda: not support.pids_matching(f"-c : {tag}"), 15)
    wait_for(
        "the container to be terminated by the deadline",
        lambda: (container_of(support.describe(client, gid), "c").get("CurrentState") or {}).get(
            "Reason"
        )
        == "DeadlineExceeded",
        15,
    )


@pytest.mark.parametrize("value", ["0", "-1", "x", "400000000"])
def test_bad_deadlines_are_refused(client, groups, images, value):
    with pytest.raises(ClientException) as info:
        groups.create(
            "e2e-bad-deadline",
            [container("c", images.image, ["true"])],
            active_deadline_seconds=value,
        )
    assert info.value.status_code == 400, info.value.message
    assert "ActiveDeadlineSeconds" in info.value.message
    assert not support.list_groups(client, container_group_name="e2e-bad-deadline")
