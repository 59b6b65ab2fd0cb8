"""Host memory as the kernel accounts it, for bench/scale.py and bench/floor.py: MemAvailable
read once the host has settled, /proc/meminfo's categories and the slab caches by name."""

from __future__ import annotations

import os
import time


def mem_available_kib() -> int:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def drop_caches() -> None:
    """Writes back and drops the page cache and reclaimable slab (root only): what a run
    left charged to the memory cgroups of deleted groups holds those cgroups, and the
    kernel's bookkeeping with them, until it is reclaimed; dropped, both readings of a
    comparison start from the same place."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def settled_mem_available_kib(timeout: float = 90.0) -> int:
    """MemAvailable once the kernel has finished what earlier work left it (namespaces and
    cgroups are freed by work queues after their last user), caches dropped first: the
    median of three readings a second apart, taken when two such medians 3 s apart differ
    by less than 2 MiB."""
    drop_caches()
    def median3() -> int:
        vals = []
        for _ in range(3):
            vals.append(mem_available_kib())
            time.sleep(1)
        return sorted(vals)[1]

    end = time.monotonic() + timeout
    last = median3()
    while True:
        time.sleep(3)
        now = median3()
        if abs(now - last) < 2048 or time.monotonic() > end:
            return now
        last = now


MEMINFO_KEYS = ("MemFree", "AnonPages", "Shmem", "Cached", "Buffers", "SReclaimable",
                "SUnreclaim", "KernelStack", "PageTables", "Percpu", "VmallocUsed",
                "Unevictable", "Mlocked")


def meminfo_kib() -> dict:
    """The kernel's own accounts of where host memory is, for the per-group breakdown."""
    out = {}
    for line in open("/proc/meminfo"):
        k, _, v = line.partition(":")
        if k in MEMINFO_KEYS:
            out[k] = int(v.split()[0])
    return out


def slab_kib() -> dict:
    """Kernel object caches by name (needs root): active objects times their size."""
    out = {}
    try:
        lines = open("/proc/slabinfo").read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        out[f[0]] = int(f[1]) * int(f[3]) // 1024
    return out


def deltas_per_item(before: dict, after: dict, n: int) -> dict:
    """/proc/meminfo's categories, after minus before, divided by `n`."""
    return {k: (after.get(k, 0) - before.get(k, 0)) / n for k in MEMINFO_KEYS}
