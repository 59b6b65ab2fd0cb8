#!/usr/bin/env python3
"""Cold start of a group from a Ready image cache vs from an image the node has never pulled.

    bench/cache_start.py --berth target/release/berth --image 127.0.0.1:5000/busybox:latest [--runs 5]

Each run starts a fresh `berth serve` (empty state dir, so nothing is pulled yet) and measures
CreateContainerGroup -> Running twice: first for a group that must pull its image, then, after
CreateImageCache of the same image in a second fresh berth is Ready, for a group created with
ImageSnapshotId. Medians are printed.
"""
import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time

from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.models import Config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, state):
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", state,
                             "--bridge", "berthc", "--subnet", "10.215.0.0/16"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            key = json.load(open(f"{state}/credentials.json"))
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    eci = Client(Config(access_key_id=key["AccessKeyId"], access_key_secret=key["AccessKeySecret"],
                        endpoint=f"127.0.0.1:{port}", protocol="http", region_id="local"))
    return proc, eci


def run_group(eci, image, **kw):
    registry = image.split("/")[0]
    req = m.CreateContainerGroupRequest(
        region_id="local", container_group_name="bench", restart_policy="Never",
        plain_http_registry=registry, termination_grace_period_seconds=1,
        container=[m.CreateContainerGroupRequestContainer(name="c", image=image, cpu=0.25, memory=0.5,
                                                          command=["sleep", "60"])], **kw)
    t0 = time.perf_counter()
    gid = eci.create_container_group(req).body.container_group_id
    while True:
        g = eci.describe_container_groups(m.DescribeContainerGroupsRequest(
            region_id="local", container_group_ids=json.dumps([gid]))).body.container_groups[0]
        if g.status == "Running":
            return (time.perf_counter() - t0) * 1000, gid
        if g.status in ("Failed", "Succeeded"):
            raise SystemExit(f"{gid}: {g.status}")


def stop(proc, eci, gids):
    for gid in gids:
        eci.delete_container_group(m.DeleteContainerGroupRequest(region_id="local", container_group_id=gid))
    time.sleep(3)
    proc.terminate()
    proc.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    uncached, cached = [], []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory() as d:
            proc, eci = start(a.berth, d + "/s")
            ms, gid = run_group(eci, a.image)
            uncached.append(ms)
            stop(proc, eci, [gid])
        with tempfile.TemporaryDirectory() as d:
            proc, eci = start(a.berth, d + "/s")
            cid = eci.create_image_cache(m.CreateImageCacheRequest(
                region_id="local", image_cache_name="bench", image=[a.image],
                plain_http_registry=a.image.split("/")[0])).body.image_cache_id
            while True:
                c = eci.describe_image_caches(m.DescribeImageCachesRequest(
                    region_id="local", image_cache_id=cid)).body.image_caches[0]
                if c.status == "Ready":
                    break
                time.sleep(0.05)
            ms, gid = run_group(eci, a.image, image_snapshot_id=cid)
            cached.append(ms)
            stop(proc, eci, [gid])
    subprocess.run(["ip", "link", "del", "berthc"], capture_output=True)
    print(f"uncached image  n={len(uncached)} p50={statistics.median(uncached):.1f} ms {[round(x) for x in uncached]}")
    print(f"from image cache n={len(cached)} p50={statistics.median(cached):.1f} ms {[round(x) for x in cached]}")


if __name__ == "__main__":
    main()
