"""The berth command-line client against a running `berth serve`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import yaml

import support
from support import BERTH_BIN, GROUP_ID_RE, free_port, wait_for


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


def _gid(out: str) -> str:
    ids = GROUP_ID_RE.findall(out)
    assert len(ids) == 1, f"expected one group id on stdout, got:\n{out}"
    return ids[0]


def test_run_wait_reports_a_failing_image(berth, client, images, tracker):
    missing = images.image.rsplit("/", 1)[0] + "/no-such-image:latest"
    res = berth.cli("run", "--wait", "--wait-timeout", "90s", missing, "--name", "cli-wait-bad",
                    "--", "true", timeout=120)
    gid = _gid(res.stdout)
    tracker.add(gid)
    try:
        assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
        # The reason is the pull's own error, with the image's name.
        assert "ErrImagePull" in res.stderr or "ImagePullBackOff" in res.stderr, res.stderr
        assert f'Failed to pull image "{missing}"' in res.stderr, res.stderr
        assert f"berth rm {gid}" in res.stderr, res.stderr
    finally:
        _ok(berth.cli("rm", gid))


def test_run_wait_returns_once_running(berth, client, images, tracker):
    res = berth.cli("run", "--wait", images.image, "--name", "cli-wait-ok", "--",
                    "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done", timeout=120)
    gid = _gid(_ok(res))
    tracker.add(gid)
    try:
        # Running when --wait returned, and it says so on stderr (stdout is the id alone).
        assert support.describe(client, gid)["Status"] == "Running"
        assert res.stdout.strip() == gid, res.stdout
        assert "Running" in res.stderr, res.stderr
        # -d is the default made explicit, and does not go with --wait.
        bad = berth.cli("run", "-d", "--wait", images.image, "--", "true")
        assert bad.returncode != 0 and "--wait" in bad.stderr, bad.stderr
    finally:
        _ok(berth.cli("rm", gid))


def test_ps_all_filters_and_formats(berth, client, images, tracker):
    ended = _gid(_ok(berth.cli("run", images.image, "--name", "cli-ps-ended", "--restart",
                               "Never", "--", "true")))
    tracker.add(ended)
    up = _gid(_ok(berth.cli("run", "--wait", images.image, "--name", "cli-ps-up", "--",
                            "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done",
                            timeout=120)))
    tracker.add(up)
    try:
        support.wait_status(client, ended, ["Succeeded"], 60, never=["Failed"], diag=berth.diag)
        _ok(berth.cli("update", up, "--tag", "team=cli-ps"))

        def ids(*args: str) -> set[str]:
            return {g["ContainerGroupId"] for g in json.loads(_ok(berth.cli("ps", *args,
                                                                              "-o", "json")))}

        # Like docker ps: the ended group only with -a, or when its status is asked for.
        assert up in ids() and ended not in ids()
        assert {up, ended} <= ids("-a")
        assert ids("--filter", "status=Succeeded") >= {ended}
        assert up not in ids("--filter", "status=Succeeded")
        assert ids("--filter", "status=Succeeded", "--filter", "status=Running") >= {up, ended}
        assert ids("-a", "--filter", "name=cli-ps-ended") == {ended}
        assert ids("--filter", "tag:team=cli-ps") == {up}
        assert ids("--filter", "tag:team") >= {up}
        assert ids("--filter", "tag:team=other") == set()
        assert ids("--filter", "tag:team=cli-ps", "--filter", "name=cli-ps-ended", "-a") == set()
        quiet = _ok(berth.cli("ps", "-q", "--filter", "name=cli-ps-up")).split()
        assert quiet == [up], quiet
        for bad in (["--filter", "status=running"], ["--filter", "label=x"]):
            res = berth.cli("ps", *bad)
            assert res.returncode != 0 and "--filter" in res.stderr, res.stderr

        # The table by default, the same objects as JSON and YAML.
        table = _ok(berth.cli("ps", "-a"))
        assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"], table
        assert "\x1b[" not in table, "no colour when stdout is not a terminal"
        listed = yaml.safe_load(_ok(berth.cli("ps", "-a", "-o", "yaml")))
        mine = [g for g in listed if g["ContainerGroupId"] == up]
        assert mine and mine[0]["ContainerGroupName"] == "cli-ps-up", listed
        assert {"Key": "team", "Value": "cli-ps"} in mine[0]["Tags"], mine
        whole = json.loads(_ok(berth.cli("inspect", up, "-o", "json")))
        assert yaml.safe_load(_ok(berth.cli("inspect", up, "-o", "yaml"))) == whole
        assert whole["Containers"][0]["CurrentState"]["State"] == "Running", whole
        summary = _ok(berth.cli("inspect", up, "-o", "table"))
        assert f"ID:" in summary and up in summary and "CONTAINER" in summary, summary
        events = json.loads(_ok(berth.cli("events", ended, "-o", "json")))
        assert any(e["Reason"] == "Started" for e in events), events
        assert yaml.safe_load(_ok(berth.cli("events", ended, "-o", "yaml"))) == events
        assert isinstance(json.loads(_ok(berth.cli("cache", "ls", "-o", "json"))), list)
        usage = yaml.safe_load(_ok(berth.cli("usage", "-o", "yaml")))
        assert "Total" in usage, usage
        accounts = json.loads(support.admin_ok(berth, "account", "ls", "-o", "json"))
        assert any(a["Name"] == "default" for a in accounts), accounts
        keys = yaml.safe_load(support.admin_ok(berth, "key", "ls", "--account", "default",
                                               "-o", "yaml"))
        assert keys and keys[0]["Status"] == "Enabled", keys
    finally:
        _ok(berth.cli("rm", up, ended))


def _bare_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CLI with no --endpoint or --credentials, and none of their variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    return subprocess.run([str(BERTH_BIN), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**clean, **env})


def test_profiles(berth, client, tmp_path):
    creds = json.loads(berth.credentials_path.read_text())
    closed = f"http://127.0.0.1:{free_port()}"
    config_dir = tmp_path / "xdg" / "berth"
    config_dir.mkdir(parents=True)
    config = config_dir / "config.toml"
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(creds))
    config.write_text(f"""
default_profile = "nowhere"

[profiles.nowhere]
endpoint = "{closed}"
credentials = "{key_file}"

[profiles.here]
endpoint = "{berth.url}"
access_key_id = "{creds['AccessKeyId']}"
access_key_secret = "{creds['AccessKeySecret']}"
""")
    config.chmod(0o644)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}

    # A secret that others can read is refused, with the command that fixes it.
    res = _bare_cli("ps", "--profile", "here", env=env)
    assert res.returncode != 0 and f"chmod 600 {config}" in res.stderr, res.stderr
    config.chmod(0o600)

    for how in (["--profile", "here"], []):
        extra = {} if how else {"BERTH_PROFILE": "here"}
        res = _bare_cli("ps", "-o", "json", *how, env={**env, **extra})
        assert res.returncode == 0, res.stderr
        assert isinstance(json.loads(res.stdout), list)

    # The default profile points at a closed port: the error says where berth looked.
    res = _bare_cli("ps", env=env)
    assert res.returncode != 0
    assert f"is `berth serve` running at {closed}" in res.stderr, res.stderr
    assert "profile nowhere" in res.stderr, res.stderr
    # Flags and the environment win over the profile.
    assert _bare_cli("ps", "--endpoint", berth.url, env=env).returncode == 0
    assert _bare_cli("ps", env={**env, "BERTH_ENDPOINT": berth.url}).returncode == 0
    res = _bare_cli("ps", "--profile", "here", "--endpoint", closed, env=env)
    assert res.returncode != 0 and closed in res.stderr, res.stderr

    res = _bare_cli("ps", "--profile", "elsewhere", env=env)
    assert res.returncode != 0 and "its profiles: here, nowhere" in res.stderr, res.stderr

    # A key without access (another account's bill, for a key that is not an operator's):
    # the advice says so and names the key.
    _, key = support.new_account(berth, "cli-403")
    res = _bare_cli("usage", "--account", "*", env={
        **env, "BERTH_ENDPOINT": berth.url, "BERTH_ACCESS_KEY_ID": key["AccessKeyId"],
        "BERTH_ACCESS_KEY_SECRET": key["AccessKeySecret"]})
    assert res.returncode != 0 and "Forbidden.Operator" in res.stderr, res.stderr
    assert f"access key {key['AccessKeyId']} (BERTH_ACCESS_KEY_ID" in res.stderr, res.stderr
    assert "lacks access" in res.stderr, res.stderr

    # A key the server does not know: the advice names the key and where it came from.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"AccessKeyId": "LTAIunknown0000000000", "AccessKeySecret": "x"}))
    res = _bare_cli("ps", "--endpoint", berth.url, "--credentials", str(bad), env=env)
    assert res.returncode != 0 and "InvalidAccessKeyId.NotFound" in res.stderr, res.stderr
    assert "does not know the access key LTAIunknown0000000000" in res.stderr, res.stderr



def test_completion_scripts(tmp_path):
    for shell in ("bash", "zsh", "fish"):
        res = subprocess.run([str(BERTH_BIN), "completion", shell], capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0 and "berth" in res.stdout, res.stderr
    script = tmp_path / "berth.bash"
    script.write_text(subprocess.run([str(BERTH_BIN), "completion", "bash"], capture_output=True,
                                     text=True, check=True).stdout)
    # bash itself loads it and completes a subcommand.
    out = subprocess.run(
        ["bash", "-c", f"source {script}; COMP_WORDS=(berth ins); COMP_CWORD=1; "
                       "COMP_LINE='berth ins'; COMP_POINT=9; _berth berth ins berth; "
                       "printf '%s\\n' \"${COMPREPLY[@]}\""],
        capture_output=True, text=True, timeout=30)
    assert "inspect" in out.stdout.split(), (out.stdout, out.stderr)


def _on_terminal(command: list[str], env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    """`command` with a pseudo-terminal as its stdin, stdout and stderr (util-linux's
    `script`), its output (both streams) in stdout."""
    assert shutil.which("script"), "util-linux's script is not installed"
    return subprocess.run(
        ["script", "-qec", shlex.join(command), "/dev/null"], capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_terminal_output_progress_and_no_color(berth, client, images, tracker, tmp_path):
    cli = [str(BERTH_BIN), "--endpoint", berth.url, "--credentials", str(berth.credentials_path)]
    res = _on_terminal([*cli, "run", "--wait", images.image, "--name", "cli-tty", "--",
                        "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
    # The id, then the spinner redrawing it with the status.
    gid = GROUP_ID_RE.findall(res.stdout)[0]
    tracker.add(gid)
    try:
        assert res.returncode == 0, res.stdout
        assert set(GROUP_ID_RE.findall(res.stdout)) == {gid}, res.stdout
        assert f"{gid}: Running" in res.stdout, res.stdout
        # On a terminal: statuses in colour, unless NO_COLOR says otherwise.
        coloured = _on_terminal([*cli, "ps"]).stdout
        assert "\x1b[32mRunning" in coloured, repr(coloured)
        plain = _on_terminal([*cli, "ps"], env={"NO_COLOR": "1"}).stdout
        assert gid in plain and "\x1b[" not in plain, repr(plain)

        # A pull on a terminal draws indicatif bars (redrawn lines); elsewhere, plain lines.
        state = tmp_path / "state"
        pull = [str(BERTH_BIN), "image", "--state-dir", str(state), "pull", images.image]
        drawn = _on_terminal(pull, env={"NO_COLOR": "1"})
        assert drawn.returncode == 0, drawn.stdout
        assert "total" in drawn.stdout and "\x1b[" in drawn.stdout, repr(drawn.stdout)
        again = subprocess.run([*pull, "--always"], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "\x1b[" not in again.stderr and "\r" not in again.stderr, repr(again.stderr)

        # A cache created with --wait on a terminal shows its progress, then Ready.
        made = _on_terminal([*cli, "cache", "create", "cli-tty-cache", images.image, "--wait"])
        assert made.returncode == 0, made.stdout
        cache = re.search(r"imc-[0-9a-z]+", made.stdout)
        assert cache and f"{cache.group(0)}: Ready" in made.stdout, made.stdout
        _ok(berth.cli("cache", "rm", cache.group(0)))
    finally:
        _ok(berth.cli("rm", gid))
