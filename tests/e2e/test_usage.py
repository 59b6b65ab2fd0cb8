"""Bills (DescribeUsage and `berth usage`, docs/API-EXTENSIONS.md): a group run for a few
seconds then deleted is billed the seconds of its ledger period, within 1 s of the wall
clock, at price × usage exactly; it keeps its name and tags after the delete; lines by tag;
an account sees only its own bill and is refused another's with 403; an operator's key
(`berth admin account operator`) sees any account and all of them. Amounts are compared as
exact decimals."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import BERTH_BIN, REGION, container, pretty, wait_for

ACTION = "DescribeUsage"


admin_ok = support.admin_ok
new_account = support.new_account
sdk = support.sdk_client


def usage(client: Client, **query: str) -> dict:
    """DescribeUsage through the SDK's generic call, answered as the raw JSON body."""
    return support.call_action(client, ACTION, **query)


def refused(call) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def rfc3339(d: datetime) -> str:
    return d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def line(bill: dict, key: str, account: str | None = None) -> dict:
    found = [l for l in bill["Lines"]
             if l["Key"] == key and (account is None or l["AccountId"] == account)]
    assert len(found) == 1, (key, pretty(bill))
    return found[0]


def check_priced(bill: dict) -> None:
    """Every line and the total: amount = unit price × usage, exactly; the invoice total is
    the exact total rounded to the fen, and nothing else is rounded."""
    p = {k: Decimal(v) for k, v in bill["UnitPrices"].items()}
    for l in bill["Lines"]:
        compute = (Decimal(l["VcpuSeconds"]) * p["VcpuSecond"]
                   + Decimal(l["MemoryGibSeconds"]) * p["MemoryGibSecond"])
        assert Decimal(l["ComputeAmount"]) == compute, pretty(l)
        assert Decimal(l["Amount"]) == (Decimal(l["ComputeAmount"]) + Decimal(l["StorageAmount"])
                                       + Decimal(l["ImageCacheAmount"])), pretty(l)
    total = sum((Decimal(l["Amount"]) for l in bill["Lines"]), Decimal(0))
    assert Decimal(bill["Total"]["Amount"]) == total, pretty(bill)
    assert Decimal(bill["InvoiceTotal"]) == total.quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.fixture(scope="module")
def billed(berth, images, tracker):
    """Account B's group of 1 vCPU and 2 GiB, tagged team=red, run for about 4 s and
    deleted; with B's key, an operator's key and the wall-clock times around it."""
    b_name, b_key = new_account(berth, "e2e-usage")
    b = sdk(berth, b_key)
    name = f"e2e-usage-{uuid.uuid4().hex[:6]}"
    asked = datetime.now(timezone.utc)
    gid = b.create_container_group(models.CreateContainerGroupRequest(
        region_id=REGION, container_group_name=name, restart_policy="Never",
        container=[container("main", images.image, ["sleep", "3600"], cpu=1.0, memory=2.0)],
        cpu=1.0, memory=2.0, plain_http_registry=images.registry,
        termination_grace_period_seconds=1,
        tag=[models.CreateContainerGroupRequestTag(key="team", value="red")],
    )).body.container_group_id
    tracker.add(gid)
    support.wait_status(b, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    running = datetime.now(timezone.utc)
    time.sleep(4)
    delete_asked = datetime.now(timezone.utc)
    support.delete(b, gid)
    # Polled often: the end of the lifecycle is measured by it.
    wait_for("the group to go", lambda: support.describe(b, gid) is None, 60, 0.1,
             diag=berth.diag)
    gone = datetime.now(timezone.utc)
    o_name, o_key = new_account(berth, "e2e-usage-ops")
    admin_ok(berth, "account", "operator", o_name)
    creds = berth.state_dir.parent / f"{b_name}.credentials.json"
    creds.write_text(json.dumps(b_key))
    creds.chmod(0o600)
    return dict(b_name=b_name, b=b, b_creds=creds, gid=gid, name=name, asked=asked,
                running=running, delete_asked=delete_asked, gone=gone,
                ops=sdk(berth, o_key), o_name=o_name,
                since=rfc3339(asked - timedelta(minutes=5)))


def test_a_deleted_group_is_billed_its_seconds_at_price_times_usage(berth, billed):
    bill = usage(billed["b"], Since=billed["since"])
    print(pretty(bill))
    assert bill["AccountId"] == billed["b_name"] and bill["Currency"] == "CNY", pretty(bill)
    assert bill["GroupBy"] == "group", pretty(bill)
    assert [l["Key"] for l in bill["Lines"]] == [billed["gid"]], pretty(bill)
    l = line(bill, billed["gid"])
    # Named and tagged as it was, though deleted.
    assert l["Name"] == billed["name"], pretty(l)
    periods = support.ledger_periods(berth.state_dir, billed["gid"])
    assert len(periods) == 1 and periods[0]["ended"], periods
    ledger_s = Decimal((t(periods[0]["ended"]) - t(periods[0]["started"])) // timedelta(milliseconds=1)) / 1000
    secs = Decimal(l["BilledSeconds"])
    assert secs == ledger_s, (pretty(l), periods)
    # Against the wall clock: the lifecycle from the create to the delete's end (the stop's
    # grace second included), within 1 s; and never less than Running to the delete.
    wall = (billed["gone"] - billed["asked"]).total_seconds()
    running = (billed["delete_asked"] - billed["running"]).total_seconds()
    print(f"billed {secs} s; wall clock {wall:.3f} s from the create to the group gone, "
          f"{running:.3f} s from Running seen to the delete asked")
    assert abs(float(secs) - wall) <= 1.0, (secs, wall)
    assert float(secs) >= running, (secs, running)
    assert Decimal(l["VcpuSeconds"]) == secs and Decimal(l["MemoryGibSeconds"]) == 2 * secs, pretty(l)
    # 0.000049 per vCPU-second and 0.00000613 per GiB-second, exactly.
    assert Decimal(l["Amount"]) == secs * Decimal("0.000049") + 2 * secs * Decimal("0.00000613")
    check_priced(bill)


def test_lines_by_tag_and_by_day(billed):
    bill = usage(billed["b"], Since=billed["since"], GroupBy="tag:team")
    assert bill["GroupBy"] == "tag:team", pretty(bill)
    red = line(bill, "red")
    whole = line(usage(billed["b"], Since=billed["since"]), billed["gid"])
    assert red["Amount"] == whole["Amount"] and red["Name"] == "", pretty(bill)
    check_priced(bill)
    # A tag the group does not carry: one line with the empty value.
    bill = usage(billed["b"], Since=billed["since"], GroupBy="tag:nope")
    assert line(bill, "")["Amount"] == whole["Amount"], pretty(bill)
    bill = usage(billed["b"], Since=billed["since"], GroupBy="day")
    assert sum(Decimal(l["Amount"]) for l in bill["Lines"]) == Decimal(whole["Amount"])
    check_priced(bill)


def test_a_range_clips_the_period(berth, billed):
    start = t(support.ledger_periods(berth.state_dir, billed["gid"])[0]["started"])
    bill = usage(billed["b"], Since=rfc3339(start), Until=rfc3339(start + timedelta(seconds=1)))
    l = line(bill, billed["gid"])
    assert Decimal(l["BilledSeconds"]) == 1 and Decimal(l["VcpuSeconds"]) == 1, pretty(l)
    assert Decimal(l["Amount"]) == Decimal("0.000049") + 2 * Decimal("0.00000613"), pretty(l)
    # A range after the delete bills nothing.
    gone = billed["gone"]
    after = usage(billed["b"], Since=rfc3339(gone), Until=rfc3339(gone + timedelta(hours=1)))
    assert after["Lines"] == [] and Decimal(after["Total"]["Amount"]) == 0, pretty(after)


def test_each_account_sees_its_own_and_the_operator_all(berth, client, billed):
    gid = billed["gid"]
    mine = usage(client, Since=billed["since"])
    assert gid not in json.dumps(mine), pretty(mine)
    main_account = mine["AccountId"]
    for other in (main_account, "*"):
        exc = refused(lambda: usage(billed["b"], Since=billed["since"], AccountId=other))
        assert exc.status_code == 403 and exc.code == "Forbidden.Operator", (exc.code, exc.message)
        assert "AccountId" in exc.message, exc.message
    # The own name is no one else's.
    assert usage(billed["b"], Since=billed["since"], AccountId=billed["b_name"])["Lines"]
    accounts = {a["Name"]: a for a in json.loads(admin_ok(berth, "account", "ls", "-o", "json"))}
    assert accounts[billed["o_name"]]["Operator"] is True, accounts
    assert accounts[billed["b_name"]]["Operator"] is False, accounts
    ops = billed["ops"]
    theirs = usage(ops, Since=billed["since"], AccountId=billed["b_name"])
    assert theirs["AccountId"] == billed["b_name"], pretty(theirs)
    assert line(theirs, gid)["Amount"] == line(usage(billed["b"], Since=billed["since"]), gid)["Amount"]
    every = usage(ops, Since=billed["since"], AccountId="*", GroupBy="account")
    assert every["AccountId"] == "*", pretty(every)
    b_line = line(every, "", billed["b_name"])
    assert b_line["Amount"] == theirs["Total"]["Amount"], pretty(every)
    check_priced(every)


def test_bad_input_is_refused_by_name(billed):
    b = billed["b"]
    for query, name in [
        (dict(GroupBy="month"), "GroupBy"),
        (dict(Since="yesterday"), "Since"),
        (dict(Since="2026-01-02T00:00:00Z", Until="2026-01-01T00:00:00Z"), "Since"),
        (dict(Since="2020-01-01T00:00:00Z", Until="2026-01-01T00:00:00Z"), "Until"),
        (dict(AccountId="../etc"), "AccountId"),
    ]:
        exc = refused(lambda: usage(b, **query))
        assert exc.status_code == 400 and exc.code == "InvalidParameter", (query, exc.code)
        assert name in exc.message, (query, exc.message)


def test_the_cli_prints_the_same_bill(berth, billed):
    def cli(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [str(BERTH_BIN), "--endpoint", berth.url, "--credentials", str(billed["b_creds"]),
             "usage", "--since", billed["since"], *args],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    out = json.loads(cli("-o", "json", "--group-by", "tag:team").stdout)
    api = usage(billed["b"], Since=billed["since"], GroupBy="tag:team")
    assert out["Lines"] == api["Lines"] and out["Total"] == api["Total"], (out, api)
    assert out["InvoiceTotal"] == api["InvoiceTotal"], out
    rows = cli("-o", "csv").stdout.splitlines()
    assert rows[0].startswith("ACCOUNT,KEY,NAME,BILLED_S"), rows
    assert rows[1].startswith(f"{billed['b_name']},{billed['gid']},{billed['name']},"), rows
    table = cli().stdout
    assert billed["gid"] in table and "invoice total" in table, table
    r = subprocess.run(
        [str(BERTH_BIN), "--endpoint", berth.url, "--credentials", str(billed["b_creds"]),
         "usage", "--account", "*"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0 and "Forbidden.Operator" in r.stderr, (r.stdout, r.stderr)


def test_metrics_show_spend_and_billed_seconds_by_account(berth, billed):
    req = urllib.request.Request(
        f"{berth.url}/metrics", headers={"Authorization": f"Bearer {berth.metrics_token}"}
    )
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    label = f'account="{billed["b_name"]}"'
    spend = [l for l in text.splitlines()
             if l.startswith("berth_account_spend_total{") and label in l]
    secs = [l for l in text.splitlines()
            if l.startswith("berth_account_billed_seconds_total{") and label in l]
    assert len(spend) == 1 and len(secs) == 1, text
    whole = usage(billed["b"], Since=billed["since"])
    assert abs(float(secs[0].split()[-1]) - float(whole["Total"]["BilledSeconds"])) < 0.01, secs
    assert abs(float(spend[0].split()[-1]) - float(whole["Total"]["Amount"])) < 1e-9, spend
