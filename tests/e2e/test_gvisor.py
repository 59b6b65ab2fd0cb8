"""The gvisor runtime class (`RuntimeClassName=gvisor`, gVisor's runsc): a group runs in one
sandbox (one sentry, however many containers) with its limits enforced on the host's cgroups,
its logs, exec (sync and TTY) and its own address; new files of a config volume reach a
running container; two containers share an emptyDir and localhost, one restarts while the other runs on; an emptyDir outlives a restart of its container and an exec probe makes it Ready;
it survives a kill -9 of berth and is re-adopted; its deletion leaves nothing.
The account's policy refuses a class it may not use (403), an unknown class is a 400.
The warm pool (`--gvisor-pool`): a group takes a booted sandbox with its namespace, gets its
cgroup, limits and host name, never shares it; a pooled sandbox that died is not handed out;
a graceful stop and a restart after kill -9 leave nothing of the pool.

A berth of its own (bridge berthg0, 10.222.0.0/16). Fails, never skips, without runsc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import exec_sh, pretty, wait_for, wait_status
from test_observe import Channels, _exec
from test_ports import call, raw_group

BRIDGE = "berthg0"
SUBNET = "10.222.0.0/16"
SERVE = ["--default-runtime-class", "runc"]
# Serves /etc on 8080, logs a line, runs until stopped.
WEB = "echo hello-gvisor; httpd -f -p 8080 -h /etc & while true; do sleep 1; done"


@pytest.fixture(scope="module")
def gv(host_ready, images):
    if shutil.which("runsc") is None:
        pytest.fail("runsc is not installed (apt-get install runsc)")
    with support.own_berth("gvisor", SERVE, bridge=BRIDGE, subnet=SUBNET) as server:
        yield server


def create(server, images, name: str, script: str = WEB, cls: str | None = "gvisor",
           **extra: str) -> str:
    query = {
        "ContainerGroupName": name,
        "RestartPolicy": "Never",
        "TerminationGracePeriodSeconds": "2",
        "PlainHttpRegistry": images.registry,
        "Cpu": "0.5",
        "Memory": "0.5",
        "Container.1.Name": "c",
        "Container.1.Image": images.image,
        "Container.1.Command.1": "sh",
        "Container.1.Command.2": "-c",
        "Container.1.Arg.1": script,
        "Container.1.Cpu": "0.5",
        "Container.1.Memory": "0.5",
        **extra,
    }
    if cls is not None:
        query["RuntimeClassName"] = cls
    gid = call(server.client(), "CreateContainerGroup", query)["ContainerGroupId"]
    server.tracker.add(gid)
    return gid


def refused(server, images, name: str, **kw) -> ClientException:
    with pytest.raises(ClientException) as exc:
        create(server, images, name, **kw)
    return exc.value


def cgroup_value(gid: str, controller: str, name: str) -> str:
    """The value of `name` in the host cgroup of the group (/berth/<group>, the sandbox
    container's cgroupsPath), where runsc puts the group's one sandbox."""
    path = f"/sys/fs/cgroup/{controller}/berth/{gid}/{name}"
    with open(path) as f:
        return f.read().strip()


def memory_cgroup(pid: int) -> str | None:
    """The memory cgroup of a process (v1), None once it is gone."""
    try:
        lines = open(f"/proc/{pid}/cgroup").read().splitlines()
    except OSError:
        return None
    return next((l.split(":", 2)[2] for l in lines if l.split(":")[1] == "memory"), None)


def sentries(gid: str) -> list[int]:
    """The group's gVisor sentry processes: those in the group's cgroup, whether the group
    booted its sandbox or took one from the pool (booted under the pool's name)."""
    return [p for p in support.pids_matching("runsc-sandbox") if memory_cgroup(p) == f"/berth/{gid}"]


def test_a_gvisor_group_runs_in_a_sandbox_with_its_limits_logs_exec_and_address(gv, images):
    client = gv.client()
    gid = create(gv, images, "e2e-gvisor-web")
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=gv.diag)
    group = raw_group(client, gid)
    assert group["RuntimeClassName"] == "gvisor", pretty(group)

    # The processes run on gVisor's kernel, not the host's.
    kernel = exec_sh(client, gid, "dmesg | head -n 3; uname -r")
    assert "gVisor" in kernel, kernel
    assert "runsc" in "".join(support.processes_mentioning([gid])), support.processes_mentioning([gid])

    # Logs of the sandboxed process.
    text = wait_for("the log line", lambda: "hello-gvisor" in support.logs(client, gid, "c"), 20)
    assert text

    # The group's limits (its size, as reported) are the sandbox's cgroup's on the host.
    assert int(cgroup_value(gid, "memory", "memory.limit_in_bytes")) == int(float(group["Memory"]) * (1 << 30)), pretty(group)
    assert int(cgroup_value(gid, "cpu", "cpu.cfs_quota_us")) == int(float(group["Cpu"]) * 100_000), pretty(group)
    assert cgroup_value(gid, "pids", "pids.max") == "4096"
    # The group's one sandbox is in that cgroup.
    sandbox = sentries(gid)
    assert len(sandbox) == 1, support.processes_mentioning([gid])
    assert f"memory:/berth/{gid}\n" in open(f"/proc/{sandbox[0]}/cgroup").read()

    # The group's own address answers from the host.
    ip = group["IntranetIp"]
    assert ip.startswith("10.222."), pretty(group)
    page = wait_for(f"http://{ip}:8080/hostname", lambda: support.http_get(f"http://{ip}:8080/hostname"), 20)
    assert page.strip() == "e2e-gvisor-web", page

    # Sync exec: exit code and output.
    out = exec_sh(client, gid, "echo out-$((40+2)); exit 0")
    assert "out-42" in out, out

    # TTY exec over the channel protocol: a terminal of the size asked, resized, the exit
    # code. (gVisor names the host's terminal no /dev/pts device inside: `tty` says no.)
    body = _exec(client, gid, ["sh"], sync=False, tty=True, stdin=True, name="c")
    s = Channels(body.web_socket_uri)
    s.resize(100, 30)
    s.send(0, b"stty size; [ -t 0 ] && echo is-a-tty; echo hi-$((40+2))\n")
    s.read_until(lambda o: b"30 100" in o and b"is-a-tty" in o and b"hi-42" in o)
    s.resize(120, 40)
    s.send(0, b"stty size\n")
    s.read_until(lambda o: b"40 120" in o)
    s.send(0, b"exit 7\n")
    s.read_until(lambda o: False)
    assert s.status is not None and s.status["status"] == "Failure", (s.status, s.out)
    assert {"reason": "ExitCode", "message": "7"} in s.status["details"]["causes"], s.status
    s.ws.close()


def test_kill_9_of_berth_readopts_the_sandbox_and_delete_leaves_nothing(gv, images):
    client = gv.client()
    gid = create(gv, images, "e2e-gvisor-adopt")
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=gv.diag)
    before = support.container_of(support.describe(client, gid), "c")["CurrentState"]["StartTime"]
    sandboxes = support.processes_mentioning([gid])
    assert sandboxes, "no process of the sandbox"

    gv.kill()
    gv.start()
    client = gv.client()
    group = wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=gv.diag)
    after = support.container_of(group, "c")["CurrentState"]["StartTime"]
    assert after == before, f"the container was started again: {before} -> {after}"
    assert "re-adopted running container" in support.tail(gv.log, 400)
    # Exec after the restart goes through runsc (the class the group recorded).
    assert "again" in exec_sh(client, gid, "echo again")

    support.delete(client, gid)
    wait_for("the group to go", lambda: support.describe(client, gid) is None, 60, diag=gv.diag)
    wait_for("its processes to go", lambda: not support.processes_mentioning([gid]) and not sentries(gid), 10)
    assert not support.cgroup_dirs_named([gid]), support.cgroup_dirs_named([gid])
    runsc_state = gv.state_dir / "runtime-runsc"
    assert not [p for p in runsc_state.glob("*") if gid in p.name], list(runsc_state.iterdir())


def test_the_accounts_policy_decides_the_class(gv, images):
    client = gv.client()
    account = "default"

    def policy(*args: str) -> None:
        res = subprocess.run(
            [str(support.BERTH_BIN), "admin", "--state-dir", str(gv.state_dir), "account",
             "set-runtime-classes", account, *args],
            capture_output=True, text=True, timeout=30,
        )
        assert res.returncode == 0, res.stderr

    try:
        policy("--allow", "runc")
        exc = refused(gv, images, "e2e-gvisor-forbidden")
        assert exc.status_code == 403 and exc.code == "Forbidden.RuntimeClass", exc
        assert "gvisor" in exc.message and "runc" in exc.message, exc.message

        # No class asked: the account's default.
        policy("--allow", "runc,gvisor", "--default", "gvisor")
        gid = create(gv, images, "e2e-gvisor-default", script="sleep 600", cls=None)
        assert raw_group(client, gid)["RuntimeClassName"] == "gvisor"
        runc = create(gv, images, "e2e-gvisor-runc", script="sleep 600", cls="runc")
        assert raw_group(client, runc)["RuntimeClassName"] == "runc"
        wait_status(client, runc, ["Running"], 90, never=["Failed"], diag=gv.diag)
        assert "gVisor" not in exec_sh(client, runc, "dmesg 2>&1 | head -n 3")
    finally:
        policy("--allow", "runc,gvisor")

    # Without an account default, the node's (--default-runtime-class runc).
    plain = create(gv, images, "e2e-gvisor-node-default", script="sleep 600", cls=None)
    assert raw_group(client, plain)["RuntimeClassName"] == "runc"


def test_an_unknown_class_is_refused_by_name(gv, images):
    exc = refused(gv, images, "e2e-gvisor-unknown", cls="kata")
    assert exc.status_code == 400 and exc.code == "InvalidParameter", exc
    assert "RuntimeClassName" in exc.message and "kata" in exc.message, exc.message


def test_the_node_reports_its_classes(gv):
    res = subprocess.run(
        [str(support.BERTH_BIN), "admin", "--state-dir", str(gv.state_dir), "node"],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["default"] == "runc"
    classes = {c["class"]: c for c in report["classes"]}
    assert set(classes) == {"runc", "gvisor"}, report
    assert classes["gvisor"]["runtime"].startswith("runsc "), report
    assert classes["gvisor"]["platform"] in ("ptrace", "systrap", "kvm"), report


def test_volumes_probes_and_restarts_work_under_gvisor(gv, images):
    """An emptyDir outlives a restart of the container (RestartPolicy=Always after an exit
    1), and an exec readiness probe (runsc exec) makes the restarted container Ready."""
    client = gv.client()
    script = ("echo run >> /data/runs; [ $(wc -l < /data/runs) -ge 2 ] && exec sleep 600; "
              "exit 1")
    gid = create(
        gv, images, "e2e-gvisor-restart", script=script,
        **{
            "RestartPolicy": "Always",
            "Volume.1.Name": "data",
            "Volume.1.Type": "EmptyDirVolume",
            "Container.1.VolumeMount.1.Name": "data",
            "Container.1.VolumeMount.1.MountPath": "/data",
            "Container.1.ReadinessProbe.Exec.Command.1": "cat",
            "Container.1.ReadinessProbe.Exec.Command.2": "/data/runs",
            "Container.1.ReadinessProbe.PeriodSeconds": "1",
        },
    )

    def ready():
        group = support.describe(client, gid)
        c = support.container_of(group, "c")
        return group if c.get("Ready") and c.get("RestartCount", 0) >= 1 else None

    group = wait_for("the restarted container to be Ready", ready, 60, diag=gv.diag)
    assert support.container_of(group, "c")["CurrentState"]["State"] == "Running", pretty(group)
    assert exec_sh(client, gid, "wc -l < /data/runs").strip() == "2"


def test_new_files_of_a_config_volume_reach_a_gvisor_container(gv, images):
    """An update that changes only a ConfigFileVolume's files is written in place under a
    sandboxed container too: it reads the new set without a restart."""
    import base64
    client = gv.client()
    b64 = lambda t: base64.b64encode(t.encode()).decode()
    gid = create(
        gv, images, "e2e-gvisor-files", script="exec sleep 600",
        **{
            "Volume.1.Name": "cfg",
            "Volume.1.Type": "ConfigFileVolume",
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "greeting",
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": b64("one"),
            "Container.1.VolumeMount.1.Name": "cfg",
            "Container.1.VolumeMount.1.MountPath": "/cfg",
        },
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=gv.diag)
    assert exec_sh(client, gid, "cat /cfg/greeting") == "one"
    call(client, "UpdateContainerGroup", {
        "ContainerGroupId": gid,
        "UpdateType": "IncrementalUpdate",
        "Volume.1.Name": "cfg",
        "Volume.1.Type": "ConfigFileVolume",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "greeting",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": b64("two"),
    })
    wait_for("the new file in the sandbox", lambda: exec_sh(client, gid, "cat /cfg/greeting") == "two",
             30, diag=gv.diag)
    group = support.describe(client, gid)
    assert support.container_of(group, "c")["RestartCount"] == 0, pretty(group)


def test_two_containers_share_one_sandbox(gv, images):
    """Two containers in one sandbox: one sentry for the group, an emptyDir and localhost
    shared, `b` restarting under the policy (exit 1 on its first run) while `a` runs on, exec
    into `b`; the deletion leaves no process, mount, cgroup or namespace of the group."""
    client = gv.client()
    script_b = (
        "echo run >> /data/b-runs; [ $(wc -l < /data/b-runs) -ge 2 ] || exit 1; "
        "until [ -f /data/from-a ]; do sleep 0.2; done; "
        # busybox's wget cannot read from gVisor's host-network sockets; nc can.
        "until printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 > /data/fetched "
        "&& grep -q e2e-gvisor-two /data/fetched; do sleep 0.2; done; mv /data/fetched /data/via-localhost; "
        "exec sleep 600"
    )
    gid = create(
        gv, images, "e2e-gvisor-two",
        script="echo from-a > /data/from-a; " + WEB,
        **{
            "RestartPolicy": "Always",
            "Cpu": "1",
            "Memory": "1",
            "Volume.1.Name": "data",
            "Volume.1.Type": "EmptyDirVolume",
            "Container.1.Name": "a",
            "Container.1.VolumeMount.1.Name": "data",
            "Container.1.VolumeMount.1.MountPath": "/data",
            "Container.2.Name": "b",
            "Container.2.Image": images.image,
            "Container.2.Command.1": "sh",
            "Container.2.Command.2": "-c",
            "Container.2.Arg.1": script_b,
            "Container.2.Cpu": "0.5",
            "Container.2.Memory": "0.5",
            "Container.2.VolumeMount.1.Name": "data",
            "Container.2.VolumeMount.1.MountPath": "/data",
        },
    )

    def b_restarted_and_running():
        group = support.describe(client, gid)
        if group is None:
            return None
        b = support.container_of(group, "b")
        running = b["CurrentState"]["State"] == "Running" and b.get("RestartCount", 0) >= 1
        return group if running else None

    group = wait_for("b to run again after its restart", b_restarted_and_running, 90, diag=gv.diag)
    a = support.container_of(group, "a")
    assert a["CurrentState"]["State"] == "Running" and a.get("RestartCount", 0) == 0, pretty(group)
    a_started = a["CurrentState"]["StartTime"]

    # One sentry for the group, in the group's cgroup with the group's limits.
    sandbox = sentries(gid)
    assert len(sandbox) == 1, support.processes_mentioning([gid])
    assert f"memory:/berth/{gid}\n" in open(f"/proc/{sandbox[0]}/cgroup").read()
    assert int(cgroup_value(gid, "memory", "memory.limit_in_bytes")) == int(float(group["Memory"]) * (1 << 30)), pretty(group)
    # Both containers run on gVisor's kernel.
    assert "gVisor" in exec_sh(client, gid, "dmesg | head -n 3", name="a")

    # The emptyDir is shared, and b reached a's server over localhost.
    page = wait_for("b's fetch over localhost",
                    lambda: exec_sh(client, gid, "cat /data/via-localhost 2>/dev/null", name="b"), 30,
                    diag=lambda: exec_sh(client, gid, "ls -la /data; ps; netstat -ltn", name="b"))
    assert "200 OK" in page and page.strip().endswith("e2e-gvisor-two"), page
    assert exec_sh(client, gid, "cat /data/from-a", name="b").strip() == "from-a"
    # Exec into the second container runs there (its own process tree and root).
    out = exec_sh(client, gid, "wc -l < /data/b-runs; cat /proc/1/cmdline | tr '\\0' ' '", name="b")
    assert out.split()[0] == "2" and "sleep 600" in out, out
    # Each container's log is its own.
    assert "hello-gvisor" in support.logs(client, gid, "a")
    assert "hello-gvisor" not in support.logs(client, gid, "b")

    # a ran on through b's restart.
    group = support.describe(client, gid)
    a = support.container_of(group, "a")
    assert a["CurrentState"]["StartTime"] == a_started and a.get("RestartCount", 0) == 0, pretty(group)

    # Each container's CPU time is its own, from the sentry (its host cgroup is empty); this
    # runsc accounts memory for the whole sandbox only: the group's figure.
    def per_container_metrics():
        req = models.DescribeMultiContainerGroupMetricRequest(
            region_id=support.REGION, container_group_ids=json.dumps([gid])
        )
        datas = client.describe_multi_container_group_metric(req).body.to_map().get("MonitorDatas") or []
        records = datas[0].get("Records") if datas else None
        if not records:
            return None
        rec = records[-1]
        by_name = {c["Name"]: c for c in rec.get("Containers") or []}
        ok = set(by_name) == {"a", "b"} and rec["Memory"]["WorkingSet"] > 0 and all(
            c["CPU"]["UsageCoreNanoSeconds"] > 0 for c in by_name.values()
        )
        return rec if ok else None

    rec = wait_for("per-container metrics", per_container_metrics, 30, 1, gv.diag)
    a_m, b_m = sorted(rec["Containers"], key=lambda c: c["Name"])
    assert a_m["CPU"]["UsageCoreNanoSeconds"] != b_m["CPU"]["UsageCoreNanoSeconds"], (a_m, b_m)
    # The group's figure is the sandbox's cgroup (the sentry and gofers, read by the host),
    # the containers' the sentry's own accounting, read a moment apart: their sum stays
    # near the group's, far below twice it (each container given the sandbox's total).
    both = a_m["CPU"]["UsageCoreNanoSeconds"] + b_m["CPU"]["UsageCoreNanoSeconds"]
    assert both <= rec["CPU"]["UsageCoreNanoSeconds"] * 1.25 + 50_000_000, rec

    # Other groups of this module keep their veths.
    own_veth = support.group_veth(gv.state_dir, gid)
    assert own_veth, "the group has no veth"
    others = set(support.bridge_ports(BRIDGE)) - {own_veth}
    support.delete(client, gid)
    wait_for("the group to go", lambda: support.describe(client, gid) is None, 60, diag=gv.diag)

    def left() -> list[str]:
        return support.leftovers(gv.state_dir, [gid], veths_allowed=others, bridge=BRIDGE)

    wait_for("nothing of it to be left", lambda: not left(), 15, diag=lambda: "\n".join(left()))
    runsc_state = gv.state_dir / "runtime-runsc"
    assert not [p for p in runsc_state.glob("*") if gid in p.name], list(runsc_state.iterdir())


def test_a_sandbox_that_dies_is_booted_again(gv, images):
    """kill -9 of a group's sentry ends its containers (an exit the monitor learns from
    runsc); under RestartPolicy=Always they start again in a new sandbox, one sentry again."""
    client = gv.client()
    gid = create(gv, images, "e2e-gvisor-resandbox", RestartPolicy="Always")
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=gv.diag)
    [old] = sentries(gid)
    os.kill(old, signal.SIGKILL)

    def restarted():
        group = support.describe(client, gid)
        c = support.container_of(group, "c")
        return group if c["CurrentState"]["State"] == "Running" and c.get("RestartCount", 0) >= 1 else None

    group = wait_for("the container to run again", restarted, 90, diag=gv.diag)
    previous = support.container_of(group, "c")["PreviousState"]
    assert previous["State"] == "Terminated", pretty(group)
    new = sentries(gid)
    assert len(new) == 1 and new[0] != old, (old, new)
    assert "again" in exec_sh(client, gid, "echo again")
    ip = group["IntranetIp"]
    page = wait_for(f"http://{ip}:8080/hostname", lambda: support.http_get(f"http://{ip}:8080/hostname"), 20)
    assert page.strip() == "e2e-gvisor-resandbox", page

    support.delete(client, gid)
    wait_for("the group to go", lambda: support.describe(client, gid) is None, 60, diag=gv.diag)
    wait_for("its processes to go", lambda: not support.processes_mentioning([gid]) and not sentries(gid), 10)
    assert not support.cgroup_dirs_named([gid]), support.cgroup_dirs_named([gid])


def test_an_oom_kill_of_the_sandbox_is_reported(gv, images):
    """A container that outgrows the group's memory: the host's OOM killer acts in the
    sandbox's cgroup, and the container's exit says OOMKilled."""
    client = gv.client()
    gid = create(gv, images, "e2e-gvisor-oom", script="dd if=/dev/zero of=/dev/null bs=2000M count=1")
    group = wait_status(client, gid, ["Failed", "Succeeded"], 120, diag=gv.diag)
    state = support.container_of(group, "c")["CurrentState"]
    assert state["State"] == "Terminated" and state["Reason"] == "OOMKilled", pretty(group)


def pooled_sentries(server) -> dict[int, str]:
    """Sentries of `server`'s pooled sandboxes nobody took: pid -> pool id (their cgroup's
    name)."""
    found = {}
    for p in support.pids_matching(str(server.state_dir)):
        try:
            if not open(f"/proc/{p}/cmdline").read().startswith("runsc-sandbox"):
                continue
        except OSError:
            continue
        cg = memory_cgroup(p) or ""
        if cg.startswith("/berth/gvp-"):
            found[p] = cg.rsplit("/", 1)[1]
    return found


def claim_of(server, gid: str) -> str:
    return (server.state_dir / "node" / "groups" / gid / "sandbox-id").read_text().strip()


def test_a_group_takes_a_pooled_sandbox_with_its_own_limits_name_and_address(gv, images):
    """Two groups take two booted sandboxes: each group's is its own (never the other's),
    moved into /berth/<group> with the group's limits, named after the group, reachable at
    the group's address; the pool boots replacements."""
    client = gv.client()
    wait_for("two pooled sandboxes", lambda: len(pooled_sentries(gv)) >= 2 or None, 60, diag=gv.diag)
    waiting = set(pooled_sentries(gv).values())
    a = create(gv, images, "e2e-gvisor-pool-a", Cpu="0.25", Memory="0.5", **{"Container.1.Cpu": "0.25"})
    b = create(gv, images, "e2e-gvisor-pool-b", Cpu="0.5", Memory="1.0")
    groups = {gid: wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=gv.diag) for gid in (a, b)}
    claims = {gid: claim_of(gv, gid) for gid in (a, b)}
    assert claims[a] != claims[b] and set(claims.values()) <= waiting, (claims, waiting)
    for gid, quota, limit in ((a, 25000, 1 << 29), (b, 50000, 1 << 30)):
        [sentry] = sentries(gid)
        cg = f"/sys/fs/cgroup/%s/berth/{gid}"
        assert int(open(cg % "memory" + "/memory.limit_in_bytes").read()) == limit
        assert int(open(cg % "cpu" + "/cpu.cfs_quota_us").read()) == quota
        assert int(open(cg % "pids" + "/pids.max").read()) == 4096
        assert not support.cgroup_dirs_named([claims[gid]]), support.cgroup_dirs_named([claims[gid]])
        name = "e2e-gvisor-pool-a" if gid == a else "e2e-gvisor-pool-b"
        assert exec_sh(client, gid, "hostname").strip() == name
        # Named by its pause process, told through a FIFO on the host (no runsc exec)...
        pause_log = gv.state_dir / "node" / "gvisor-pool" / claims[gid] / "pause.log"
        assert f"stdout F hostname {name}\n" in pause_log.read_text(), pause_log.read_text()
        # ...which the group's containers cannot reach, nor rename their sandbox themselves.
        assert exec_sh(client, gid, "hostname other 2>/dev/null; hostname").strip() == name
        ip = groups[gid]["IntranetIp"]
        page = wait_for(f"http://{ip}:8080/hostname", lambda: support.http_get(f"http://{ip}:8080/hostname"), 20)
        assert page.strip() == name, page
        # The pool's namespace is the group's now, under the group's name only.
        netns = gv.state_dir / "netns"
        assert (netns / gid).exists() and not (netns / claims[gid]).exists(), list(netns.iterdir())
    # Replacements are booted; the taken ones are never in the pool again.
    wait_for("the pool to be refilled", lambda: len(pooled_sentries(gv)) >= 2 or None, 60, diag=gv.diag)
    assert not set(pooled_sentries(gv).values()) & set(claims.values())
    assert "pooled gVisor sandbox handed over" in support.tail(gv.log, 2000)
    for gid in (a, b):
        support.delete(client, gid)
    for gid in (a, b):
        wait_for("the group to go", lambda: support.describe(client, gid) is None, 60, diag=gv.diag)
        wait_for("its sentry to go", lambda: not sentries(gid), 10)
        assert not (gv.state_dir / "node" / "gvisor-pool" / claims[gid]).exists()
        assert not support.cgroup_dirs_named([gid, claims[gid]])


def test_a_pooled_sandbox_that_died_is_not_handed_out(gv, images):
    client = gv.client()
    wait_for("two pooled sandboxes", lambda: len(pooled_sentries(gv)) >= 2 or None, 60, diag=gv.diag)
    dead = pooled_sentries(gv)
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    gid = create(gv, images, "e2e-gvisor-pool-dead")
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=gv.diag)
    assert "again" in exec_sh(client, gid, "echo again")
    claim = gv.state_dir / "node" / "groups" / gid / "sandbox-id"
    assert not (claim.exists() and claim.read_text().strip() in dead.values()), claim.read_text()
    for pool_id in dead.values():
        wait_for(f"{pool_id} to be removed",
                 lambda: not (gv.state_dir / "node" / "gvisor-pool" / pool_id).exists()
                 and not support.cgroup_dirs_named([pool_id]) or None, 30, diag=gv.diag)
    support.delete(client, gid)
    wait_for("the group to go", lambda: support.describe(client, gid) is None, 60, diag=gv.diag)


def test_the_pool_leaves_nothing_after_kill_9_and_a_graceful_stop(host_ready, images):
    """A berth of its own (bridge berthy0, 10.239.0.0/16): its pool's sandboxes outlive a
    kill -9 of berth; the next start removes them (runsc, cgroups, namespaces, files) and boots
    new ones; a graceful stop removes those."""
    state = {}
    seen: set[str] = set()

    def after_stop(server):
        pool = server.state_dir / "node" / "gvisor-pool"
        state["files"] = sorted(p.name for p in pool.iterdir()) if pool.exists() else []
        state["procs"] = support.processes_mentioning([str(server.state_dir)])
        state["cgroups"] = support.cgroup_dirs_named(seen | set(state.get("last", [])))
        state["runsc"] = sorted(p.name for p in (server.state_dir / "runtime-runsc").glob("gvp-*"))

    with support.own_berth("gvpool", ["--gvisor-pool", "2"], bridge="berthy0",
                           subnet="10.239.0.0/16", after_stop=after_stop) as server:
        wait_for("two pooled sandboxes", lambda: len(pooled_sentries(server)) == 2 or None, 60, diag=server.diag)
        first = dict(pooled_sentries(server))
        seen.update(first.values())
        server.kill()
        assert set(pooled_sentries(server)) == set(first), "the pool's sandboxes should outlive berth"
        server.start()

        def replaced():
            now = pooled_sentries(server)
            return now if len(now) == 2 and not set(now.values()) & set(first.values()) else None

        seen.update(wait_for("the former pool removed and a new one booted", replaced, 60,
                             diag=server.diag).values())
        for pid, pool_id in first.items():
            assert not os.path.exists(f"/proc/{pid}"), f"sentry {pid} of {pool_id} survived"
            assert not support.cgroup_dirs_named([pool_id])
            assert not (server.state_dir / "netns" / pool_id).exists()
            assert not (server.state_dir / "node" / "gvisor-pool" / pool_id).exists()
    assert state == {"files": [], "procs": [], "cgroups": [], "runsc": []}, state
    assert len(seen) == 4, seen
