#!/usr/bin/env python3
"""Cold start with a cached image: CreateContainerGroup sent -> the container's process runs.

Run as root against a running berth:  bench/start_latency.py --endpoint 127.0.0.1:8080 \
    --credentials STATE/credentials.json --image 127.0.0.1:5000/busybox:latest [--runs 20] [--podman]

"Running" is observed by polling DescribeContainerGroups as fast as the SDK answers (the
status turns Running once the runtime reports the process started). With --podman the same
image is started with `podman run -d` in the same run, alternating (invocation -> return).
"""
import argparse
import json
import statistics
import subprocess
import time

from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.models import Config


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--credentials", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--podman", action="store_true")
    a = ap.parse_args()
    key = json.load(open(a.credentials))
    eci = Client(Config(access_key_id=key["AccessKeyId"], access_key_secret=key["AccessKeySecret"],
                        endpoint=a.endpoint, protocol="http", region_id="local"))
    registry = a.image.split("/")[0]
    berth, podman, ids = [], [], []
    for i in range(a.runs + 1):
        req = m.CreateContainerGroupRequest(
            region_id="local", container_group_name=f"bench-{i}", restart_policy="Never",
            plain_http_registry=registry, termination_grace_period_seconds=1,
            container=[m.CreateContainerGroupRequestContainer(
                name="c", image=a.image, cpu=0.25, memory=0.5, command=["sleep", "600"])])
        t0 = time.perf_counter()
        gid = eci.create_container_group(req).body.container_group_id
        ids.append(gid)
        while True:
            g = eci.describe_container_groups(m.DescribeContainerGroupsRequest(
                region_id="local", container_group_ids=json.dumps([gid]))).body.container_groups[0]
            if g.status == "Running":
                break
            if g.status in ("Failed", "Succeeded"):
                raise SystemExit(f"group {gid} ended: {g.status}")
        dt = (time.perf_counter() - t0) * 1000
        if i > 0:  # the first run pulls the image
            berth.append(dt)
        if a.podman:
            t0 = time.perf_counter()
            # crun refuses hybrid-cgroup hosts and podman's default rlimits exceed the hard
            # limits of some hosts: runc and explicit limits keep podman working everywhere.
            subprocess.run(["podman", "run", "-d", "--rm", "--runtime", "runc",
                            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                            "--name", f"bench-{i}", "--tls-verify=false",
                            a.image, "sleep", "600"], check=True, capture_output=True)
            dt = (time.perf_counter() - t0) * 1000
            if i > 0:
                podman.append(dt)
    for gid in ids:
        eci.delete_container_group(m.DeleteContainerGroupRequest(region_id="local", container_group_id=gid))
    if a.podman:
        subprocess.run(["podman", "rm", "-f", "-t", "0"] + [f"bench-{i}" for i in range(a.runs + 1)],
                       capture_output=True)
    for name, xs in (("berth create->running", berth), ("podman run -d (runc)", podman)):
        if xs:
            print(f"{name:24} n={len(xs)} p50={statistics.median(xs):.1f} ms p90={pct(xs, 90):.1f} ms "
                  f"min={min(xs):.1f} ms max={max(xs):.1f} ms")


if __name__ == "__main__":
    main()
