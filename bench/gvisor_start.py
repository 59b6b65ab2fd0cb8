#!/usr/bin/env python3
"""Cold start of the gvisor runtime class against raw runsc and the runc class, in one run.

    sudo .venv/bin/python bench/gvisor_start.py [--runs 10] [--berth target/debug/berth]

Measures, alternating so that a busy host weighs on each alike:
  * raw runsc: `runsc run --detach` of busybox `sleep` (invocation -> return, the container
    running) on a bundle of its own, with the flags berth gives runsc (`--rootless=false
    --platform=P --network=host`); deleted after each run, outside the timing;
  * berth, gvisor class: CreateContainerGroup (RuntimeClassName=gvisor) -> Running;
  * berth, runc class: the same with RuntimeClassName=runc.
Prints the p50 and min of each, and the node's phase timings of the gvisor starts from its
debug log (`container started` elapsed_ms: bundle written -> runtime reported the start).

Starts its own docker-registry (busybox pushed with tests/images/build.sh) and its own
`berth serve` (bridge berthg0, subnet 10.222.0.0/16), both removed at the end. Needs root,
runsc, and the e2e venv (tests/e2e/requirements.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import support  # noqa: E402
from test_ports import call  # noqa: E402


def raw_runsc(work: Path, platform: str, runs: int) -> list[float]:
    bundle = work / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    for tool in ("sh", "sleep"):
        (bundle / "rootfs" / "bin" / tool).symlink_to("busybox")
    subprocess.run(["runsc", "spec", "--", "/bin/sleep", "60"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    root = work / "state"
    base = ["runsc", "--root", str(root), "--rootless=false", f"--platform={platform}",
            "--network=host"]
    times = []
    for i in range(runs):
        cid = f"bench-{i}"
        began = time.monotonic()
        subprocess.run([*base, "run", "--detach", "--bundle", str(bundle), cid], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.monotonic() - began)
        subprocess.run([*base, "delete", "--force", cid], check=True)
    return times


def berth_start(server: support.Berth, image: str, registry: str, cls: str, i: int) -> float:
    client = server.client()
    began = time.monotonic()
    gid = call(client, "CreateContainerGroup", {
        "ContainerGroupName": f"bench-{cls}-{i}",
        "RuntimeClassName": cls,
        "RestartPolicy": "Never",
        "TerminationGracePeriodSeconds": "1",
        "PlainHttpRegistry": registry,
        "Container.1.Name": "c",
        "Container.1.Image": image,
        "Container.1.Command.1": "sleep",
        "Container.1.Command.2": "600",
        "Container.1.Cpu": "0.25",
        "Container.1.Memory": "0.5",
    })["ContainerGroupId"]
    while True:
        group = support.describe(client, gid)
        if group and group.get("Status") == "Running":
            took = time.monotonic() - began
            break
        assert group and group.get("Status") not in ("Failed",), support.pretty(group)
        assert time.monotonic() - began < 60, support.pretty(group)
        time.sleep(0.005)
    support.delete(client, gid)
    support.wait_for("the group to go", lambda: support.describe(client, gid) is None, 60)
    return took


def summary(name: str, xs: list[float]) -> str:
    ms = sorted(x * 1000 for x in xs)
    return f"{name:<28} p50 {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f} ms   n={len(ms)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--berth", default=str(support.BERTH_BIN))
    ap.add_argument("--platform", default="ptrace")
    args = ap.parse_args()
    support.BERTH_BIN = Path(args.berth)
    os.environ["RUST_LOG"] = "info,berth=debug,berth_node=debug,berth_runtime=debug"

    work = Path(tempfile.mkdtemp(prefix="berth-gvbench-", dir="/tmp"))
    registry = support.Registry(work / "registry")
    registry.start()
    server = support.Berth(work / "state", work / "berth.log",
                           ["--bridge", "berthg0", "--subnet", "10.222.0.0/16",
                            "--gvisor-platform", args.platform])
    try:
        [image] = registry.push_busybox()
        server.start()
        # One start of each first: the image is pulled and unpacked once, not timed.
        for cls in ("gvisor", "runc"):
            berth_start(server, image, registry.host, cls, -1)
        raw, gv, rc = [], [], []
        raw_all = raw_runsc(work / "raw", args.platform, args.runs)
        for i in range(args.runs):
            gv.append(berth_start(server, image, registry.host, "gvisor", i))
            rc.append(berth_start(server, image, registry.host, "runc", i))
            raw.append(raw_all[i])
        print(summary("raw runsc run --detach", raw))
        print(summary("berth gvisor class", gv))
        print(summary("berth runc class", rc))
        log = (work / "berth.log").read_text(errors="replace")
        phases = [int(m.group(1)) for line in log.splitlines() if "container started" in line
                  for m in [re.search(r"elapsed_ms=(\d+)", line)] if m]
        print("node: monitor spawned -> runtime reported the start (ms, every start):", phases)
    finally:
        server.stop()
        registry.stop()
        print(f"log: {work / 'berth.log'}")


if __name__ == "__main__":
    main()
