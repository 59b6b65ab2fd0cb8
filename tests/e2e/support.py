"""Helpers shared by the end-to-end tests: processes, polling, SDK calls, leftover checks."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config

REPO = Path(__file__).resolve().parents[2]
BERTH_BIN = Path(os.environ.get("BERTH_BIN", REPO / "target" / "debug" / "berth"))
BUILD_IMAGE = REPO / "tests" / "images" / "build.sh"
REGION = "local"
NETNS_DIR = Path("/run/berth/netns")
BRIDGE = "berth0"
GROUP_ID_RE = re.compile(r"\beci-[a-z0-9]{20}\b")

# The second berth (conftest's runc_berth): runc, its own bridge and subnet, small caps on
# what one image may unpack to (32 MiB, 4,000 entries; the busybox image needs ~3 MiB and
# ~420 entries).
RUNC_BRIDGE = "berthr0"
RUNC_SUBNET = "10.218.0.0/16"
RUNC_MAX_IMAGE_GIB = 1 / 32
RUNC_MAX_IMAGE_ENTRIES = 4000

REGISTRY_USER = "berth"
REGISTRY_PASSWORD = "e2e-Secret-1"

# Small sizes so that several groups fit on a 2-core CI machine at once.
CPU = 0.25
MEMORY = 0.5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(_ANSI_RE.sub("", line) for line in text.splitlines()[-lines:])


class Timeout(AssertionError):
    pass


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 0.5,
    diag: Callable[[], str] | None = None,
) -> Any:
    """Call probe until it returns something truthy; fail after timeout seconds.

    Exceptions from probe count as "not yet" until the deadline; the last one is reported.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            last_value = probe()
            if last_value:
                return last_value
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f"\nlast error: {last_exc!r}"
            else:
                msg += f"\nlast value: {last_value!r}"
            if diag is not None:
                msg += "\n" + diag()
            raise Timeout(msg)
        time.sleep(interval)


def pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- processes


def pids_matching(needle: str) -> list[int]:
    """Pids whose command line contains needle (read with ps, as an operator would)."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    me = os.getpid()
    pids = []
    for line in out.splitlines():
        pid_s, _, args = line.strip().partition(" ")
        pid = int(pid_s)
        if needle in args and pid != me and "ps -eo" not in args:
            pids.append(pid)
    return sorted(pids)


def pids_in_cgroup(path: str) -> list[int]:
    """Pids of the host in the memory cgroup `path` (v1), e.g. a gVisor group's sandbox
    (sentry, gofers) in `/berth/<group>`: its containers' processes are not the host's."""
    try:
        text = Path(f"/sys/fs/cgroup/memory{path}/cgroup.procs").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> bool:
    """Send sig and wait; SIGKILL after timeout. Returns True if it exited on sig alone."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return False


# ----------------------------------------------------------------------------- registries


class Registry:
    """Debian's docker-registry on loopback with filesystem storage, optionally with htpasswd."""

    def __init__(
        self, workdir: Path, auth: tuple[str, str] | None = None, access_log: bool = False
    ):
        self.workdir = workdir
        self.auth = auth
        self.access_log = access_log
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = workdir / "registry.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = [
            "version: 0.1",
            "log:",
            "  level: info" if self.access_log else "  level: warn",
            "  accesslog:",
            f"    disabled: {'false' if self.access_log else 'true'}",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
            f"  secret: berth-e2e-{self.port}",
        ]
        if self.auth is not None:
            user, password = self.auth
            htpasswd = self.workdir / "htpasswd"
            line = subprocess.run(
                ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True
            ).stdout.strip()
            htpasswd.write_text(line + "\n")
            config += ["auth:", "  htpasswd:", "    realm: berth-e2e", f"    path: {htpasswd}"]
        conf = self.workdir / "config.yml"
        conf.write_text("\n".join(config) + "\n")
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "serve", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"docker-registry exited with {self.proc.returncode}:\n{tail(self.log)}"
                )
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
                return True
            except urllib.error.HTTPError as e:
                return e.code == 401 and self.auth is not None
            except OSError:
                return False

        wait_for(f"registry {self.host}", ready, timeout, 0.1, lambda: tail(self.log))

    def push_busybox(self, *names: str) -> list[str]:
        """Build the busybox image once and push it under each name; return the references."""
        names = names or ("busybox:latest",)
        cmd = [str(BUILD_IMAGE)]
        if self.auth is not None:
            cmd += ["--creds", f"{self.auth[0]}:{self.auth[1]}"]
        cmd += [self.host, *names]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}\n"
            f"registry log:\n{tail(self.log)}"
        )
        return [f"{self.host}/{n}" for n in names]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 10)


class ImageVariants:
    """Images made of the busybox test image plus layers written here (tar entries of any
    kind, hostile ones included), pushed to a plain-HTTP registry. The base is built once.

        v = ImageVariants(workdir, registry)
        v.add("name", [[tar entries of layer 1], [layer 2]], user="daemon")
        refs = v.push()     # {"name": "REGISTRY/name:latest"}

    Entries are made with `entry()`.
    """

    def __init__(self, workdir: Path, registry: str):
        self.workdir = workdir
        self.registry = registry
        self.layout = workdir / "base" / "oci"
        self.names: list[str] = []
        env = dict(os.environ, BERTH_IMAGE_KEEP=str(workdir / "base"))
        res = subprocess.run(
            [str(BUILD_IMAGE), registry, "variants-base:latest"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert res.returncode == 0, f"build.sh failed:\n{res.stdout}\n{res.stderr}"

    def add(self, name: str, layers: list[list], user: str | None = None) -> None:
        source = "latest"
        for i, entries in enumerate(layers):
            path = self.workdir / f"{name}-{i}.tar"
            with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
                for e in entries:
                    if e.zeros is not None:
                        e.info.size = e.zeros
                        tar.addfile(e.info, _Zeros(e.zeros))
                    elif e.info.type == tarfile.REGTYPE:
                        e.info.size = len(e.data)
                        tar.addfile(e.info, io.BytesIO(e.data))
                    else:
                        tar.addfile(e.info)
            _run("umoci", "raw", "add-layer", "--no-history", "--image",
                 f"{self.layout}:{source}", "--tag", name, str(path))
            path.unlink()
            source = name
        if user is not None:
            _run("umoci", "config", "--no-history", "--image", f"{self.layout}:{source}",
                 "--tag", name, "--config.user", user)
        self.names.append(name)

    def top_layer(self, name: str) -> str:
        """Digest (sha256:...) of the top layer of the variant, as the registry has it."""
        index = json.loads((self.layout / "index.json").read_text())
        for m in index["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == name:
                algo, hexd = m["digest"].split(":")
                manifest = json.loads((self.layout / "blobs" / algo / hexd).read_text())
                return manifest["layers"][-1]["digest"]
        raise AssertionError(f"no variant {name} in {self.layout}")

    def push(self) -> dict[str, str]:
        refs = {}
        for name in self.names:
            _run("skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                 f"oci:{self.layout}:{name}", f"docker://{self.registry}/{name}:latest")
            refs[name] = f"{self.registry}/{name}:latest"
        return refs


@dataclass
class Entry:
    info: Any  # tarfile.TarInfo
    data: bytes = b""
    zeros: int | None = None


def entry(name: str, kind: str = "file", data: bytes = b"", link: str = "", mode: int = 0o644,
          dev: tuple[int, int] = (0, 0), zeros: int | None = None) -> Entry:
    """A tar entry: kind is file, dir, symlink, hardlink, fifo, char or block; `zeros` makes
    a file of that many zero bytes without holding them in memory."""
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = 0o755 if kind == "dir" else mode
    info.type = {
        "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
        "block": tarfile.BLKTYPE,
    }[kind]
    info.linkname = link
    info.devmajor, info.devminor = dev
    return Entry(info, data, zeros)


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def _run(*cmd: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"


# ----------------------------------------------------------------------------- berth


class Berth:
    """`berth serve` as a user starts it, with its own state dir and log file."""

    def __init__(self, state_dir: Path, log: Path, extra_args: list[str] | None = None):
        self.state_dir = state_dir
        self.log = log
        self.extra_args = list(extra_args or [])
        # The suite's groups are many and small and hold more than this host's CPUs: bounded
        # placement (ADR 0012) is tested by berths that set their own capacity flags.
        if "--no-node" not in self.extra_args and not any(
            a.startswith(("--overcommit", "--reserve")) for a in self.extra_args
        ):
            self.extra_args += ["--overcommit-cpu", "1000", "--overcommit-memory", "1000"]
        # The operator's token for /metrics (berth serve --metrics-token-file).
        self.metrics_token = "e2e-metrics-token"
        self.metrics_token_file = log.with_name(log.name + ".metrics-token")
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.endpoint}"
        self.credentials_path = state_dir / "credentials.json"
        self.proc: subprocess.Popen | None = None
        # A command that execs berth in its place (e.g. prlimit), so the pid stays berth's.
        self.exec_prefix: list[str] = []

    def start(self, timeout: float = 60) -> None:
        assert BERTH_BIN.exists(), f"{BERTH_BIN} is missing: run `cargo build --workspace` first"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_token_file.write_text(self.metrics_token + "\n")
        self.metrics_token_file.chmod(0o600)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info,berth=debug")
        env.setdefault("RUST_BACKTRACE", "1")
        env["NO_COLOR"] = "1"
        with open(self.log, "ab") as log:
            log.write(f"==== berth serve starting at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            started_at = log.tell()
            self.proc = subprocess.Popen(
                [
                    *self.exec_prefix,
                    str(BERTH_BIN),
                    "serve",
                    "--listen",
                    self.endpoint,
                    "--state-dir",
                    str(self.state_dir),
                    "--metrics-token-file",
                    str(self.metrics_token_file),
                    *self.node_defaults(),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"berth serve exited with {self.proc.returncode}:\n{tail(self.log)}"
                )
            # This start's own line: a child of a berth killed just before (between its fork
            # and exec) may hold the old listening socket for a moment, and answer the port.
            return (
                self.credentials_path.exists()
                and self._logged_since(started_at, b"serving the ECI API")
                and port_open(self.port)
            )

        wait_for("berth serve to listen", ready, timeout, 0.1, self.diag)

    def _logged_since(self, offset: int, needle: bytes) -> bool:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return needle in f.read()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """kill -9, as a crash would."""
        assert self.proc is not None and self.proc.poll() is None, "berth is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return True
        return stop_process(self.proc, signal.SIGTERM, timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def credentials(self) -> dict:
        return json.loads(self.credentials_path.read_text())

    def node_defaults(self) -> list[str]:
        """The node flags every test berth gets unless its own arguments say otherwise."""
        return [
            # Frequent samples so that the metric tests need not wait long.
            "--metrics-interval",
            os.environ.get("BERTH_E2E_METRICS_INTERVAL", "2"),
            # A small pool: filled and drained at every start and stop of berth.
            *(
                []
                if "--netns-pool" in self.extra_args
                else ["--netns-pool", os.environ.get("BERTH_E2E_NETNS_POOL", "8")]
            ),
        ]

    def client(self, secret: str | None = None, **config: Any) -> Client:
        creds = self.credentials()
        cfg = Config(
            access_key_id=creds["AccessKeyId"],
            access_key_secret=secret if secret is not None else creds["AccessKeySecret"],
            endpoint=self.endpoint,
            protocol="http",
            region_id=REGION,
            connect_timeout=5000,
            read_timeout=60000,
            **config,
        )
        return Client(cfg)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [
            str(BERTH_BIN),
            "--endpoint",
            self.url,
            "--credentials",
            str(self.credentials_path),
            *args,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def diag(self, lines: int = 60) -> str:
        state = "not started"
        if self.proc is not None:
            rc = self.proc.poll()
            state = "running" if rc is None else f"exited with {rc}"
        return f"---- berth serve ({state}), last {lines} log lines of {self.log}:\n" + tail(
            self.log, lines
        )


# ----------------------------------------------------------------------------- API helpers


@dataclass
class Images:
    registry: str  # host:port of the plain registry
    image: str  # busybox on the plain registry
    private_registry: str  # host:port of the registry with basic auth
    private_image: str  # busybox on the registry with basic auth
    # The same image under a name that is never pulled with credentials, so that no image
    # cache can stand in for the registry's answer.
    unpulled_private_image: str


# The runtime classes the functional suite runs under (conftest's `runtime_class`).
CLASSES = ("runc", "gvisor")


def with_runtime_class(client: Client, runtime_class: str) -> Client:
    """`client`, its CreateContainerGroup calls naming `runtime_class` (berth's
    `RuntimeClassName`, for which the SDK's model has no field)."""
    call_api = client.call_api

    def call(params, request, runtime):
        if params.action == "CreateContainerGroup":
            request.query = {**(request.query or {}), "RuntimeClassName": runtime_class}
        return call_api(params, request, runtime)

    client.call_api = call
    return client


class Groups:
    """Creates container groups for one test and deletes them when the test ends; with a
    `runtime_class`, every group in that class."""

    def __init__(self, berth: Berth, images: Images, tracker: set[str],
                 runtime_class: str | None = None):
        self.berth = berth
        self.images = images
        self.tracker = tracker
        self.runtime_class = runtime_class
        self.created: list[str] = []

    def create(
        self,
        name: str,
        containers: list,
        *,
        restart_policy: str = "Never",
        init_containers: list | None = None,
        private: bool = False,
        credentials: bool = False,
        client=None,
        **kw,
    ) -> str:
        # Most test commands run as PID 1 without a SIGTERM handler, so they ignore SIGTERM;
        # a short grace period keeps deletes quick.
        kw.setdefault("termination_grace_period_seconds", 5)
        registry = self.images.private_registry if private else self.images.registry
        creds = None
        if credentials:
            creds = [
                models.CreateContainerGroupRequestImageRegistryCredential(
                    server=registry, user_name=REGISTRY_USER, password=REGISTRY_PASSWORD
                )
            ]
        req = models.CreateContainerGroupRequest(
            region_id=REGION,
            container_group_name=name,
            restart_policy=restart_policy,
            container=containers,
            init_container=init_containers,
            plain_http_registry=registry,
            image_registry_credential=creds,
            **kw,
        )
        client = client or self.berth.client()
        if self.runtime_class is not None:
            client = with_runtime_class(client, self.runtime_class)
        resp = client.create_container_group(req)
        gid = resp.body.container_group_id
        assert gid and GROUP_ID_RE.fullmatch(gid), f"bad ContainerGroupId {gid!r}"
        self.tracker.add(gid)
        self.created.append(gid)
        return gid

    def delete_all(self, timeout: float = 60) -> None:
        if not self.created or not self.berth.running():
            return
        client = self.berth.client()
        for gid in self.created:
            try:
                delete(client, gid)
            except ClientException as exc:
                if exc.status_code != 404:
                    raise
        wait_for(
            f"groups {self.created} to be deleted",
            lambda: all(describe(client, g) is None for g in self.created),
            timeout,
            diag=self.berth.diag,
        )


def container(name: str, image: str, command: list[str], **kw: Any):
    kw.setdefault("cpu", CPU)
    kw.setdefault("memory", MEMORY)
    return models.CreateContainerGroupRequestContainer(
        name=name, image=image, command=command, **kw
    )


def init_container(name: str, image: str, command: list[str], **kw: Any):
    kw.setdefault("cpu", CPU)
    kw.setdefault("memory", MEMORY)
    return models.CreateContainerGroupRequestInitContainer(
        name=name, image=image, command=command, **kw
    )


def exec_sh(client: Client, group_id: str, script: str, name: str = "c") -> str:
    """Output of `sh -c script` run in container name through a synchronous
    ExecContainerCommand."""
    req = models.ExecContainerCommandRequest(
        region_id=REGION,
        container_group_id=group_id,
        container_name=name,
        command=json.dumps(["sh", "-c", script]),
        sync=True,
    )
    return client.exec_container_command(req).body.sync_response or ""


def list_groups(client: Client, **filters: Any) -> list[dict]:
    """All groups (following NextToken), as plain dicts with the wire's PascalCase keys."""
    out: list[dict] = []
    token = None
    for _ in range(100):
        req = models.DescribeContainerGroupsRequest(
            region_id=REGION, limit=20, next_token=token, **filters
        )
        body = client.describe_container_groups(req).body.to_map()
        out += body.get("ContainerGroups") or []
        token = body.get("NextToken")
        if not token:
            return out
    raise AssertionError("DescribeContainerGroups pagination did not end after 100 pages")


def describe(client: Client, group_id: str, with_event: bool = False) -> dict | None:
    req = models.DescribeContainerGroupsRequest(
        region_id=REGION,
        container_group_ids=json.dumps([group_id]),
        with_event=with_event or None,
    )
    groups = client.describe_container_groups(req).body.to_map().get("ContainerGroups") or []
    groups = [g for g in groups if g.get("ContainerGroupId") == group_id]
    return groups[0] if groups else None


def container_of(group: dict, name: str, init: bool = False) -> dict:
    key = "InitContainers" if init else "Containers"
    for c in group.get(key) or []:
        if c.get("Name") == name:
            return c
    raise AssertionError(f"no {key[:-1]} {name!r} in group:\n{pretty(group)}")


def events_of(client: Client, group_id: str) -> list[dict]:
    group = describe(client, group_id, with_event=True)
    return (group or {}).get("Events") or []


def logs(client: Client, group_id: str, name: str, **kw: Any) -> str:
    req = models.DescribeContainerLogRequest(
        region_id=REGION, container_group_id=group_id, container_name=name, **kw
    )
    return client.describe_container_log(req).body.to_map().get("Content") or ""


def delete(client: Client, group_id: str) -> None:
    """DeleteContainerGroup, waiting out the account's delete throttle as a client should
    (the teardowns delete every group the run made at once)."""
    from alibabacloud_tea_openapi.exceptions import ThrottlingException

    req = models.DeleteContainerGroupRequest(region_id=REGION, container_group_id=group_id)
    for _ in range(100):
        try:
            client.delete_container_group(req)
            return
        except ThrottlingException as exc:
            time.sleep(min(max(exc.retry_after or 100, 10), 2000) / 1000)
    client.delete_container_group(req)


def wait_status(
    client: Client,
    group_id: str,
    statuses: Iterable[str],
    timeout: float = 60,
    never: Iterable[str] = (),
    diag: Callable[[], str] | None = None,
) -> dict:
    """Poll DescribeContainerGroups until the group's Status is one of statuses."""
    __tracebackhide__ = True
    wanted = set(statuses)
    forbidden = set(never)
    seen: list[str] = []

    def probe() -> dict | None:
        group = describe(client, group_id)
        assert group is not None, f"group {group_id} vanished from DescribeContainerGroups"
        status = group.get("Status")
        if not seen or seen[-1] != status:
            seen.append(status)
        assert status not in forbidden, (
            f"group {group_id} reached {status} (statuses seen: {seen}):\n{pretty(group)}"
        )
        return group if status in wanted else None

    def more() -> str:
        text = f"statuses seen: {seen}\n"
        try:
            text += pretty(describe(client, group_id, with_event=True))
        except Exception as exc:  # noqa: BLE001
            text += f"(describe failed: {exc!r})"
        if diag is not None:
            text += "\n" + diag()
        return text

    return wait_for(f"{group_id} to reach {sorted(wanted)}", probe, timeout, 0.5, more)


_TS_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?(?:\s|$)"
)


def ledger_periods(state_dir: Path, gid: str | None = None) -> list[dict]:
    """The metering ledger's billed periods (ADR 0010), read-only from berth.db, oldest first:
    of one group, or of every group."""
    import sqlite3

    db = sqlite3.connect(f"file:{state_dir / 'berth.db'}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT group_id, account, cpu_milli, memory_mib, storage_gib, spot_price, started, "
            "ended "
            "FROM ledger WHERE ?1 IS NULL OR group_id = ?1 ORDER BY seq",
            (gid,),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp at the start of text (nanoseconds allowed)."""
    m = _TS_RE.match(text)
    if not m:
        return None
    date, clock, frac, zone = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime.strptime(f"{date}T{clock}", "%Y-%m-%dT%H:%M:%S").replace(microsecond=micros)
    if zone in (None, "Z"):
        return dt.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    zone = zone[1:].replace(":", "")
    offset = timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
    return (dt - sign * offset).replace(tzinfo=timezone.utc)


def http_get(url: str, timeout: float = 5) -> str:
    """GET without any proxy from the environment (the group's IP is on a local bridge)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.read().decode(errors="replace")


# ----------------------------------------------------------------------------- leftovers


def ipam_reservations(state_dir: Path) -> list[str]:
    """Addresses still reserved in berth's network state: berth's own reservations and any
    host-local kept for groups an earlier berth wired (files named by IP)."""
    import ipaddress

    found = []
    net = state_dir / "net"
    for path in [*(net / "addresses").glob("*"), *(net / "ipam").glob("*/*")]:
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        owner = (path.read_text(errors="replace").split() or ["?"])[0]
        found.append(f"{path.name} ({owner})")
    return found


def mounts_under(prefix: Path) -> list[str]:
    prefix_s = str(prefix).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point == prefix_s.rstrip("/") or mount_point.startswith(prefix_s):
                found.append(mount_point)
    return found


def cgroup_dirs_named(ids: Iterable[str]) -> list[str]:
    ids = [i for i in ids if i]
    found = []
    if not ids:
        return found
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if any(i in d for i in ids):
                found.append(os.path.join(root, d))
    return found


def processes_mentioning(ids: Iterable[str]) -> list[str]:
    ids = [i for i in ids if i]
    found = []
    if not ids:
        return found
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if any(i in cmdline or i in cgroup for i in ids):
            found.append(f"pid {entry.name}: {cmdline.strip()}")
    return found


def netns_files(ids: Iterable[str], state_dir: Path | None = None) -> list[str]:
    """Network namespace files named after the groups, in /run/berth/netns or STATE/netns."""
    ids = [i for i in ids if i]
    dirs = [NETNS_DIR] + ([state_dir / "netns"] if state_dir is not None else [])
    found = []
    for d in dirs:
        if d.is_dir():
            found += [str(p) for p in d.iterdir() if any(i in p.name for i in ids)]
    return found


def bridge_ports(bridge: str = BRIDGE) -> list[str]:
    """Interfaces enslaved to the bridge (empty when it does not exist)."""
    res = subprocess.run(
        ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
    )
    if res.returncode != 0:
        return []
    names = []
    for line in res.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return names


def subnet_users(subnet: str, bridge: str) -> list[str]:
    """Interfaces other than bridge with an address in subnet: routes to the groups would
    go astray."""
    import ipaddress

    net = ipaddress.ip_network(subnet)
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    users = []
    for line in out.splitlines():
        parts = line.split()
        name, addr = parts[1], parts[3]
        if name != bridge and ipaddress.ip_interface(addr).ip in net:
            users.append(f"{name} ({addr})")
    return users


def nft_tables(bridge: str = BRIDGE) -> list[str]:
    """berth's nftables tables of the bridge (`<family> berth_<bridge>`) that exist."""
    res = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    return [
        line.removeprefix("table ").strip()
        for line in res.stdout.splitlines()
        if line.strip().endswith(f" berth_{bridge}")
    ]


def pool_veths(state_dir: Path) -> set[str]:
    """Host veths of berth's pool of pre-wired network namespaces and of its pool of booted
    gVisor sandboxes (`gvp-*`): they belong to no group."""
    found = set()
    results = state_dir / "net" / "results"
    for rec in [*results.glob("warm-*.json"), *results.glob("gvp-*.json")]:
        try:
            found.add(json.loads(rec.read_text())["attachment"]["interface"])
        except (OSError, ValueError, KeyError):
            pass
    return found


def group_veth(state_dir: Path, group_id: str) -> str | None:
    """The host veth of a group, from berth's record of its network."""
    try:
        rec = json.loads((state_dir / "net" / "results" / f"{group_id}.json").read_text())
        return rec["attachment"]["interface"]
    except (OSError, ValueError, KeyError):
        return None


def leftovers(
    state_dir: Path,
    ids: Iterable[str],
    veths_allowed: Iterable[str] | None = None,
    any_mount: bool = False,
    bridge: str = BRIDGE,
) -> list[str]:
    """What a deleted group left on the host. Empty when everything was cleaned up.

    any_mount: count every mount under state_dir (berth stopped), not only the group's.
    veths_allowed: bridge ports that may remain (None: none may remain); while berth runs
    (not any_mount), the veths of its namespace pool may too.
    """
    ids = list(ids)
    problems = []
    mounts = mounts_under(state_dir)
    if not any_mount:
        mounts = [m for m in mounts if any(i in m for i in ids)]
    problems += [f"mount: {m}" for m in mounts]
    problems += [f"netns: {n}" for n in netns_files(ids, state_dir)]
    problems += [f"temporary storage: {d}" for d in storage_dirs(state_dir, ids)]
    if any_mount:
        problems += [f"loop device: {d}" for d in loop_devices_under(state_dir)]
    problems += [f"cgroup: {c}" for c in cgroup_dirs_named(ids)]
    problems += [f"process: {p}" for p in processes_mentioning(ids)]
    allowed = set(veths_allowed or [])
    if not any_mount:  # berth runs: its namespace pool is not a leftover
        allowed |= pool_veths(state_dir)
    problems += [f"veth on {bridge}: {v}" for v in bridge_ports(bridge) if v not in allowed]
    problems += [f"portmap rule: {r}" for r in portmap_rules(ids, shared=any_mount)]
    return problems


def portmap_rules(ids: Iterable[str], shared: bool = False) -> list[str]:
    """The CNI portmap plugin's nat rules of the groups (their comments name the group id);
    with shared, also its chains shared by all groups (`CNI-HOSTPORT-*`, `CNI-DN-*`), which
    berth removes when no group is left."""
    ids = list(ids)
    found = []
    for save in ("iptables-save", "ip6tables-save"):
        res = subprocess.run([save, "-t", "nat"], capture_output=True, text=True)
        assert res.returncode == 0, f"{save} failed: {res.stderr}"
        for line in res.stdout.splitlines():
            if any(i in line for i in ids):
                found.append(line)
            elif shared and (":CNI-HOSTPORT-" in line or ":CNI-DN-" in line):
                found.append(line)
    return found


def storage_dirs(state_dir: Path, ids: Iterable[str]) -> list[str]:
    """The groups' temporary storage subvolumes still there."""
    root = state_dir / "node" / "storage"
    return [str(root / i) for i in ids if (root / i).exists()]


def loop_devices_under(prefix: Path) -> list[str]:
    """Loop devices whose backing file lies under prefix."""
    found = []
    for dev in Path("/sys/block").glob("loop*"):
        try:
            backing = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(prefix)):
            found.append(f"/dev/{dev.name} ({backing})")
    return found


def assert_no_leftovers(
    state_dir: Path,
    ids: Iterable[str],
    veths_allowed: Iterable[str] | None = None,
    any_mount: bool = False,
    grace: float = 10,
    bridge: str = BRIDGE,
) -> None:
    __tracebackhide__ = True
    ids = list(ids)
    deadline = time.monotonic() + grace
    while True:
        problems = leftovers(state_dir, ids, veths_allowed, any_mount, bridge)
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert not problems, "left behind:\n  " + "\n  ".join(problems)


def finish_teardown(what: str, base: Path, problems: list[str], server: Berth) -> None:
    """Ends the teardown of a berth of its own: its directory removed when nothing is wrong
    and nothing is mounted under it, else the test fails with the problems and the log (the
    state kept for a look)."""
    if not problems and not mounts_under(base):
        shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail(
            f"{what} found problems (state and log kept in {base}):\n"
            + "\n".join(problems)
            + "\n"
            + server.diag(80),
            pytrace=False,
        )


@contextlib.contextmanager
def own_berth(
    what: str,
    extra_args: Iterable[str] = (),
    *,
    bridge: str | None = None,
    subnet: str | None = None,
    netns_pool: int | None = 2,
    make: Callable[[Path, list[str]], Berth] | None = None,
    base_mode: int | None = None,
    before_stop: Callable[[Berth], list[str]] | None = None,
    after_stop: Callable[[Berth], None] | None = None,
) -> Iterator[Berth]:
    """A `berth serve` of a test's own, started with `extra_args` (and `--bridge`,
    `--subnet`, `--netns-pool` when given) in a fresh /tmp/berth-WHAT-XXXX, its log there.

        with support.own_berth("tls", ["--tls-cert", ...], bridge=B, subnet=S) as server:
            server.client()...; server.tracker.add(group_id)

    `make(base, args)` builds the Berth (a subclass, files it needs under `base`) instead of
    a plain one with `base/state` and `base/berth.log`. At the end it is started again if it
    is down, every group it lists or that `server.tracker` names is deleted, `before_stop`
    adds its problems, berth gets SIGTERM, and nothing of it may be left on the host
    (processes, mounts, netns, cgroups, veths, reserved addresses, and its nftables tables
    when it has a bridge of its own); `after_stop` runs last, then the test fails with every
    problem found (the directory kept for a look) or the directory goes."""
    base = Path(tempfile.mkdtemp(prefix=f"berth-{what}-", dir="/tmp"))
    if base_mode is not None:
        os.chmod(base, base_mode)
    args = list(extra_args)
    if bridge is not None:
        assert subnet is not None, "a bridge of its own needs a subnet of its own"
        clash = subnet_users(subnet, bridge)
        assert not clash, f"{subnet} is already used on this host by {clash}"
        args += ["--bridge", bridge, "--subnet", subnet]
    if netns_pool is not None:
        args += ["--netns-pool", str(netns_pool)]
    server = make(base, args) if make else Berth(base / "state", base / "berth.log", args)
    server.base = base
    server.tracker = set()
    # Ports already on the bridge belong to someone else (the suite's berth when it is shared).
    veths_before = bridge_ports(bridge or BRIDGE)
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        problems: list[str] = []
        ids: set[str] = server.tracker
        try:
            # Down after a test's kill -9: up again to delete what it holds.
            if started and not server.running():
                server.start()
            client = server.client()
            ids |= {g["ContainerGroupId"] for g in list_groups(client)}
            for gid in sorted(ids):
                try:
                    delete(client, gid)
                except ClientException as exc:
                    if exc.status_code != 404:
                        problems.append(f"DeleteContainerGroup {gid}: {exc.code} {exc.message}")
            wait_for(
                f"all groups of the {what} berth to be deleted",
                lambda: not list_groups(client),
                timeout=60,
                diag=server.diag,
            )
        except Exception as exc:  # noqa: BLE001
            problems.append(f"cleaning up the {what} berth: {exc}")
        if before_stop is not None:
            problems += before_stop(server)
        if not server.stop(timeout=30):
            problems.append(f"the {what} berth did not exit within 30 s of SIGTERM")
        try:
            assert_no_leftovers(
                server.state_dir, ids, veths_before, any_mount=True, bridge=bridge or BRIDGE
            )
        except AssertionError as exc:
            problems.append(str(exc))
        if bridge is not None:
            tables = nft_tables(bridge)
            if tables:
                problems.append(f"nftables tables left after a graceful stop: {tables}")
        # Nothing berth started may outlive it (e.g. the sandboxes of a gVisor pool).
        problems += [f"process of the stopped berth: {p}"
                     for p in processes_mentioning([str(server.state_dir)])]
        reserved = ipam_reservations(server.state_dir)
        if reserved:
            problems.append(f"addresses still reserved: {reserved}")
        if after_stop is not None:
            after_stop(server)
        if mounts_under(base):
            problems.append(f"mounts left under {base}: {mounts_under(base)}")
        finish_teardown(f"{what} berth teardown", base, problems, server)


def serve_refused(state_dir: Path, extra_args: Iterable[str], timeout: float = 60) -> str:
    """Runs `berth serve` with `extra_args` on `state_dir`: it must refuse to start (exit at
    once with an error, no panic) and leave the state directory untouched. Its output."""
    res = subprocess.run(
        [str(BERTH_BIN), "serve", "--listen", f"127.0.0.1:{free_port()}",
         "--state-dir", str(state_dir), *extra_args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "panicked" not in out, out
    assert not state_dir.exists(), "a refused start prepared the state directory"
    return out


def admin_ok(berth: Berth, *args: str) -> str:
    """`berth admin ARGS` on the berth's state directory; its stdout, failing the test on error."""
    r = subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(berth.state_dir), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, f"berth admin {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r.stdout


def new_account(berth: Berth, prefix: str) -> tuple[str, dict]:
    """A new account named PREFIX-<random> and an access key of it (AccessKeyId, Secret)."""
    name = f"{prefix}-{os.urandom(4).hex()}"
    admin_ok(berth, "account", "create", name)
    key = json.loads(admin_ok(berth, "key", "create", "--account", name, "-o", "json"))
    return name, key


def sdk_client(berth: Berth, key: dict) -> Client:
    """The current SDK's client with `key`."""
    return Client(Config(
        access_key_id=key["AccessKeyId"], access_key_secret=key["AccessKeySecret"],
        endpoint=berth.endpoint, protocol="http", region_id=REGION,
        connect_timeout=5000, read_timeout=60000,
    ))


def call_action(client: Client, action: str, **query: str) -> dict:
    """`action` through the SDK's generic call (for berth's extensions and parameters the
    SDK's models lack), answered as the raw JSON body."""
    from alibabacloud_tea_openapi import models as open_api_models
    from alibabacloud_tea_util import models as util_models

    params = open_api_models.Params(
        action=action, version="2018-08-08", protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={"RegionId": REGION, **query})
    return client.call_api(params, req, util_models.RuntimeOptions())["body"]

