"""TagResources, UntagResources and ListTagResources through both official SDKs (the current
one's models, and the legacy one's CommonRequest since it has no tag requests): tags show in
and filter DescribeContainerGroups and DescribeImageCaches, listings page with Limit as a
string, another account's group is not found and left unchanged, ECI's bounds are refused by
name, and a bill grouped by `tag:KEY` follows a re-tag (docs/API-EXTENSIONS.md)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, container, pretty, wait_for

GROUP = "ContainerGroup"
CACHE = "ImageCache"


admin_ok = support.admin_ok


def new_account(berth, prefix: str) -> tuple[str, Client]:
    name, key = support.new_account(berth, prefix)
    return name, support.sdk_client(berth, key)


def tag(client: Client, kind: str, ids: list[str], **tags: str) -> None:
    client.tag_resources(models.TagResourcesRequest(
        region_id=REGION, resource_type=kind, resource_id=ids,
        tag=[models.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()],
    ))


def untag(client: Client, kind: str, ids: list[str], keys=None, all_=None, token=None) -> None:
    client.untag_resources(models.UntagResourcesRequest(
        region_id=REGION, resource_type=kind, resource_id=ids, tag_key=keys, all=all_,
        client_token=token,
    ))


def list_page(client: Client, kind: str, ids=None, tags=None, limit=None, token=None) -> dict:
    return client.list_tag_resources(models.ListTagResourcesRequest(
        region_id=REGION, resource_type=kind, resource_id=ids, limit=limit, next_token=token,
        tag=[models.ListTagResourcesRequestTag(key=k, value=v) for k, v in (tags or [])] or None,
    )).body.to_map()


def list_all(client: Client, kind: str, limit: str = "50", **kw) -> list[tuple[str, str, str]]:
    """Every row, page by page: (ResourceId, TagKey, TagValue)."""
    rows, token, pages = [], None, 0
    while True:
        body = list_page(client, kind, limit=limit, token=token, **kw)
        assert body.get("RequestId"), pretty(body)
        page = body.get("TagResources") or []
        assert len(page) <= int(limit), pretty(body)
        for r in page:
            assert r["ResourceType"] == kind, pretty(body)
            rows.append((r["ResourceId"], r["TagKey"], r["TagValue"]))
        token = body.get("NextToken") or None
        pages += 1
        assert pages < 100, "the listing does not end"
        if token is None:
            return rows


def refused(call) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def tags_of(group: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in group.get("Tags") or []}


def sleeper(images, name: str = "main"):
    return [container(name, images.image, ["sleep", "3600"])]


def delete_own(client: Client, gid: str, berth) -> None:
    """Deletes a group of another account than the main one (the `groups` fixture deletes
    with the main account's key, which does not see it)."""
    support.delete(client, gid)
    wait_for(f"group {gid} to go", lambda: support.describe(client, gid) is None, 60,
             diag=berth.diag)


# ----------------------------------------------------------------------------- groups


def test_tag_list_untag_groups_through_the_current_sdk(client, groups, images):
    a = groups.create(f"e2e-tags-a-{uuid.uuid4().hex[:6]}", sleeper(images),
                      tag=[models.CreateContainerGroupRequestTag(key="env", value="dev")])
    b = groups.create(f"e2e-tags-b-{uuid.uuid4().hex[:6]}", sleeper(images))
    run = uuid.uuid4().hex[:8]
    tag(client, GROUP, [a, b], team="web", run=run, env="e2e")

    ga, gb = support.describe(client, a), support.describe(client, b)
    # A key set again gets the new value.
    assert tags_of(ga) == {"env": "e2e", "team": "web", "run": run}, pretty(ga)
    assert tags_of(gb) == {"team": "web", "run": run, "env": "e2e"}, pretty(gb)
    found = {g["ContainerGroupId"] for g in support.list_groups(
        client, tag=[models.DescribeContainerGroupsRequestTag(key="run", value=run)])}
    assert found == {a, b}, found

    # Pages of one row (Limit is a string in the model) give every row once.
    one_by_one = list_all(client, GROUP, limit="1", ids=[a, b])
    assert sorted(one_by_one) == sorted(
        [(g, k, v) for g in (a, b) for k, v in (("team", "web"), ("run", run), ("env", "e2e"))]
    ), one_by_one
    assert len(set(one_by_one)) == 6, one_by_one
    assert list_all(client, GROUP, limit="4", ids=[a, b]) == one_by_one
    # A key alone matches any value; every given tag must be carried.
    assert {r[0] for r in list_all(client, GROUP, tags=[("run", None)])} >= {a, b}
    assert {r[0] for r in list_all(client, GROUP, tags=[("run", run), ("env", "e2e")])} == {a, b}

    untag(client, GROUP, [a], keys=["team", "not-there"])
    assert tags_of(support.describe(client, a)) == {"env": "e2e", "run": run}
    token = f"untag-{run}"
    untag(client, GROUP, [a, b], all_=True, token=token)
    untag(client, GROUP, [a, b], all_=True, token=token)
    assert tags_of(support.describe(client, a)) == {}
    assert tags_of(support.describe(client, b)) == {}
    assert list_all(client, GROUP, ids=[a, b]) == []


def test_the_legacy_sdk_tags_lists_and_untags(berth, groups, images):
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    creds = berth.credentials()
    legacy = AcsClient(
        creds["AccessKeyId"], creds["AccessKeySecret"], REGION, port=berth.port, timeout=60
    )

    def call(action: str, **params: str) -> dict:
        req = CommonRequest(domain="127.0.0.1", version="2018-08-08", action_name=action)
        req.set_protocol_type("http")
        req.set_method("POST")
        req.add_query_param("RegionId", REGION)
        for k, v in params.items():
            req.add_query_param(k, v)
        return json.loads(legacy.do_action_with_exception(req))

    gid = groups.create(f"e2e-tags-legacy-{uuid.uuid4().hex[:6]}", sleeper(images))
    body = call("TagResources", ResourceType=GROUP, **{
        "ResourceId.1": gid, "Tag.1.Key": "owner", "Tag.1.Value": "a b*c~/é",
        "Tag.2.Key": "tier", "Tag.2.Value": "",
    })
    assert body.get("RequestId"), body
    first = call("ListTagResources", ResourceType=GROUP, Limit="1", **{"ResourceId.1": gid})
    assert len(first["TagResources"]) == 1 and first["NextToken"], pretty(first)
    second = call("ListTagResources", ResourceType=GROUP, Limit="1", NextToken=first["NextToken"],
                  **{"ResourceId.1": gid})
    assert len(second["TagResources"]) == 1 and second["NextToken"] == "", pretty(second)
    rows = {r["TagKey"]: r["TagValue"] for r in first["TagResources"] + second["TagResources"]}
    assert rows == {"owner": "a b*c~/é", "tier": ""}, rows
    call("UntagResources", ResourceType=GROUP, **{"ResourceId.1": gid, "TagKey.1": "owner"})
    assert tags_of(support.describe(berth.client(), gid)) == {"tier": ""}


def test_another_accounts_group_is_not_found_and_unchanged(berth, client, groups, images):
    mine = groups.create(f"e2e-tags-mine-{uuid.uuid4().hex[:6]}", sleeper(images),
                         tag=[models.CreateContainerGroupRequestTag(key="team", value="a")])
    _, other = new_account(berth, "e2e-tags")
    theirs = groups.create(f"e2e-tags-theirs-{uuid.uuid4().hex[:6]}", sleeper(images),
                           client=other)
    try:
        check_foreign(client, other, mine, theirs)
    finally:
        delete_own(other, theirs, berth)


def check_foreign(client: Client, other: Client, mine: str, theirs: str) -> None:
    # The answer DescribeContainerGroups' neighbours give for a group that is not the caller's.
    expected = refused(lambda: other.restart_container_group(
        models.RestartContainerGroupRequest(region_id=REGION, container_group_id=mine)))
    for call in (
        lambda: tag(other, GROUP, [mine], team="stolen"),
        lambda: tag(other, GROUP, [theirs, mine], team="stolen"),
        lambda: untag(other, GROUP, [mine], all_=True),
        lambda: untag(other, GROUP, [theirs, mine], keys=["team"]),
    ):
        exc = refused(call)
        assert (exc.status_code, exc.code) == (expected.status_code, expected.code), exc.message
        assert mine in exc.message, exc.message
    assert tags_of(support.describe(client, mine)) == {"team": "a"}
    # All or nothing: the other account's own group in the refused batch is unchanged too.
    assert tags_of(support.describe(other, theirs)) == {}
    assert list_all(other, GROUP, ids=[mine]) == []
    assert all(r[0] != mine for r in list_all(other, GROUP))
    tag(other, GROUP, [theirs], team="b")
    assert list_all(other, GROUP) == [(theirs, "team", "b")]


def test_bounds_are_refused_by_name(client, groups, images):
    gid = groups.create(f"e2e-tags-bounds-{uuid.uuid4().hex[:6]}", sleeper(images))
    tag(client, GROUP, [gid], **{f"k{i}": "v" for i in range(1, 20)})
    # 19 + 2 = 21 > 20: refused, nothing written; a key it has already does not count twice.
    exc = refused(lambda: tag(client, GROUP, [gid], k1="w", x="1", y="2"))
    assert exc.status_code == 400 and exc.code == "QuotaExceeded.Tag", (exc.code, exc.message)
    assert len(tags_of(support.describe(client, gid))) == 19
    tag(client, GROUP, [gid], k1="w", x="1")
    assert len(tags_of(support.describe(client, gid))) == 20
    cases = [
        (lambda: tag(client, GROUP, [gid], aliyun_x="1"), "Tag.1.Key"),
        (lambda: tag(client, GROUP, [gid], **{"acs:x": "1"}), "Tag.1.Key"),
        (lambda: tag(client, GROUP, [gid], k1="see https://x"), "Tag.1.Value"),
        (lambda: tag(client, GROUP, [gid], **{"k" * 129: "1"}), "Tag.1.Key"),
        (lambda: tag(client, GROUP, [gid], **{"k8s.pod.uid": "x"}), "Tag.1.Key"),
        (lambda: tag(client, GROUP, [gid] * 51, k1="v"), "ResourceId"),
        (lambda: tag(client, GROUP, [gid], **{f"n{i}": "v" for i in range(21)}), "Tag"),
        (lambda: tag(client, "DataCache", [gid], k1="v"), "DataCache"),
        (lambda: untag(client, GROUP, [gid]), "TagKey"),
        (lambda: untag(client, GROUP, [gid], all_=True, token="t" * 65), "ClientToken"),
        (lambda: untag(client, GROUP, [gid], keys=["k8s.pod.name"]), "TagKey.1"),
        (lambda: list_page(client, "VirtualNode"), "VirtualNode"),
        (lambda: list_page(client, GROUP, token="not-a-token"), "NextToken"),
        (lambda: list_page(client, GROUP, token="1.zz.00"), "NextToken"),
        (lambda: list_page(client, GROUP, limit="ten"), "Limit"),
    ]
    for call, name in cases:
        exc = refused(call)
        assert exc.status_code == 400, (name, exc.status_code, exc.code, exc.message)
        assert name in exc.message, (name, exc.message)
    assert len(tags_of(support.describe(client, gid))) == 20


# ----------------------------------------------------------------------------- image caches


def test_image_cache_tags(client, images):
    name = f"e2e-tags-cache-{uuid.uuid4().hex[:6]}"
    cache_id = client.create_image_cache(models.CreateImageCacheRequest(
        region_id=REGION, image_cache_name=name, image=[images.image],
        plain_http_registry=images.registry,
        tag=[models.CreateImageCacheRequestTag(key="team", value="c")],
    )).body.image_cache_id

    def describe(**kw) -> list[dict]:
        return client.describe_image_caches(models.DescribeImageCachesRequest(
            region_id=REGION, **kw)).body.to_map().get("ImageCaches") or []

    try:
        run = uuid.uuid4().hex[:8]
        tag(client, CACHE, [cache_id], run=run, team="d")
        [c] = describe(image_cache_id=cache_id)
        assert tags_of(c) == {"team": "d", "run": run}, pretty(c)
        by_tag = describe(tag=[models.DescribeImageCachesRequestTag(key="run", value=run)])
        assert [x["ImageCacheId"] for x in by_tag] == [cache_id], pretty(by_tag)
        assert sorted(list_all(client, CACHE, ids=[cache_id])) == [
            (cache_id, "run", run), (cache_id, "team", "d")]
        # A cache id is no group, and a group type does not list caches.
        exc = refused(lambda: tag(client, GROUP, [cache_id], x="1"))
        assert exc.status_code == 404, exc.code
        assert list_all(client, GROUP, ids=[cache_id]) == []
        exc = refused(lambda: tag(client, CACHE, [cache_id, "imc-nope"], x="1"))
        assert exc.status_code == 404 and "imc-nope" in exc.message, (exc.code, exc.message)
        assert "x" not in tags_of(describe(image_cache_id=cache_id)[0])
        untag(client, CACHE, [cache_id], keys=["team"])
        assert tags_of(describe(image_cache_id=cache_id)[0]) == {"run": run}
    finally:
        wait_for(f"image cache {cache_id} to settle",
                 lambda: describe(image_cache_id=cache_id)[0]["Status"] in ("Ready", "Failed"),
                 180)
        client.delete_image_cache(
            models.DeleteImageCacheRequest(region_id=REGION, image_cache_id=cache_id))


# ----------------------------------------------------------------------------- bills


def usage(client: Client, **query: str) -> dict:
    return support.call_action(client, "DescribeUsage", **query)


def test_a_bill_by_tag_follows_a_retag(berth, groups, images):
    """The bill groups by the tags a group has now (or had when it was deleted): a re-tag
    moves all its seconds, before and after the re-tag, to the new value."""
    _, b = new_account(berth, "e2e-tags-bill")
    since = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    gid = groups.create(f"e2e-tags-bill-{uuid.uuid4().hex[:6]}", sleeper(images), client=b,
                        tag=[models.CreateContainerGroupRequestTag(key="team", value="red")])
    try:
        support.wait_status(b, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
        time.sleep(1)
        before = usage(b, Since=since, GroupBy="tag:team")
        assert [l["Key"] for l in before["Lines"]] == ["red"], pretty(before)
        tag(b, GROUP, [gid], team="blue", cost="c1")
        time.sleep(1)
    finally:
        delete_own(b, gid, berth)
    whole = usage(b, Since=since)
    [line] = [l for l in whole["Lines"] if l["Key"] == gid]
    bill = usage(b, Since=since, GroupBy="tag:team")
    assert [l["Key"] for l in bill["Lines"]] == ["blue"], pretty(bill)
    assert bill["Lines"][0]["Amount"] == line["Amount"], pretty(bill)
    assert Decimal(line["BilledSeconds"]) >= 2, pretty(line)
    cost = usage(b, Since=since, GroupBy="tag:cost")
    assert [l["Key"] for l in cost["Lines"]] == ["c1"], pretty(cost)
