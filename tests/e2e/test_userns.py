"""User namespaces per group (`berth serve --userns`), end to end with the official SDK.

A berth of its own (bridge berthu0, subnet 10.219.0.0/16) runs every group in a user
namespace: container ids 0..65535 map to a host range of 65,536 ids that no other live group
holds, recorded in `node/userns/<first host id>`. The image's files are shown through
id-mapped layers, so they are the container root's inside and stay host root's on disk; what
container root writes lands in the group's writable layer owned by the mapped host id.
The escape probes of tests/images/probe.c run in such a group too, and a berth asked for
--userns with runc refuses to start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models

import support
from support import REGION, Berth, Groups, ImageVariants, container, entry, exec_sh, wait_status

BRIDGE = "berthu0"
SUBNET = "10.219.0.0/16"
RANGE = 65536
BASE = 1 << 30
PROBE = "/bin/berth-probe"

# Probes that must stay refused with container root in a user namespace, and why.
PROBES = {
    "mount-tmpfs": "no CAP_SYS_ADMIN (and none over the host's mounts from the user namespace)",
    "mount-proc": "no CAP_SYS_ADMIN",
    "mount-bind": "no CAP_SYS_ADMIN",
    "remount-proc-sys": "no CAP_SYS_ADMIN",
    "fsopen": "no CAP_SYS_ADMIN",
    "unshare-user": "the default seccomp profile (no nested user namespace)",
    "userns-mount": "the default seccomp profile",
    "userns-unmask": "locked mounts",
    "write-core-pattern": "readonlyPaths; /proc/sys belongs to the host's user namespace",
    "write-net-sysctl": "the network namespace belongs to the host's user namespace",
    "writable-proc-sys": "readonlyPaths (/proc/sys)",
    "read-kcore": "maskedPaths",
    "read-proc-keys": "maskedPaths",
    "image-devices": "the devices cgroup; device nodes of the image do not open",
    "mknod-block": "no CAP_MKNOD",
    "keyctl": "the default seccomp profile",
    "processes": "a pid namespace per container",
    "kill-foreign": "the pid namespace",
}
CONTROLS = ("ping-socket", "write-tmp", "read-proc-version")


def _ranges_left(server: Berth) -> list[str]:
    left = ranges_on_disk(server)
    return [f"user id ranges still allocated after every delete: {left}"] if left else []


@pytest.fixture(scope="module")
def userns_berth(host_ready, images):
    # Above the state directory berth changes nothing: the operator lets others search it.
    with support.own_berth(
        "userns", ["--userns"], bridge=BRIDGE, subnet=SUBNET, base_mode=0o711,
        before_stop=_ranges_left,
    ) as server:
        yield server


@pytest.fixture
def ugroups(userns_berth, images):
    g = Groups(userns_berth, images, userns_berth.tracker)
    yield g
    g.delete_all()


def ranges_on_disk(server: Berth) -> dict[int, str]:
    d = server.state_dir / "node" / "userns"
    if not d.exists():
        return {}
    return {int(p.name): p.read_text() for p in d.iterdir() if p.name.isdigit()}


def uid_map(client, gid: str) -> tuple[int, int, int]:
    out = exec_sh(client, gid, "cat /proc/self/uid_map /proc/self/gid_map")
    lines = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0] == lines[1], out
    return lines[0]


def sleeper(images, name: str = "c", **kw):
    return container(name, images.image, ["sh", "-c", "echo started-$HOSTNAME; exec sleep 3600"], **kw)


def start(ugroups, images, client, name: str, n: int = 1) -> list[str]:
    gids = [
        ugroups.create(f"{name}-{i}", [sleeper(images)], termination_grace_period_seconds=1)
        for i in range(n)
    ]
    for g in gids:
        wait_status(
            client, g, ["Running"], 60, never=["Failed"],
            diag=lambda g=g: support.pretty(support.events_of(client, g)),
        )
    return gids


def disjoint(a: int, b: int) -> bool:
    return a + RANGE <= b or b + RANGE <= a


def test_runc_with_userns_is_refused(host_ready, tmp_path):
    out = support.serve_refused(
        tmp_path / "state",
        ["--userns", "--runtime", "runc", "--bridge", BRIDGE, "--subnet", SUBNET,
         "--netns-pool", "0"],
    )
    assert "need crun" in out, out


def test_bad_userns_base_is_refused(host_ready, tmp_path):
    out = support.serve_refused(
        tmp_path / "state", ["--userns", "--userns-base", str((1 << 31) - 10)]
    )
    assert "below 2^31" in out, out


def test_container_root_is_a_mapped_range(userns_berth, ugroups, images):
    client = userns_berth.client()
    a, b = start(ugroups, images, client, "uns-map", 2)
    ma, mb = uid_map(client, a), uid_map(client, b)
    for m in (ma, mb):
        assert m[0] == 0 and m[2] == RANGE and m[1] >= BASE and m[1] + RANGE <= 1 << 31, m
    assert disjoint(ma[1], mb[1]), (ma, mb)
    on_disk = ranges_on_disk(userns_berth)
    assert on_disk.get(ma[1]) == a and on_disk.get(mb[1]) == b, on_disk

    # The image's files and berth's /etc files are the container root's inside.
    out = exec_sh(
        client, a,
        "id -u; stat -c '%u:%g %n' /bin/busybox / /etc/hosts /etc/resolv.conf /etc/hostname",
    )
    lines = out.splitlines()
    assert lines[0] == "0", out
    for line in lines[1:]:
        assert line.startswith("0:0 "), out
    # Container root can write its /etc files and its root directory.
    assert exec_sh(client, a, "echo 10.0.0.1 x >> /etc/hosts && echo hi > /written && echo ok") == "ok\n"
    upper = userns_berth.state_dir / "node" / "storage" / a / "c" / "upper"
    st = os.stat(upper / "written")
    assert (st.st_uid, st.st_gid) == (ma[1], ma[1]), (st, ma)
    # The shared layer keeps host root as its owner.
    layers = userns_berth.state_dir / "node" / "images"
    busyboxes = [p for p in layers.rglob("busybox") if p.is_file() and not p.is_symlink()]
    assert busyboxes and all(os.stat(p).st_uid == 0 for p in busyboxes), busyboxes


def test_exec_logs_and_the_network(userns_berth, ugroups, images):
    client = userns_berth.client()
    (a,) = start(ugroups, images, client, "uns-net")
    # A listener on port 80 in another group of the account (container root binds a port
    # below 1024 of a network namespace the host owns): the groups reach each other from inside
    # their user namespaces. (ICMP echo sockets are a probe of
    # test_escape_probes_stay_refused: busybox ping only uses raw sockets, which no
    # container has.)
    listener = container(
        "c", images.image,
        ["sh", "-c", "while true; do nc -l -p 80 -e cat /etc/hostname; done"],
    )
    b = ugroups.create("uns-net-listener", [listener], termination_grace_period_seconds=1)
    wait_status(client, b, ["Running"], 60, never=["Failed"])
    ip_b = support.describe(client, b)["IntranetIp"]
    got = support.wait_for(
        "the listener to answer",
        lambda: exec_sh(client, a, f"nc -w 3 {ip_b} 80 </dev/null 2>/dev/null").strip() or None,
        20,
    )
    assert got == "uns-net-listener", got
    assert support.logs(client, a, "c").startswith("started-"), support.logs(client, a, "c")
    # The hostname resolves through the group's own /etc/hosts.
    assert exec_sh(client, a, "hostname").strip() != ""


def test_sysctls_apply_in_a_user_namespace(userns_berth, ugroups, images):
    """The node writes the group's net.* sysctls (the network namespace is the host's), the
    runtime the IPC ones (the container's IPC namespace is its own)."""
    client = userns_berth.client()
    host_range = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    gid = ugroups.create(
        "uns-sysctl",
        [container("c", images.image, ["sleep", "3600"])],
        security_context=models.CreateContainerGroupRequestSecurityContext(
            sysctl=[
                models.CreateContainerGroupRequestSecurityContextSysctl(
                    name="net.ipv4.ip_local_port_range", value="20000 30000"),
                models.CreateContainerGroupRequestSecurityContextSysctl(
                    name="kernel.shmmni", value="1234"),
            ]
        ),
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    out = exec_sh(
        client, gid, "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shmmni"
    )
    assert out.split() == ["20000", "30000", "1234"], out
    assert Path("/proc/sys/net/ipv4/ip_local_port_range").read_text() == host_range


def test_volumes_belong_to_the_mapped_root(userns_berth, ugroups, images):
    from test_volumes import config_files, empty_dir, mount

    client = userns_berth.client()
    c = sleeper(
        images,
        volume_mount=[
            mount("scratch", "/scratch"),
            mount("mem", "/mem"),
            mount("conf", "/conf"),
            mount("scratch", "/sub", sub_path="deeper/dir"),
        ],
    )
    gid = ugroups.create(
        "uns-vol",
        [c],
        volume=[
            empty_dir("scratch"),
            empty_dir("mem", medium="Memory", size_limit="16Mi"),
            config_files("conf", [("secret.txt", b"only-root", "0600")]),
        ],
        termination_grace_period_seconds=1,
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    out = exec_sh(
        client, gid,
        "cat /conf/secret.txt; echo; stat -L -c '%u:%g %a' /conf/secret.txt /scratch /mem; "
        "stat -c '%u:%g' /conf/secret.txt; "
        "echo x > /scratch/f && echo x > /mem/f && echo x > /sub/f && echo wrote",
    )
    lines = out.splitlines()
    assert lines[0] == "only-root", out
    assert lines[1] == "0:0 600", out
    assert lines[2].startswith("0:0 ") and lines[3].startswith("0:0 "), out
    # The file is a link of the kubelet's layout (through ..data), owned as the files are.
    assert lines[4] == "0:0", out
    assert lines[-1] == "wrote", out
    m = uid_map(client, gid)
    written = list(Path(userns_berth.state_dir).glob(f"node/**/{gid}/.volumes/scratch/f"))
    assert written and all(p.stat().st_uid == m[1] for p in written), (written, m)


def test_ranges_are_freed_and_survive_a_restart(userns_berth, ugroups, images):
    client = userns_berth.client()
    (a,) = start(ugroups, images, client, "uns-keep")
    (b,) = start(ugroups, images, client, "uns-gone")
    ma, mb = uid_map(client, a), uid_map(client, b)
    support.delete(client, b)
    support.wait_for("the group to go", lambda: support.describe(client, b) is None, 60)
    assert mb[1] not in ranges_on_disk(userns_berth)

    # berth killed and started again: the running group keeps its range and container.
    userns_berth.kill()
    userns_berth.start()
    client = userns_berth.client()
    assert uid_map(client, a) == ma
    (c,) = start(ugroups, images, client, "uns-after")
    mc = uid_map(client, c)
    assert disjoint(mc[1], ma[1]), (mc, ma)
    on_disk = ranges_on_disk(userns_berth)
    assert on_disk.get(ma[1]) == a and on_disk.get(mc[1]) == c, on_disk
    # A group restarted by its policy runs in the same range (exec still works).
    assert exec_sh(client, a, "echo alive") == "alive\n"


@pytest.fixture(scope="module")
def probe_image(images, tmp_path_factory) -> str:
    variants = ImageVariants(tmp_path_factory.mktemp("userns-probe-image"), images.registry)
    root_dev = os.stat("/").st_dev
    nodes = [
        entry("probe", "dir"),
        entry("probe/disk", "block", dev=(os.major(root_dev), os.minor(root_dev)), mode=0o666),
        entry("probe/mem", "char", dev=(1, 1), mode=0o666),
    ]
    variants.add("userns-probe", [nodes])
    return variants.push()["userns-probe"]


def test_escape_probes_stay_refused(userns_berth, ugroups, images, probe_image):
    client = userns_berth.client()
    gid = ugroups.create(
        "uns-probe",
        [container("c", probe_image, ["sleep", "3600"]), container("sib", probe_image, ["sleep", "3600"])],
        termination_grace_period_seconds=1,
    )
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=userns_berth.diag)
    req = models.ExecContainerCommandRequest(
        region_id=REGION,
        container_group_id=gid,
        container_name="c",
        command=json.dumps([
            PROBE, "--host-path", str(userns_berth.state_dir),
            "--foreign-pids", str(userns_berth.pid), "--devices", "/probe/disk,/probe/mem",
        ]),
        sync=True,
    )
    output = client.exec_container_command(req).body.to_map().get("SyncResponse") or ""
    assert "PROBES DONE" in output, output
    results = {}
    for line in output.splitlines():
        if line.startswith("PROBE "):
            _, name, verdict, *detail = line.split(" ")
            results[name] = (verdict, " ".join(detail))
    wrong = {
        p: (results.get(p), why) for p, why in PROBES.items()
        if results.get(p, ("missing",))[0] != "denied"
    }
    assert not wrong, support.pretty(wrong)
    broken = {c: results.get(c) for c in CONTROLS if results.get(c, ("missing",))[0] != "allowed"}
    assert not broken, support.pretty(broken)
