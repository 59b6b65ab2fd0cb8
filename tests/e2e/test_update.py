"""UpdateContainerGroup and RestartContainerGroup: an update recreates the containers whose
spec changed while the others keep running (new files of a ConfigFileVolume are written in
place under them), a restart restarts every container and keeps the
group's address and volumes, ClientTokens make repeats harmless, and what an update cannot
change is refused by name."""

from __future__ import annotations

import pytest
from alibabacloud_eci20180808 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, container, container_of, events_of, exec_sh, pretty, wait_for, wait_status

# Ends at once on SIGTERM (as PID 1, sh ignores it unless trapped).
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def update(client, gid: str, **kw) -> None:
    client.update_container_group(
        M.UpdateContainerGroupRequest(region_id=REGION, container_group_id=gid, **kw)
    )


def upd_container(name: str, image: str, command: list[str], **kw):
    kw.setdefault("cpu", support.CPU)
    kw.setdefault("memory", support.MEMORY)
    return M.UpdateContainerGroupRequestContainer(name=name, image=image, command=command, **kw)


def env(key: str, value: str):
    return M.UpdateContainerGroupRequestContainerEnvironmentVar(key=key, value=value)


def pid1_start(client, gid: str, name: str) -> str:
    """The start time of the container's PID 1 (clock ticks since boot): a new process has another."""
    return exec_sh(client, gid, "cut -d' ' -f22 /proc/1/stat", name=name).strip()


def running_again(client, gid: str, berth) -> dict:
    """Waits for the update or restart to be done: Running, every container running."""

    def probe():
        g = support.describe(client, gid)
        ok = g["Status"] == "Running" and all(
            c["CurrentState"]["State"] == "Running" for c in g["Containers"]
        )
        return g if ok else None

    return wait_for(f"{gid} to run again", probe, 60, 0.3, berth.diag)


def test_update_recreates_only_the_changed_container(berth, client, groups, images):
    gid = groups.create(
        "e2e-update",
        [
            container("a", images.image, LOOP),
            container("b", images.image, LOOP,
                      environment_var=[M.CreateContainerGroupRequestContainerEnvironmentVar(
                          key="WHO", value="one")]),
        ],
        restart_policy="Always",
    )
    before = wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    for name in ("a", "b"):
        exec_sh(client, gid, "echo kept > /marker", name=name)
    a_pid1 = pid1_start(client, gid, "a")
    started_a = container_of(before, "a")["CurrentState"]["StartTime"]

    update(client, gid, update_type="IncrementalUpdate",
           container=[upd_container("b", images.image, LOOP, environment_var=[env("WHO", "two")])])
    seen = support.describe(client, gid)["Status"]
    after = running_again(client, gid, berth)
    assert seen in ("Updating", "Running"), seen
    assert exec_sh(client, gid, "echo $WHO", name="b").strip() == "two"
    # b is a new container (a fresh writable layer); a kept running untouched.
    assert exec_sh(client, gid, "cat /marker 2>&1 || true", name="b").strip() != "kept"
    assert exec_sh(client, gid, "cat /marker", name="a").strip() == "kept"
    assert pid1_start(client, gid, "a") == a_pid1
    assert container_of(after, "a")["CurrentState"]["StartTime"] == started_a, pretty(after)
    assert container_of(after, "a")["RestartCount"] == 0, pretty(after)
    assert container_of(after, "b")["RestartCount"] == 1, pretty(after)
    assert after["IntranetIp"] == before["IntranetIp"]
    reasons = [(e.get("Reason"), e.get("Message", "")) for e in events_of(client, gid)]
    assert any(r == "Updating" for r, _ in reasons), reasons
    assert any(r == "Killing" and "b definition changed" in m for r, m in reasons), reasons


def test_renew_update_replaces_the_containers(berth, client, groups, images):
    gid = groups.create(
        "e2e-update-renew",
        [container("a", images.image, LOOP), container("b", images.image, LOOP)],
        restart_policy="Always",
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    update(client, gid, container=[
        upd_container("a", images.image, LOOP),
        upd_container("c", images.image, LOOP, environment_var=[env("X", "1")]),
    ])
    after = running_again(client, gid, berth)
    names = sorted(c["Name"] for c in after["Containers"])
    assert names == ["a", "c"], pretty(after)
    assert exec_sh(client, gid, "echo $X", name="c").strip() == "1"
    # b is gone: no process of it, no mount left.
    assert not [m for m in support.mounts_under(berth.state_dir) if f"{gid}" in m and "/b/" in m]
    with pytest.raises(ClientException) as info:
        exec_sh(client, gid, "true", name="b")
    assert info.value.status_code in (400, 404), info.value.message


def test_restart_keeps_address_and_volumes(berth, client, groups, images):
    gid = groups.create(
        "e2e-restart",
        [container("c", images.image, LOOP, volume_mount=[
            M.CreateContainerGroupRequestContainerVolumeMount(name="data", mount_path="/data")])],
        restart_policy="Always",
        volume=[M.CreateContainerGroupRequestVolume(name="data", type="EmptyDirVolume")],
    )
    before = wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    exec_sh(client, gid, "echo kept > /data/f")
    pid1 = pid1_start(client, gid, "c")
    token = "restart-once-1"
    req = M.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid,
                                         client_token=token)
    client.restart_container_group(req)
    running_again(client, gid, berth)
    after = running_again(client, gid, berth)
    restarted = pid1_start(client, gid, "c")
    assert restarted != pid1
    assert after["IntranetIp"] == before["IntranetIp"]
    assert exec_sh(client, gid, "cat /data/f").strip() == "kept"
    # The same token again: answered, not restarted a second time.
    client.restart_container_group(req)
    again = support.describe(client, gid)
    assert again["Status"] == "Running", pretty(again)
    assert pid1_start(client, gid, "c") == restarted


def test_update_token_and_refusals(berth, client, groups, images):
    gid = groups.create("e2e-update-bad", [container("c", images.image, LOOP)],
                        restart_policy="Always")
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    one = [upd_container("c", images.image, LOOP, environment_var=[env("V", "1")])]
    update(client, gid, container=one, client_token="upd-1")
    running_again(client, gid, berth)
    count = container_of(support.describe(client, gid), "c")["RestartCount"]
    update(client, gid, container=one, client_token="upd-1")
    assert container_of(support.describe(client, gid), "c")["RestartCount"] == count
    two = [upd_container("c", images.image, LOOP, environment_var=[env("V", "2")])]
    with pytest.raises(ClientException) as info:
        update(client, gid, container=two, client_token="upd-1")
    assert info.value.code == "IdempotentParameterMismatch", info.value.message

    for kw, name in [
        ({"volume": [M.UpdateContainerGroupRequestVolume(
            name="v", type="EmptyDirVolume",
            empty_dir_volume=M.UpdateContainerGroupRequestVolumeEmptyDirVolume(
                medium="Memory", size_limit="100Gi"))],
          "update_type": "IncrementalUpdate"}, "Memory"),
        ({"dns_config": M.UpdateContainerGroupRequestDnsConfig(name_server=["10.0.0.1"])},
         "DnsConfig"),
        ({"cpu": 4000.0}, "Cpu"),
        ({"container": [upd_container("c", images.image, LOOP, cpu=64.0)]}, "Container.N.Cpu"),
        ({"update_type": "Sideways"}, "UpdateType"),
    ]:
        with pytest.raises(ClientException) as info:
            update(client, gid, **kw)
        assert info.value.status_code == 400 and name in info.value.message, (kw, info.value.message)
    group = support.describe(client, gid)
    assert group["Status"] == "Running" and container_of(group, "c")["RestartCount"] == count

    # A finished group cannot be updated.
    done = groups.create("e2e-update-done", [container("c", images.image, ["true"])])
    wait_status(client, done, ["Succeeded"], 60, diag=berth.diag)
    with pytest.raises(ClientException) as info:
        update(client, done, container=one)
    assert info.value.code == "IncorrectStatus", info.value.message
    with pytest.raises(ClientException) as info:
        update(client, "eci-00000000000000000000", container=one)
    assert info.value.status_code == 404, info.value.message


def config(name: str, text: str, model, more: dict[str, str] | None = None):
    """A ConfigFile volume: `greeting` holding `text`, and the files of `more`."""
    import base64
    create = model is M.CreateContainerGroupRequestVolume
    volume = (M.CreateContainerGroupRequestVolumeConfigFileVolume if create
              else M.UpdateContainerGroupRequestVolumeConfigFileVolume)
    path = (M.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath if create
            else M.UpdateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath)
    files = {"greeting": text, **(more or {})}
    return model(
        name=name,
        type="ConfigFileVolume",
        config_file_volume=volume(config_file_to_path=[
            path(path=p, content=base64.b64encode(t.encode()).decode()) for p, t in files.items()
        ]),
    )


def test_update_of_a_volume_recreates_the_containers_mounting_it(berth, client, groups, images):
    mount = M.CreateContainerGroupRequestContainerVolumeMount
    gid = groups.create(
        "e2e-update-vol",
        [
            container("a", images.image, LOOP, volume_mount=[mount(name="cfg", mount_path="/cfg")]),
            container("b", images.image, LOOP, volume_mount=[mount(name="scratch", mount_path="/s")]),
        ],
        restart_policy="Always",
        volume=[config("cfg", "one", M.CreateContainerGroupRequestVolume),
                M.CreateContainerGroupRequestVolume(name="scratch", type="EmptyDirVolume")],
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    assert exec_sh(client, gid, "cat /cfg/greeting", name="a") == "one"
    exec_sh(client, gid, "echo kept > /s/f", name="b")
    b_pid1 = pid1_start(client, gid, "b")
    # Another kind of volume under the same name: made anew, its containers recreated.
    update(client, gid, update_type="IncrementalUpdate",
           volume=[M.UpdateContainerGroupRequestVolume(name="cfg", type="EmptyDirVolume")])
    after = running_again(client, gid, berth)
    assert exec_sh(client, gid, "ls -A /cfg", name="a") == ""
    assert container_of(after, "a")["RestartCount"] == 1, pretty(after)
    assert pid1_start(client, gid, "b") == b_pid1
    assert exec_sh(client, gid, "cat /s/f", name="b").strip() == "kept"
    described = {v["Name"] for v in after.get("Volumes") or []}
    assert described == {"cfg", "scratch"}, pretty(after)


def test_new_files_of_a_config_volume_reach_the_running_container(berth, client, groups, images):
    """A ConfigFileVolume whose files alone change is written in place, as the kubelet updates
    configMap and secret volumes: the container keeps running (same PID 1, no restart) and
    reads the new set; a SubPath mount keeps the file it started with, as with the kubelet."""
    mount = M.CreateContainerGroupRequestContainerVolumeMount
    gid = groups.create(
        "e2e-update-files",
        [container("a", images.image, LOOP, volume_mount=[
            mount(name="cfg", mount_path="/cfg"),
            mount(name="cfg", mount_path="/sub/greeting", sub_path="greeting"),
        ])],
        restart_policy="Always",
        volume=[config("cfg", "one", M.CreateContainerGroupRequestVolume, {"old": "x"})],
    )
    before = wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    assert exec_sh(client, gid, "cat /cfg/greeting", name="a") == "one"
    started = container_of(before, "a")["CurrentState"]["StartTime"]
    a_pid1 = pid1_start(client, gid, "a")
    # The volume is read-only in the container: nothing of it is the tenant's.
    assert "Read-only" in exec_sh(client, gid, "touch /cfg/x 2>&1 || true", name="a")

    update(client, gid, update_type="IncrementalUpdate",
           volume=[config("cfg", "two", M.UpdateContainerGroupRequestVolume, {"d/new": "n"})])
    after = running_again(client, gid, berth)
    assert exec_sh(client, gid, "cat /cfg/greeting", name="a") == "two"
    assert exec_sh(client, gid, "cat /cfg/d/new", name="a") == "n"
    assert exec_sh(client, gid, "test -e /cfg/old && echo there || echo gone", name="a").strip() == "gone"
    assert exec_sh(client, gid, "readlink /cfg/..data", name="a").startswith("..")
    assert exec_sh(client, gid, "cat /sub/greeting", name="a") == "one"
    assert pid1_start(client, gid, "a") == a_pid1
    a = container_of(after, "a")
    assert a["RestartCount"] == 0, pretty(after)
    assert a["CurrentState"]["StartTime"] == started, pretty(after)
    files = {f["Path"] for v in after["Volumes"] if v["Name"] == "cfg"
             for f in v["ConfigFileVolumeConfigFileToPaths"]}
    assert files == {"greeting", "d/new"}, pretty(after)


def test_a_memory_volume_follows_the_groups_new_memory(berth, client, groups, images):
    """A memory emptyDir without a SizeLimit is the size of the group's memory, also after an
    update changed it; what it holds stays."""
    mount = M.CreateContainerGroupRequestContainerVolumeMount
    gid = groups.create(
        "e2e-update-mem",
        [container("c", images.image, LOOP, volume_mount=[mount(name="m", mount_path="/m")])],
        restart_policy="Always",
        cpu=0.5,
        memory=1.0,
        volume=[M.CreateContainerGroupRequestVolume(
            name="m", type="EmptyDirVolume",
            empty_dir_volume=M.CreateContainerGroupRequestVolumeEmptyDirVolume(medium="Memory"),
        )],
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    size_kib = "df -k /m | tail -n 1 | awk '{print $2}'"
    assert exec_sh(client, gid, size_kib).strip() == str(1 << 20)
    exec_sh(client, gid, "echo kept > /m/f")
    update(client, gid, memory=2.0)
    running_again(client, gid, berth)
    assert exec_sh(client, gid, size_kib).strip() == str(2 << 20)
    assert exec_sh(client, gid, "cat /m/f").strip() == "kept"
