"""A soak of 200 group lifecycles (create, Running, delete, gone), 8 at a time, on a berth of
its own (bridge berthz0, 10.237.0.0/16): what berth and the host hold afterwards equals what
they held before, counted once the namespace pool is full again (berth's open files other
than client connections, mounts, cgroups, the bridge's veths, the monitors, network
namespaces of processes), and berth's threads and resident memory stay within bounds (idle
pool threads may linger). Counts, not timings: bench/scale.py --soak runs the
5,000-lifecycle version and times it."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from pathlib import Path

import pytest

import support
from support import pretty, wait_for

BRIDGE = "berthz0"
SUBNET = "10.237.0.0/16"
POOL = 8
LIFECYCLES = 200
AT_ONCE = 8
# Allocator slack and caches that fill once (the rendered-group cache, SQLite's page cache).
RSS_GROWTH_KIB = 16 * 1024


@pytest.fixture(scope="module")
def soaked(host_ready, images):
    with support.own_berth("soak", [], bridge=BRIDGE, subnet=SUBNET, netns_pool=POOL) as s:
        yield s


def berth_pid(server) -> int:
    return server.proc.pid


def status_of(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "Threads"):
            out[k] = int(v.split()[0])
    return out


def counters(server) -> dict:
    pid = berth_pid(server)
    st = status_of(pid)
    mountinfo = Path("/proc/1/mountinfo").read_text().splitlines()
    netns = set()
    monitors = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            netns.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) == b"berth-monitor":
            monitors += 1
    cgroups = sum(len(dirs) for _r, dirs, _f in os.walk("/sys/fs/cgroup/memory"))
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            # Client connections are the clients' to close (the SDK keeps them alive).
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                fds += 1
        except OSError:
            pass
    return {
        "fds_not_sockets": fds,
        "threads": st["Threads"],
        "rss_kib": st["VmRSS"],
        "mounts": len(mountinfo),
        "cgroups_memory": cgroups,
        "veths": len(support.bridge_ports(BRIDGE)),
        "monitors": monitors,
        "net_namespaces": len(netns),
    }


def settled(server, threads: int | None = None) -> dict:
    """The counters once the pool is full again and idle threads have gone (tokio's
    blocking threads end after 10 s idle): at most `threads` of them when given, else after
    12 s."""
    state = server.state_dir

    def full() -> bool:
        return len(support.pool_veths(state)) >= POOL and len(support.bridge_ports(BRIDGE)) >= POOL

    wait_for("the namespace pool to refill", full, 120, diag=server.diag)
    if threads is None:
        time.sleep(12)
    else:
        deadline = time.monotonic() + 30
        while counters(server)["threads"] > threads and time.monotonic() < deadline:
            time.sleep(1)
    return counters(server)


def lifecycle(server, images, i: int | str) -> None:
    client = server.client()
    gid = support.Groups(server, images, server.tracker).create(
        f"e2e-soak-{i}",
        [support.container("c", images.image, ["sleep", "3600"])],
        cpu=0.25,
        memory=0.5,
        termination_grace_period_seconds=0,
    )
    support.wait_status(client, gid, ["Running"], 120, never=["Failed"], diag=server.diag)
    support.delete(client, gid)
    wait_for(f"{gid} to be gone", lambda: support.describe(client, gid) is None, 120, diag=server.diag)
    server.tracker.discard(gid)


def thread_names(pid: int) -> dict:
    names: dict = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            n = Path(f"/proc/{pid}/task/{t}/comm").read_text().strip()
        except OSError:
            continue
        names[n] = names.get(n, 0) + 1
    return names


def test_200_lifecycles_leave_nothing_behind(soaked, images):
    # One lifecycle first: the image, the store and the caches are warm.
    lifecycle(soaked, images, "warm")
    before = settled(soaked)
    with cf.ThreadPoolExecutor(AT_ONCE) as ex:
        list(ex.map(lambda i: lifecycle(soaked, images, i), range(LIFECYCLES)))
    after = settled(soaked, before["threads"])
    exact = {
        k: (before[k], after[k])
        for k in before
        if k not in ("rss_kib", "threads") and before[k] != after[k]
    }
    assert not exact, (
        f"changed over {LIFECYCLES} lifecycles (before, after): {pretty(exact)}; "
        f"berth's threads now: {thread_names(berth_pid(soaked))}"
    )
    # tokio's idle blocking threads end after 10 s unless periodic work wakes them, so a few
    # may outlive the burst (bounded by its concurrency); a thread per lifecycle would not.
    assert after["threads"] <= before["threads"] + AT_ONCE, (
        f"berth's threads went from {before['threads']} to {after['threads']}: "
        f"{thread_names(berth_pid(soaked))}"
    )
    grew = after["rss_kib"] - before["rss_kib"]
    assert grew < RSS_GROWTH_KIB, f"berth's RSS grew by {grew} KiB: {pretty((before, after))}"
    support.assert_no_leftovers(soaked.state_dir, [], bridge=BRIDGE)
