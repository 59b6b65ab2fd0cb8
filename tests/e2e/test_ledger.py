"""The metering ledger (ADR 0010) against the wall clock: one billed period per group from
Pending to its last container's exit, settled from the monitor's exit record when the group
ended while berth was killed with -9, and closed by a delete. Read from berth.db as the
operator would (read-only)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import support
from support import container, container_of, pretty, wait_for


def periods(berth, gid: str) -> list[dict]:
    return support.ledger_periods(berth.state_dir, gid)


def t(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def test_a_group_that_ends_while_berth_is_down_is_billed_to_its_exit(berth, client, groups, images):
    tag = f": e2e-ledger-{int(time.time() * 1000)}"
    gid = groups.create(
        "e2e-ledger-exit",
        [container("job", images.image, ["sh", "-c", f"{tag}; sleep 3; exit 0"])],
        restart_policy="Never",
        cpu=1.0,
        memory=2.0,
        ephemeral_storage=40,
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    open_ = periods(berth, gid)
    assert len(open_) == 1 and open_[0]["ended"] is None, open_
    assert (open_[0]["cpu_milli"], open_[0]["memory_mib"], open_[0]["storage_gib"]) == (
        1000, 2048, 10), open_
    pids = wait_for("the job's shell", lambda: support.pids_matching(f"-c {tag}"), 10)

    berth.kill()
    wait_for("the job to exit while berth is down",
             lambda: not [p for p in pids if support.pid_alive(p)], 15)
    time.sleep(3)  # berth stays down well after the exit
    restarted = datetime.now(timezone.utc)
    berth.start()

    group = support.wait_status(client, gid, ["Succeeded"], 30, diag=berth.diag)
    state = container_of(group, "job").get("CurrentState") or {}
    finished, started = t(state.get("FinishTime")), t(state.get("StartTime"))
    assert finished and started, pretty(group)
    rows = periods(berth, gid)
    assert len(rows) == 1, rows
    p_start, p_end = t(rows[0]["started"]), t(rows[0]["ended"])
    assert p_end is not None, rows
    print(f"ledger: period {p_start.isoformat()} .. {p_end.isoformat()}; container "
          f"{started.isoformat()} .. {finished.isoformat()}; berth back at {restarted.isoformat()}")
    # Settled at the exit (the API shows whole seconds), not at berth's return.
    assert abs((p_end - finished).total_seconds()) <= 1.0, (rows, state)
    assert p_end < restarted, (rows, restarted.isoformat())
    # Billed from Pending: before the container started, and not long before on a local pull.
    assert p_start <= started + timedelta(seconds=1), (rows, state)
    assert (started - p_start).total_seconds() < 10, (rows, state)


def test_a_delete_closes_the_period(berth, client, groups, images):
    gid = groups.create(
        "e2e-ledger-delete",
        [container("idle", images.image, ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"])],
        restart_policy="Always",
    )
    support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    asked = datetime.now(timezone.utc)
    support.delete(client, gid)
    wait_for("the group to go", lambda: support.describe(client, gid) is None, 60,
             diag=berth.diag)
    gone = datetime.now(timezone.utc)
    rows = periods(berth, gid)
    assert len(rows) == 1, rows
    end = t(rows[0]["ended"])
    assert end is not None and asked.replace(microsecond=0) <= end <= gone, (rows, asked, gone)
    # Deleting a finished group, or one never started, adds nothing.
    assert t(rows[0]["started"]) < end
