#!/usr/bin/env python3
"""The web console's pages with 10,000 groups in the store.

    python3 bench/console_10k.py [--berth target/release/berth] [--requests 30] [--json out.json]

(as root; standard library only; reuses bench/run.py's registry, berth and client.) Starts its
own docker-registry and `berth serve` (bridge `berthcb`, subnet 10.246.0.0/16), runs one
group to its end as a template, stops berth, inserts 10,000 copies of that record into a copy
of the SQLite database (as bench/run.py's Describe measurement does), starts berth on the copy,
signs in to /console with the account's key and times --requests sequential GETs (one
keep-alive connection) of each page: the first page of the list (newest first), its second
page, a name search, a status filter oldest first, the rows the list polls, a group's page,
the create form (its size table priced), the image caches and the usage page. Prints
p50/p99 milliseconds per page.

The inserted groups have no metering periods, so the list's cost column reads a bill of one
group: a store whose 10,000 groups all ran would bill more periods there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import random
import re
import shutil
import sqlite3
import string
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

BRIDGE, SUBNET = "berthcb", "10.246.0.0/16"
COUNT = 10_000
PREFIX = "consolebench"


class Browser:
    """One keep-alive connection with the console's session cookie."""

    def __init__(self, endpoint: str):
        host, port = endpoint.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, dict, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        text = r.read().decode(errors="replace")
        return r.status, dict(r.getheaders()), text

    def sign_in(self, key_id: str, secret: str) -> None:
        form = urllib.parse.urlencode({"access_key_id": key_id, "access_key_secret": secret})
        status, headers, _ = self.request("POST", "/console/sign-in", form)
        cookie = headers.get("set-cookie") or headers.get("Set-Cookie") or ""
        if status != 303 or not cookie:
            raise SystemExit(f"sign-in failed: {status} {headers}")
        self.cookie = cookie.split(";", 1)[0]


def make_store(state: Path, copy: Path) -> list[str]:
    """Copies berth's database to `copy` with COUNT more records like its one group."""
    db = state / "berth.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        account, status, record = c.execute(
            "SELECT account, status, record FROM groups LIMIT 1").fetchone()
    copy.mkdir()
    shutil.copy2(state / "credentials.json", copy / "credentials.json")
    if (state / "secrets.key").exists():
        shutil.copy2(state / "secrets.key", copy / "secrets.key")
    src, dst = sqlite3.connect(str(db)), sqlite3.connect(str(copy / "berth.db"))
    src.backup(dst)
    src.close()
    template = json.loads(record)
    alnum = string.ascii_lowercase + string.digits
    base = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    rows, ids = [], []
    for i in range(COUNT):
        rid = "eci-" + "".join(random.choices(alnum, k=20))
        rec = dict(template, id=rid, client_token=None)
        rec["spec"] = dict(template["spec"], name=f"{PREFIX}-{i}")
        rec["creation_time"] = (base + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows.append((rid, account, f"{PREFIX}-{i}", status, None, json.dumps(rec)))
        ids.append(rid)
    dst.executemany("INSERT INTO groups (id, account, name, status, client_token, record) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
    dst.commit()
    dst.close()
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--berth", type=Path, default=bench.REPO / "target" / "release" / "berth")
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-console-bench-", dir="/tmp"))
    registry = bench.Registry(work / "registry")
    registry.start()
    berth = None
    try:
        image = registry.push_busybox()
        berth = bench.Berth(a.berth, work / "state", work / "berth.log", BRIDGE, SUBNET)
        eci = berth.start()
        gid = eci.create(f"{PREFIX}-template", image, ["true"], registry.host)
        t0 = time.monotonic()
        while eci.describe([gid])[0].get("Status") != "Succeeded":
            if time.monotonic() - t0 > 60:
                raise SystemExit("the template group did not succeed")
            time.sleep(0.1)
        berth.stop()
        ids = make_store(work / "state", work / "state-10k")
        # The template's network namespace, mounts and cgroups are the first berth's: it is
        # deleted there, so nothing of the run outlives it.
        eci = berth.start()
        eci.delete(gid)
        t0 = time.monotonic()
        while eci.describe([gid]):
            if time.monotonic() - t0 > 60:
                raise SystemExit("the template group was not deleted")
            time.sleep(0.1)
        berth.stop()
        berth10k = bench.Berth(a.berth, work / "state-10k", work / "berth-10k.log", BRIDGE, SUBNET)
        eci = berth10k.start()
        try:
            total = eci.call("DescribeContainerGroups", Limit=1)["TotalCount"]
            b = Browser(berth10k.endpoint)
            b.sign_in(eci.key_id, eci.secret[:-1].decode())
            status, _, first = b.request("GET", "/console/groups")
            assert status == 200, status
            token = re.search(r'rel="next" href="([^"]+)"', first)
            assert token, "no next page on the first page"
            pages = {
                "list_first_page": "/console/groups",
                "list_second_page": token.group(1).replace("&amp;", "&"),
                "list_name_search": f"/console/groups?q={PREFIX}-99",
                "list_status_oldest": "/console/groups?status=Succeeded&order=oldest",
                "list_rows_poll": "/console/groups/rows",
                "group_page": f"/console/groups/{ids[COUNT // 2]}",
                "create_page": "/console/groups/new",
                "caches_page": "/console/caches",
                "usage_page": "/console/usage",
            }
            res: dict = {"groups_in_store": total, "binary": str(a.berth),
                         "requests": a.requests}
            for name, path in pages.items():
                lat = []
                for _ in range(a.requests):
                    t = time.perf_counter()
                    status, _, _ = b.request("GET", path)
                    lat.append((time.perf_counter() - t) * 1000)
                    assert status == 200, (name, status)
                res[name] = bench.stats(lat)
                bench.log(f"{name}: p50 {res[name]['p50']:.1f} ms, p99 {res[name]['p99']:.1f} ms")
            print(json.dumps(res, indent=2))
            if a.json:
                a.json.write_text(json.dumps(res, indent=2) + "\n")
        finally:
            berth10k.stop()
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
