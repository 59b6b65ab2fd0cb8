#!/usr/bin/env python3
"""DescribeContainerGroups with many groups in PostgreSQL, through two control-plane replicas
(issue 20, docs/SPEC.md "Cluster mode"):

    .venv/bin/python bench/cluster_describe.py --berth target/release/berth \
        [--groups 100000] [--seconds 10] [--connections 4] [--json F]

(as root, with the e2e venv: it reuses tests/e2e's pieces; needs
`cargo build --release -p berth-client --example describe_load -p berth-store --example
pg_fill`.) Starts PostgreSQL from Debian and two replicas (`berth serve --no-node`, throttling
off), creates one group through the API as a template, has `pg_fill` insert --groups copies of
it (finished, placed nowhere) through the store's own insert, then runs one `describe_load`
per replica at the same time (--connections keep-alive connections each, ACS3-signed, a
fresh nonce and timestamp per request) for --seconds, in two modes: one random group by id,
and the first page of the unfiltered list. Reports the combined rate, each replica's
latency, and the CPU seconds PostgreSQL and the replicas spent per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(HERE))

import support  # noqa: E402
from cluster import Replica  # noqa: E402
from postgres import Postgres  # noqa: E402
from cluster_start import start_replicas  # noqa: E402
from run import Eci, process_cpu_s  # noqa: E402

DESCRIBE_LOAD = REPO / "target" / "release" / "examples" / "describe_load"
PG_FILL = REPO / "target" / "release" / "examples" / "pg_fill"


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            total += process_cpu_s(p)
        except FileNotFoundError:  # a backend that ended meanwhile
            pass
    return total


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", type=Path, required=True)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=4, help="per replica")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    a = ap.parse_args()
    for tool in (DESCRIBE_LOAD, PG_FILL):
        if not tool.exists():
            raise SystemExit(f"{tool.relative_to(REPO)} is missing: cargo build --release "
                             "-p berth-client --example describe_load -p berth-store "
                             "--example pg_fill")
    support.BERTH_BIN = a.berth.resolve()
    import cluster as cl
    cl.BERTH_BIN = support.BERTH_BIN

    base = Path(tempfile.mkdtemp(prefix="berth-describe-bench-", dir="/tmp"))
    pg = Postgres()
    replicas: list[Replica] = []
    try:
        pg.start()
        url = pg.create_database("bench")
        key = base / "secrets.key"
        start_replicas(base, url, key, replicas)
        creds = replicas[0].credentials()
        eci = Eci(f"127.0.0.1:{replicas[0].port}", creds["AccessKeyId"],
                  creds["AccessKeySecret"])
        template = eci.create("bench-describe", "127.0.0.1:5999/busybox:latest", ["true"],
                              "127.0.0.1:5999")
        ids_file = base / "ids.txt"
        t0 = time.perf_counter()
        fill = subprocess.run([str(PG_FILL), url, str(key), template, str(a.groups),
                               str(ids_file)], capture_output=True, text=True, timeout=3600)
        if fill.returncode != 0:
            raise RuntimeError(f"pg_fill: {fill.stderr}")
        print(f"filled: {fill.stderr.strip()} ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
        eci.delete(template)
        pg.psql("bench", "VACUUM ANALYZE")
        total = eci.call("DescribeContainerGroups", Limit=1).get("TotalCount")
        out: dict = {"groups_in_store": total, "replicas": 2,
                     "connections_per_replica": a.connections, "seconds": a.seconds}
        cred_file = replicas[0].state_dir / "credentials.json"
        server_pids = [r.proc.pid for r in replicas]
        for mode in ("by_id", "list_page"):
            pg_cpu0, srv_cpu0 = cpu_of(postgres_pids()), cpu_of(server_pids)
            procs = [subprocess.Popen(
                [str(DESCRIBE_LOAD), "--endpoint", f"127.0.0.1:{r.port}", "--credentials",
                 str(cred_file), "--mode", mode, "--ids", str(ids_file), "--connections",
                 str(a.connections), "--seconds", str(a.seconds), "--sign", "acs3"],
                stdout=subprocess.PIPE, text=True) for r in replicas]
            results = []
            for p in procs:
                stdout, _ = p.communicate(timeout=a.seconds + 120)
                if p.returncode != 0:
                    raise RuntimeError(f"describe_load exited {p.returncode}")
                results.append(json.loads(stdout))
            pg_cpu, srv_cpu = cpu_of(postgres_pids()) - pg_cpu0, cpu_of(server_pids) - srv_cpu0
            answered = sum(r["requests"] for r in results)
            out[mode] = {
                "requests_per_s": round(sum(r["requests_per_s"] for r in results)),
                "errors": sum(r["errors"] for r in results),
                "per_replica": [{"requests_per_s": round(r["requests_per_s"]),
                                 "p50_ms": r["latency_ms"]["p50"],
                                 "p99_ms": r["latency_ms"]["p99"]} for r in results],
                "p99_ms_worst": max(r["latency_ms"]["p99"] for r in results),
                "postgres_cpu_us_per_request": round(pg_cpu * 1e6 / max(1, answered), 1),
                "replicas_cpu_us_per_request": round(srv_cpu * 1e6 / max(1, answered), 1),
            }
            m = out[mode]
            print(f"{mode:<10} {m['requests_per_s']:>7}/s  p99 {m['p99_ms_worst']:.2f} ms  "
                  f"errors {m['errors']}  CPU/request: PostgreSQL "
                  f"{m['postgres_cpu_us_per_request']} us, replicas "
                  f"{m['replicas_cpu_us_per_request']} us")
        print(json.dumps(out, indent=2))
        if a.json:
            a.json.write_text(json.dumps(out, indent=2))
    finally:
        for r in replicas:
            r.stop()
        pg.stop()
        if a.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "info")
    main()
