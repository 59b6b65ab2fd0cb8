"""Image caches end to end through the official ECI Python SDK.

A docker-registry of this module's own (with its access log on) serves the images, so that it
can be stopped and its requests counted without disturbing the other tests: the cache
lifecycle (CreateImageCache → Ready, DescribeImageCaches with MatchImage, UpdateImageCache,
DeleteImageCache, ListUsage), a group started from a Ready cache (ImageSnapshotId) while the
registry is down, AutoMatchImageCache (hit, and a cache made when none matches), and ten
groups pulling one image at once with each layer fetched once.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, Registry, container, wait_for, wait_status


class LoggingRegistry(Registry):
    """The support registry with its access log on (one line per request)."""

    def __init__(self, workdir):
        super().__init__(workdir, access_log=True)

    def blob_gets(self) -> Counter:
        """Successful GETs of each blob digest so far."""
        pattern = re.compile(r'"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+" 200 ')
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return Counter(pattern.findall(text))

    def layers(self, repo: str, tag: str) -> list[str]:
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{tag}",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json,"
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            manifest = json.loads(resp.read())
        return [layer["digest"] for layer in manifest["layers"]]


@pytest.fixture(scope="module")
def registry(berth, tmp_path_factory):
    reg = LoggingRegistry(tmp_path_factory.mktemp("registry-cache"))
    reg.start()
    try:
        reg.push_busybox(
            "cached/busybox:latest",
            "extra/busybox:latest",
            "automatic/busybox:latest",
        )
        yield reg
    finally:
        reg.stop()


def create_cache(client, name: str, images: list[str], host: str, **kw) -> str:
    resp = client.create_image_cache(
        models.CreateImageCacheRequest(
            region_id=REGION,
            image_cache_name=name,
            image=images,
            plain_http_registry=host,
            **kw,
        )
    )
    cache_id = resp.body.image_cache_id
    assert cache_id and cache_id.startswith("imc-"), resp.body.to_map()
    assert resp.body.container_group_id.startswith("eci-"), resp.body.to_map()
    return cache_id


def describe_caches(client, **kw) -> list[dict]:
    body = client.describe_image_caches(
        models.DescribeImageCachesRequest(region_id=REGION, **kw)
    ).body.to_map()
    assert "TotalCount" in body and "RequestId" in body, body
    return body.get("ImageCaches") or []


def cache_of(client, cache_id: str) -> dict | None:
    caches = describe_caches(client, image_cache_id=cache_id)
    return caches[0] if caches else None


def wait_cache(client, cache_id: str, statuses: set[str], timeout: float = 120) -> dict:
    seen: list[str] = []

    def probe():
        c = cache_of(client, cache_id)
        assert c is not None, f"image cache {cache_id} vanished"
        if not seen or seen[-1] != c["Status"]:
            seen.append(c["Status"])
        return c if c["Status"] in statuses else None

    return wait_for(
        f"image cache {cache_id} to reach {sorted(statuses)}",
        probe,
        timeout,
        0.3,
        lambda: f"statuses seen: {seen}\n{support.pretty(cache_of(client, cache_id))}",
    )


def delete_cache(client, cache_id: str) -> None:
    client.delete_image_cache(
        models.DeleteImageCacheRequest(region_id=REGION, image_cache_id=cache_id)
    )


def create_group(groups, name: str, image: str, host: str, **kw) -> str:
    """A one-container group pulling from this module's registry."""
    kw.setdefault("termination_grace_period_seconds", 5)
    pull_policy = kw.pop("image_pull_policy", None)
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name=name,
        restart_policy="Never",
        container=[
            container("main", image, ["sleep", "3600"], image_pull_policy=pull_policy)
        ],
        plain_http_registry=host,
        **kw,
    )
    gid = groups.berth.client().create_container_group(req).body.container_group_id
    groups.tracker.add(gid)
    groups.created.append(gid)
    return gid


def usage(client) -> dict:
    body = client.list_usage(models.ListUsageRequest(region_id=REGION)).body.to_map()
    return body["Attributes"]


def test_cache_lifecycle_through_the_sdk(client, registry):
    image = f"{registry.host}/cached/busybox:latest"
    extra = f"{registry.host}/extra/busybox:latest"
    before = usage(client)
    for key in (
        "UsedCpu",
        "MaxCpu",
        "UsedImageCacheCount",
        "MaxImageCacheCount",
        "UsedAutoImageCacheCount",
        "MaxAutoImageCacheCount",
    ):
        assert key in before, before

    cache_id = create_cache(
        client, "lifecycle", [image], registry.host, retention_days=7, elimination_strategy="LRU"
    )
    first = cache_of(client, cache_id)
    assert first["Status"] in {"Preparing", "Creating", "Ready"}, first
    ready = wait_cache(client, cache_id, {"Ready", "Failed"})
    assert ready["Status"] == "Ready", support.pretty(ready)
    assert ready["Images"] == [image]
    assert ready["ImageCacheName"] == "lifecycle"
    assert ready["EliminationStrategy"] == "LRU"
    assert ready["ExpireDateTime"], ready
    assert ready["ImageCacheSize"] >= 1
    assert any(e["Reason"] == "Created" for e in ready["Events"]), ready["Events"]
    assert usage(client)["UsedImageCacheCount"] == before["UsedImageCacheCount"] + 1

    # The same name twice is refused.
    with pytest.raises(ClientException) as err:
        create_cache(client, "lifecycle", [image], registry.host)
    assert err.value.status_code == 409

    # MatchImage finds it; an image no cache holds matches nothing.
    matched = describe_caches(client, match_image=[image])
    assert cache_id in [c["ImageCacheId"] for c in matched], matched
    assert not [
        c
        for c in describe_caches(client, match_image=[f"{registry.host}/none/such:latest"])
        if c["ImageCacheId"] == cache_id
    ]
    assert [c["ImageCacheId"] for c in describe_caches(client, image_cache_name="lifecycle")] == [
        cache_id
    ]

    # Update: new images go through Updating back to Ready.
    client.update_image_cache(
        models.UpdateImageCacheRequest(
            region_id=REGION,
            image_cache_id=cache_id,
            image=[image, extra],
            retention_days=3,
        )
    )
    updated = wait_cache(client, cache_id, {"Ready", "UpdateFailed"})
    assert updated["Status"] == "Ready", support.pretty(updated)
    assert sorted(updated["Images"]) == sorted([image, extra])
    both = describe_caches(client, match_image=[image, extra], image_full_match=True)
    assert cache_id in [c["ImageCacheId"] for c in both]

    # A cache of an image that does not exist fails; it cannot be updated or used.
    bad = create_cache(client, "broken", [f"{registry.host}/none/such:latest"], registry.host)
    failed = wait_cache(client, bad, {"Ready", "Failed"})
    assert failed["Status"] == "Failed", failed
    assert any(e["Type"] == "Warning" for e in failed["Events"]), failed["Events"]
    with pytest.raises(ClientException) as err:
        client.update_image_cache(
            models.UpdateImageCacheRequest(region_id=REGION, image_cache_id=bad, image=[image])
        )
    assert err.value.status_code == 400 and err.value.code == "IncorrectStatus"

    delete_cache(client, bad)
    delete_cache(client, cache_id)
    assert cache_of(client, cache_id) is None
    with pytest.raises(ClientException) as err:
        delete_cache(client, cache_id)
    assert err.value.status_code == 404


def test_group_starts_from_a_ready_cache_with_the_registry_stopped(client, groups, registry):
    image = f"{registry.host}/cached/busybox:latest"
    cache_id = create_cache(client, "offline", [image], registry.host)
    assert wait_cache(client, cache_id, {"Ready", "Failed"})["Status"] == "Ready"

    # Unknown caches are refused before anything is created.
    with pytest.raises(ClientException) as err:
        create_group(groups, "no-cache", image, registry.host, image_snapshot_id="imc-nosuch")
    assert err.value.status_code == 404

    registry.stop()
    try:
        assert not support.port_open(registry.port)
        # PullPolicy Always would ask the registry for any image not served by the cache.
        gid = create_group(
            groups,
            "from-cache",
            image,
            registry.host,
            image_snapshot_id=cache_id,
            image_pull_policy="Always",
        )
        wait_status(client, gid, {"Running"}, timeout=60, never={"Failed"})
        events = support.events_of(client, gid)
        messages = " | ".join(e.get("Message", "") for e in events)
        assert f"image cache {cache_id}" in messages, messages
        assert "Failed to pull" not in messages, messages
        assert cache_of(client, cache_id)["LastMatchedTime"], cache_of(client, cache_id)
    finally:
        registry.start()
    groups.delete_all()
    delete_cache(client, cache_id)


def test_auto_match_image_cache(client, groups, registry):
    image = f"{registry.host}/cached/busybox:latest"
    cache_id = create_cache(client, "automatch", [image], registry.host)
    assert wait_cache(client, cache_id, {"Ready", "Failed"})["Status"] == "Ready"

    hit = create_group(groups, "auto-hit", image, registry.host, auto_match_image_cache=True)
    wait_status(client, hit, {"Running"}, timeout=60, never={"Failed"})
    reasons = [e.get("Reason") for e in support.events_of(client, hit)]
    assert "SuccessfulHitImageCache" in reasons, reasons

    # No cache holds this image: the group runs and a cache is made of its images.
    fresh = f"{registry.host}/automatic/busybox:latest"
    auto_before = usage(client)["UsedAutoImageCacheCount"]
    miss = create_group(groups, "auto-miss", fresh, registry.host, auto_match_image_cache=True)
    wait_status(client, miss, {"Running"}, timeout=60, never={"Failed"})

    def made():
        caches = [c for c in describe_caches(client) if c["Images"] == [fresh]]
        return caches[0] if caches and caches[0]["Status"] == "Ready" else None

    auto = wait_for("an automatic image cache", made, 60, 0.3)
    assert usage(client)["UsedAutoImageCacheCount"] == auto_before + 1
    # The next group with that image hits it.
    again = create_group(groups, "auto-again", fresh, registry.host, auto_match_image_cache=True)
    wait_status(client, again, {"Running"}, timeout=60, never={"Failed"})
    messages = " ".join(e.get("Message", "") for e in support.events_of(client, again))
    assert auto["ImageCacheId"] in messages, messages
    groups.delete_all()
    delete_cache(client, auto["ImageCacheId"])
    delete_cache(client, cache_id)


def test_ten_groups_pull_one_image_fetching_each_layer_once(client, groups, registry):
    # The busybox layer may be in berth's store already (layers are shared across registries),
    # so the image gets a top layer of random bytes that only this registry can serve.
    layered = Path(__file__).resolve().parents[1] / "images" / "layered.py"
    subprocess.run(
        ["python3", str(layered), "--unique", registry.host, "burst/busybox:latest"],
        check=True,
        capture_output=True,
    )
    image = f"{registry.host}/burst/busybox:latest"
    layers = registry.layers("burst/busybox", "latest")
    before = registry.blob_gets()
    ids = [create_group(groups, f"burst-{i}", image, registry.host) for i in range(10)]
    for gid in ids:
        wait_status(client, gid, {"Running"}, timeout=120, never={"Failed"})
    after = registry.blob_gets()
    fetched = {d: after[d] - before[d] for d in layers}
    for digest, n in fetched.items():
        assert n <= 1, f"layer {digest} fetched {n} times by 10 groups"
    top = layers[-1]
    assert fetched[top] == 1, f"the new top layer {top} was fetched {fetched[top]} times: {fetched}"
    groups.delete_all()


def test_cli_cache_and_image_commands(berth, client, registry, tmp_path):
    image = f"{registry.host}/extra/busybox:latest"
    state = ["--state-dir", str(berth.state_dir)]

    res = berth.cli("cache", "create", "cli-cache", image, "--wait")
    assert res.returncode == 0, res.stderr
    cache_id = res.stdout.strip()
    assert cache_id.startswith("imc-"), res.stdout
    assert cache_of(client, cache_id)["Status"] == "Ready"
    res = berth.cli("cache", "ls")
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith(cache_id))
    assert "cli-cache" in line and "Ready" in line and image in line, res.stdout

    # The cache pins its image: it is listed as such and cannot be removed.
    res = berth.cli("image", "ls", *state)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith(image))
    assert f"cache:{cache_id}" in line, res.stdout
    res = berth.cli("image", "rm", image, *state)
    assert res.returncode != 0 and "pinned" in res.stderr.lower(), res.stderr

    res = berth.cli("cache", "rm", cache_id)
    assert res.returncode == 0, res.stderr
    assert cache_of(client, cache_id) is None
    res = berth.cli("image", "rm", image, *state)
    assert res.returncode == 0, res.stderr
    assert image not in berth.cli("image", "ls", *state).stdout

    # Pull with progress (non-terminal: one line per layer), then import an archive.
    res = berth.cli("image", "pull", image, *state)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == image
    assert "layer 1/" in res.stderr and "pulled sha256:" in res.stderr, res.stderr

    archive = tmp_path / "busybox.tar"
    copy = subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{image}",
            f"oci-archive:{archive}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert copy.returncode == 0, copy.stderr
    res = berth.cli("image", "import", str(archive), "--name", "imported/busybox:v1", *state)
    assert res.returncode == 0, res.stderr
    listing = berth.cli("image", "ls", *state).stdout
    line = next(ln for ln in listing.splitlines() if "imported/busybox:v1" in ln)
    assert "(imported)" in line, listing
    assert berth.cli("image", "rm", "imported/busybox:v1", *state).returncode == 0
