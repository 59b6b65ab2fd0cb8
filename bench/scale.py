#!/usr/bin/env python3
"""berth filling one host: 1,000 idle groups, then all deleted; and a soak of lifecycles.

    python3 bench/scale.py [--groups 1000] [--podman 200] [--crun 200] [--json out.json]   (as root)
    python3 bench/scale.py --soak 5000 [--soak-seconds 3]

Kept out of bench/run.py's default run: it takes minutes. It starts its own docker-registry and
`berth serve` (fresh state dir in a temp dir, bridge `berthscale`, subnet 10.217.0.0/16, the
node's capacity unbounded as in bench/run.py) and measures:

  1. create: --groups idle busybox groups (0.25 vCPU / 0.5 GiB, `sleep`) created from
     --clients threads at once (one keep-alive connection each); the create latency; the time
     each group is first seen Running (the pending ones are described by id, 20 a request,
     every 0.2 s), as groups/s end to end and per tenth of the groups (the rate at the first
     tenth against the last shows whether the cost of a start grows with the groups running);
  2. with all of them running: DescribeContainerGroups by id and the first page, one
     sequential client (p50/p99) and under --clients connections (bench/run.py's loader:
     describe_load when built, else Python processes); host memory per group (MemAvailable
     drop, and the PSS of berth serve and of the monitors); berth serve's RSS, threads and
     open files; mounts, cgroups, veths, network namespaces, loop devices;
  3. delete: all of them from --clients threads at once -> gone from DescribeContainerGroups,
     groups/s end to end and per tenth; then the host's counters against the ones before (a
     leak shows as a difference; the namespace pool and spare directories refill meanwhile,
     so they are compared once the pool is full again);
  4. podman as the peer, in the same run: --podman `podman run -d` containers from --clients
     threads (the rate over the first 20 and over all), host memory per container
     (MemAvailable drop, conmon's PSS), then `podman rm -f -t 0` of all;
  5. the floor (bench/floor.py): --crun containers of the bundle berth wrote for one of its
     groups, each with a network namespace, veth pair and overlay root of its own, started by
     `crun run -d` alone: the host memory that isolation costs without berth.

--soak N runs N lifecycles instead (create, Running, --soak-seconds, delete -> gone), --clients
at a time, and compares the counters at the start and the end and the rate of the first 100
lifecycles with the last 100.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: the signed client, registry, berth, loaders)
import floor  # noqa: E402
import hostmem  # noqa: E402

SLEEP = ["sleep", "100000"]


def cpu_ms(pid: int) -> float:
    """CPU time of `berth serve` and of the children it has reaped (CNI plugins, OCI runtime
    runs), in ms: what the host spends on berth's side of a phase, whatever else runs."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
    ticks = sum(int(v) for v in fields[11:15])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "Threads"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def count_dirs(root: str) -> int:
    return sum(1 for _ in os.walk(root))


def host_counters(berth_pid: int) -> dict:
    """What a group holds on the host, counted from outside berth."""
    mountinfo = open("/proc/1/mountinfo").read().splitlines()
    netns = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                netns.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            except OSError:
                pass
    veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                           text=True).stdout.count("\n")
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout.count("\n")
    monitors = [pid for pid, argv in R.processes()
                if argv and os.path.basename(argv[0]) == "berth-monitor"]
    st = proc_status(berth_pid)
    return {
        "mounts": len(mountinfo),
        "nsfs_mounts": sum(1 for m in mountinfo if " - nsfs " in m),
        "cgroups_memory": count_dirs("/sys/fs/cgroup/memory"),
        "cgroups_pids": count_dirs("/sys/fs/cgroup/pids"),
        "veths": veths,
        "net_namespaces_of_processes": len(netns),
        "loop_devices": loops,
        "monitors": len(monitors),
        "berth_rss_kib": st["VmRSS"],
        "berth_threads": st["Threads"],
        "berth_fds": st["fds"],
        "berth_pss_kib": R.pss_kib(berth_pid),
        "monitors_pss_kib": sum(R.pss_kib(p) for p in monitors),
        "mem_available_kib": hostmem.settled_mem_available_kib(),
        "meminfo_kib": hostmem.meminfo_kib(),
        "slab_kib": hostmem.slab_kib(),
    }


def tenths(times: list[float]) -> list[float]:
    """Groups/s within each tenth of the sorted completion times (ms from the start)."""
    ts = sorted(times)
    n = len(ts)
    out = []
    prev = 0.0
    for k in range(1, 11):
        i = max(0, k * n // 10 - 1)
        span = (ts[i] - prev) / 1000
        count = k * n // 10 - (k - 1) * n // 10
        out.append(round(count / span, 1) if span > 0 else None)
        prev = ts[i]
    return out


class Watch:
    """Polls the pending groups by id (20 a request) and records when each first met `done`."""

    def __init__(self, eci: R.Eci, done):
        self.eci, self.done = eci, done
        self.pending: set[str] = set()
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: str | None = None

    def add(self, gid: str) -> None:
        with self.lock:
            self.pending.add(gid)

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ids = list(self.pending)
            for i in range(0, len(ids), 20):
                chunk = ids[i:i + 20]
                try:
                    found = {g["ContainerGroupId"]: g for g in self.eci.describe(chunk)}
                except Exception as e:  # noqa: BLE001 - retried
                    R.log(f"watch: {e!r}")
                    continue
                now = R.ms(self.t0)
                for gid in chunk:
                    verdict = self.done(found.get(gid))
                    if verdict is True:
                        with self.lock:
                            self.pending.discard(gid)
                            self.at[gid] = now
                    elif isinstance(verdict, str):
                        self.error = verdict
            time.sleep(0.2)

    def wait(self, n: int, timeout: float) -> None:
        self.thread.start() if not self.thread.is_alive() else None
        deadline = time.monotonic() + timeout
        while len(self.at) < n:
            if self.error:
                raise RuntimeError(self.error)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self.at)}/{n} done after {timeout} s")
            time.sleep(0.1)
        self.stop.set()


def running(g: dict | None):
    if g is None:
        return None
    if g.get("Status") in ("Failed", "Succeeded", "Expired", "ScheduleFailed"):
        return f"group ended: {json.dumps(g)[:800]}"
    return g.get("Status") == "Running" or None


def gone(g: dict | None):
    return g is None or None


class Perf:
    """`perf record -a -g` of a phase into DIR/NAME.data (--perf DIR), else nothing."""

    def __init__(self, out: Path | None, name: str):
        self.out, self.name, self.proc = out, name, None

    def __enter__(self):
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                ["perf", "record", "-F", "499", "-a", "-g", "-o",
                 str(self.out / f"{self.name}.data")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(2)
            self.proc.wait(60)


class Scale:
    def __init__(self, a):
        self.a = a
        self.work = Path(tempfile.mkdtemp(prefix="berth-scale-"))
        self.registry = R.Registry(self.work / "registry")
        self.berth = R.Berth(a.berth, self.work / "state", self.work / "berth.log", a.bridge,
                             a.subnet, a.serve_arg)
        self.results: dict = {"groups": a.groups, "clients": a.clients}

    def start(self) -> None:
        self.registry.start()
        self.image = self.registry.push_busybox()
        self.eci = self.berth.start()
        self.pid = self.berth.proc.pid
        # The image pulled once, as every start after it finds it (bench/run.py's cold start).
        gid = self.eci.create("scale-warm", self.image, ["true"], self.registry.host)
        w = Watch(self.eci, lambda g: g is not None and g.get("Status") == "Succeeded" or None)
        w.add(gid)
        w.wait(1, 120)
        self.eci.delete(gid)
        w = Watch(self.eci, gone)
        w.add(gid)
        w.wait(1, 60)
        self.berth.wait_pool_full(300)

    def create_all(self, n: int) -> tuple[list[str], dict]:
        watch = Watch(self.eci, running)
        lat: list[float] = []
        ids: list[str] = []
        lock = threading.Lock()
        watch.t0 = t0 = time.perf_counter()
        watch.thread.start()

        def worker(k: int) -> None:
            for i in range(k, n, self.a.clients):
                t = time.perf_counter()
                gid = self.eci.create(f"scale-{i}", self.image, SLEEP, self.registry.host)
                d = R.ms(t)
                with lock:
                    lat.append(d)
                    ids.append(gid)
                watch.add(gid)

        with cf.ThreadPoolExecutor(self.a.clients) as ex:
            list(ex.map(worker, range(self.a.clients)))
        accepted = R.ms(t0)
        watch.wait(n, 600)
        times = list(watch.at.values())
        all_running = max(times)
        return ids, {
            "all_accepted_ms": accepted, "all_running_ms": all_running,
            "groups_per_s": n / (all_running / 1000), "create_ms": R.stats(lat),
            "groups_per_s_by_tenth": tenths(times),
        }

    def delete_all(self, ids: list[str]) -> dict:
        watch = Watch(self.eci, gone)
        for gid in ids:
            watch.add(gid)
        lat: list[float] = []
        lock = threading.Lock()
        watch.t0 = t0 = time.perf_counter()
        watch.thread.start()

        def worker(k: int) -> None:
            for gid in ids[k::self.a.clients]:
                t = time.perf_counter()
                self.eci.delete(gid)
                with lock:
                    lat.append(R.ms(t))

        with cf.ThreadPoolExecutor(self.a.clients) as ex:
            list(ex.map(worker, range(self.a.clients)))
        accepted = R.ms(t0)
        watch.wait(len(ids), 600)
        times = list(watch.at.values())
        return {"all_accepted_ms": accepted, "all_gone_ms": max(times),
                "groups_per_s": len(ids) / (max(times) / 1000), "delete_ms": R.stats(lat),
                "groups_per_s_by_tenth": tenths(times)}

    def describe(self, ids: list[str]) -> dict:
        out = {}
        for kind in ("by_id", "list_page"):
            lat = []
            for _ in range(500):
                t = time.perf_counter()
                R.describe_once(self.eci, kind, ids)
                lat.append(R.ms(t))
            out[f"{kind}_one_client_ms"] = R.stats(lat)
            if R.DESCRIBE_LOAD.exists():
                ids_file = self.work / "ids.txt"
                ids_file.write_text("\n".join(ids) + "\n")
                out[f"{kind}_loaded"] = R.native_load(
                    self.berth.endpoint, self.berth.state / "credentials.json", kind, ids_file,
                    self.a.clients, self.a.describe_seconds)
                out["loader"] = "describe_load"
            else:
                out[f"{kind}_loaded"] = R.load(self.berth.endpoint, self.eci.key_id,
                                               self.eci.secret[:-1].decode(), kind, ids,
                                               self.a.clients, self.a.describe_seconds)
                out["loader"] = "python processes (describe_load not built)"
        return out

    def groups(self) -> None:
        n = self.a.groups
        before = host_counters(self.pid)
        self.results["before"] = before
        R.log(f"creating {n} groups from {self.a.clients} clients")
        cpu0 = cpu_ms(self.pid)
        with Perf(self.a.perf, "create"):
            ids, created = self.create_all(n)
        created["berth_cpu_ms_per_group"] = (cpu_ms(self.pid) - cpu0) / n
        self.results["create"] = created
        R.log(f"all running in {created['all_running_ms'] / 1000:.1f} s "
              f"({created['groups_per_s']:.1f}/s; by tenth {created['groups_per_s_by_tenth']}; "
              f"berth's CPU {created['berth_cpu_ms_per_group']:.1f} ms per group)")
        time.sleep(5)
        full = host_counters(self.pid)
        self.results["running"] = full
        self.results["per_group"] = {
            "mem_available_kib": (before["mem_available_kib"] - full["mem_available_kib"]) / n,
            "berth_pss_kib": (full["berth_pss_kib"] - before["berth_pss_kib"]) / n,
            "monitors_pss_kib": (full["monitors_pss_kib"] - before["monitors_pss_kib"]) / n,
            "berth_rss_kib": (full["berth_rss_kib"] - before["berth_rss_kib"]) / n,
            "berth_fds": (full["berth_fds"] - before["berth_fds"]) / n,
            "berth_threads": (full["berth_threads"] - before["berth_threads"]) / n,
            "mounts": (full["mounts"] - before["mounts"]) / n,
            "cgroups_memory": (full["cgroups_memory"] - before["cgroups_memory"]) / n,
            "meminfo_kib": hostmem.deltas_per_item(before["meminfo_kib"], full["meminfo_kib"], n),
            # The object caches that grew most: the kernel's share of a group.
            "slab_kib_top": dict(sorted(
                ((k, round((v - before["slab_kib"].get(k, 0)) / n, 1))
                 for k, v in full["slab_kib"].items()),
                key=lambda kv: -kv[1])[:12]),
        }
        R.log(f"per group: {self.results['per_group']}")
        self.keep_template(ids[0])
        self.results["describe"] = self.describe(ids)
        R.log("deleting all")
        cpu0 = cpu_ms(self.pid)
        with Perf(self.a.perf, "delete"):
            self.results["delete"] = self.delete_all(ids)
        d = self.results["delete"]
        # Includes the monitors reaped as their groups go.
        d["berth_cpu_ms_per_group"] = (cpu_ms(self.pid) - cpu0) / n
        R.log(f"all gone in {d['all_gone_ms'] / 1000:.1f} s ({d['groups_per_s']:.1f}/s; "
              f"by tenth {d['groups_per_s_by_tenth']}; "
              f"berth's CPU {d['berth_cpu_ms_per_group']:.1f} ms per group)")
        self.berth.wait_pool_full(300)
        # tokio's idle blocking threads end after 10 s.
        time.sleep(12)
        after = host_counters(self.pid)
        self.results["after"] = after
        self.results["leaked"] = leaks(before, after)

    def soak(self) -> None:
        n, secs = self.a.soak, self.a.soak_seconds
        before = host_counters(self.pid)
        done_at: list[float] = []
        lock = threading.Lock()
        t0 = time.perf_counter()

        def life(i: int) -> None:
            gid = self.eci.create(f"soak-{i}", self.image, SLEEP, self.registry.host)
            while True:
                [g] = self.eci.describe([gid])
                verdict = running(g)
                if isinstance(verdict, str):
                    raise RuntimeError(verdict)
                if verdict:
                    break
                time.sleep(0.05)
            time.sleep(secs)
            self.eci.delete(gid)
            while self.eci.describe([gid]):
                time.sleep(0.05)
            with lock:
                done_at.append(R.ms(t0))

        with cf.ThreadPoolExecutor(self.a.clients) as ex:
            list(ex.map(life, range(n)))
        ts = sorted(done_at)
        first = 100 / (ts[99] / 1000) if n >= 200 else None
        last = 100 / ((ts[-1] - ts[-101]) / 1000) if n >= 200 else None
        self.berth.wait_pool_full(300)
        # tokio's idle blocking threads end after 10 s.
        time.sleep(12)
        after = host_counters(self.pid)
        self.results["soak"] = {"lifecycles": n, "seconds_running": secs,
                                "total_s": ts[-1] / 1000, "first_100_per_s": first,
                                "last_100_per_s": last, "before": before, "after": after,
                                "leaked": leaks(before, after)}

    def podman(self) -> None:
        n = self.a.podman
        R.podman("pull", "--tls-verify=false", self.image, timeout=300)
        done: list[float] = []
        names: list[str] = []
        lock = threading.Lock()
        mem0 = hostmem.settled_mem_available_kib()
        t0 = time.perf_counter()

        def one(i: int) -> None:
            out = R.podman(*R.PODMAN[1:], "--name", f"scale-{i}", self.image, *SLEEP,
                           timeout=300)
            with lock:
                done.append(R.ms(t0))
                names.append(out.stdout.strip())

        try:
            with cf.ThreadPoolExecutor(self.a.clients) as ex:
                list(ex.map(one, range(n)))
            ts = sorted(done)
            res = {"containers": n, "all_running_ms": ts[-1],
                   "containers_per_s": n / (ts[-1] / 1000),
                   "first_20_per_s": 20 / (ts[19] / 1000) if n >= 20 else None,
                   "containers_per_s_by_tenth": tenths(ts)}
            # The peer's host memory per idle container, measured as berth's per group.
            res["mem_available_kib_per_container"] = (
                mem0 - hostmem.settled_mem_available_kib()) / n
            conmons = [pid for pid, argv in R.processes()
                       if argv and os.path.basename(argv[0]) == "conmon"]
            res["conmon_pss_kib_per_container"] = sum(R.pss_kib(p) for p in conmons) / n
            R.log(f"podman: {res['mem_available_kib_per_container']:.0f} KiB MemAvailable "
                  f"and {res['conmon_pss_kib_per_container']:.0f} KiB conmon PSS a container")
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(self.a.clients) as ex:
                list(ex.map(lambda nm: R.podman("rm", "-f", "-t", "0", nm, timeout=300),
                            names))
            res["all_removed_ms"] = R.ms(t0)
            res["removed_per_s"] = n / (res["all_removed_ms"] / 1000)
            self.results["podman"] = res
        finally:
            R.podman("rm", "-f", "-t", "0", "--filter", "name=^scale-", check=False,
                     timeout=600)
            subprocess.run(["podman", "ps", "-aq", "--filter", "name=scale-"],
                           capture_output=True)

    def keep_template(self, gid: str) -> None:
        """The bundle berth wrote for one group and its image's layers, for the floor run."""
        containers = self.berth.state / "node" / "groups" / gid / "containers"
        c = next(containers.iterdir())
        shutil.copy(c / "config.json", self.work / "template.json")
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[4] == str(c / "rootfs"):
                opts = line.rsplit(" ", 1)[1].strip().split(",")
                self.lowerdir = next(o[len("lowerdir="):] for o in opts
                                     if o.startswith("lowerdir="))

    def crun_floor(self) -> None:
        R.log(f"the floor: {self.a.crun} containers of the same bundle by `crun run -d`")
        res = floor.containers(self.work / "template.json", self.lowerdir, self.a.crun,
                               self.work / "floor")
        self.results["crun_floor"] = res
        R.log(f"floor: {res['mem_available_kib_per_container']:.0f} KiB MemAvailable a "
              f"container ({res['containers']} in {res['seconds']} s)")

    def stop(self) -> None:
        """Deletes every group left (a run that failed half way) before berth stops: its
        containers would outlive it."""
        try:
            if self.berth.proc and self.berth.proc.poll() is None:
                left = all_groups(self.eci)
                if left:
                    R.log(f"deleting {len(left)} groups left")
                    self.delete_all(left)
        finally:
            self.berth.stop()
            self.registry.stop()


def all_groups(eci: R.Eci) -> list[str]:
    ids, token = [], None
    while True:
        params = {"Limit": 100}
        if token:
            params["NextToken"] = token
        page = eci.call("DescribeContainerGroups", **params)
        ids += [g["ContainerGroupId"] for g in page.get("ContainerGroups") or []]
        token = page.get("NextToken")
        if not token:
            return ids


def leaks(before: dict, after: dict) -> dict:
    keys = ("mounts", "nsfs_mounts", "cgroups_memory", "cgroups_pids", "veths",
            "net_namespaces_of_processes", "loop_devices", "monitors", "berth_threads",
            "berth_fds")
    return {k: after[k] - before[k] for k in keys if after[k] != before[k]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--berth", type=Path, default=R.REPO / "target" / "release" / "berth")
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--podman", type=int, default=200, help="podman containers (0: none)")
    ap.add_argument("--crun", type=int, default=200,
                    help="containers of berth's bundle by `crun run -d` alone (0: none)")
    ap.add_argument("--soak", type=int, default=0, help="lifecycles instead of the fill")
    ap.add_argument("--soak-seconds", type=float, default=3.0)
    ap.add_argument("--describe-seconds", type=float, default=10.0)
    ap.add_argument("--bridge", default="berthscale")
    ap.add_argument("--subnet", default="10.217.0.0/16")
    ap.add_argument("--serve-arg", action="append", default=[])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--perf", type=Path, metavar="DIR",
                    help="perf record -a -g the create and delete phases into DIR")
    a = ap.parse_args()
    s = Scale(a)
    try:
        s.start()
        if a.soak:
            s.soak()
        else:
            s.groups()
            if a.podman:
                s.podman()
            if a.crun:
                s.crun_floor()
    finally:
        s.stop()
    out = json.dumps(s.results, indent=2)
    if a.json:
        a.json.write_text(out)
    print(out)


if __name__ == "__main__":
    main()
