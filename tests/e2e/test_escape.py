"""Escape probes: a hostile tenant inside a container of a real `berth serve` tries to reach
the host, under crun (the session's berth), under runc (conftest's runc_berth) and in the
gvisor runtime class (the session's berth, RuntimeClassName=gvisor: the probes run on gVisor's
kernel, in the group's sandbox).

`berth-probe` (tests/images/probe.c, in the test image) makes every attempt in a child
process of its own and prints one line each; it runs once per runtime, by ExecContainerCommand
in a group whose image also ships device nodes (the host's root disk, /dev/mem, /dev/kmsg).
Each probe is then a test of its own, `test_escape_is_refused[<probe>-<runtime>]`, whose
failure names the mechanism that should have stopped it (PROBES). A few things must keep
working (CONTROLS), so that a denial is the confinement's doing and not a broken probe.

Probes in SECCOMP are stopped by nothing but a seccomp profile (the kernel lets any process
create a user namespace, and the keyrings of uid 0 are the host root's): they fail until
berth ships its default profile.

Outside the probe binary: ARP spoofing of a neighbour with NET_RAW and NET_ADMIN (the host's
neighbour entry must keep the neighbour's MAC), and the host's hostname, cgroups and mounts
after the probes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models

import support
from support import REGION, Groups, ImageVariants, container, entry, pretty, wait_status

RUNTIMES = ("crun", "runc", "gvisor")

# Probes whose attempt gVisor's kernel lets through inside the sandbox, where it reaches
# nothing of the host (the sentry implements the call itself); each such case must stay
# "allowed" (a strict xfail), so a change in runsc shows.
_OWN_NAMESPACES = ("a namespace of gVisor's own kernel: the sentry implements unshare itself, "
                   "nothing is made on the host (the sentry's host calls are under its own "
                   "seccomp filter)")
_OWN_NODE = ("the node is made in the sentry's own file system and opens no device of the host "
             "(image-devices, the same nodes shipped in the image, is denied)")
GVISOR_INSIDE: dict[str, str] = {
    "unshare-mount": _OWN_NAMESPACES,
    "unshare-cgroup": _OWN_NAMESPACES,
    "unshare-user": _OWN_NAMESPACES,
    "mknod-block": _OWN_NODE,
    "mknod-mem": _OWN_NODE,
    "dev-nodes": "/dev/fuse is gVisor's own FUSE device, served by the sentry, not the host's",
    "syslog": "syslog(2) reads the sentry's own log (gVisor's boot messages), not the host's "
              "kernel log",
}
# Checks that do not apply inside gVisor, with why (strict xfail as well).
GVISOR_NOT_APPLICABLE: dict[str, str] = {}
# Controls gVisor does not offer (docs/API-EXTENSIONS.md), with what the probe sees instead.
GVISOR_NO_CONTROL = {
    "ping-socket": "Address family not supported",  # runsc --network=host has no ICMP sockets
}

def _cases(probes):
    """(probe, runtime) pairs, the gvisor ones marked where GVISOR_INSIDE says why."""
    for probe in probes:
        for runtime in RUNTIMES:
            marks = []
            if runtime == "gvisor" and probe in GVISOR_INSIDE:
                marks.append(pytest.mark.xfail(reason=GVISOR_INSIDE[probe], strict=True))
            yield pytest.param(probe, runtime, marks=marks, id=f"{probe}-{runtime}")


def _runtimes(check: str):
    """The runtimes of a check, the gvisor one marked where GVISOR_NOT_APPLICABLE says why."""
    for runtime in RUNTIMES:
        marks = []
        if runtime == "gvisor" and check in GVISOR_NOT_APPLICABLE:
            marks.append(pytest.mark.xfail(reason=GVISOR_NOT_APPLICABLE[check], strict=True))
        yield pytest.param(runtime, marks=marks, id=runtime)
PROBE = "/bin/berth-probe"

# Every probe of berth-probe and what is expected to stop it.
PROBES = {
    "mount-tmpfs": "no CAP_SYS_ADMIN",
    "mount-proc": "no CAP_SYS_ADMIN",
    "mount-bind": "no CAP_SYS_ADMIN",
    "remount-proc-sys": "no CAP_SYS_ADMIN",
    "umount-mask": "no CAP_SYS_ADMIN",
    "fsopen": "no CAP_SYS_ADMIN",
    "unshare-mount": "no CAP_SYS_ADMIN",
    "unshare-net": "no CAP_SYS_ADMIN",
    "unshare-pid": "no CAP_SYS_ADMIN",
    "unshare-cgroup": "no CAP_SYS_ADMIN",
    "unshare-user": "the default seccomp profile (unshare/clone with CLONE_NEWUSER)",
    "userns-mount": "the default seccomp profile (no user namespace, so no mount in one)",
    "userns-unmask": "locked mounts: the masks cannot be undone from a user namespace",
    "chroot-escape": "pivot_root into a mount namespace of its own (SYS_CHROOT is granted)",
    "pivot-root": "no CAP_SYS_ADMIN",
    "processes": "a pid namespace per container: no monitor, runtime or other container",
    "ptrace-foreign": "the pid namespace (the pids of the host do not exist inside)",
    "kill-foreign": "the pid namespace",
    "root-foreign": "the pid namespace (no /proc/<pid>/root of other containers)",
    "keyctl": "the default seccomp profile (keyrings are not namespaced: uid 0 is the host's)",
    "add-key": "the default seccomp profile",
    "bpf": "no CAP_BPF or CAP_SYS_ADMIN (kernel.unprivileged_bpf_disabled); seccomp too",
    "perf-event": "no CAP_PERFMON (kernel.perf_event_paranoid); seccomp too",
    "init-module": "no CAP_SYS_MODULE",
    "finit-module": "no CAP_SYS_MODULE",
    "syslog": "no CAP_SYSLOG",
    "iopl": "no CAP_SYS_RAWIO",
    "settime": "no CAP_SYS_TIME",
    "reboot": "no CAP_SYS_BOOT",
    "kexec": "no CAP_SYS_BOOT",
    "swapon": "no CAP_SYS_ADMIN",
    "acct": "no CAP_SYS_PACCT",
    "sethostname": "no CAP_SYS_ADMIN (and a UTS namespace per container)",
    "open-by-handle": "no CAP_DAC_READ_SEARCH",
    "raw-socket": "no CAP_NET_RAW (podman's default set)",
    "packet-socket": "no CAP_NET_RAW (podman's default set)",
    "read-kcore": "maskedPaths",
    "read-proc-keys": "maskedPaths",
    "read-timer-list": "maskedPaths",
    "read-sched-debug": "maskedPaths",
    "read-kmsg": "/dev is a tmpfs with the standard nodes only",
    "read-sys-firmware": "maskedPaths",
    "write-sysrq-trigger": "readonlyPaths",
    "write-core-pattern": "readonlyPaths (/proc/sys)",
    "write-vm-sysctl": "readonlyPaths (/proc/sys)",
    "write-net-sysctl": "readonlyPaths (/proc/sys); net.* is set through the bundle's sysctls",
    "write-uevent-helper": "/sys mounted read-only",
    "writable-cgroupfs": "/sys/fs/cgroup mounted read-only",
    "writable-proc-sys": "readonlyPaths (/proc/sys)",
    "writable-sys-kernel": "/sys mounted read-only",
    "writable-proc": "readonlyPaths (/proc/irq, /proc/bus, /proc/fs, /proc/sys, ...)",
    "read-masked": "maskedPaths (podman's list)",
    "mkdir-cgroup": "/sys/fs/cgroup mounted read-only",
    "mknod-block": "no CAP_MKNOD",
    "mknod-mem": "no CAP_MKNOD",
    "dev-nodes": "/dev is a tmpfs with the standard nodes only",
    "image-devices": "the devices cgroup (deny all but the standard nodes)",
}

# Stopped by the default seccomp profile alone (no capability or mask stops them).
SECCOMP = {"unshare-user", "userns-mount", "keyctl", "add-key"}

# What must work, or the denials above prove nothing.
CONTROLS = {
    "ping-socket": "ICMP echo sockets (net.ipv4.ping_group_range)",
    "read-proc-version": "an unmasked /proc file",
    "write-tmp": "the container's own writable layer",
}

# Device nodes shipped in the probe image: the host's root disk, /dev/mem, /dev/kmsg.
_root_dev = os.stat("/").st_dev
IMAGE_DEVICES = {
    "/probe/disk": ("block", (os.major(_root_dev), os.minor(_root_dev))),
    "/probe/mem": ("char", (1, 1)),
    "/probe/kmsg": ("char", (1, 11)),
}


@dataclass
class Run:
    runtime: str
    results: dict[str, tuple[str, str]] = field(default_factory=dict)
    output: str = ""
    hostname_before: str = ""
    hostname_after: str = ""
    arp: dict[str, str] = field(default_factory=dict)


def _exec(client, gid: str, name: str, argv: list[str]) -> tuple[str, int | None]:
    req = models.ExecContainerCommandRequest(
        region_id=REGION,
        container_group_id=gid,
        container_name=name,
        command=json.dumps(argv),
        sync=True,
    )
    body = client.exec_container_command(req).body.to_map()
    return body.get("SyncResponse") or "", body.get("ExitCode")


def _sh(client, gid: str, script: str, name: str = "c") -> str:
    return _exec(client, gid, name, ["sh", "-c", script])[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cgroup(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _foreign_pids(gids: list[str], prober: str) -> list[int]:
    """Host pids of what the probe must not reach: the other containers' processes (a
    sibling of the prober included) and every monitor of the groups."""
    found = set()
    for entry_ in Path("/proc").iterdir():
        if not entry_.name.isdigit():
            continue
        pid = int(entry_.name)
        cgroup = _cgroup(pid)
        if any(g in cgroup for g in gids):
            # A container's init is its monitor's child (a monitor of its own or shared).
            parent = _parent(pid)
            if parent and "monitor" in _cmdline(parent):
                found.add(parent)
            if f"{prober}/c" not in cgroup:
                found.add(pid)
    return sorted(found)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rfind(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _sleeper(name: str, **kw):
    return container(name, kw.pop("image"), ["sleep", "3600"], **kw)


def _caps(*caps: str):
    return models.CreateContainerGroupRequestContainerSecurityContext(
        capability=models.CreateContainerGroupRequestContainerSecurityContextCapability(
            add=list(caps)
        )
    )


def _probe(runtime: str, server, images, image: str, tracker: set[str]) -> Run:
    run = Run(runtime)
    client = server.client()
    groups = Groups(server, images, tracker, "gvisor" if runtime == "gvisor" else None)
    try:
        prober = groups.create(
            "esc-probe",
            [_sleeper("c", image=image), _sleeper("sib", image=image)],
            termination_grace_period_seconds=1,
        )
        neighbour = groups.create(
            "esc-neighbour", [_sleeper("c", image=image)], termination_grace_period_seconds=1
        )
        spoofer = groups.create(
            "esc-spoof",
            [_sleeper("c", image=image, security_context=_caps("NET_ADMIN", "NET_RAW"))],
            termination_grace_period_seconds=1,
        )
        gids = [prober, neighbour, spoofer]
        up = {
            g: wait_status(client, g, ["Running"], 90, never=["Failed"], diag=server.diag)
            for g in gids
        }
        foreign = _foreign_pids(gids, prober) + [server.pid]
        # The prober's sibling, the neighbour's and the spoofer's containers, at least one
        # monitor (the three groups' containers share their account's), and berth.
        monitors = [p for p in foreign if "monitor" in _cmdline(p)]
        assert len(foreign) >= 5 and monitors, f"found too few foreign processes: {foreign}"

        run.hostname_before = socket.gethostname()
        argv = [
            PROBE,
            "--host-path", str(server.state_dir),
            "--foreign-pids", ",".join(map(str, foreign)),
            "--devices", ",".join(IMAGE_DEVICES),
        ]
        run.output, _ = _exec(client, prober, "c", argv)
        run.hostname_after = socket.gethostname()
        assert "PROBES DONE" in run.output, run.output
        for line in run.output.splitlines():
            if line.startswith("PROBE "):
                _, name, verdict, *detail = line.split(" ")
                run.results[name] = (verdict, " ".join(detail))

        bridge = support.RUNC_BRIDGE if runtime == "runc" else support.BRIDGE
        # gVisor's /sys inside shows no MAC of the host's interfaces: read it from the host.
        netns = server.state_dir / "netns" if runtime == "gvisor" else None
        run.arp = _arp_spoof(client, bridge, up[neighbour], neighbour, spoofer, netns)
    finally:
        groups.delete_all()
    return run


def _arp_spoof(client, bridge: str, group: dict, neighbour: str, spoofer: str,
               netns: Path | None = None) -> dict[str, str]:
    """The spoofer claims the neighbour's address in gratuitous ARP; the host's entry for
    that address must keep the neighbour's MAC (read in the group, or from the host through
    its namespace's pin in `netns`)."""
    ip = group["IntranetIp"]
    if netns is None:
        mac = _sh(client, neighbour, "cat /sys/class/net/eth0/address").strip()
    else:
        link = subprocess.run(
            ["nsenter", f"--net={netns / neighbour}", "ip", "-o", "link", "show", "eth0"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        mac = link[link.index("link/ether") + 1]
    # Any packet from the host to the neighbour makes the host resolve its address.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (ip, 9))
    support.wait_for(f"the host to resolve {ip}", lambda: _neigh(ip, bridge) == mac, 5)
    before = _neigh(ip, bridge)
    # Linux ignores an update within a second of the last one (locktime).
    time.sleep(1.2)
    out = _sh(
        client,
        spoofer,
        f"ip addr add {ip}/32 dev eth0 && arping -U -c 3 -w 4 -I eth0 {ip} 2>&1; echo rc=$?",
    )
    time.sleep(0.5)
    return {"ip": ip, "mac": mac, "before": before, "after": _neigh(ip, bridge), "arping": out}


def _neigh(ip: str, bridge: str) -> str:
    out = subprocess.run(
        ["ip", "neigh", "show", ip, "dev", bridge], capture_output=True, text=True
    ).stdout
    parts = out.split()
    return parts[parts.index("lladdr") + 1] if "lladdr" in parts else out.strip()


@pytest.fixture(scope="module")
def probe_image(images, tmp_path_factory) -> str:
    variants = ImageVariants(tmp_path_factory.mktemp("escape-image"), images.registry)
    nodes = [entry("probe", "dir")] + [
        entry(path.lstrip("/"), kind, dev=dev, mode=0o666)
        for path, (kind, dev) in IMAGE_DEVICES.items()
    ]
    variants.add("escape-probe", [nodes])
    return variants.push()["escape-probe"]


@pytest.fixture(scope="module")
def probed(request, images, probe_image):
    """The probes' results per runtime, each run once, when first asked for."""
    runs: dict[str, Run] = {}
    broken: dict[str, str] = {}

    def get(runtime: str) -> Run:
        if runtime in broken:
            pytest.fail(f"the probes could not run under {runtime}: {broken[runtime]}")
        if runtime not in runs:
            if runtime in ("crun", "gvisor"):
                server = request.getfixturevalue("berth")
                tracker = request.getfixturevalue("tracker")
            else:
                server = request.getfixturevalue("runc_berth")
                tracker = server.tracker
            started = time.monotonic()
            try:
                runs[runtime] = _probe(runtime, server, images, probe_image, tracker)
            except BaseException as exc:
                broken[runtime] = f"{type(exc).__name__} (see the first failure)"
                raise
            print(f"{runtime}: probes run in {time.monotonic() - started:.1f}s")
        return runs[runtime]

    return get


@pytest.mark.parametrize("runtime", list(_runtimes("test_every_probe_ran")))
def test_every_probe_ran(probed, runtime):
    run = probed(runtime)
    expected = set(PROBES) | set(CONTROLS)
    assert set(run.results) == expected, (
        f"missing {sorted(expected - set(run.results))}, "
        f"unknown {sorted(set(run.results) - expected)}:\n{run.output}"
    )
    errors = {k: v for k, v in run.results.items() if v[0] not in ("denied", "allowed")}
    assert not errors, pretty(errors)


@pytest.mark.parametrize(("probe", "runtime"), list(_cases(sorted(PROBES))))
def test_escape_is_refused(probed, runtime, probe):
    verdict, detail = probed(runtime).results.get(probe, ("missing", "not reported"))
    hint = " (only seccomp stops it: berth has no default profile yet)" if probe in SECCOMP else ""
    assert verdict == "denied", (
        f"{probe} under {runtime} was {verdict}: {detail}\n"
        f"expected to be stopped by: {PROBES[probe]}{hint}"
    )


@pytest.mark.parametrize("runtime", list(_runtimes("test_controls_work")))
def test_controls_work(probed, runtime):
    run = probed(runtime)
    missing = GVISOR_NO_CONTROL if runtime == "gvisor" else {}
    broken = {
        name: run.results.get(name)
        for name in CONTROLS
        if name not in missing and run.results.get(name, ("missing",))[0] != "allowed"
    }
    for name, seen in missing.items():
        verdict, detail = run.results.get(name, ("missing", ""))
        if verdict != "denied" or seen not in detail:
            broken[name] = (verdict, f"{detail} (expected under {runtime}: {seen})")
    assert not broken, f"controls that must work under {runtime}: {pretty(broken)}"


@pytest.mark.parametrize("runtime", list(_runtimes("test_the_host_is_untouched")))
def test_the_host_is_untouched(probed, runtime):
    run = probed(runtime)
    assert run.hostname_after == run.hostname_before, "the host's hostname changed"
    left = support.cgroup_dirs_named(["berth-probe"])
    assert not left, f"cgroups made by the probes: {left}"
    mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if ".probe-" in m]
    assert not mounts, mounts


@pytest.mark.parametrize("runtime", list(_runtimes("test_arp_spoofing_does_not_poison_the_host")))
def test_arp_spoofing_does_not_poison_the_host(probed, runtime):
    arp = probed(runtime).arp
    if runtime == "gvisor":
        # With the host's stack (runsc --network=host) the sandbox may not even add the
        # neighbour's address to its interface: the spoof is refused before any packet.
        assert "RTNETLINK answers" in arp["arping"] and "rc=0" not in arp["arping"], pretty(arp)
    else:
        assert "Sent 3 probe" in arp["arping"] or "rc=0" in arp["arping"], pretty(arp)
    assert arp["before"] == arp["mac"], f"the host had no entry of the neighbour: {pretty(arp)}"
    assert arp["after"] == arp["mac"], f"the spoofed ARP reached the host: {pretty(arp)}"
