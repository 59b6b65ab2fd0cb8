"""A cluster of berth on one machine for the end-to-end tests: PostgreSQL on loopback,
control-plane replicas (`berth serve --no-node`) and node agents (`berth node`), each node in
a network namespace of its own with its own address on a bridge the test makes (a "host").

    host                       10.250.0.1/24 on bridge berthcl0 (replicas, the registry)
    netns berthcl-n1..nN       10.250.0.11.. on a veth to berthcl0 (a node agent each, its
                               groups on its own bridge berthn0 with subnet 10.25X.0.0/16)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import support
from support import BERTH_BIN, Registry, free_port, tail, wait_for

BRIDGE = "berthcl0"
HOST_IP = "10.250.0.1"
PREFIX = 24


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout}{res.stderr}"
    return res


class Hosts:
    """The test bridge and one network namespace per node ("hosts")."""

    def __init__(self, count: int):
        self.names = [f"berthcl-n{i + 1}" for i in range(count)]
        self.ips = [f"10.250.0.{11 + i}" for i in range(count)]

    def up(self) -> None:
        self.down()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/{PREFIX}", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i, (ns, ip) in enumerate(zip(self.names, self.ips)):
            host_end, ns_end = f"berthclh{i + 1}", f"berthcln{i + 1}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            sh("ip", "link", "set", host_end, "master", BRIDGE, "up")
            sh("ip", "link", "set", ns_end, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{ip}/{PREFIX}", "dev", ns_end)
            sh("ip", "-n", ns, "link", "set", ns_end, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", HOST_IP)

    def down(self) -> None:
        for i, ns in enumerate(self.names):
            # The host's end takes its peer with it, even while something keeps the
            # namespace alive.
            sh("ip", "link", "del", f"berthclh{i + 1}", check=False)
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", BRIDGE, check=False)


class Replica(support.Berth):
    """`berth serve --no-node` on every address of the host (the nodes call it on the test
    bridge's address; the tests on loopback)."""

    def __init__(self, state_dir: Path, log: Path, extra_args: list[str]):
        super().__init__(state_dir, log, extra_args)
        self.endpoint = f"0.0.0.0:{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.node_url = f"http://{HOST_IP}:{self.port}"

    def node_defaults(self) -> list[str]:
        """None: a replica runs no node, and refuses node flags."""
        return []

    def client(self, secret=None, **config):
        listen = self.endpoint
        self.endpoint = f"127.0.0.1:{self.port}"
        try:
            return super().client(secret, **config)
        finally:
            self.endpoint = listen


class Node:
    """`berth node` in a network namespace of its own."""

    def __init__(self, base: Path, name: str, netns: str, ip: str, index: int,
                 extra_args: list[str]):
        self.name = name
        self.netns = netns
        self.ip = ip
        self.state_dir = base / name
        self.log = base / f"{name}.log"
        self.subnet = f"10.{251 + index}.0.0/16"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    def start(self, join: str, token: str | None, timeout: float = 60) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, RUST_LOG="info,berth=debug", RUST_BACKTRACE="1", NO_COLOR="1")
        if token is not None:
            env["BERTH_JOIN_TOKEN"] = token
        with open(self.log, "ab") as log:
            log.write(f"==== berth node starting at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            started_at = log.tell()
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", str(BERTH_BIN), "node",
                 "--join", join, "--name", self.name, "--listen", f"{self.ip}:8090",
                 "--state-dir", str(self.state_dir), "--bridge", "berthn0",
                 "--subnet", self.subnet, "--netns-pool", "2", "--gvisor-pool", "0",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"berth node exited with {self.proc.returncode}:\n"
                                     f"{tail(self.log)}")
            with open(self.log, "rb") as f:
                f.seek(started_at)
                return b"desired state read" in f.read()

        wait_for(f"node {self.name} to join", ready, timeout, 0.1, lambda: tail(self.log))

    def identity(self) -> dict:
        return json.loads((self.state_dir / "cluster-node.json").read_text())

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return True
        return support.stop_process(self.proc, signal.SIGTERM, timeout)


def sign(node: str, key_hex: str, method: str, path: str, query: str, body: bytes) -> dict:
    """The headers of a node call (docs/NODE_PROTOCOL.md), as a node signs it."""
    date = str(int(time.time()))
    nonce = secrets.token_hex(12)
    text = "\n".join([
        "BERTH-NODE-HMAC-SHA256", method.upper(), path, query, date, nonce,
        hashlib.sha256(body).hexdigest(),
    ])
    signature = hmac.new(bytes.fromhex(key_hex), text.encode(), hashlib.sha256).hexdigest()
    return {"x-berth-node": node, "x-berth-date": date, "x-berth-nonce": nonce,
            "x-berth-signature": signature}


def cluster_registry(workdir: Path) -> Registry:
    """The test registry on the host's address of the test bridge, which nodes reach."""
    reg = Registry(workdir)
    reg.port = free_port()
    reg.host = f"{HOST_IP}:{reg.port}"
    return reg
