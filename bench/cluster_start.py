#!/usr/bin/env python3
"""Cluster mode against the single machine, in one run (issue 20, docs/SPEC.md):

    .venv/bin/python bench/cluster_start.py --berth target/release/berth [--runs 20] [--json F]

(as root, with the e2e venv: it reuses tests/e2e's cluster pieces.) Starts PostgreSQL from
Debian, two control-plane replicas (`berth serve --no-node`), one node agent in a network
namespace of its own, and beside them a single-machine `berth serve` on SQLite; then
measures, alternating:

  1. CreateContainerGroup -> Running (DescribeContainerGroups polled every millisecond)
     through the single machine, through the replica holding the leader's lease (it places
     at once), and through the other replica (it leaves the placement to the leader, which
     finds the group within its 250 ms poll);
  2. placement decisions per second: 200 groups created while every node is cordoned, the
     node uncordoned, and the time until all 200 are placed (the store's node column).

Prints a table and, with --json, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
sys.path.insert(0, str(HERE))

import support  # noqa: E402
from cluster import Hosts, Node, Replica, cluster_registry  # noqa: E402
from postgres import Postgres  # noqa: E402
from run import Eci  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def admin(binary: Path, state: Path, url: str, key: Path, *args: str) -> dict:
    import subprocess
    res = subprocess.run([str(binary), "admin", "--state-dir", str(state), "--store", url,
                          "--store-key", str(key), "-o", "json", *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout) if res.stdout.strip() else {}


def start_replicas(base: Path, url: str, key: Path, into: list[Replica], n: int = 2) -> None:
    """`n` replicas (`berth serve --no-node`, throttling off) on the database at `url`,
    appended to `into` as each starts (so that the caller stops those that did)."""
    for i in range(n):
        r = Replica(base / f"replica{i}", base / f"replica{i}.log",
                    ["--no-node", "--store", url, "--store-key", str(key),
                     "--throttle-write-rate", "0", "--throttle-read-rate", "0"])
        r.start()
        into.append(r)


def eci_of(berth: support.Berth, port: int) -> Eci:
    c = berth.credentials()
    return Eci(f"127.0.0.1:{port}", c["AccessKeyId"], c["AccessKeySecret"])


def running_ms(eci: Eci, image: str, registry: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    gid = eci.create(f"bench-{time.time_ns()}", image, ["sleep", "3600"], registry)
    while True:
        g = eci.describe([gid])
        if g and g[0].get("Status") == "Running":
            return gid, (time.perf_counter() - t0) * 1000
        if g and g[0].get("Status") in ("Failed", "Succeeded"):
            raise RuntimeError(json.dumps(g[0])[:1000])
        time.sleep(0.001)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--placements", type=int, default=200)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    a = ap.parse_args()
    support.BERTH_BIN = a.berth.resolve()
    import cluster as cl
    cl.BERTH_BIN = support.BERTH_BIN

    base = Path(tempfile.mkdtemp(prefix="berth-cluster-bench-", dir="/tmp"))
    pg = Postgres()
    hosts = Hosts(1)
    replicas: list[Replica] = []
    node = None
    single = None
    registry = None
    try:
        pg.start()
        url = pg.create_database("bench")
        hosts.up()
        (base / "registry").mkdir()
        registry = cluster_registry(base / "registry")
        registry.start()
        [image] = registry.push_busybox()
        key = base / "secrets.key"
        start_replicas(base, url, key, replicas)
        token = admin(a.berth, replicas[0].state_dir, url, key, "node", "token", "create")["Token"]
        node = Node(base, "n1", hosts.names[0], hosts.ips[0], 0,
                    ["--overcommit-cpu", "1000", "--overcommit-memory", "1000",
                     ])
        node.start(",".join(r.node_url for r in replicas), token)
        single = support.Berth(base / "single" / "state", base / "single.log",
                               ["--bridge", "berthcb9", "--subnet", "10.249.0.0/16",
                                "--throttle-write-rate", "0", "--throttle-read-rate", "0"])
        single.start()

        def leader() -> int:
            holder = pg.psql("bench", "SELECT holder FROM leases WHERE name = 'cluster-leader'")
            for i, r in enumerate(replicas):
                if holder.endswith("/" + (r.state_dir / "node.id").read_text().strip()):
                    return i
            raise RuntimeError(f"no leader: {holder!r}")

        support.wait_for("a leader", lambda: pg.psql(
            "bench", "SELECT count(*) FROM leases WHERE name = 'cluster-leader'") == "1",
            30, 0.2)
        lead = leader()
        paths = {
            "single machine": (eci_of(single, single.port), registry.host),
            "replica (leader)": (eci_of(replicas[lead], replicas[lead].port), registry.host),
            "replica (other)": (eci_of(replicas[1 - lead], replicas[1 - lead].port),
                                registry.host),
        }
        # Warm-up: the image pulled on both machines' stores.
        for eci, reg in paths.values():
            gid, _ = running_ms(eci, image, reg)
            eci.delete(gid)
        times: dict[str, list[float]] = {k: [] for k in paths}
        names = list(paths)
        for i in range(a.runs):
            for k in names[i % 3:] + names[:i % 3]:
                eci, reg = paths[k]
                gid, t = running_ms(eci, image, reg)
                times[k].append(t)
                eci.delete(gid)
            time.sleep(0.2)

        # Placement decisions per second.
        admin(a.berth, replicas[0].state_dir, url, key, "node", "cordon", "n1")
        eci = paths["replica (leader)"][0]
        made = [eci.create(f"place-{i}", image, ["sleep", "3600"], registry.host)
                for i in range(a.placements)]
        t0 = time.perf_counter()
        admin(a.berth, replicas[0].state_dir, url, key, "node", "uncordon", "n1")
        t_uncordon = (time.perf_counter() - t0)
        while int(pg.psql("bench", "SELECT count(*) FROM groups WHERE node IS NOT NULL")) < len(made):
            time.sleep(0.005)
        placed_s = time.perf_counter() - t0 - t_uncordon
        for gid in made:
            eci.delete(gid)
        support.wait_for("the placed groups to go", lambda: pg.psql(
            "bench", "SELECT count(*) FROM groups") == "0", 300, 0.5)

        out = {k: {"p50_ms": round(statistics.median(v), 1), "p99_ms": round(pct(v, 99), 1),
                   "runs": len(v)} for k, v in times.items()}
        out["placements_per_s"] = round(len(made) / placed_s, 1)
        print(f"{'create -> Running':<22}{'p50 ms':>10}{'p99 ms':>10}")
        for k, v in out.items():
            if isinstance(v, dict):
                print(f"{k:<22}{v['p50_ms']:>10}{v['p99_ms']:>10}")
        print(f"placement decisions/s: {out['placements_per_s']} ({len(made)} groups)")
        if a.json:
            a.json.write_text(json.dumps(out, indent=2))
    finally:
        for r in replicas:
            r.stop()
        if node is not None:
            node.stop()
        if single is not None:
            single.stop()
        if registry is not None:
            registry.stop()
        hosts.down()
        pg.stop()
        if a.keep:
            print(f"kept {base}", file=sys.stderr)
        elif not support.mounts_under(base):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}: mounts remain", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "info")
    main()
