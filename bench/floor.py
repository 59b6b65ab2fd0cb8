"""The floor under berth's memory per group: the same isolation made by hand, no berth.

`containers(template, lowerdir, n, work)` starts `n` idle containers with `crun run -d` from the
bundle berth wrote for one of its own groups (`template`, its config.json: namespaces, mounts,
seccomp program, limits), each with what berth gives a group — a network namespace with a veth
pair on a bridge of its own, an overlay root over the image's layers (`lowerdir`), a memory
cgroup — and no monitor, no `berth serve`, no group directory. The host's MemAvailable drop
per container is what the kernel keeps for that isolation plus the container's own process:
the part of berth's per-group figure that berth's own design does not choose.

Used by bench/scale.py (`--crun N`), after berth's own groups are gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import hostmem

BRIDGE = "berthfloor0"
SUBNET = "10.232"
CGROUP_PARENT = "berthfloor"


def sh(*args: str, check: bool = True) -> None:
    subprocess.run(args, check=check, capture_output=True)


def bundle(template: dict, i: int, rootfs: Path, empty: Path, etc: Path) -> dict:
    cfg = json.loads(json.dumps(template))
    cfg["root"] = {"path": str(rootfs), "readonly": False}
    for ns in cfg["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/run/netns/{BRIDGE}-{i}"
    cfg["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/c{i}"
    for m in cfg["mounts"]:
        if m.get("type") != "bind":
            continue
        dest = m["destination"]
        # berth's group files and its masked directory, as files of this run.
        m["source"] = str(etc / Path(dest).name) if dest.startswith("/etc/") else str(empty)
    return cfg


def containers(template_path: Path, lowerdir: str, n: int, work: Path, crun: str = "crun",
               hide_unified: str | None = "/sys/fs/cgroup/unified") -> dict:
    template = json.loads(template_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    root = work / "crun-root"
    empty = work / "empty"
    etc = work / "etc"
    for d in (root, empty, etc):
        d.mkdir(exist_ok=True)
    for name, text in (("hosts", "127.0.0.1 localhost\n"), ("hostname", "floor\n"),
                       ("resolv.conf", "")):
        (etc / name).write_text(text)
    # crun refuses a hybrid cgroup layout: it runs where the cgroup2 mount is hidden, as under
    # berth (ADR 0002).
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              f"umount -l {hide_unified} 2>/dev/null; exec \"$0\" \"$@\""] if hide_unified else []
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{SUBNET}.0.1/16", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    started = []
    try:
        mem0, info0 = hostmem.settled_mem_available_kib(), hostmem.meminfo_kib()
        t0 = time.perf_counter()
        for i in range(n):
            ns = f"{BRIDGE}-{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", f"vfl{i}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "link", "set", f"vfl{i}", "master", BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{1 + (i + 2) // 250}.{(i + 2) % 250 + 1}/16",
               "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            c = work / f"c{i}"
            for d in ("upper", "work", "rootfs"):
                (c / d).mkdir(parents=True, exist_ok=True)
            sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={lowerdir},upperdir={c / 'upper'},workdir={c / 'work'}",
               str(c / "rootfs"))
            (c / "config.json").write_text(json.dumps(bundle(template, i, c / "rootfs", empty, etc)))
            # The container keeps crun's standard streams: files, never pipes read to the end.
            with open(os.devnull, "rb") as null_in, open(work / "crun.log", "ab") as out:
                subprocess.run(prefix + [crun, "--root", str(root), "run", "-d", "--bundle",
                                         str(c), f"floor-{i}"],
                               stdin=null_in, stdout=out, stderr=out, check=True, timeout=60)
            started.append(i)
        elapsed = time.perf_counter() - t0
        mem1 = hostmem.settled_mem_available_kib()
        return {"containers": n, "seconds": round(elapsed, 1),
                "mem_available_kib_per_container": (mem0 - mem1) / n,
                "meminfo_kib_per_container": hostmem.deltas_per_item(info0, hostmem.meminfo_kib(),
                                                                     n)}
    finally:
        for i in started:
            subprocess.run(prefix + [crun, "--root", str(root), "delete", "-f", f"floor-{i}"],
                           capture_output=True, timeout=60)
        for i in range(n):
            c = work / f"c{i}"
            if c.exists():
                sh("umount", str(c / "rootfs"), check=False)
            sh("ip", "link", "del", f"vfl{i}", check=False)
            sh("ip", "netns", "del", f"{BRIDGE}-{i}", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
        parent = Path("/sys/fs/cgroup")
        for hier in parent.iterdir():
            d = hier / CGROUP_PARENT
            if d.is_dir():
                for sub in [s for s in d.iterdir() if s.is_dir()] + [d]:
                    try:
                        os.rmdir(sub)
                    except OSError as e:
                        print(f"floor: cannot remove {sub}: {e}")
        shutil.rmtree(work, ignore_errors=True)
