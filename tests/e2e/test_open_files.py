"""berth at its open-files limit, on a berth of its own (bridge berthf0, 10.240.0.0/16)
started as a service manager would start it, with a low soft limit (256) under a hard one
that leaves room for three containers: berth raises the soft limit to the hard one, offers
container slots as a dimension of the node's capacity (limit − 512 − pooled namespaces −
--max-connections), and a group beyond them waits in Scheduling with the reason (or fails at
once when it is larger than the node) instead of starting into EMFILE; API clients beyond
--max-connections wait in the listen backlog instead of taking the containers' files. berth
answers throughout and never holds more files than its limit."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import support
from support import BERTH_BIN, pretty, wait_for, wait_status

BRIDGE = "berthf0"
SUBNET = "10.240.0.0/16"
POOL = 2
CONNECTIONS = 16
SLOTS = 3
# berth's own reserve (crates/berth/src/open_files.rs).
RESERVE = 512
HARD = RESERVE + POOL + CONNECTIONS + SLOTS
SOFT = 256
SLEEP = ["sh", "-c", "while true; do sleep 1; done"]


def limited(base: Path, args: list[str]) -> support.Berth:
    b = support.Berth(base / "state", base / "berth.log", args)
    b.exec_prefix = ["prlimit", f"--nofile={SOFT}:{HARD}", "--"]
    return b


@pytest.fixture(scope="module")
def server(host_ready, images):
    with support.own_berth(
        "nofile", ["--max-connections", str(CONNECTIONS), "--schedule-timeout", "10m"],
        bridge=BRIDGE, subnet=SUBNET, netns_pool=POOL, make=limited,
    ) as s:
        yield s


@pytest.fixture
def groups(server, images):
    g = support.Groups(server, images, server.tracker)
    yield g
    g.delete_all()


def soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-files line in /proc/{pid}/limits")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def create(groups, name: str, n: int = 1) -> str:
    return groups.create(
        name,
        [support.container(f"c{i}", groups.images.image, SLEEP) for i in range(n)],
        termination_grace_period_seconds=1,
    )


def test_the_soft_limit_is_raised_and_the_slots_are_reported(server):
    assert soft_limit(server.pid) == HARD
    node = subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(server.state_dir), "node"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert node.returncode == 0, node.stderr
    capacity = json.loads(node.stdout)["capacity"]
    assert capacity["open_files_limit"] == HARD, pretty(capacity)
    assert capacity["container_slots"] == SLOTS, pretty(capacity)


def test_a_group_beyond_the_slots_waits_and_runs_when_one_is_freed(server, groups):
    client = server.client()
    running = [create(groups, f"e2e-nofile-{i}") for i in range(SLOTS)]
    for gid in running:
        wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=server.diag)
    waiter = create(groups, "e2e-nofile-waiter")
    assert support.describe(client, waiter)["Status"] == "Scheduling"
    msg = [e for e in support.events_of(client, waiter)
           if e.get("Reason") == "FailedScheduling"][-1]["Message"]
    assert "insufficient container slots" in msg and "open-files limit" in msg, msg
    assert "free of" in msg and f"{SLOTS} container slots" in msg, msg
    # Larger than the node's slots: ScheduleFailed at once, with ECI's NoStock.
    huge = create(groups, "e2e-nofile-huge", n=SLOTS + 1)
    wait_status(client, huge, ["ScheduleFailed"], 30, diag=server.diag)
    # berth stayed within its limit and answers; a freed slot goes to the waiter.
    assert open_files(server.pid) < HARD
    support.delete(client, running[0])
    wait_status(client, waiter, ["Running"], 60, never=["Failed", "ScheduleFailed"],
                diag=server.diag)
    assert support.describe(client, running[1])["Status"] == "Running"


def test_clients_beyond_max_connections_wait_instead_of_taking_files(server):
    client = server.client()
    idle = []
    try:
        # More idle connections than berth serves: the surplus stays in the backlog.
        for _ in range(CONNECTIONS + 40):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        wait_for("berth to hold its bounded connections",
                 lambda: open_files(server.pid) <= HARD, 10, 0.2, server.diag)
        answered = threading.Event()

        def call() -> None:
            # A connection of its own (the SDK's pool may hold one berth already serves); any
            # answer, the unsigned request's ECI error included, means it was served.
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("GET", "/?Action=DescribeContainerGroups")
            conn.getresponse().read()
            conn.close()
            answered.set()

        t = threading.Thread(target=call, daemon=True)
        t.start()
        assert not answered.wait(1.5), "a client past --max-connections was served at once"
        assert open_files(server.pid) < HARD
    finally:
        for s in idle:
            s.close()
    # The idle ones gone, the waiting client is served, and so is the next.
    assert answered.wait(30), server.diag()
    support.list_groups(client)
    assert server.running()
