"""DeleteContainerGroup's `GracePeriodSeconds` (berth's extension, a pod's deletion grace
period): a group whose container ignores SIGTERM and has 60 s of grace is gone in seconds
when deleted with 1, a repeated delete starts no second removal, a shorter grace given while
the containers are already stopping cuts that stop short, and a bad value changes nothing
(docs/API-EXTENSIONS.md)."""

from __future__ import annotations

import time
import uuid

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import container, wait_status


def delete(client, **query: str) -> dict:
    return support.call_action(client, "DeleteContainerGroup", **query)


def test_a_shorter_grace_period_stops_the_group_sooner(berth, client, groups, images):
    # PID 1 without a SIGTERM handler ignores SIGTERM: only SIGKILL ends it.
    gid = groups.create(
        f"e2e-grace-{uuid.uuid4().hex[:6]}",
        [container("c", images.image, ["sleep", "3600"])],
        termination_grace_period_seconds=60,
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    for bad in ("-1", "86401", "soon"):
        with pytest.raises(ClientException) as exc:
            delete(client, ContainerGroupId=gid, GracePeriodSeconds=bad)
        assert exc.value.code == "InvalidParameter", exc.value.message
        assert "GracePeriodSeconds" in exc.value.message
    assert support.describe(client, gid)["Status"] == "Running", "a refused delete changes nothing"
    began = time.monotonic()
    delete(client, ContainerGroupId=gid, GracePeriodSeconds="1")
    # Deleting again while it stops starts no second removal and is no error.
    delete(client, ContainerGroupId=gid, GracePeriodSeconds="1")
    events = support.events_of(client, gid)
    assert any("grace period 1s" in (e.get("Message") or "") for e in events), events
    support.wait_for(
        "the group to be gone", lambda: support.describe(client, gid) is None, 30,
        diag=berth.diag,
    )
    took = time.monotonic() - began
    assert took < 20, f"gone after {took:.1f}s: the 60 s grace period was used"


def test_a_shorter_grace_period_cuts_the_stop_under_way(berth, client, groups, images):
    """A second delete with a shorter GracePeriodSeconds while the containers are already
    being stopped (with 60 s of grace) kills them within the new grace, as a pod deleted
    again with a shorter --grace-period."""
    gid = groups.create(
        f"e2e-grace-cut-{uuid.uuid4().hex[:6]}",
        [container("c", images.image, ["sleep", "3600"])],
        termination_grace_period_seconds=60,
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    began = time.monotonic()
    delete(client, ContainerGroupId=gid)
    # SIGTERM is sent and ignored: the 60 s wait is under way.
    support.wait_for(
        "the group to be Terminating",
        lambda: (support.describe(client, gid) or {}).get("Status") == "Terminating",
        30, diag=berth.diag,
    )
    time.sleep(2)
    assert support.describe(client, gid) is not None, "still stopping"
    delete(client, ContainerGroupId=gid, GracePeriodSeconds="1")
    support.wait_for(
        "the group to be gone", lambda: support.describe(client, gid) is None, 40,
        diag=berth.diag,
    )
    took = time.monotonic() - began
    assert took < 30, f"gone after {took:.1f}s: the 60 s grace period in progress was kept"
