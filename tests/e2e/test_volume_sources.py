"""Volumes that reach outside the group, on a berth of this module started with
`--nfs-server 127.0.0.1 --host-path-prefix <temp dir>/allowed`: NFS volumes from Debian's
nfs-kernel-server on loopback (exporting a temp dir to 127.0.0.1) read and written by two
containers, a SubPath into one, a read-only one, nothing mounted after the delete; NFS
servers the operator did not allow refused by name with nothing recorded (also on the
suite's berth, which allows none); host paths below the prefix mounted (Directory, File,
DirectoryOrCreate), others refused by name, symlinks below the prefix not followed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, Berth, container, exec_sh, wait_for, wait_status

M = models
SLEEP = ["sleep", "3600"]
LOOPBACK = "127.0.0.1"


BRIDGE = "berthv0"
SUBNET = "10.221.0.0/16"


def _vberth(base: Path, args: list[str]) -> Berth:
    host = base / "host"
    (host / "allowed" / "data").mkdir(parents=True)
    (host / "allowed" / "app.conf").write_text("conf\n")
    (host / "allowed2").mkdir()
    (host / "secret").write_text("host secret\n")
    (host / "allowed" / "up").symlink_to("..")
    (host / "allowed" / "inner").symlink_to("data")
    server = Berth(
        base / "state",
        base / "berth.log",
        ["--nfs-server", LOOPBACK, "--host-path-prefix", str(host / "allowed"), *args],
    )
    server.host = host
    return server


@pytest.fixture(scope="module")
def vberth(host_ready, images):
    with support.own_berth("vsrc", bridge=BRIDGE, subnet=SUBNET, make=_vberth) as server:
        yield server


def _run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr or p.stdout}"
    return p.stdout


@pytest.fixture(scope="module")
def nfs_export():
    """A temp dir exported read-write to 127.0.0.1 by the kernel's NFS server (Debian's
    nfs-kernel-server), started here without systemd; stopped at the end."""
    filesystems = Path("/proc/filesystems").read_text()
    for binary in ("exportfs", "rpc.nfsd", "rpc.mountd", "mount.nfs"):
        assert shutil.which(binary) or Path(f"/usr/sbin/{binary}").exists() or Path(
            f"/sbin/{binary}").exists(), f"{binary} is missing: install nfs-kernel-server"
    if "nfsd" not in filesystems:
        subprocess.run(["modprobe", "nfsd"], capture_output=True)
        filesystems = Path("/proc/filesystems").read_text()
    assert "nfsd" in filesystems, (
        "this kernel has no NFS server (no nfsd in /proc/filesystems, modprobe nfsd failed): "
        "NFS volumes cannot be tested on this host"
    )
    subprocess.run(["modprobe", "nfs"], capture_output=True)
    assert "\tnfs\n" in Path("/proc/filesystems").read_text() or "\tnfs4\n" in Path(
        "/proc/filesystems").read_text(), "this kernel has no NFS client (no nfs in /proc/filesystems)"
    if not any(" /proc/fs/nfsd " in l for l in Path("/proc/self/mounts").read_text().splitlines()):
        _run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
    export = Path(tempfile.mkdtemp(prefix="berth-nfs-", dir="/tmp"))
    export.chmod(0o777)
    (export / "ro").mkdir()
    (export / "ro" / "hello").write_text("from the server\n")
    subprocess.run(["rpcbind"], capture_output=True)
    _run("rpc.nfsd", "4")
    mountd = subprocess.Popen(["rpc.mountd", "-F"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    _run("exportfs", "-i", "-o", "rw,no_root_squash,insecure,no_subtree_check,fsid=0",
         f"{LOOPBACK}:{export}")
    try:
        yield export
    finally:
        subprocess.run(["exportfs", "-u", f"{LOOPBACK}:{export}"], capture_output=True)
        subprocess.run(["rpc.nfsd", "0"], capture_output=True)
        mountd.terminate()
        mountd.wait(10)
        shutil.rmtree(export, ignore_errors=True)


def nfs(name: str, path: str, server: str = LOOPBACK, read_only=None):
    return M.CreateContainerGroupRequestVolume(
        name=name,
        type="NFSVolume",
        nfsvolume=M.CreateContainerGroupRequestVolumeNFSVolume(
            server=server, path=path, read_only=read_only
        ),
    )


def mount(name, path, **kw):
    return M.CreateContainerGroupRequestContainerVolumeMount(name=name, mount_path=path, **kw)


def create(berth: Berth, images, name: str, containers: list, volumes: list) -> str:
    req = M.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name=name,
        restart_policy="Never",
        plain_http_registry=images.registry,
        termination_grace_period_seconds=5,
        container=containers,
        volume=volumes,
    )
    gid = berth.client().create_container_group(req).body.container_group_id
    getattr(berth, "tracker", set()).add(gid)
    return gid


def nfs_mounts(state_dir: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f
                if " - nfs" in l and l.split()[4].startswith(str(state_dir))]


# Needs a kernel with the NFS server and client (nfsd, nfs in /proc/filesystems); the CI
# machine's kernel has neither, so the suite deselects it (pytest.ini). Run it on such a host
# with `-m needs_kernel_nfs`, after `apt-get install nfs-kernel-server`.
@pytest.mark.needs_kernel_nfs
def test_nfs_volume_is_shared_read_only_and_unmounted(vberth, images, nfs_export):
    client = vberth.client()
    gid = create(
        vberth,
        images,
        "nfs",
        [
            container("c", images.image, SLEEP, volume_mount=[
                mount("data", "/data"), mount("data", "/sub", sub_path="made/here"),
                mount("ro", "/ro")]),
            container("d", images.image, SLEEP, volume_mount=[mount("data", "/data")]),
        ],
        [nfs("data", str(nfs_export)), nfs("ro", f"{nfs_export}/ro", read_only=True)],
    )
    wait_status(client, gid, ["Running"], never=["Failed"], diag=vberth.diag)
    assert nfs_mounts(vberth.state_dir), "no NFS mount on the host for the group"
    exec_sh(client, gid, "echo from-c > /data/shared; echo sub > /sub/file", "c")
    assert exec_sh(client, gid, "cat /data/shared", "d").strip() == "from-c"
    assert (nfs_export / "shared").read_text() == "from-c\n"
    assert (nfs_export / "made" / "here" / "file").read_text() == "sub\n"
    exec_sh(client, gid, "echo from-d >> /data/shared", "d")
    assert (nfs_export / "shared").read_text() == "from-c\nfrom-d\n"
    assert exec_sh(client, gid, "cat /ro/hello", "c") == "from the server\n"
    out = exec_sh(client, gid, "echo x > /ro/new && echo written || echo refused", "c")
    assert "refused" in out and not (nfs_export / "ro" / "new").exists()

    began = time.monotonic()
    support.delete(client, gid)
    wait_for(f"{gid} to be deleted", lambda: support.describe(client, gid) is None, 60)
    print(f"delete with an NFS volume: {time.monotonic() - began:.2f}s")
    assert not nfs_mounts(vberth.state_dir), "an NFS mount is left after the delete"
    assert (nfs_export / "shared").exists(), "the export's data must stay on the server"


@pytest.mark.parametrize("server", ["10.0.0.1", "nfs.example", "127.0.0.2"])
def test_nfs_servers_not_allowed_are_refused(vberth, images, server):
    client = vberth.client()
    before = len(support.list_groups(client))
    with pytest.raises(ClientException) as exc:
        create(vberth, images, "nfs-bad", [container("c", images.image, SLEEP)],
               [nfs("v", "/export", server=server)])
    assert exc.value.status_code == 400, exc.value.message
    assert "Volume.1.NFSVolume.Server" in exc.value.message, exc.value.message
    assert len(support.list_groups(client)) == before


def test_nfs_is_refused_where_no_server_is_allowed(berth, images):
    with pytest.raises(ClientException) as exc:
        create(berth, images, "nfs-none", [container("c", images.image, SLEEP)],
               [nfs("v", "/export")])
    assert "Volume.1.NFSVolume.Server" in exc.value.message
    assert "allows no NFS server" in exc.value.message


def test_nfs_mount_failure_is_reported_and_delete_is_prompt(vberth, images):
    """An export that cannot be mounted (not exported; on a kernel without NFS, no mount at
    all) keeps the group from starting with an event saying why; its delete does not wait."""
    client = vberth.client()
    gid = create(vberth, images, "nfs-dead", [
        container("c", images.image, SLEEP, volume_mount=[mount("v", "/v")])],
        [nfs("v", "/berth-no-such-export")])

    def reported():
        events = support.events_of(client, gid)
        hits = [e for e in events if "NFS export 127.0.0.1:/berth-no-such-export" in
                (e.get("Message") or "")]
        return hits or None

    wait_for("the failed NFS mount to be reported", reported, 90, diag=vberth.diag)
    group = support.describe(client, gid)
    assert support.container_of(group, "c")["CurrentState"].get("State") != "Running"
    began = time.monotonic()
    support.delete(client, gid)
    wait_for(f"{gid} to be deleted", lambda: support.describe(client, gid) is None, 30)
    took = time.monotonic() - began
    print(f"delete of a group whose NFS mount failed: {took:.2f}s")
    assert took < 20, f"the delete took {took:.1f}s"
    assert not nfs_mounts(vberth.state_dir)


def host_path(name: str, path, kind=None):
    return M.CreateContainerGroupRequestVolume(
        name=name,
        type="HostPathVolume",
        host_path_volume=M.CreateContainerGroupRequestVolumeHostPathVolume(
            path=str(path), type=kind
        ),
    )


def test_host_paths_below_the_prefix_are_mounted(vberth, images):
    client = vberth.client()
    allowed = vberth.host / "allowed"
    gid = create(
        vberth,
        images,
        "hostpath",
        [container("c", images.image, SLEEP, volume_mount=[
            mount("data", "/data"),
            mount("conf", "/etc/app.conf", read_only=True),
            mount("made", "/made"),
            mount("whole", "/whole", read_only=True),
        ])],
        [
            host_path("data", allowed / "data", "Directory"),
            host_path("conf", allowed / "app.conf", "File"),
            host_path("made", allowed / "new" / "dir", "DirectoryOrCreate"),
            host_path("whole", allowed),
        ],
    )
    wait_status(client, gid, ["Running"], never=["Failed"], diag=vberth.diag)
    exec_sh(client, gid, "echo from-container > /data/out; echo m > /made/f")
    assert (allowed / "data" / "out").read_text() == "from-container\n"
    assert (allowed / "new" / "dir" / "f").read_text() == "m\n"
    assert exec_sh(client, gid, "cat /etc/app.conf") == "conf\n"
    out = exec_sh(client, gid, "echo x > /etc/app.conf && echo written || echo refused")
    assert "refused" in out and (allowed / "app.conf").read_text() == "conf\n"
    # The prefix itself, read-only; its symlinks lead nowhere outside the container.
    out = exec_sh(client, gid, "ls /whole; cat /whole/up/secret 2>&1; echo x > /whole/w 2>&1")
    assert "data" in out and "host secret" not in out, out
    assert not (allowed / "w").exists()
    support.delete(client, gid)
    wait_for(f"{gid} to be deleted", lambda: support.describe(client, gid) is None, 60)
    assert not support.mounts_under(vberth.state_dir / "node" / "groups" / gid)
    assert (allowed / "data" / "out").exists(), "the host's files stay after the delete"


@pytest.mark.parametrize(
    "rel",
    ["secret", ".", "allowed2", "allowed/../secret", "/etc", "/", "allowed/data/../../secret"],
)
def test_host_paths_outside_the_prefix_are_refused(vberth, images, rel):
    client = vberth.client()
    path = rel if rel.startswith("/") else f"{vberth.host}/{rel}"
    before = len(support.list_groups(client))
    with pytest.raises(ClientException) as exc:
        create(vberth, images, "hostpath-bad", [container("c", images.image, SLEEP)],
               [host_path("v", path)])
    assert exc.value.status_code == 400, exc.value.message
    assert "Volume.1.HostPathVolume.Path" in exc.value.message, exc.value.message
    assert len(support.list_groups(client)) == before


@pytest.mark.parametrize("link", ["up", "up/secret", "inner"])
def test_symlinks_below_the_prefix_are_not_followed(vberth, images, link):
    client = vberth.client()
    gid = create(vberth, images, "hostpath-link", [
        container("c", images.image, SLEEP, volume_mount=[mount("v", "/v")])],
        [host_path("v", vberth.host / "allowed" / link)])

    def refused():
        hits = [e for e in support.events_of(client, gid)
                if "symbolic link" in (e.get("Message") or "")]
        return hits or None

    wait_for(f"the {link} host path to be refused", refused, 60, diag=vberth.diag)
    group = support.describe(client, gid)
    assert support.container_of(group, "c")["CurrentState"].get("State") != "Running"
    support.delete(client, gid)
    wait_for(f"{gid} to be deleted", lambda: support.describe(client, gid) is None, 60)


def test_host_paths_are_refused_where_no_prefix_is_allowed(berth, images):
    with pytest.raises(ClientException) as exc:
        create(berth, images, "hostpath-none", [container("c", images.image, SLEEP)],
               [host_path("v", "/tmp")])
    assert "Volume.1.HostPathVolume.Path" in exc.value.message
    assert "allows no host path" in exc.value.message


def test_host_path_mount_survives_a_crash_and_goes_with_the_group(vberth, images):
    client = vberth.client()
    allowed = vberth.host / "allowed"
    gid = create(vberth, images, "hostpath-crash", [
        container("c", images.image, SLEEP, volume_mount=[mount("data", "/data")])],
        [host_path("data", allowed / "data", "Directory")])
    wait_status(client, gid, ["Running"], never=["Failed"], diag=vberth.diag)
    group_dir = vberth.state_dir / "node" / "groups" / gid
    assert support.mounts_under(group_dir), "no host-path bind for the group"
    vberth.kill()
    vberth.start()
    client = vberth.client()
    wait_status(client, gid, ["Running"], never=["Failed"], diag=vberth.diag)
    exec_sh(client, gid, "echo after-crash > /data/crash")
    assert (allowed / "data" / "crash").read_text() == "after-crash\n"
    support.delete(client, gid)
    wait_for(f"{gid} to be deleted", lambda: support.describe(client, gid) is None, 60)
    assert not support.mounts_under(group_dir), support.mounts_under(group_dir)
