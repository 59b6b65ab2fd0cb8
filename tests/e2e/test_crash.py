"""Fault injection: `kill -9` of `berth serve` at random moments of bursts of creates and
deletes, then a restart on the same state directory.

Every round: a burst of CreateContainerGroup calls (more groups than the namespace pool
holds, so groups are wired both from the pool and by CNI ADD) and deletes of groups of
earlier rounds from 8 SDK clients, `kill -9` at a random moment, sometimes a second kill
while berth resumes, then a restart. After it: every create that got an id is Running (none
Failed), every delete that got an answer is gone, each container runs exactly once under
exactly one monitor. At the end everything is deleted, berth stops gracefully, and the host
holds no mount, netns, veth, cgroup, process or address reservation of any of it.

The run is seeded; the seed is printed, and `BERTH_CRASH_SEED=N BERTH_CRASH_ROUNDS=M`
replays or lengthens it. This berth has a bridge and subnet of its own, so it never meets
the berth of the other tests.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alibabacloud_eci20180808 import models

import support
from support import Berth, container, pretty, wait_for

ROUNDS = int(os.environ.get("BERTH_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("BERTH_CRASH_SEED", str(random.randrange(1 << 32))))
BRIDGE = "berthk0"
SUBNET = "10.214.0.0/16"
POOL = 4
CLIENTS = 8


class Burst:
    """One round's requests and what berth answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, str] = {}  # group id -> name: the create was answered
        self.deleted: set[str] = set()  # the delete was answered
        # The delete was sent and its answer lost: berth may have taken it before the kill.
        self.maybe_deleted: set[str] = set()
        self.unanswered: list[str] = []


def _create(server: Berth, image: str, registry: str, name: str, policy: str) -> str:
    tag = f": {name}"
    req = models.CreateContainerGroupRequest(
        region_id=support.REGION,
        container_group_name=name,
        restart_policy=policy,
        termination_grace_period_seconds=3,
        plain_http_registry=registry,
        container=[
            container(
                "c",
                image,
                ["sh", "-c", f"{tag}; trap 'exit 0' TERM; while :; do sleep 1; done"],
                cpu=0.25,
                memory=0.25,
            )
        ],
    )
    return server.client().create_container_group(req).body.container_group_id


def _burst(server: Berth, images, rng: random.Random, rnd: int, alive: dict[str, str]) -> Burst:
    burst = Burst()
    creates = rng.randint(6, 14)
    victims = rng.sample(sorted(alive), k=min(len(alive), rng.randint(0, 4)))
    kill_after = rng.uniform(0.0, 1.2)
    jobs: list[tuple[str, str, str]] = [
        ("create", f"crash-{rnd}-{i}", rng.choice(["Always", "OnFailure", "Never"]))
        for i in range(creates)
    ] + [("delete", gid, "") for gid in victims]
    rng.shuffle(jobs)

    def run(job: tuple[str, str, str]) -> None:
        kind, what, policy = job
        try:
            if kind == "create":
                gid = _create(server, images.image, images.registry, what, policy)
                with burst.lock:
                    burst.created[gid] = what
            else:
                support.delete(server.client(), what)
                with burst.lock:
                    burst.deleted.add(what)
        except Exception as exc:  # noqa: BLE001 - a request cut short by the kill
            with burst.lock:
                burst.unanswered.append(f"{kind} {what}: {type(exc).__name__}")
                if kind == "delete":
                    burst.maybe_deleted.add(what)

    killer = threading.Timer(kill_after, server.kill)
    killer.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(run, jobs))
    killer.join()
    print(
        f"round {rnd}: kill after {kill_after:.2f}s, {len(burst.created)}/{creates} creates "
        f"and {len(burst.deleted)}/{len(victims)} deletes answered"
    )
    return burst


def _pids(needle: str) -> list[int]:
    """Live processes whose full command line (from /proc, never cut) contains needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and needle in _cmdline(int(entry.name)):
            if support.pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return sorted(found)


def _container_processes(tag: str) -> list[int]:
    return _pids(f"-c {tag};")


def _monitor_of(pid: int) -> int | None:
    """The monitor of a container's init: its parent (the monitor is the runtime's subreaper),
    when that is a berth monitor (one of its own, or one its account's containers share)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat[stat.rfind(")") + 2:].split()[1])
        comm = Path(f"/proc/{parent}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return parent if comm in ("berth-monitor", "berth") else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _verify(server: Berth, alive: dict[str, str], gone: set[str], rnd: int) -> None:
    client = server.client()
    # Creates whose answer the kill swallowed may exist: then they must work like the rest.
    listed = {g["ContainerGroupId"]: g for g in support.list_groups(client)}
    for gid, g in listed.items():
        name = g.get("ContainerGroupName") or ""
        if gid not in alive and gid not in gone and name.startswith("crash-"):
            alive[gid] = name
    for gid, name in sorted(alive.items()):
        support.wait_status(
            client, gid, ["Running"], 90, never=["Failed", "Succeeded"], diag=server.diag
        )
    for gid in sorted(gone):
        wait_for(
            f"round {rnd}: deleted group {gid} to be gone",
            lambda gid=gid: support.describe(client, gid) is None,
            60,
            diag=server.diag,
        )
    for gid, name in sorted(alive.items()):
        shells = wait_for(
            f"the shell of {name}", lambda name=name: _container_processes(f": {name}"), 15
        )
        assert len(shells) == 1, f"round {rnd}: {name} ({gid}) runs {len(shells)} times"
        monitor = _monitor_of(shells[0])
        assert monitor is not None and support.pid_alive(monitor), (
            f"round {rnd}: {name} ({gid}) has no monitor; its processes:\n"
            + "\n".join(f"{p} {_cmdline(p)}" for p in _pids(gid))
        )
        group = support.describe(client, gid, with_event=True)
        failed = [e for e in (group or {}).get("Events") or [] if "duplicate allocation" in str(e)]
        assert not failed, pretty(group)
    _verify_ledger(server, alive, gone, rnd)


def _verify_ledger(server: Berth, alive: dict[str, str], gone: set[str], rnd: int) -> None:
    """The metering ledger after the crash: a running group has one open period, a deleted
    one none open, and no group two periods at once (ADR 0010)."""
    by_group: dict[str, list[dict]] = {}
    for p in support.ledger_periods(server.state_dir):
        by_group.setdefault(p["group_id"], []).append(p)
    for gid in alive:
        periods = by_group.get(gid, [])
        assert [p["ended"] for p in periods] == [None], f"round {rnd}: {gid} billed {periods}"
    for gid in gone:
        periods = by_group.get(gid, [])
        assert all(p["ended"] for p in periods), f"round {rnd}: deleted {gid} billed {periods}"
    for gid, periods in by_group.items():
        ends = [(p["started"], p["ended"] or "~") for p in periods]
        for (s1, e1), (s2, _) in zip(ends, ends[1:], strict=False):
            assert e1 <= s2, f"round {rnd}: {gid} has overlapping periods {periods}"
        assert all(s <= e for s, e in ends), f"round {rnd}: {gid} has a period ending first"


def test_kill_9_during_bursts_fails_no_accepted_group(images):
    print(f"crash test seed {SEED}, {ROUNDS} rounds (BERTH_CRASH_SEED={SEED} replays it)")
    alive: dict[str, str] = {}
    with support.own_berth("crash", bridge=BRIDGE, subnet=SUBNET, netns_pool=POOL) as server:
        # Every group of the run: none may leave anything after the graceful stop.
        everything = server.tracker
        try:
            for rnd in range(ROUNDS):
                rng = random.Random(f"{SEED}-{rnd}")
                burst = _burst(server, images, rng, rnd, alive)
                everything |= set(burst.created)
                for gid in burst.deleted:
                    alive.pop(gid, None)
                alive.update(burst.created)
                server.start()
                if rng.random() < 0.3:
                    # A second crash while berth resumes what the first one cut short.
                    time.sleep(rng.uniform(0.0, 0.4))
                    server.kill()
                    print(f"round {rnd}: killed again while resuming")
                    server.start()
                # A delete taken before the kill is carried out (gone or going); one that
                # was not leaves the group as it was.
                for gid in burst.maybe_deleted:
                    g = support.describe(server.client(), gid)
                    if g is None or g["Status"] == "Terminating":
                        alive.pop(gid, None)
                        burst.deleted.add(gid)
                _verify(server, alive, burst.deleted, rnd)
                everything |= set(alive)

            client = server.client()
            for gid in sorted(alive):
                support.delete(client, gid)
            wait_for(
                "every group to be deleted",
                lambda: not support.list_groups(client),
                120,
                diag=server.diag,
            )
            still_billed = [p for p in support.ledger_periods(server.state_dir) if not p["ended"]]
            assert not still_billed, f"periods open after every group was deleted: {still_billed}"
        except BaseException:
            print(server.diag(120))
            raise


def _on_small_tmpfs(base: Path, args: list[str]) -> Berth:
    """A berth whose state directory is on a tmpfs of 96 MiB at BASE/disk."""
    disk = base / "disk"
    disk.mkdir()
    subprocess_run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)])
    return Berth(disk / "state", base / "berth.log", args)


def test_a_full_disk_fails_requests_cleanly_and_berth_recovers(images):
    """With the state directory's file system full, a create either fails with an
    ECI-shaped error and leaves nothing, or is accepted and starts once there is room; a
    running group keeps running; berth serves again when space returns."""
    from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

    with support.own_berth(
        "full", bridge=BRIDGE, subnet=SUBNET, make=_on_small_tmpfs,
        after_stop=lambda server: subprocess_run(
            ["umount", "-l", str(server.base / "disk")], check=False),
    ) as server:
        disk = server.base / "disk"
        created = server.tracker
        try:
            client = server.client()
            first = _create(server, images.image, images.registry, "full-0", "Always")
            created.add(first)
            support.wait_status(client, first, ["Running"], 60, never=["Failed"],
                                diag=server.diag)

            filler = disk / "filler"
            with open(filler, "wb") as f:
                chunk = b"\0" * (1 << 20)
                try:
                    while True:
                        f.write(chunk)
                        f.flush()
                except OSError:
                    pass
            accepted = None
            try:
                accepted = _create(server, images.image, images.registry, "full-1", "Always")
                created.add(accepted)
                print("with the disk full, the create was accepted")
            except (ClientException, ServerException) as exc:
                print(f"with the disk full, the create was refused: {exc.code}: {exc.message}")
                assert exc.code == "ServiceUnavailable" and "disk" in exc.message, exc
                assert exc.request_id, exc
                names = [g.get("ContainerGroupName") for g in support.list_groups(client)]
                assert "full-1" not in names, "a refused create left a group"
            assert support.describe(client, first)["Status"] == "Running"

            filler.unlink()
            later = _create(server, images.image, images.registry, "full-2", "Always")
            created.add(later)
            for gid in sorted(created):
                support.wait_status(client, gid, ["Running"], 90, never=["Failed"],
                                    diag=server.diag)

            for gid in sorted(created):
                support.delete(client, gid)
            wait_for("the groups to be deleted", lambda: not support.list_groups(client), 60)
        except BaseException:
            print(server.diag(120))
            raise


def subprocess_run(cmd: list[str], check: bool = True) -> None:
    subprocess.run(cmd, check=check, capture_output=True)


def _zygotes_of(pid: int) -> list[int]:
    """The monitor zygotes `berth serve` `pid` started (its children with `--zygote`)."""
    found = []
    for p in support.pids_matching("--zygote"):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
            found.append(p)
    return found


def test_monitors_come_from_a_zygote_that_comes_back(images):
    """Monitors are forked from berth's monitor zygote (a group's container under the
    monitor its account's containers share, `--shared` on its command line); a zygote killed
    with -9 is replaced at the next start, and a graceful stop of berth ends it."""
    zygote: list[int] = []

    def gone_after_stop(_server: Berth) -> None:
        for p in zygote:
            wait_for(f"zygote {p} to end with berth", lambda p=p: not support.pid_alive(p), 10)

    with support.own_berth("zygote", bridge="berthm0", subnet="10.227.0.0/16",
                           after_stop=gone_after_stop) as server:
        g = support.Groups(server, images, server.tracker)
        client = server.client()
        for round_ in range(2):
            tag = f"zyg-{round_}"
            script = f": {tag}; trap 'exit 0' TERM; while :; do sleep 1; done"
            gid = g.create(tag, [container("c", images.image, ["sh", "-c", script])])
            support.wait_status(client, gid, ["Running"], 60, diag=server.diag)
            zygote[:] = _zygotes_of(server.pid)
            assert len(zygote) == 1, f"zygotes of berth: {zygote}"
            shells = wait_for(f"the shell of {tag}", lambda: _container_processes(f": {tag}"), 15)
            monitor = _monitor_of(shells[0])
            assert monitor is not None, f"the parent of {tag}'s init is no monitor"
            assert "--shared" in _cmdline(monitor), _cmdline(monitor)
            assert monitor not in zygote
            if round_ == 0:
                os.kill(zygote[0], 9)
                wait_for("the zygote to be gone", lambda: not support.pid_alive(zygote[0]), 10)
        # The first group's monitor outlived the zygote it came from.
        first = support.describe(client, g.created[0])
        assert first is not None and first["Status"] == "Running", first
