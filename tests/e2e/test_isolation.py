"""Isolation, tried from inside containers as a hostile tenant would: another account's
groups, the host, link-local addresses (a metadata "host" this test makes at 169.254.169.254)
and spoofed addresses are out of reach; the same account's groups are not. Capabilities
beyond the allow-list are refused at create, and the default set has no NET_RAW while ping
still works."""

from __future__ import annotations

import http.server
import subprocess
import threading
import uuid

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import container, pretty, wait_status
from test_tenancy import new_account, owned, sdk  # noqa: F401 (owned is a fixture)

METADATA_IP = "169.254.169.254"
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]


def _reaches(client, gid: str, url: str) -> bool:
    """Whether an HTTP GET of url from inside the group gets an answer. (busybox's nc: the
    static wget crashes in glibc's resolver.)"""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    out = support.exec_sh(
        client,
        gid,
        f"printf 'GET /{path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port or 80} 2>&1 | head -1;"
        " echo DONE",
    )
    assert "DONE" in out, out
    return "HTTP/1." in out


def _group(groups, client, images, name: str, command=HTTPD, caps=None) -> tuple[str, str]:
    sc = None
    if caps:
        sc = models.CreateContainerGroupRequestContainerSecurityContext(
            capability=models.CreateContainerGroupRequestContainerSecurityContextCapability(add=caps)
        )
    gid = groups.create(
        name, [container("c", images.image, command, security_context=sc)], client=client
    )
    group = wait_status(client, gid, ["Running"], 60, never=["Failed"])
    return gid, group["IntranetIp"]


@pytest.fixture
def metadata_host():
    """A network namespace at 169.254.169.254 routed from the host, serving HTTP."""
    ns = f"berth-md-{uuid.uuid4().hex[:6]}"
    host_if, ns_if = f"vmd{ns[-6:]}", "eth0"

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        sh("ip", "addr", "add", "169.254.169.253/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{METADATA_IP}/30", "dev", ns_if)
        sh("ip", "-n", ns, "link", "set", ns_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.169.253")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # From the host it answers: the blocking below is isolation's doing.
        support.wait_for(
            "the metadata host to answer",
            lambda: "127.0.0.1" in support.http_get(f"http://{METADATA_IP}/hosts", timeout=2),
            10,
        )
        yield METADATA_IP
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def host_listener():
    """An HTTP server on every address of the host."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_hostile_tenant_reaches_only_its_own_groups(
    berth, client, groups, images, metadata_host, host_listener, owned
):
    _, other_key = new_account(berth, "iso")
    other = sdk(berth, other_key)

    mine, mine_ip = _group(groups, client, images, "iso-mine")
    prober, _ = _group(
        groups, client, images, "iso-prober", ["sleep", "3600"], caps=["NET_ADMIN", "NET_RAW"]
    )
    theirs, theirs_ip = _group(groups, other, images, "iso-theirs")
    owned.append((other, theirs))
    gateway = support.exec_sh(client, prober, "ip route | awk '/default/ {print $3}'").strip()
    assert gateway.count(".") == 3, gateway

    # The same account's group is reachable (admission runs beside the start: poll).
    support.wait_for(
        "the same account's group to be reachable",
        lambda: _reaches(client, prober, f"http://{mine_ip}/hostname"),
        10,
    )
    assert not _reaches(client, prober, f"http://{theirs_ip}/hostname"), "other account reached"
    assert not _reaches(other, theirs, f"http://{mine_ip}/hostname"), "other account reached"
    # The host: a listener on every address, through the gateway and the host's own address.
    assert support.http_get(f"http://127.0.0.1:{host_listener}/") == "host\n"
    assert not _reaches(client, prober, f"http://{gateway}:{host_listener}/"), "host reached"
    assert not _reaches(client, prober, f"http://{gateway}:{berth.port}/"), "berth reached"
    # Link-local: the metadata host answers the host, not the groups.
    assert not _reaches(client, prober, f"http://{metadata_host}/hosts"), "metadata reached"

    # A spoofed source address goes nowhere, and neither does a changed MAC.
    spoof = mine_ip.rsplit(".", 1)[0] + ".250"
    out = support.exec_sh(
        client,
        prober,
        f"ip addr add {spoof}/32 dev eth0 && ip route add {mine_ip}/32 dev eth0 src {spoof}"
        " && echo SET",
    )
    assert "SET" in out, out
    assert not _reaches(client, prober, f"http://{mine_ip}/hostname"), "spoofed source passed"
    support.exec_sh(client, prober, f"ip route del {mine_ip}/32")
    assert _reaches(client, prober, f"http://{mine_ip}/hostname"), "its own address stopped"
    out = support.exec_sh(client, prober, "ip link set eth0 address 02:42:de:ad:be:ef && echo SET")
    assert "SET" in out, out
    assert not _reaches(client, prober, f"http://{mine_ip}/hostname"), "spoofed MAC passed"


def test_capabilities_are_podmans_and_the_allow_list_holds(berth, client, groups, images):
    gid, _ = _group(groups, client, images, "caps-default", ["sleep", "3600"])
    status = support.exec_sh(client, gid, "grep CapEff /proc/self/status")
    eff = int(status.split()[-1], 16)
    net_raw, mknod, audit_write, sys_admin = 13, 27, 29, 21
    for bit in (net_raw, mknod, audit_write, sys_admin):
        assert not eff & (1 << bit), f"capability bit {bit} in {status}"
    # Without NET_RAW, ICMP echo sockets are open to every group (iputils' ping uses them).
    out = support.exec_sh(client, gid, "cat /proc/sys/net/ipv4/ping_group_range")
    assert out.split() == ["0", "2147483647"], out

    with pytest.raises(ClientException) as exc:
        _group(groups, client, images, "caps-admin", ["sleep", "3600"], caps=["SYS_ADMIN"])
    assert exc.value.code == "InvalidParameter", exc.value
    assert "SYS_ADMIN" in exc.value.message, exc.value
    names = [g.get("ContainerGroupName") for g in support.list_groups(client)]
    assert "caps-admin" not in names, pretty(names)
