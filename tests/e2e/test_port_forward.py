"""PortForward (berth's extension) and `berth port-forward`: a local port carried to a port on
the group's own loopback (a server bound to 127.0.0.1 inside the group, unreachable from the
host), bytes intact both ways, another account's group not found, a closed port refused
(docs/API-EXTENSIONS.md)."""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import urllib.request
import uuid

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_eci20180808.client import Client

import support
from support import BERTH_BIN, container, wait_for, wait_status

# httpd on the group's loopback only, serving a 1 MiB random file and the group's hostname.
SERVER = (
    "mkdir -p /tmp/www && dd if=/dev/urandom of=/tmp/www/big bs=1024 count=1024 2>/dev/null"
    " && cp /etc/hostname /tmp/www/name"
    " && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
)


def port_forward(client: Client, **query: str) -> dict:
    return support.call_action(client, "PortForward", **query)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def upgrade(uri: str) -> tuple[int, str]:
    """A WebSocket upgrade request to `uri`: the status and body of a refusal."""
    m = re.match(r"ws://([^/:]+):(\d+)(/.*)", uri)
    assert m, uri
    with socket.create_connection((m.group(1), int(m.group(2))), timeout=10) as s:
        s.sendall(
            f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data and (chunk := s.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)) and (chunk := s.recv(65536)):
            body += chunk
        data = head + b"\r\n\r\n" + body
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


@pytest.fixture
def server_group(groups, images, client, berth):
    gid = groups.create(
        f"e2e-pf-{uuid.uuid4().hex[:6]}", [container("c", images.image, ["sh", "-c", SERVER])]
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    wait_for(
        "httpd to listen on the group's loopback",
        lambda: "ok" in support.exec_sh(
            client, gid, "wget -q -O /dev/null http://127.0.0.1:8080/name && echo ok 2>&1"
        ),
        30, diag=berth.diag,
    )
    return gid


def test_berth_port_forward_reaches_the_groups_loopback(berth, client, server_group):
    gid = server_group
    group = support.describe(client, gid)
    ip = group["IntranetIp"]
    # Bound to 127.0.0.1 inside the group: the group's own address does not answer.
    with pytest.raises(OSError):
        get(f"http://{ip}:8080/name")
    proc = subprocess.Popen(
        [str(BERTH_BIN), "--endpoint", berth.url, "--credentials", str(berth.credentials_path),
         "port-forward", gid, "0:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        local = int(m.group(1))
        name = get(f"http://127.0.0.1:{local}/name").decode().strip()
        assert name == support.exec_sh(client, gid, "cat /etc/hostname").strip()
        big = get(f"http://127.0.0.1:{local}/big")
        assert len(big) == 1024 * 1024
        inside = support.exec_sh(client, gid, "sha256sum /tmp/www/big").split()[0]
        assert hashlib.sha256(big).hexdigest() == inside
        # Several connections at once, each its own forward.
        for _ in range(5):
            assert get(f"http://127.0.0.1:{local}/name").decode().strip() == name
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_port_forward_is_refused_for_others_and_closed_ports(berth, client, server_group):
    gid = server_group
    # A closed port: the WebSocket is refused with the reason, no upgrade.
    uri = port_forward(client, ContainerGroupId=gid, Port="8081")["WebSocketUri"]
    status, body = upgrade(uri)
    assert status == 502 and "8081" in body, (status, body)
    # The token was used: a second connection is refused.
    assert upgrade(uri)[0] == 401
    # Bad ports by name.
    for bad in ("0", "65536", "x"):
        with pytest.raises(ClientException) as exc:
            port_forward(client, ContainerGroupId=gid, Port=bad)
        assert exc.value.code == "InvalidParameter" and "Port" in exc.value.message
    # Another account's key: the group is not found.
    _, key = support.new_account(berth, "e2e-pf")
    other = support.sdk_client(berth, key)
    with pytest.raises(ClientException) as exc:
        port_forward(other, ContainerGroupId=gid, Port="8080")
    assert exc.value.status_code == 404, exc.value.message
