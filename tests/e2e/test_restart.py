"""Containers outlive a crash of `berth serve`, and a new berth re-adopts them."""

from __future__ import annotations

import re
import time

import support
from support import container, container_of, pretty, wait_for


def test_containers_survive_berth_kill(berth, client, groups, images):
    stamp = int(time.time() * 1000)
    # Each script starts with a no-op `:` command that names it, so ps can find the shell.
    counter_tag = f": e2e-counter-{stamp}"
    exiter_tag = f": e2e-exiter-{stamp}"
    counter_mark = f"-c {counter_tag}"
    exiter_mark = f"-c {exiter_tag}"
    counter = groups.create(
        "e2e-counter",
        [
            container(
                "counter",
                images.image,
                [
                    "sh",
                    "-c",
                    f"{counter_tag}; i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done",
                ],
            )
        ],
        restart_policy="Always",
    )
    exiter = groups.create(
        "e2e-exiter",
        [container("exiter", images.image, ["sh", "-c", f"{exiter_tag}; sleep 8; exit 5"])],
        restart_policy="Never",
    )
    support.wait_status(client, counter, ["Running"], 60, never=["Failed"], diag=berth.diag)
    support.wait_status(client, exiter, ["Running"], 60, never=["Failed"], diag=berth.diag)

    counter_pids = wait_for("the counter's shell", lambda: support.pids_matching(counter_mark), 10)
    exiter_pids = wait_for("the exiter's shell", lambda: support.pids_matching(exiter_mark), 10)
    assert len(counter_pids) == 1, f"expected one counter shell, got {counter_pids}"
    wait_for("a few lines", lambda: _numbers(support.logs(client, counter, "counter")), 10)
    before_kill = max(_numbers(support.logs(client, counter, "counter", tail=5)))

    berth.kill()
    killed_at = time.monotonic()
    # The containers do not depend on the server process.
    running = support.pids_matching(counter_mark) + support.pids_matching(exiter_mark)
    assert set(counter_pids + exiter_pids) <= set(running), (
        f"container processes died with berth: before {counter_pids + exiter_pids}, "
        f"after {running}\n{berth.diag()}"
    )

    # The exiter finishes while berth is down.
    wait_for(
        "the exiter to exit while berth is down",
        lambda: not [p for p in exiter_pids if support.pid_alive(p)],
        15,
    )
    time.sleep(max(0.0, 9 - (time.monotonic() - killed_at)))
    down_for = time.monotonic() - killed_at
    assert support.pid_alive(counter_pids[0]), "the counter died while berth was down"

    berth.start()

    group = support.wait_status(
        client, counter, ["Running"], 30, never=["Failed", "Succeeded"], diag=berth.diag
    )
    c = container_of(group, "counter")
    assert c.get("RestartCount") == 0, pretty(group)
    assert (c.get("CurrentState") or {}).get("State") == "Running", pretty(group)
    assert support.pids_matching(counter_mark) == counter_pids, "the counter was restarted"

    # The log kept flowing while berth was down: every line is there, and no pause in time.
    stamped = support.logs(client, counter, "counter", tail=2000, timestamps=True)
    entries = []
    for line in stamped.splitlines():
        ts = support.parse_timestamp(line)
        m = re.search(r"line (\d+)\s*$", line)
        assert ts is not None and m, f"unexpected log line {line!r}"
        entries.append((ts, int(m.group(1))))
    numbers = [n for _, n in entries]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (
        f"log lines missing or repeated: {_gaps(numbers)}"
    )
    assert numbers[0] == 1, f"log starts at line {numbers[0]}"
    # ~5 lines a second; at least 3 a second must have been logged while berth was down.
    assert numbers[-1] >= before_kill + int(down_for * 3), (before_kill, numbers[-1], down_for)
    worst = max((b[0] - a[0]).total_seconds() for a, b in zip(entries, entries[1:], strict=False))
    assert worst < 2.0, (
        f"the log paused for {worst:.1f}s (lines were held back while berth was down)"
    )

    group = support.wait_status(client, exiter, ["Failed"], 30, diag=berth.diag)
    state = container_of(group, "exiter").get("CurrentState") or {}
    assert state.get("State") == "Terminated" and state.get("ExitCode") == 5, pretty(group)
    assert container_of(group, "exiter").get("RestartCount") == 0, pretty(group)


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"line (\d+)", text)]


def _gaps(numbers: list[int]) -> str:
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:], strict=False) if b != a + 1]
    return ", ".join(f"{a}->{b}" for a, b in gaps[:10]) or "none"
