"""Quotas and throttling through the official SDK and `berth admin`, on a berth of this module
started with small throttling limits: quota refusals with their codes, a quota set on the
running server counting from the next request, concurrent creates at the edge of a quota never
passing more than fit, and throttling raising the SDK's ThrottlingException with the retry
hint."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException

import support
from support import REGION, Berth, container, pretty, wait_for
from test_tenancy import admin, admin_ok, new_account, sdk

SLEEPER = ["sleep", "3600"]
# Each account may make 6 creates at once, then one every 2 s.
WRITE_BURST = 6
WRITE_RATE = 0.5


@pytest.fixture(scope="module")
def qberth(images):
    # On a bridge and subnet of its own (two berths' address pools on one subnet would hand
    # out the same addresses), with berth's own netns pool, as an operator starts it.
    with support.own_berth(
        "quota",
        [
            "--throttle-write-burst", str(WRITE_BURST),
            "--throttle-write-rate", str(WRITE_RATE),
            "--max-cpu", "2",
            "--max-memory", "4",
            "--max-groups", "5",
        ],
        bridge="berthq0",
        subnet="10.223.0.0/16",
        netns_pool=None,
    ) as server:
        yield server


@pytest.fixture
def made(qberth):
    """(client, group id) of every group a test made; deleted when it ends."""
    groups: list = []
    yield groups
    for client, gid in groups:
        try:
            support.delete(client, gid)
        except ClientException as exc:
            if exc.status_code != 404:
                raise
    for client, gid in groups:
        wait_for(
            f"group {gid} to be deleted",
            lambda c=client, g=gid: support.describe(c, g) is None,
            60,
            diag=qberth.diag,
        )


def create(client, images, name: str, cpu: float = 0.25, memory: float = 0.5) -> str:
    resp = client.create_container_group(
        models.CreateContainerGroupRequest(
            region_id=REGION,
            container_group_name=name,
            restart_policy="Never",
            container=[container("main", images.image, SLEEPER, cpu=cpu, memory=memory)],
            plain_http_registry=images.registry,
            termination_grace_period_seconds=1,
        )
    )
    return resp.body.container_group_id


def usage(client) -> dict:
    resp = client.list_usage(models.ListUsageRequest(region_id=REGION))
    return resp.body.to_map()["Attributes"]


def test_quota_refusals_name_the_quota_the_limit_and_the_use(qberth, images, made):
    _, key = new_account(qberth, "q")
    client = sdk(qberth, key)
    # Sizes of ECI's table (others are rounded up to one).
    made.append((client, create(client, images, "big", cpu=1.0, memory=2.0)))

    with pytest.raises(ClientException) as info:
        create(client, images, "too-much-cpu", cpu=2.0, memory=4.0)
    exc = info.value
    assert (exc.status_code, exc.code) == (400, "QuotaExceeded.Cpu"), exc.message
    assert "may hold 2 vCPU and holds 1; the container group asks for 2" in exc.message

    with pytest.raises(ClientException) as info:
        create(client, images, "too-much-memory", cpu=1.0, memory=4.0)
    assert info.value.code == "QuotaExceeded.Memory", info.value.message
    assert "may hold 4 GiB of memory and holds 2;" in info.value.message

    assert len(support.list_groups(client)) == 1
    u = usage(client)
    assert (u["UsedCpu"], u["MaxCpu"], u["UsedMemory"], u["MaxMemory"]) == (1, 2, 2, 4), u
    assert (u["UsedContainerGroupCount"], u["MaxContainerGroupCount"]) == (1, 5), u


def test_set_quota_on_the_running_server_counts_from_the_next_request(qberth, images, made):
    name, key = new_account(qberth, "set")
    client = sdk(qberth, key)
    admin_ok(qberth, "account", "set-quota", name, "--groups", "1")
    made.append((client, create(client, images, "first")))
    with pytest.raises(ClientException) as info:
        create(client, images, "second")
    assert info.value.code == "QuotaExceeded.ContainerGroup", info.value.message
    assert "may hold 1 container groups and holds 1" in info.value.message

    admin_ok(qberth, "account", "set-quota", name, "--groups", "2", "--cpu", "3", "--memory", "8")
    # Above the defaults of 2 vCPU and 4 GiB.
    made.append((client, create(client, images, "second", cpu=2.0, memory=4.0)))
    accounts = {a["Name"]: a for a in admin_ok(qberth, "account", "ls", "-o", "json")}
    assert accounts[name]["MaxContainerGroupCount"] == 2, pretty(accounts[name])
    assert accounts[name]["MaxCpu"] == 3, pretty(accounts[name])
    assert accounts[name]["MaxImageCacheCount"] is None, pretty(accounts[name])
    assert usage(client)["MaxCpu"] == 3

    assert admin(qberth, "account", "set-quota", name).returncode != 0
    assert admin(qberth, "account", "set-quota", name, "--cpu", "-1").returncode != 0
    assert admin(qberth, "account", "set-quota", "no-such-account", "--cpu", "1").returncode != 0


def test_temporary_storage_has_a_quota_of_its_own(qberth, images, made):
    name, key = new_account(qberth, "disk")
    client = sdk(qberth, key)
    admin_ok(qberth, "account", "set-quota", name, "--storage", "40")

    def sized(n: str, gib=None) -> str:
        resp = client.create_container_group(
            models.CreateContainerGroupRequest(
                region_id=REGION,
                container_group_name=n,
                restart_policy="Never",
                container=[container("main", images.image, SLEEPER, cpu=0.25, memory=0.5)],
                plain_http_registry=images.registry,
                termination_grace_period_seconds=1,
                ephemeral_storage=gib,
            )
        )
        return resp.body.container_group_id

    # The default size (30 GiB) fits once; a second one does not, a small one does.
    made.append((client, sized("default")))
    with pytest.raises(ClientException) as info:
        sized("another-default")
    exc = info.value
    assert (exc.status_code, exc.code) == (400, "QuotaExceeded.EphemeralStorage"), exc.message
    assert "may hold 40 GiB of temporary storage and holds 30;" in exc.message
    made.append((client, sized("small", 10)))
    u = usage(client)
    assert (u["UsedEphemeralStorage"], u["MaxEphemeralStorage"]) == (40, 40), u
    accounts = {a["Name"]: a for a in admin_ok(qberth, "account", "ls", "-o", "json")}
    assert accounts[name]["MaxEphemeralStorage"] == 40, pretty(accounts[name])
    assert len(support.list_groups(client)) == 2


def test_concurrent_creates_at_the_edge_never_overshoot(qberth, images, made):
    name, key = new_account(qberth, "edge")
    admin_ok(qberth, "account", "set-quota", name, "--cpu", "1")
    clients = [sdk(qberth, key) for _ in range(WRITE_BURST)]

    def attempt(i: int):
        try:
            return create(clients[i], images, f"edge-{i}")
        except ClientException as exc:
            return exc

    with ThreadPoolExecutor(WRITE_BURST) as pool:
        results = list(pool.map(attempt, range(WRITE_BURST)))
    ok = [r for r in results if isinstance(r, str)]
    made.extend((clients[0], gid) for gid in ok)
    refused = [r for r in results if not isinstance(r, str)]
    # 0.25 vCPU each under 1 vCPU: exactly four fit.
    assert len(ok) == 4, [getattr(r, "message", r) for r in results]
    assert all(r.code == "QuotaExceeded.Cpu" for r in refused), [r.message for r in refused]
    assert len(support.list_groups(clients[0])) == 4
    assert usage(clients[0])["UsedCpu"] == 1


def test_throttling_raises_the_sdks_exception_with_a_retry_hint(qberth, images):
    name, key = new_account(qberth, "flood")
    # No group fits: the creates that pass throttling are refused by the quota, so the flood
    # starts nothing.
    admin_ok(qberth, "account", "set-quota", name, "--groups", "0")
    client = sdk(qberth, key)
    other_name, other_key = new_account(qberth, "calm")
    admin_ok(qberth, "account", "set-quota", other_name, "--groups", "0")
    other = sdk(qberth, other_key)

    codes = []
    throttled = None
    for i in range(WRITE_BURST + 1):
        try:
            create(client, images, f"flood-{i}")
        except ThrottlingException as exc:
            throttled = exc
            break
        except ClientException as exc:
            codes.append(exc.code)
    assert codes == ["QuotaExceeded.ContainerGroup"] * WRITE_BURST, codes
    assert throttled is not None, "no ThrottlingException after the burst"
    assert throttled.code == "Throttling.User", throttled.message
    assert throttled.status_code == 400
    assert 0 < throttled.retry_after <= 1000 / WRITE_RATE, throttled.retry_after
    assert throttled.request_id

    # Reads of the same account and any request of another account still pass.
    assert support.list_groups(client) == []
    with pytest.raises(ClientException) as info:
        create(other, images, "calm-1")
    assert info.value.code == "QuotaExceeded.ContainerGroup", info.value.message
    # After the hinted wait a create passes throttling again (and meets the quota).
    time.sleep(throttled.retry_after / 1000 + 0.05)
    with pytest.raises(ClientException) as info:
        create(client, images, "flood-after")
    assert not isinstance(info.value, ThrottlingException)
    assert info.value.code == "QuotaExceeded.ContainerGroup", info.value.message
