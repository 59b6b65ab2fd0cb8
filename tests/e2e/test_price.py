"""DescribeContainerGroupPrice through both official SDKs: ECI's published prices by default
(ECI's own example: 2 vCPU and 4 GiB cost 0.00012252 CNY a second), spot prices per hour, an
operator's catalog (STATE_DIR/prices.toml) with regions and currencies on a berth of its own
(bridge berthp0), and refusals by name. Amounts are checked as exact decimals."""

from __future__ import annotations

import json
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, Berth, pretty

BRIDGE = "berthp0"
SUBNET = "10.224.0.0/16"

ACTION = "DescribeContainerGroupPrice"


def exact(x) -> Decimal:
    """The decimal a JSON number stood for (the SDK hands over floats)."""
    return Decimal(repr(x))


def price(client, **kw) -> dict:
    req = models.DescribeContainerGroupPriceRequest(region_id=kw.pop("region_id", REGION), **kw)
    return client.describe_container_group_price(req).body.to_map()


def legacy_client(server: Berth):
    from aliyunsdkcore.client import AcsClient

    creds = server.credentials()
    return AcsClient(
        creds["AccessKeyId"], creds["AccessKeySecret"], REGION, port=server.port, timeout=60
    )


def legacy_request(region: str = REGION):
    from aliyunsdkeci.request.v20180808.DescribeContainerGroupPriceRequest import (
        DescribeContainerGroupPriceRequest,
    )

    req = DescribeContainerGroupPriceRequest()
    req.set_endpoint("127.0.0.1")
    req.set_protocol_type("http")
    req.add_query_param("RegionId", region)
    return req


def client_error(fn) -> ClientException:
    with pytest.raises(ClientException) as info:
        fn()
    return info.value


# ----------------------------------------------------------------------------- defaults


def test_ecis_example_through_the_current_sdk(client):
    body = price(client, cpu=2.0, memory=4.0)
    p = body["PriceInfo"]["Price"]
    assert body.get("RequestId"), pretty(body)
    assert p["Currency"] == "CNY", pretty(body)
    assert exact(p["TradePrice"]) == Decimal("0.00012252"), pretty(body)
    assert exact(p["OriginalPrice"]) == Decimal("0.00012252"), pretty(body)
    assert exact(p["DiscountPrice"]) == 0, pretty(body)
    details = {d["Resource"]: d for d in p["DetailInfos"]["DetailInfo"]}
    assert exact(details["Cpu"]["TradePrice"]) == Decimal("0.000098"), pretty(body)
    assert exact(details["Memory"]["TradePrice"]) == Decimal("0.00002452"), pretty(body)
    assert sum(exact(d["TradePrice"]) for d in details.values()) == exact(p["TradePrice"])
    # No spot prices for a pay-as-you-go question; the lists are there, empty.
    assert body["PriceInfo"]["SpotPrices"]["SpotPrice"] == [], pretty(body)
    assert body["PriceInfo"]["Rules"]["Rule"] == [], pretty(body)


def test_sizes_round_up_and_storage_above_30_gib_is_priced(client):
    # 1.5 vCPU and 3 GiB are priced as 2 vCPU and 4 GiB, as CreateContainerGroup sizes them.
    body = price(client, cpu=1.5, memory=3.0)
    assert exact(body["PriceInfo"]["Price"]["TradePrice"]) == Decimal("0.00012252")
    # With nothing asked: ECI's default size, 2 vCPU and 4 GiB.
    assert exact(price(client)["PriceInfo"]["Price"]["TradePrice"]) == Decimal("0.00012252")
    # 50 GiB: 20 GiB above the free 30, at 0.00203 CNY per GiB-hour, per second to 12 places.
    body = price(client, cpu=1.0, memory=2.0, ephemeral_storage=50)
    details = {d["Resource"]: d for d in body["PriceInfo"]["Price"]["DetailInfos"]["DetailInfo"]}
    assert exact(details["EphemeralStorage"]["TradePrice"]) == Decimal("0.000011277778"), pretty(body)
    assert exact(body["PriceInfo"]["Price"]["TradePrice"]) == Decimal("0.000072537778"), pretty(body)


def test_spot_prices_per_hour(client):
    body = price(client, cpu=2.0, memory=4.0, spot_strategy="SpotAsPriceGo", zone_id="local-a")
    spots = body["PriceInfo"]["SpotPrices"]["SpotPrice"]
    assert len(spots) == 1, pretty(body)
    s = spots[0]
    assert s["InstanceType"] == "2-4Gi" and s["ZoneId"] == "local-a", pretty(body)
    # 0.00012252 × 3600, and 0.3 of it.
    assert exact(s["OriginPrice"]) == Decimal("0.441072"), pretty(body)
    assert exact(s["SpotPrice"]) == Decimal("0.1323216"), pretty(body)
    # The group's own price stays the pay-as-you-go one per second.
    assert exact(body["PriceInfo"]["Price"]["TradePrice"]) == Decimal("0.00012252")
    body = price(client, cpu=0.25, memory=0.5, spot_strategy="SpotWithPriceLimit",
                 spot_price_limit=0.2, spot_duration=0)
    s = body["PriceInfo"]["SpotPrices"]["SpotPrice"][0]
    assert s["InstanceType"] == "0.25-0.5Gi", pretty(body)
    assert exact(s["OriginPrice"]) == (Decimal("0.00001225") + Decimal("0.000003065")) * 3600


def test_legacy_sdk_gets_the_exact_digits(berth):
    legacy = legacy_client(berth)
    req = legacy_request()
    req.set_Cpu(2.0)
    req.set_Memory(4.0)
    req.set_SpotStrategy("SpotWithPriceLimit")
    req.set_SpotPriceLimit(0.2)
    raw = legacy.do_action_with_exception(req).decode()
    # The amounts on the wire are the exact decimals, not a float's longer rendering.
    assert '"TradePrice":0.00012252' in raw, raw
    assert '"OriginPrice":0.441072' in raw and '"SpotPrice":0.1323216' in raw, raw
    body = json.loads(raw)
    assert body["PriceInfo"]["Price"]["Currency"] == "CNY"
    assert body["PriceInfo"]["SpotPrices"]["SpotPrice"][0]["InstanceType"] == "2-4Gi"


def test_bad_input_is_refused_by_name(berth, client):
    cases = [
        (dict(instance_type="ecs.c5.large"), "InvalidParameter", "InstanceType"),
        (dict(compute_category="economy"), "InvalidParameter", "ComputeCategory"),
        (dict(cpu=100.0, memory=1.0), "InvalidParameter", "Cpu and Memory"),
        (dict(cpu=-1.0), "InvalidParameter", "Cpu"),
        (dict(spot_strategy="Cheapest"), "InvalidParameter", "SpotStrategy"),
        (dict(spot_strategy="SpotWithPriceLimit"), "MissingParameter", "SpotPriceLimit"),
        (dict(spot_price_limit=0.0001), "InvalidParameter", "SpotPriceLimit"),
        (dict(spot_duration=7), "InvalidParameter.ValueExceeded", "SpotDuration"),
        (dict(ephemeral_storage=0), "InvalidParameter.ValueExceeded", "EphemeralStorage"),
        (dict(region_id="cn-nowhere"), "InvalidRegionId.NotFound", "cn-nowhere"),
    ]
    for kw, code, name in cases:
        exc = client_error(lambda: price(client, **kw))
        assert exc.status_code == 400 and exc.code == code, (kw, exc.code, exc.message)
        assert name in exc.message, (kw, exc.message)

    from aliyunsdkcore.acs_exception.exceptions import ServerException

    req = legacy_request()
    req.set_InstanceType("ecs.c5.large")
    with pytest.raises(ServerException) as info:
        legacy_client(berth).do_action_with_exception(req)
    assert info.value.get_http_status() == 400, info.value
    assert info.value.get_error_code() == "InvalidParameter", info.value
    assert "InstanceType" in info.value.get_error_msg(), info.value


# ----------------------------------------------------------------------------- an operator's catalog

CATALOG = """\
# ECI's international prices, and the China site's for one region.
[default]
currency = "USD"
vcpu_second = "0.0000077"
memory_gib_second = "0.00000096"
storage_gib_hour = "0.0003188"
spot_ratio = "0.1"

[region.cn-hangzhou]
currency = "CNY"
vcpu_second = "0.000049"
memory_gib_second = "0.00000613"
"""


@pytest.fixture(scope="module")
def priced(host_ready):
    """A berth of its own with STATE_DIR/prices.toml, no groups; checked clean after."""
    base = Path(tempfile.mkdtemp(prefix="berth-price-", dir="/tmp"))
    server = Berth(base / "state", base / "berth.log",
                   ["--bridge", BRIDGE, "--subnet", SUBNET, "--netns-pool", "0"])
    server.state_dir.mkdir(parents=True)
    (server.state_dir / "prices.toml").write_text(CATALOG)
    veths_before = support.bridge_ports(BRIDGE)
    server.start()
    yield server
    problems = []
    if not server.stop(timeout=30):
        problems.append("berth serve did not stop within 30 s of SIGTERM")
    try:
        support.assert_no_leftovers(server.state_dir, set(), veths_before, any_mount=True,
                                    bridge=BRIDGE)
    except AssertionError as exc:
        problems.append(str(exc))
    support.finish_teardown("priced berth", base, problems, server)


def test_the_catalog_in_the_state_directory(priced):
    client = priced.client()
    body = price(client, cpu=2.0, memory=4.0, ephemeral_storage=40, spot_strategy="SpotAsPriceGo")
    p = body["PriceInfo"]["Price"]
    assert p["Currency"] == "USD", pretty(body)
    # 2 × 0.0000077 + 4 × 0.00000096 + 10 × 0.0003188 / 3600 (to 12 places)
    assert exact(p["TradePrice"]) == Decimal("0.00001924") + Decimal("0.000000885556"), pretty(body)
    s = body["PriceInfo"]["SpotPrices"]["SpotPrice"][0]
    assert exact(s["OriginPrice"]) == Decimal("0.069264"), pretty(body)
    assert exact(s["SpotPrice"]) == Decimal("0.0069264"), pretty(body)
    # A region the catalog lists, through the legacy SDK.
    req = legacy_request("cn-hangzhou")
    req.set_Cpu(2.0)
    req.set_Memory(4.0)
    raw = legacy_client(priced).do_action_with_exception(req).decode()
    assert '"Currency":"CNY"' in raw and '"TradePrice":0.00012252' in raw, raw
    exc = client_error(lambda: price(client, region_id="cn-beijing"))
    assert exc.code == "InvalidRegionId.NotFound", exc.message


def test_a_bad_price_file_stops_the_start(host_ready, tmp_path):
    bad = tmp_path / "prices.toml"
    cases = [
        ("[default]\nvcpu_second = 0.000049\n", "as a string"),
        ("[default]\ncurrency = \"yuan\"\n", "currency"),
        ("[default]\nspot_ratio = \"1.5\"\n", "spot_ratio"),
        ("[default]\nvcpu_secnd = \"1\"\n", "vcpu_secnd"),
        ("[region.cn-hangzhou]\nmemory_gib_second = \"-1\"\n", "[region.cn-hangzhou]"),
    ]
    for text, needle in cases:
        bad.write_text(text)
        state = tmp_path / "state"
        res = subprocess.run(
            [str(support.BERTH_BIN), "serve", "--listen", f"127.0.0.1:{support.free_port()}",
             "--state-dir", str(state), "--bridge", BRIDGE, "--subnet", SUBNET,
             "--prices", str(bad)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0, out
        assert str(bad) in out and needle in out, out
        assert "panicked" not in out, out
        assert not state.exists(), "a refused start prepared the state directory"
