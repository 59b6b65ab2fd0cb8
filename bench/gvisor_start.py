#!/usr/bin/env python3
"""Cold start of the gvisor runtime class against raw runsc and the runc class, in one run.

    sudo .venv/bin/python bench/gvisor_start.py [--runs 10] [--berth target/debug/berth]

Measures, one of each in turn so that a busy host weighs on each alike:
  * raw runsc: `runsc run --detach` of busybox `sleep` (invocation -> return, the container
    running) on a bundle of its own, with the flags berth gives runsc (`--rootless=false
    --platform=P --network=host`); deleted after each run, outside the timing;
  * berth, gvisor class, cold (`--gvisor-pool 0`): CreateContainerGroup
    (RuntimeClassName=gvisor) -> Running;
  * berth, gvisor class from the warm pool (`--gvisor-pool 2`, a pooled sandbox ready before
    each start);
  * berth, runc class: the same with RuntimeClassName=runc.
Prints the p50 and min of each, the PSS of a running gvisor group of one and of two containers
(its runsc processes: sentry, gofers), of a group that took a pooled sandbox, and of an idle
pooled sandbox (the pool's cost per sandbox), and the node's phase timings of the gvisor starts
from its debug log (`container started` elapsed_ms: bundle written -> runtime reported the start).

Starts its own docker-registry (busybox pushed with tests/images/build.sh) and two `berth serve`
(cold: bridge berthg0, subnet 10.222.0.0/16; pooled: berthy0, 10.239.0.0/16), all removed at
the end. Needs root, runsc, and the e2e venv (tests/e2e/requirements.txt).
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


class RawRunsc:
    """`runsc run --detach` of busybox on a bundle of its own, one start at a time."""

    def __init__(self, work: Path, platform: str):
        self.bundle = raw_bundle(work)
        self.base = ["runsc", "--root", str(work / "state"), "--rootless=false",
                     f"--platform={platform}", "--network=host"]

    def start(self, i: int) -> float:
        cid = f"bench-{i}"
        began = time.monotonic()
        subprocess.run([*self.base, "run", "--detach", "--bundle", str(self.bundle), cid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.monotonic() - began
        subprocess.run([*self.base, "delete", "--force", cid], check=True)
        return took


def raw_bundle(work: Path) -> Path:
    bundle = work / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    for tool in ("sh", "sleep"):
        (bundle / "rootfs" / "bin" / tool).symlink_to("busybox")
    subprocess.run(["runsc", "spec", "--", "/bin/sleep", "60"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def create(server: support.Berth, image: str, registry: str, cls: str, name: str,
           containers: int = 1) -> str:
    query = {
        "ContainerGroupName": name,
        "RuntimeClassName": cls,
        "RestartPolicy": "Never",
        "TerminationGracePeriodSeconds": "1",
        "PlainHttpRegistry": registry,
    }
    for n in range(1, containers + 1):
        query |= {
            f"Container.{n}.Name": f"c{n}",
            f"Container.{n}.Image": image,
            f"Container.{n}.Command.1": "sleep",
            f"Container.{n}.Command.2": "600",
            f"Container.{n}.Cpu": "0.25",
            f"Container.{n}.Memory": "0.5",
        }
    return call(server.client(), "CreateContainerGroup", query)["ContainerGroupId"]


def pss_of(pid: str) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return sum(int(m.group(1)) for m in re.finditer(r"^Pss:\s+(\d+) kB", rollup, re.M))


def pooled(server: support.Berth) -> dict[str, list[str]]:
    """The idle pooled sandboxes of `server`: pool id -> pids of its runsc processes (those
    in its cgroup /berth/<pool id>)."""
    found: dict[str, list[str]] = {}
    for line in support.processes_mentioning([str(server.state_dir)]):
        if "runsc" not in line:
            continue
        pid = line.split()[1].rstrip(":")
        try:
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        m = re.search(r":memory:/berth/(gvp-[0-9a-f-]+)$", cgroup, re.M)
        if m:
            found.setdefault(m.group(1), []).append(pid)
    return found


def pool_memory(server: support.Berth) -> str:
    support.wait_for("two pooled sandboxes", lambda: len(pooled(server)) >= 2 or None, 60)
    time.sleep(2)
    sizes = [sum(pss_of(p) for p in pids) for pids in pooled(server).values()]
    return "idle pooled sandbox: PSS " + ", ".join(f"{k / 1024:.1f}" for k in sizes) + " MiB"


def pss_kib(gid: str) -> tuple[int, int]:
    """Total PSS (KiB) of the runsc processes of a group (sentry, gofers; their command lines
    or cgroups name the group), and how many of them are sentries."""
    total, sentries = 0, 0
    for line in support.processes_mentioning([gid]):
        if "runsc" not in line:
            continue  # berth's monitors: the same for every class
        pid = line.split()[1].rstrip(":")
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(m.group(1)) for m in re.finditer(r"^Pss:\s+(\d+) kB", rollup, re.M))
        sentries += "runsc-sandbox" in line
    return total, sentries


def memory(server: support.Berth, image: str, registry: str, containers: int,
           what: str = "gvisor group") -> str:
    """PSS of a running gvisor group of `containers` sleeping busybox containers."""
    client = server.client()
    if what != "gvisor group":
        support.wait_for("a pooled sandbox", lambda: pooled(server) or None, 60)
    gid = create(server, image, registry, "gvisor", f"bench-pss-{containers}", containers)
    support.wait_status(client, gid, ["Running"], 60)
    time.sleep(2)
    kib, sentries = pss_kib(gid)
    support.delete(client, gid)
    support.wait_for("the group to go", lambda: support.describe(client, gid) is None, 60)
    return (f"{what}, {containers} container(s): PSS {kib / 1024:6.1f} MiB "
            f"({sentries} sentry process(es))")


def berth_start(server: support.Berth, image: str, registry: str, cls: str, i: int,
                from_pool: bool = False) -> float:
    client = server.client()
    if from_pool:
        support.wait_for("a pooled sandbox", lambda: pooled(server) or None, 60)
        time.sleep(0.3)  # the pool's boot done, not competing with the start
    began = time.monotonic()
    gid = create(server, image, registry, cls, f"bench-{cls}-{i}")
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
                            "--gvisor-platform", args.platform, "--gvisor-pool", "0"])
    warm = support.Berth(work / "state-pool", work / "berth-pool.log",
                         ["--bridge", "berthy0", "--subnet", "10.239.0.0/16",
                          "--gvisor-platform", args.platform, "--gvisor-pool", "2"])
    try:
        [image] = registry.push_busybox()
        server.start()
        warm.start()
        # One start of each first: the image is pulled and unpacked once, not timed.
        for cls in ("gvisor", "runc"):
            berth_start(server, image, registry.host, cls, -1)
        berth_start(warm, image, registry.host, "gvisor", -1, from_pool=True)
        raw, gv, gp, rc = [], [], [], []
        runsc = RawRunsc(work / "raw", args.platform)
        for i in range(args.runs):
            raw.append(runsc.start(i))
            gv.append(berth_start(server, image, registry.host, "gvisor", i))
            gp.append(berth_start(warm, image, registry.host, "gvisor", i, from_pool=True))
            rc.append(berth_start(server, image, registry.host, "runc", i))
        for n in (1, 2):
            print(memory(server, image, registry.host, n))
        print(memory(warm, image, registry.host, 1, "gvisor group from the pool"))
        print(pool_memory(warm))
        print(summary("raw runsc run --detach", raw))
        print(summary("berth gvisor class, cold", gv))
        print(summary("berth gvisor class, pool", gp))
        print(summary("berth runc class", rc))
        for name, log in (("cold", "berth.log"), ("pool", "berth-pool.log")):
            text = (work / log).read_text(errors="replace")
            phases = [int(m.group(1)) for line in text.splitlines()
                      if "container started" in line and ".sandbox" not in line
                      for m in [re.search(r"elapsed_ms=(\d+)", line)] if m]
            print(f"node ({name}): monitor spawned -> runtime reported a container's start (ms):",
                  phases)
            handed = [int(m.group(1)) for m in re.finditer(
                r"pooled gVisor sandbox handed over.*?elapsed_us=(\d+)", text)]
            if handed:
                print(f"node ({name}): pooled sandbox handed over (us):", handed)
    finally:
        warm.stop()
        server.stop()
        registry.stop()
        print(f"logs: {work / 'berth.log'}, {work / 'berth-pool.log'}")


if __name__ == "__main__":
    main()
