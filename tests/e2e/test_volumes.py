"""Volumes: EmptyDir (on the group's temporary storage or a tmpfs in memory) and ConfigFile
volumes, mounted by containers with MountPath, SubPath, ReadOnly and MountPropagation.
Checked from inside the containers; symlinks planted by the image or in an emptyDir never
lead a mount to the host; bad parameters are refused by name with nothing recorded; data
outlives a container restart and a `kill -9` of berth; nothing is left after the delete."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import ImageVariants, container, entry, init_container, wait_for, wait_status

M = models
TOKEN = secrets.token_hex(4)
HOST_DIR = Path(f"/tmp/berth-volhost-{TOKEN}")


def mount(name, path, **kw):
    return M.CreateContainerGroupRequestContainerVolumeMount(name=name, mount_path=path, **kw)


def init_mount(name, path, **kw):
    return M.CreateContainerGroupRequestInitContainerVolumeMount(
        name=name, mount_path=path, **kw
    )


def empty_dir(name, medium=None, size_limit=None):
    return M.CreateContainerGroupRequestVolume(
        name=name,
        type="EmptyDirVolume",
        empty_dir_volume=M.CreateContainerGroupRequestVolumeEmptyDirVolume(
            medium=medium, size_limit=size_limit
        ),
    )


def config_files(name, files, default_mode=None):
    return M.CreateContainerGroupRequestVolume(
        name=name,
        type="ConfigFileVolume",
        config_file_volume=M.CreateContainerGroupRequestVolumeConfigFileVolume(
            default_mode=default_mode,
            config_file_to_path=[
                M.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                    path=p, content=base64.b64encode(data).decode(), mode=mode
                )
                for p, data, mode in files
            ],
        ),
    )


# Exits 3 when /cache/stop appears, so that a test can make it restart.
LOOP = "rm -f /cache/stop; while [ ! -e /cache/stop ]; do sleep 0.2; done; exit 3"


def test_volumes_are_shared_mounted_and_survive_restarts(runtime_class, berth, client, groups, images):
    volumes = [
        empty_dir("cache"),
        empty_dir("mem", medium="Memory", size_limit="64Mi"),
        config_files(
            "conf",
            [("app.conf", b"hello\n", 0o600), ("bin/run.sh", b"#!/bin/sh\necho run\n", None)],
            default_mode=0o750,
        ),
    ]
    c = container(
        "c",
        images.image,
        ["sh", "-c", LOOP],
        volume_mount=[
            mount("cache", "/cache"),
            mount("mem", "/mem"),
            mount("conf", "/etc/app", mount_propagation="HostToContainer"),
        ],
    )
    d = container(
        "d",
        images.image,
        ["sleep", "3600"],
        volume_mount=[
            mount("cache", "/shared"),
            mount("cache", "/ro", read_only=True),
            mount("cache", "/sub", sub_path="deep/er"),
            mount("conf", "/app.conf", sub_path="app.conf"),
        ],
    )
    gid = groups.create("vols", [c, d], volume=volumes, restart_policy="Always")
    wait_status(client, gid, ["Running"], 60, never=["Failed"])

    sh = lambda script, name="c": support.exec_sh(client, gid, script, name)  # noqa: E731
    # ConfigFile: content, modes (given, default), read-only.
    assert sh("cat /etc/app/app.conf") == "hello\n"
    assert sh("stat -L -c %a /etc/app/app.conf /etc/app/bin/run.sh").split() == ["600", "750"]
    assert sh("/etc/app/bin/run.sh") == "run\n"
    out = sh("echo x > /etc/app/new 2>&1; echo x >> /etc/app/app.conf 2>&1; echo rc=$?")
    assert "Read-only file system" in out and "rc=0" not in out, out
    assert sh("cat /app.conf", "d") == "hello\n"
    # EmptyDir on disk: shared, the read-only mount refuses writes, SubPath made and shared.
    sh("echo hi > /cache/hi && mkdir -p /cache/deep/er && echo s > /cache/deep/er/s")
    assert sh("cat /shared/hi /ro/hi /sub/s", "d") == "hi\nhi\ns\n"
    out = sh("touch /ro/x 2>&1; echo rc=$?", "d")
    assert "Read-only file system" in out and "rc=0" not in out, out
    mode = sh("stat -c %a /cache")
    assert mode.strip() == "777", mode
    # Memory: a tmpfs of SizeLimit.
    out = sh("grep ' /mem ' /proc/mounts; df -k /mem | tail -1")
    # Under gvisor the host's tmpfs reaches the sandbox through its gofer (a 9p mount inside).
    assert ("tmpfs" if runtime_class == "runc" else " /mem 9p ") in out, out
    assert out.split()[-5] == str(64 * 1024), out
    sh("echo m > /mem/m")

    # Describe answers in ECI's shape.
    g = support.describe(client, gid)
    by_name = {v["Name"]: v for v in g["Volumes"]}
    assert by_name["cache"]["Type"] == "EmptyDirVolume"
    assert by_name["mem"]["EmptyDirVolumeMedium"] == "Memory"
    assert by_name["mem"]["EmptyDirVolumeSizeLimit"] == "64Mi"
    paths = by_name["conf"]["ConfigFileVolumeConfigFileToPaths"]
    assert [p["Path"] for p in paths] == ["app.conf", "bin/run.sh"]
    mounts = {m["MountPath"]: m for m in support.container_of(g, "d")["VolumeMounts"]}
    assert mounts["/ro"]["ReadOnly"] is True and mounts["/sub"]["SubPath"] == "deep/er"
    cm = {m["MountPath"]: m for m in support.container_of(g, "c")["VolumeMounts"]}
    assert cm["/etc/app"]["MountPropagation"] == "HostToContainer"

    # A container restart keeps the data.
    sh("touch /cache/stop")
    wait_for(
        "c to restart",
        lambda: support.container_of(support.describe(client, gid), "c")["RestartCount"] >= 1
        # Exactly the file: an exec into a container not running yet answers an error text.
        and sh("cat /mem/m 2>/dev/null") == "m\n",
        60,
    )
    assert sh("cat /cache/hi /mem/m /etc/app/app.conf") == "hi\nm\nhello\n"

    # kill -9 of berth and its restart: the group is adopted, the volumes are the same.
    berth.kill()
    berth.start()
    client = berth.client()
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    assert support.exec_sh(client, gid, "cat /cache/hi /mem/m") == "hi\nm\n"
    assert support.exec_sh(client, gid, "cat /sub/s /app.conf", "d") == "s\nhello\n"
    # ... and a restart of the container after it mounts them again.
    support.exec_sh(client, gid, "touch /cache/stop")
    wait_for(
        "c to restart after berth's restart",
        lambda: support.container_of(support.describe(client, gid), "c")["RestartCount"] >= 2,
        60,
    )
    wait_for(
        "c to run again",
        lambda: "m" in support.exec_sh(client, gid, "cat /mem/m 2>/dev/null"),
        30,
    )

    support.delete(client, gid)
    wait_for(f"{gid} to go", lambda: support.describe(client, gid) is None, 60)
    support.assert_no_leftovers(berth.state_dir, [gid])


def test_an_emptydir_counts_against_the_temporary_storage(berth, client, groups, images):
    c = container("c", images.image, ["sleep", "3600"], volume_mount=[mount("v", "/v")])
    gid = groups.create("vol-full", [c], volume=[empty_dir("v")], ephemeral_storage=1)
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    out = support.exec_sh(
        client, gid, "dd if=/dev/zero of=/v/fill bs=1M count=1500 2>&1; echo rc=$?"
    )
    assert "Disk quota exceeded" in out or "No space left" in out, out
    assert "rc=0" not in out, out
    written = int(support.exec_sh(client, gid, "wc -c < /v/fill").strip())
    assert written <= 1 << 30, written


@pytest.fixture(scope="module")
def symlink_image(images, tmp_path_factory):
    v = ImageVariants(tmp_path_factory.mktemp("volimg"), images.registry)
    up = "../../../../../../../.."
    v.add(
        "vol-symlinks",
        # The image holds the link targets too: resolved inside the root file system they
        # exist (a mount through them lands there); followed on the host they would be the
        # host's directory.
        [[entry("tmp", "dir"), entry(str(HOST_DIR)[1:], "dir"),
          entry("data", "symlink", link=str(HOST_DIR)),
          entry("rel", "symlink", link=f"{up}{HOST_DIR}")]],
    )
    return v.push()["vol-symlinks"]


@pytest.fixture
def host_dir():
    HOST_DIR.mkdir(exist_ok=True)
    (HOST_DIR / "host-file").write_text("host\n")
    yield HOST_DIR
    shutil.rmtree(HOST_DIR, ignore_errors=True)


def _untouched(host_dir: Path) -> None:
    assert sorted(os.listdir(host_dir)) == ["host-file"], os.listdir(host_dir)
    assert not os.path.ismount(host_dir)


def test_a_symlink_of_the_image_at_the_mount_path_stays_inside(
    client, groups, symlink_image, host_dir
):
    c = container(
        "c",
        symlink_image,
        ["sleep", "3600"],
        volume_mount=[mount("v", "/data"), mount("w", "/rel")],
    )
    gid = groups.create("vol-link", [c], volume=[empty_dir("v"), empty_dir("w")])
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    out = support.exec_sh(client, gid, f"echo x > /data/x && echo y > /rel/y && ls {HOST_DIR}")
    assert "host-file" not in out, out
    assert "x" in out.split() or "y" in out.split(), out
    _untouched(host_dir)


def test_a_symlink_planted_in_an_emptydir_does_not_lead_a_subpath_out(
    client, groups, images, host_dir
):
    plant = init_container(
        "plant",
        images.image,
        ["sh", "-c", f"ln -s {HOST_DIR} /v/abs && ln -s ../../../../../..{HOST_DIR} /v/rel "
                     "&& mkdir /v/real && ln -s /real /v/inside"],
        volume_mount=[init_mount("v", "/v")],
    )
    ok = container(
        "c", images.image, ["sleep", "3600"],
        volume_mount=[mount("v", "/in", sub_path="inside")],
    )
    gid = groups.create("vol-plant", [ok], init_containers=[plant], volume=[empty_dir("v")])
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    # A link that resolves inside the volume is followed inside it.
    support.exec_sh(client, gid, "echo z > /in/z")
    _untouched(host_dir)

    for link in ("abs", "rel"):
        bad = container(
            "c", images.image, ["sleep", "3600"],
            volume_mount=[mount("v", "/out", sub_path=f"{link}/x")],
        )
        gid = groups.create(f"vol-{link}", [bad], init_containers=[plant], volume=[empty_dir("v")])

        def refused():
            g = support.describe(client, gid)
            st = support.container_of(g, "c")["CurrentState"]
            return st if "SubPath" in (st.get("Message") or "") else None

        wait_for(f"the {link} SubPath to be refused", refused, 60)
        _untouched(host_dir)


@pytest.mark.parametrize(
    "volumes, mounts, name",
    [
        ([empty_dir("v"), empty_dir("v")], [], "Volume.2.Name"),
        ([empty_dir("Bad_Name")], [], "Volume.1.Name"),
        ([empty_dir("v", medium="Memory", size_limit="2Gi")], [], "Volume.1.EmptyDirVolume.SizeLimit"),
        ([empty_dir("v", size_limit="lots")], [], "Volume.1.EmptyDirVolume.SizeLimit"),
        ([empty_dir("v", size_limit="1Gi")], [], "Volume.1.EmptyDirVolume.SizeLimit"),
        ([M.CreateContainerGroupRequestVolume(
            name="v", type="NFSVolume",
            nfsvolume=M.CreateContainerGroupRequestVolumeNFSVolume(server="nfs", path="/"))],
         [], "Volume.1.NFSVolume"),
        ([M.CreateContainerGroupRequestVolume(
            name="v", type="HostPathVolume",
            host_path_volume=M.CreateContainerGroupRequestVolumeHostPathVolume(path="/etc"))],
         [], "Volume.1.HostPathVolume"),
        ([config_files("v", [("../x", b"x", None)])], [], "ConfigFileToPath.1.Path"),
        ([config_files("v", [("/etc/x", b"x", None)])], [], "ConfigFileToPath.1.Path"),
        # (1 MiB of content in all is refused too, see the decoder's tests: through the SDK
        # the request's own size limit comes first.)
        ([config_files("v", [(f"f{i}", b"x", None) for i in range(65)])], [],
         "Volume.1.ConfigFileVolume.ConfigFileToPath"),
        ([empty_dir("v")], [mount("w", "/d")], "VolumeMount.N.Name"),
        ([empty_dir("v")], [mount("v", "d")], "Container.1.VolumeMount.1.MountPath"),
        ([empty_dir("v")], [mount("v", "/")], "Container.1.VolumeMount.1.MountPath"),
        ([empty_dir("v")], [mount("v", "/a/../b")], "Container.1.VolumeMount.1.MountPath"),
        ([empty_dir("v")], [mount("v", "/d"), mount("v", "/d/")], "Container.1.VolumeMount.2.MountPath"),
        ([empty_dir("v")], [mount("v", "/d", sub_path="/abs")], "Container.1.VolumeMount.1.SubPath"),
        ([empty_dir("v")], [mount("v", "/d", sub_path="a/../../x")], "Container.1.VolumeMount.1.SubPath"),
        ([empty_dir("v")], [mount("v", "/d", mount_propagation="Bidirectional")],
         "Container.1.VolumeMount.1.MountPropagation"),
    ],
)
def test_bad_volume_parameters_are_refused_by_name(client, groups, images, volumes, mounts, name):
    before = {g["ContainerGroupId"] for g in support.list_groups(client)}
    with pytest.raises(ClientException) as err:
        groups.create(
            "refused", [container("c", images.image, ["true"], volume_mount=mounts or None)],
            volume=volumes,
        )
    assert err.value.code.startswith("InvalidParameter"), err.value
    assert name in err.value.message, err.value.message
    assert {g["ContainerGroupId"] for g in support.list_groups(client)} == before


def with_fs_group(client, value: str):
    """The SDK's client sending `SecurityContext.FsGroup` (berth's extension, which the SDK's
    models lack) with every CreateContainerGroup."""
    call = client.call_api

    def call_api(params, req, runtime):
        if params.action == "CreateContainerGroup":
            req.query = {**(req.query or {}), "SecurityContext.FsGroup": value}
        return call(params, req, runtime)

    client.call_api = call_api
    return client


def test_fs_group_owns_the_volumes(berth, client, groups, images):
    """SecurityContext.FsGroup, Kubernetes' fsGroup: the group's volumes belong to that group
    (set-group-id directories, so what the containers make there does too; config files
    readable by its members) and the containers' processes have it as a supplementary group."""
    as_user = M.CreateContainerGroupRequestContainerSecurityContext(run_as_user=1000)
    gid = groups.create(
        "e2e-fsgroup",
        [
            container(
                "c",
                images.image,
                ["sleep", "3600"],
                security_context=as_user,
                volume_mount=[mount("data", "/data"), mount("mem", "/mem"), mount("cfg", "/cfg")],
            )
        ],
        volume=[
            empty_dir("data"),
            empty_dir("mem", medium="Memory", size_limit="16Mi"),
            config_files("cfg", [("a.conf", b"secret\n", 0o400)]),
        ],
        client=with_fs_group(berth.client(), "2000"),
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    out = support.exec_sh(
        client,
        gid,
        "id -u; id -G; stat -L -c '%a %g' /data /mem /cfg /cfg/a.conf; cat /cfg/a.conf;"
        " touch /data/f && mkdir /data/d && stat -c '%g' /data/f /data/d;"
        " touch /mem/f && stat -c '%g' /mem/f",
    )
    lines = out.split("\n")
    assert lines[0] == "1000", out
    assert "2000" in lines[1].split(), out
    assert lines[2:6] == ["2777 2000", "2777 2000", "2755 2000", "440 2000"], out
    assert lines[6] == "secret", out
    assert lines[7:10] == ["2000", "2000", "2000"], out

    # Out of range: refused by name, nothing made.
    before = {g["ContainerGroupId"] for g in support.list_groups(client)}
    for bad in ["65536", "-1", "staff"]:
        with pytest.raises(ClientException) as refused:
            groups.create(
                "e2e-fsgroup-bad",
                [container("c", images.image, ["true"])],
                client=with_fs_group(berth.client(), bad),
            )
        assert refused.value.code == "InvalidParameter", refused.value.message
        assert "SecurityContext.FsGroup" in refused.value.message, refused.value.message
    assert {g["ContainerGroupId"] for g in support.list_groups(client)} == before
