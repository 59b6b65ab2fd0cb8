"""The berth command-line client against a running `berth serve`."""

from __future__ import annotations

import support
from support import GROUP_ID_RE, wait_for


def _ok(res) -> str:
    __tracebackhide__ = True
    assert res.returncode == 0, (
        f"`{' '.join(res.args)}` exited with {res.returncode}\n"
        f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    )
    return res.stdout


def test_run_ps_logs_rm(berth, client, images, tracker):
    out = _ok(
        berth.cli(
            "run",
            images.image,
            "--name",
            "cli-test",
            "--cpu",
            "0.5",
            "--memory",
            "1",
            "-e",
            "A=B",
            "--",
            "sh",
            "-c",
            "echo $A; sleep 30",
        )
    )
    ids = GROUP_ID_RE.findall(out)
    assert len(ids) == 1, f"expected the group id on stdout, got:\n{out}"
    gid = ids[0]
    tracker.add(gid)

    try:
        listing = _ok(berth.cli("ps"))
        assert gid in listing, listing
        assert "cli-test" in listing, listing

        group = support.describe(client, gid)
        assert group is not None and group["ContainerGroupName"] == "cli-test", group

        def logged_b() -> bool:
            res = berth.cli("logs", gid)
            return res.returncode == 0 and "B" in res.stdout.split()

        wait_for(f"`berth logs {gid}` to print B", logged_b, 60, 1, berth.diag)

        _ok(berth.cli("rm", gid))
        wait_for(
            f"{gid} to disappear",
            lambda: support.describe(client, gid) is None,
            60,  # `sleep 30` ignores SIGTERM as PID 1: up to the default 30s grace period
            diag=berth.diag,
        )
        assert gid not in _ok(berth.cli("ps"))
    finally:
        if support.describe(client, gid) is not None:
            support.delete(client, gid)


def test_update_restart_inspect(berth, client, images, tracker):
    out = _ok(berth.cli("run", images.image, "--name", "cli-upd", "--cpu", "1", "--memory", "2",
                        "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"))
    gid = GROUP_ID_RE.findall(out)[0]
    tracker.add(gid)
    try:
        support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
        _ok(berth.cli("update", gid, "--memory", "4", "--tag", "team=a"))
        group = support.describe(client, gid)
        assert group["Memory"] == 4.0, support.pretty(group)
        assert {"Key": "team", "Value": "a"} in group["Tags"], support.pretty(group)
        res = berth.cli("update", gid)
        assert res.returncode != 0 and "nothing to update" in res.stderr, res.stderr
        support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
        _ok(berth.cli("restart", gid))
        assert support.describe(client, gid)["Status"] in ("Restarting", "Running")
        support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
        text = _ok(berth.cli("inspect", gid, "--format", "yaml"))
        assert f'"ContainerGroupId": "{gid}"\n' in text, text
        assert '"Events":\n' in text, text
        assert '"Restarting"' in text, text
        import json
        assert json.loads(_ok(berth.cli("inspect", gid)))["ContainerGroupId"] == gid
    finally:
        _ok(berth.cli("rm", gid))


def test_run_flags_reach_the_container(berth, client, images, tracker, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# settings\nFROM_FILE=1\nBOTH=file\n")
    out = _ok(berth.cli(
        "run", images.image, "--name", "cli-flags", "--env-file", str(env_file), "-e", "BOTH=flag",
        "--user", "1000:1001", "--read-only", "-w", "/data", "-v", "data:/data",
        "--tmpfs", "/scratch:size=16Mi", "--hostname", "flagged",
        "--health-cmd", "test -f /data/healthy", "--health-interval", "1s", "--health-retries", "1",
        "--", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"))
    gid = GROUP_ID_RE.findall(out)[0]
    tracker.add(gid)
    try:
        support.wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
        name = "cli-flags"
        got = support.exec_sh(client, gid, "echo $FROM_FILE $BOTH; id -u; id -g; pwd; hostname",
                              name=name).split()
        assert got == ["1", "flag", "1000", "1001", "/data", "flagged"], got
        assert "Read-only" in support.exec_sh(client, gid, "touch /x 2>&1; true", name=name)
        assert support.exec_sh(client, gid, "touch /data/x && echo ok", name=name).strip() == "ok"
        df = support.exec_sh(client, gid, "df -k /scratch | tail -1", name=name).split()
        assert df[1] == str(16 * 1024), df
        # --health-cmd is the readiness probe: Ready follows it.
        ready = lambda: support.container_of(support.describe(client, gid), name)["Ready"]
        assert not ready()
        support.exec_sh(client, gid, "touch /data/healthy", name=name)
        wait_for("the health check to pass", ready, 30, 0.5, berth.diag)
        for bad in (["-v", "/etc:/etc"], ["--user", "root"], ["--tmpfs", "relative"]):
            res = berth.cli("run", images.image, *bad, "--", "true")
            assert res.returncode != 0 and bad[0] in res.stderr, res.stderr
    finally:
        _ok(berth.cli("rm", gid))
