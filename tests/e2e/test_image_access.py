"""Images belong to accounts: an image one account pulled from a registry with basic auth does
not serve another account's groups (IfNotPresent, the default) until that account proves it
may pull it with its own credentials; refusals are clear and tell nothing about what the
other account pulled; a public image serves everyone; an image cache serves its own account
only."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import (
    BUILD_IMAGE,
    REGION,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    container,
    pretty,
    wait_for,
)
from test_image_cache import wait_cache
from test_tenancy import new_account, owned, sdk  # noqa: F401  (owned is a fixture)

SLEEPER = ["sleep", "3600"]
NO_ACCESS = "the account has no access to this image"


@pytest.fixture(scope="module")
def fresh(images):
    """Pushes the busybox image to the registry with basic auth under names no other test
    pulls, so the first pull of each is the one the test makes."""
    tag = uuid.uuid4().hex[:8]
    names = [f"acct-{tag}/busybox:latest", f"acct-{tag}/cached:latest"]
    cmd = [
        str(BUILD_IMAGE),
        "--creds",
        f"{REGISTRY_USER}:{REGISTRY_PASSWORD}",
        images.private_registry,
        *names,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout}\n{res.stderr}"
    return [f"{images.private_registry}/{n}" for n in names]


@pytest.fixture
def accounts(berth):
    """Two fresh accounts, A and B: (name, client) each."""
    a_name, a_key = new_account(berth, "img-a")
    b_name, b_key = new_account(berth, "img-b")
    return (a_name, sdk(berth, a_key)), (b_name, sdk(berth, b_key))


def credential(server: str, password: str = REGISTRY_PASSWORD):
    return models.CreateContainerGroupRequestImageRegistryCredential(
        server=server, user_name=REGISTRY_USER, password=password
    )


def create(owned, client, name: str, image: str, registry: str, **kw) -> str:
    policy = kw.pop("image_pull_policy", "IfNotPresent")
    resp = client.create_container_group(
        models.CreateContainerGroupRequest(
            region_id=REGION,
            container_group_name=name,
            restart_policy="Never",
            container=[
                container("main", image, SLEEPER, cpu=0.25, memory=0.5, image_pull_policy=policy)
            ],
            plain_http_registry=registry,
            termination_grace_period_seconds=1,
            **kw,
        )
    )
    gid = resp.body.container_group_id
    owned.append((client, gid))
    return gid


def running(berth, client, gid: str) -> dict:
    return support.wait_status(
        client, gid, ["Running"], 90, never=["Failed", "Succeeded"], diag=berth.diag
    )


def refused_start(berth, client, gid: str) -> tuple[dict, str]:
    """Waits for the group's pull failure; returns the group (with events) and the text of its
    events and container states. The group never runs."""
    seen: dict = {}

    def failure():
        group = support.describe(client, gid, with_event=True)
        assert group is not None, f"{gid} vanished"
        assert group.get("Status") not in ("Running", "Succeeded"), (
            f"started without access:\n{pretty(group)}"
        )
        seen["group"] = group
        state = (support.container_of(group, "main").get("CurrentState") or {})
        if state.get("DetailStatus") in ("ErrImagePull", "ImagePullBackOff") or state.get(
            "Reason"
        ) in ("ErrImagePull", "ImagePullBackOff"):
            return group
        return None

    group = wait_for(
        f"{gid} to fail its image pull", failure, 60, 0.5, lambda: pretty(seen.get("group"))
    )
    texts = [f"{e.get('Reason')}: {e.get('Message')}" for e in group.get("Events") or []]
    for c in group.get("Containers") or []:
        for key in ("CurrentState", "PreviousState"):
            s = c.get(key) or {}
            texts.append(f"{s.get('Reason')}: {s.get('DetailStatus')}: {s.get('Message')}")
    return group, "\n".join(texts)


def assert_clear_refusal(text: str, image: str, leaks: list[str]) -> None:
    assert NO_ACCESS in text, text
    assert image in text, text
    for secret in leaks:
        assert secret not in text, f"{secret!r} leaked:\n{text}"
    # Nothing tells that the image is on the node.
    assert "already present" not in text, text
    assert "sha256:" not in text, text


def test_a_private_image_serves_only_accounts_that_may_pull_it(berth, accounts, owned, images, fresh):
    (a_name, a), (b_name, b) = accounts
    image = fresh[0]
    host = images.private_registry

    # A pulls it with its credentials and runs it.
    ga = create(owned, a, "acct-a", image, host, image_registry_credential=[credential(host)])
    running(berth, a, ga)

    # B without credentials: refused, though the image is on the node.
    bare = create(owned, b, "acct-b-bare", image, host)
    group, text = refused_start(berth, b, bare)
    assert_clear_refusal(text, image, [REGISTRY_PASSWORD, a_name, ga])
    state = support.container_of(group, "main").get("CurrentState") or {}
    assert state.get("State") == "Waiting", pretty(group)
    assert any(
        e.get("Reason") == "Failed" and NO_ACCESS in (e.get("Message") or "")
        for e in group.get("Events") or []
    ), pretty(group)

    # Never does not help: the image is not there for B.
    never = create(owned, b, "acct-b-never", image, host, image_pull_policy="Never")
    _, text = refused_start(berth, b, never)
    assert "not present" in text, text
    assert "already present" not in text and REGISTRY_PASSWORD not in text, text

    # B with a wrong password: refused alike, the password never echoed.
    wrong = create(
        owned, b, "acct-b-wrong", image, host,
        image_registry_credential=[credential(host, "not-the-password")],
    )
    _, text = refused_start(berth, b, wrong)
    assert_clear_refusal(text, image, [REGISTRY_PASSWORD, "not-the-password", a_name])

    # The refused groups go before B proves anything (a proof counts for the account).
    for gid in (bare, never, wrong):
        support.delete(b, gid)

    # B with its own valid credentials: runs the stored image.
    good = create(owned, b, "acct-b-good", image, host, image_registry_credential=[credential(host)])
    running(berth, b, good)

    # A's own pull keeps serving A without credentials (IfNotPresent).
    again = create(owned, a, "acct-a-again", image, host)
    running(berth, a, again)


def test_a_public_image_serves_every_account(berth, accounts, owned, images):
    (_, a), (_, b) = accounts
    for who, client in (("a", a), ("b", b)):
        gid = create(owned, client, f"public-{who}", images.image, images.registry)
        running(berth, client, gid)


def test_an_image_cache_serves_its_own_account_only(berth, accounts, owned, images, fresh):
    (a_name, a), (_, b) = accounts
    image = fresh[1]
    host = images.private_registry
    resp = a.create_image_cache(
        models.CreateImageCacheRequest(
            region_id=REGION,
            image_cache_name=f"acct-{uuid.uuid4().hex[:6]}",
            image=[image],
            plain_http_registry=host,
            image_registry_credential=[
                models.CreateImageCacheRequestImageRegistryCredential(
                    server=host, user_name=REGISTRY_USER, password=REGISTRY_PASSWORD
                )
            ],
        )
    )
    cache_id = resp.body.image_cache_id
    try:
        ready = wait_cache(a, cache_id, {"Ready", "Failed"})
        assert ready["Status"] == "Ready", pretty(ready)

        # A: from its cache, and by reference without credentials (the cache proves it).
        from_cache = create(owned, a, "cache-a", image, host, image_snapshot_id=cache_id)
        running(berth, a, from_cache)
        by_ref = create(owned, a, "cache-a-ref", image, host)
        running(berth, a, by_ref)

        # B cannot name A's cache, nor run its image without credentials.
        with pytest.raises(ClientException) as info:
            create(owned, b, "cache-b", image, host, image_snapshot_id=cache_id)
        assert info.value.status_code in (400, 404), info.value.message
        bare = create(owned, b, "cache-b-bare", image, host)
        _, text = refused_start(berth, b, bare)
        assert_clear_refusal(text, image, [REGISTRY_PASSWORD, a_name, cache_id])
        support.delete(b, bare)

        # B's own cache of the same image, built without credentials, fails too.
        resp = b.create_image_cache(
            models.CreateImageCacheRequest(
                region_id=REGION,
                image_cache_name=f"acct-b-{uuid.uuid4().hex[:6]}",
                image=[image],
                plain_http_registry=host,
            )
        )
        b_cache = resp.body.image_cache_id
        failed = wait_cache(b, b_cache, {"Ready", "Failed"})
        assert failed["Status"] == "Failed", pretty(failed)
        assert "already present" not in pretty(failed) and REGISTRY_PASSWORD not in pretty(failed)
        b.delete_image_cache(
            models.DeleteImageCacheRequest(region_id=REGION, image_cache_id=b_cache)
        )
    finally:
        for client, gid in list(owned):
            if client is a:
                try:
                    support.delete(client, gid)
                except ClientException as exc:
                    if exc.status_code != 404:
                        raise
        wait_for(
            "A's groups to be deleted",
            lambda: all(support.describe(c, g) is None for c, g in owned if c is a),
            60,
            diag=berth.diag,
        )
        a.delete_image_cache(
            models.DeleteImageCacheRequest(region_id=REGION, image_cache_id=cache_id)
        )
