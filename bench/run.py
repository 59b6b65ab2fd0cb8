#!/usr/bin/env python3
"""berth side by side with podman and ctr, in one run: the numbers that docs/SPEC.md promises.

    python3 bench/run.py [--quick] [--json out.json]      (as root; standard library only)

Starts its own Debian `docker-registry` on loopback (busybox pushed with tests/images/build.sh),
its own `berth serve` (fresh state dir in a temp dir, bridge `berthbench`, subnet
10.216.0.0/16) and its own containerd for `ctr` (config, root, state and socket in the temp
dir; the CRI plugin off; the host's /etc/containerd and any system containerd untouched; needs
Debian's `containerd` package), then measures, alternating berth and its peers where they
apply:

  1. cold start, cached image, with network: CreateContainerGroup -> Running and -> first HTTP
     200 from busybox httpd at the group's IntranetIp; podman: `podman run -d` (invocation ->
     return) and -> first HTTP 200 at the IP that `podman inspect` reports (inspect included);
     ctr: `ctr run -d` (invocation -> return, the task started; no network: a fresh network
     namespace with loopback only, as ctr without --cni gives) and `ctr run --rm ... true`
     (start, exit, remove); `crun run -d` as the floor;
  2. burst: 100 groups created at once (one thread each) -> all Running, groups/s; podman: 20
     `podman run -d` at once; ctr: 20 `ctr run -d` at once;
  3. pull + unpack: busybox with `berth image pull` into a fresh state dir vs `podman pull`
     (after `podman rmi`) vs `skopeo copy` to an OCI dir (no unpack) vs `ctr images pull`
     (unpacked into the overlayfs snapshotter; each round in a fresh namespace, dropped with
     `images rm --sync`, since containerd shares blobs across namespaces); the ~200 MB image
     with target/release/examples/pull_bench when that example is already built (it pulls
     with ctr from this containerd, whose socket it gets in BERTH_BENCH_CONTAINERD);
  4. DescribeContainerGroups with 10,000 groups in the store: berth is stopped, 10,000 records
     are inserted into a copy of its SQLite database, berth is started on the copy, and signed
     requests are sent over --clients keep-alive connections for --describe-seconds (by id, and
     the first page of the unfiltered list) by target/release/examples/describe_load (built by
     `cargo build --release -p berth-client --example describe_load`; one thread, so the load
     takes little of the CPU the server needs; on 2 cores 8 connections gave the most
     requests/s, 4 about 5% fewer at half the latency, 16 only more queueing), or, when it is
     not built, by that many Python client processes (a note says so: they use more CPU than
     the server and cap the rate); plus one Python client alone for latency;
  5. host memory: PSS of all monitor processes (`berth-monitor`) of 20 idle groups / 20 and the
     growth of `berth serve`'s PSS / 20, vs conmon's PSS per podman container and
     containerd-shim-runc-v2's PSS per ctr container;
  6. delete: DeleteContainerGroup -> gone from DescribeContainerGroups (everything released),
     each cold-start group; burst delete of 50 groups at once; podman: `podman rm -f -t 0`,
     and 20 at once; ctr: `ctr task rm -f` + `ctr container rm`, and 20 at once;
  7. describe flood (berth only): a berth of its own (fresh state dir, per-account throttling
     on, reads limited to --flood-read-rate/s with a burst as large) with two accounts made
     by `berth admin`, 10 groups each; account B describes one of its groups at a paced
     --flood-b-rate/s (one Python client, one keep-alive connection) alone, then while account
     A floods DescribeContainerGroups from --flood-clients connections of describe_load (as
     fast as answers come), then the same with throttling off: B's p50/p99 latency and
     success rate, A's answered and Throttling.User requests/s.

  8. probe CPU (berth only): --probe-groups groups of one busybox httpd, first without
     probes, then (deleted and made again) each with an HTTP GET readiness probe and a TCP
     liveness probe every --probe-period seconds (all Ready checked first); the CPU seconds
     of `berth serve` (all threads, user and system, /proc/PID/stat; the kernel's TCP work
     for both ends of a check runs in berth's context and counts there) over --probe-seconds
     in each phase; the difference is the probes' cost, given as % of one core and
     extrapolated to 1,000 groups at Kubernetes' default period of 10 s. The whole host's
     CPU (/proc/stat) is in the JSON only: other work on the host moves it more than the
     probes do. --probe-perf FILE records a perf profile of the phase with probes.

Requests are signed as the ECI SDKs sign RPC calls (HMAC-SHA1, a fresh nonce each). podman
runs with runc and explicit rlimits (crun refuses this host's hybrid cgroups; podman's default
rlimits exceed the hard limits); ctr with io.containerd.runc.v2 and runc for the same reason.
Prints a table with berth/peer ratios; --json writes every number. Needs root.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import datetime as dt
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_IMAGE = REPO / "tests" / "images" / "build.sh"
PULL_BENCH = REPO / "target" / "release" / "examples" / "pull_bench"
DESCRIBE_LOAD = REPO / "target" / "release" / "examples" / "describe_load"
REGION = "local"
PODMAN = ["podman", "run", "-d", "--runtime", "runc", "--ulimit", "nofile=1024:1024",
          "--ulimit", "nproc=4096:4096", "--tls-verify=false"]
PREFIX = "berthbench"


# berth keeps this many spare group directories (crates/node/src/agent.rs, SPARE_SLOTS).
SPARE_SLOTS = 128

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def stats(xs):
    xs = list(xs)
    if not xs:
        return None
    return {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "min": min(xs), "max": max(xs), "mean": sum(xs) / len(xs)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


# ----------------------------------------------------------------------------- signed client


def _pe(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


class EciError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Eci:
    """A minimal ECI RPC client: HMAC-SHA1 signatures, keep-alive, one connection a thread."""

    def __init__(self, endpoint: str, key_id: str, secret: str):
        self.host, port = endpoint.split(":")
        self.port = int(port)
        self.key_id = key_id
        self.secret = (secret + "&").encode()
        self.local = threading.local()

    def signed_path(self, action: str, params: dict) -> str:
        p = {
            "Action": action, "Version": "2018-08-08", "Format": "JSON", "RegionId": REGION,
            "AccessKeyId": self.key_id, "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        p.update({k: str(v) for k, v in params.items() if v is not None})
        query = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(p.items()))
        sts = "GET&%2F&" + _pe(query)
        sig = base64.b64encode(hmac.new(self.secret, sts.encode(), hashlib.sha1).digest()).decode()
        return f"/?{query}&Signature={_pe(sig)}"

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.conn = c
        return c

    def call(self, action: str, **params) -> dict:
        path = self.signed_path(action, params)
        for attempt in range(2):
            c = self._conn()
            try:
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt:
                    raise
                path = self.signed_path(action, params)
        if r.status >= 400:
            raise EciError(r.status, body.decode(errors="replace"))
        return json.loads(body)

    def create(self, name: str, image: str, command: list[str], registry: str) -> str:
        """A group of one container (plus EXTRA_CREATE's parameters)."""
        params = {
            "ContainerGroupName": name, "RestartPolicy": "Never", "PlainHttpRegistry": registry,
            "TerminationGracePeriodSeconds": 0, "Container.1.Name": "c",
            "Container.1.Image": image, "Container.1.Cpu": "0.25", "Container.1.Memory": "0.5",
            # podman's default (--pull=missing): a present image is used without asking the
            # registry. (`:latest` would otherwise mean Always, a registry round trip per start.)
            "Container.1.ImagePullPolicy": "IfNotPresent",
        }
        for i, arg in enumerate(command, 1):
            params[f"Container.1.Command.{i}"] = arg
        params.update(EXTRA_CREATE)
        return self.call("CreateContainerGroup", **params)["ContainerGroupId"]

    def describe(self, ids: list[str]) -> list[dict]:
        return self.call("DescribeContainerGroups",
                         ContainerGroupIds=json.dumps(ids)).get("ContainerGroups") or []

    def delete(self, gid: str) -> None:
        self.call("DeleteContainerGroup", ContainerGroupId=gid)


# ----------------------------------------------------------------------------- processes


def terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the process to end."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Registry:
    """Debian's docker-registry on loopback, filesystem storage (as tests/e2e/support.py)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.host = f"127.0.0.1:{free_port()}"
        self.proc = None

    def start(self) -> None:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "config.yml"
        conf.write_text("\n".join([
            "version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true",
            "storage:", "  filesystem:", f"    rootdirectory: {storage}", "  delete:",
            "    enabled: true", "http:", f"  addr: {self.host}", "  secret: berth-bench", ""]))
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        self.proc = subprocess.Popen([binary, "serve", str(conf)],
                                     stdout=open(self.workdir / "registry.log", "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("docker-registry did not start")
                time.sleep(0.1)

    def push_busybox(self) -> str:
        subprocess.run([str(BUILD_IMAGE), self.host, "busybox:latest"], check=True,
                       capture_output=True, timeout=300)
        return f"{self.host}/busybox:latest"

    def stop(self) -> None:
        terminate(self.proc, 10)


class Berth:
    def __init__(self, binary: Path, state: Path, logfile: Path, bridge: str, subnet: str,
                 extra: list[str] | None = None, throttled: bool = False):
        self.binary, self.state, self.logfile = binary, state, logfile
        self.bridge, self.subnet = bridge, subnet
        self.extra = list(extra or [])
        self.throttled = throttled
        self.proc = None
        self.endpoint = None

    def start(self) -> Eci:
        # berth runs `berth monitor` (the whole binary) when berth-monitor is not beside it:
        # a copy of `berth` alone measures that fallback, slower to start and larger.
        if not self.binary.resolve().with_name("berth-monitor").exists():
            log(f"warning: no berth-monitor beside {self.binary}: containers are monitored by "
                "`berth monitor`, which is not what a build ships")
        port = free_port()
        self.endpoint = f"127.0.0.1:{port}"
        env = dict(os.environ, NO_COLOR="1")
        env.setdefault("RUST_LOG", "info")
        # The benchmark measures berth, not its per-account throttling (off where it exists).
        help_text = subprocess.run([str(self.binary), "serve", "--help"], capture_output=True,
                                   text=True).stdout
        unthrottled = (["--throttle-write-rate", "0", "--throttle-read-rate", "0"]
                       if "--throttle-write-rate" in help_text and not self.throttled else [])
        # Nor the node's capacity (ADR 0012): its bursts hold more than the host's CPUs.
        if "--overcommit-cpu" in help_text and not any(
                x.startswith(("--overcommit", "--reserve")) for x in self.extra):
            unthrottled += ["--overcommit-cpu", "1000", "--overcommit-memory", "1000"]
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", self.endpoint, "--state-dir", str(self.state),
             "--bridge", self.bridge, "--subnet", self.subnet, *unthrottled, *self.extra],
            stdout=open(self.logfile, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        creds = self.state / "credentials.json"
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"berth serve exited ({self.proc.returncode}); see {self.logfile}")
            try:
                key = json.loads(creds.read_text())
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return Eci(self.endpoint, key["AccessKeyId"], key["AccessKeySecret"])
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise SystemExit("berth serve did not start listening")
                time.sleep(0.05)

    def pool_size(self) -> int:
        """--netns-pool as passed, else berth's default."""
        for i, arg in enumerate(self.extra):
            if arg == "--netns-pool" and i + 1 < len(self.extra):
                return int(self.extra[i + 1])
            if arg.startswith("--netns-pool="):
                return int(arg.split("=", 1)[1])
        return 128

    def wait_pool_full(self, timeout: float = 120) -> float:
        """Waits until berth's pool of wired network namespaces and its spare group
        directories are full (as after any quiet moment of a running berth); returns the
        seconds waited."""
        results = self.state / "net" / "results"
        spare = self.state / "node" / "spare"
        want = self.pool_size()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            have = len(list(results.glob("warm-*.json"))) if results.is_dir() else 0
            # ...and the spare group directories (128 of them): node/spare/<slot>.rw, or
            # with sized temporary storage the subvolumes node/storage/spare-<slot>.
            storage = self.state / "node" / "storage"
            spares = (
                len(list(spare.glob("*.rw"))) + len(list(storage.glob("spare-*")))
                if spare.is_dir()
                else SPARE_SLOTS
            )
            if have >= want and spares >= SPARE_SLOTS:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"the namespace pool did not fill ({want}) in {timeout} s")

    def stop(self) -> None:
        terminate(self.proc, 60)


def pss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def processes() -> list[tuple[int, list[str]]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            out.append((int(entry), [a.decode(errors="replace") for a in argv if a]))
    return out


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


class CrunFloor:
    """`crun run -d` of a busybox bundle, as berth runs crun on this host (a private mount
    namespace without the cgroup2 mount of a hybrid host, crun bound read-only over itself),
    in the host's network namespace: the floor under any container start that uses crun."""

    CGROUP = "berthbench-crun"

    def __init__(self, workdir: Path):
        self.bundle = workdir / "crun-bundle"
        self.root = workdir / "crun-state"
        self.live: set[str] = set()
        self.holder: subprocess.Popen | None = None

    def setup(self) -> None:
        rootfs = self.bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(shutil.which("busybox") or "/bin/busybox", rootfs / "bin" / "busybox")
        subprocess.run(["crun", "spec"], cwd=self.bundle, check=True, capture_output=True)
        cfg = json.loads((self.bundle / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/busybox", "sleep", "3600"]
        # No network namespace: creating and destroying one per run would load the kernel
        # (netns cleanup) under the other contenders' starts.
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "network"]
        (self.bundle / "config.json").write_text(json.dumps(cfg))
        self._start_holder()

    def _start_holder(self) -> None:
        """A process whose mount namespace is set up once as berth sets up crun's; each run
        enters it with nsenter, so no Python code runs between fork and exec."""
        crun = shutil.which("crun") or "/usr/bin/crun"
        script = ("umount -l /sys/fs/cgroup/unified 2>/dev/null; "
                  f"mount --bind {crun} {crun} && mount -o remount,bind,ro {crun}; "
                  "echo ready; exec sleep 100000")
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                        script], stdout=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise RuntimeError("the crun namespace holder did not start")

    def _cmd(self, *args: str) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--",
                "crun", "--root", str(self.root), *args]

    def run(self, name: str) -> float:
        cfg = json.loads((self.bundle / "config.json").read_text())
        cfg["linux"]["cgroupsPath"] = f"/{self.CGROUP}/{name}"
        (self.bundle / "config.json").write_text(json.dumps(cfg))
        self.live.add(name)
        # The container inherits crun's stdio: a pipe would stay open as long as it runs.
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            done = subprocess.run(self._cmd("run", "-d", "--bundle", str(self.bundle), name),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err,
                                  env=dict(os.environ, _LIBCONTAINER_CLONED_BINARY="1"))
            took = ms(t0)
            if done.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"crun run failed: {err.read().decode(errors='replace')}")
        return took

    def delete(self, name: str) -> None:
        subprocess.run(self._cmd("delete", "-f", name), capture_output=True)
        self.live.discard(name)

    def cleanup(self) -> None:
        if self.holder is None:
            return
        for name in sorted(self.live):
            self.delete(name)
        self.holder.kill()
        self.holder.wait()
        for d in Path("/sys/fs/cgroup").glob(f"*/{self.CGROUP}"):
            for child in d.iterdir():
                if child.is_dir():
                    child.rmdir()
            d.rmdir()


class Containerd:
    """A private containerd for `ctr` (Debian's `containerd` package, 1.6): its own config
    (version 2), root, state and gRPC socket in the work dir, so neither /etc/containerd nor
    a system containerd (if one runs) is used or touched. The CRI plugin is off (no CNI
    config needed, faster start), as are plugins that would write outside the work dir
    (`opt`) or are unused (other snapshotters). Containers run with io.containerd.runc.v2 and
    runc (crun refuses this host's hybrid cgroups, as for podman), runc's state under the work
    dir (--runc-root), rootfs from the overlayfs snapshotter, stdio to /dev/null (--null-io),
    and no network: without --cni, `ctr run` gives each container a fresh network namespace
    with only loopback. The shims' sockets go to /run/containerd/s whatever the config says
    (containerd 1.6); the directories this run creates there are removed at the end."""

    RUNTIME = "io.containerd.runc.v2"
    SHIM = "containerd-shim-runc-v2"
    RUN_DIR = Path("/run/containerd")

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.address = str(workdir / "containerd.sock")
        self.runc_root = workdir / "runc"
        self.ns = f"{PREFIX}-{os.getpid()}"
        self.namespaces: set[str] = {self.ns}
        self.image = ""
        self.proc: subprocess.Popen | None = None
        self.had_run_dir = True

    @staticmethod
    def missing() -> list[str]:
        return [t for t in ("containerd", "ctr", Containerd.SHIM, "runc")
                if shutil.which(t) is None]

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.had_run_dir = self.RUN_DIR.exists()
        conf = self.dir / "config.toml"
        conf.write_text("\n".join([
            "version = 2",
            f'root = "{self.dir / "root"}"',
            f'state = "{self.dir / "state"}"',
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",',
            '  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
            '  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
            "[grpc]", f'  address = "{self.address}"',
            "[ttrpc]", '  address = ""',
            "[debug]", '  address = ""', '  level = "warn"',
            "[metrics]", '  address = ""', ""]))
        self.proc = subprocess.Popen(["containerd", "--config", str(conf)],
                                     stdout=open(self.dir / "containerd.log", "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"containerd exited ({self.proc.returncode}); see "
                                 f"{self.dir / 'containerd.log'}")
            if os.path.exists(self.address) and self.ctr("version", check=False,
                                                         timeout=10).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit("containerd did not start listening")
            time.sleep(0.05)

    def version(self) -> str:
        out = self.ctr("version", check=False, timeout=10).stdout
        m = re.search(r"Server:\s*\n\s*Version:\s*(\S+)", out)
        return f"containerd {m[1]}" if m else ""

    def ctr(self, *args: str, ns: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run(["ctr", "--address", self.address, "--namespace", ns or self.ns,
                              *args], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {out.stderr.strip()[-2000:]}")
        return out

    def pull(self, image: str, ns: str | None = None) -> float:
        ns = ns or self.ns
        self.namespaces.add(ns)
        t0 = time.perf_counter()
        self.ctr("images", "pull", "--plain-http", image, ns=ns, timeout=1800)
        took = ms(t0)
        if ns == self.ns:
            self.image = image
        return took

    def blobs(self) -> int:
        d = self.dir / "root" / "io.containerd.content.v1.content" / "blobs" / "sha256"
        return len(list(d.iterdir())) if d.is_dir() else 0

    def _run_args(self, name: str) -> list[str]:
        return ["--null-io", "--runtime", self.RUNTIME, "--runc-root", str(self.runc_root),
                self.image, name]

    def run_d(self, name: str, command: list[str]) -> float:
        """`ctr run -d`: invocation -> return (the task started)."""
        t0 = time.perf_counter()
        self.ctr("run", "-d", *self._run_args(name), *command)
        return ms(t0)

    def run_rm(self, name: str, command: list[str]) -> float:
        """`ctr run --rm`: start, wait for the exit, delete task, container and snapshot."""
        t0 = time.perf_counter()
        self.ctr("run", "--rm", *self._run_args(name), *command)
        return ms(t0)

    def remove(self, name: str) -> float:
        """`ctr task rm -f` (SIGKILL, wait, delete) + `ctr container rm` (and its snapshot)."""
        t0 = time.perf_counter()
        self.ctr("task", "rm", "-f", name)
        self.ctr("container", "rm", name)
        return ms(t0)

    def drop_namespace(self, ns: str) -> None:
        """Removes everything in `ns`, then `ns`: tasks, containers, images (--sync: the
        garbage collector removes their content and snapshots before it returns)."""
        for task in self.ctr("task", "ls", "-q", ns=ns, check=False).stdout.split():
            self.ctr("task", "rm", "-f", task, ns=ns, check=False)
        for c in self.ctr("container", "ls", "-q", ns=ns, check=False).stdout.split():
            self.ctr("container", "rm", c, ns=ns, check=False)
        images = self.ctr("images", "ls", "-q", ns=ns, check=False).stdout.split()
        if images:
            self.ctr("images", "rm", "--sync", *images, ns=ns, check=False)
        for line in self.ctr("snapshots", "ls", ns=ns, check=False).stdout.splitlines()[1:]:
            if line.split():
                self.ctr("snapshots", "rm", line.split()[0], ns=ns, check=False)
        leases = self.ctr("leases", "ls", "-q", ns=ns, check=False).stdout.split()
        if leases:
            self.ctr("leases", "rm", "--sync", *leases, ns=ns, check=False)
        self.ctr("namespaces", "rm", ns, check=False)
        self.namespaces.discard(ns)

    def shims(self) -> list[int]:
        return [pid for pid, argv in processes()
                if argv and argv[0].endswith(self.SHIM) and self.address in argv]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                names = self.ctr("namespaces", "ls", "-q", check=False,
                                 timeout=30).stdout.split()
                for ns in sorted(set(names) | self.namespaces):
                    self.drop_namespace(ns)
            except (OSError, subprocess.SubprocessError) as e:
                log(f"cleanup of containerd's namespaces: {e}")
        terminate(self.proc, 20)
        # What a failed removal or a dead containerd may have left: runc containers, shims.
        if self.runc_root.is_dir():
            for root in self.runc_root.iterdir():
                out = subprocess.run(["runc", "--root", str(root), "list", "-q"],
                                     capture_output=True, text=True)
                for cid in out.stdout.split():
                    log(f"removing runc container {cid} left by containerd")
                    subprocess.run(["runc", "--root", str(root), "delete", "-f", cid],
                                   capture_output=True)
        for pid in self.shims():
            log(f"killing {self.SHIM} {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in self.namespaces | {self.ns}:
            for d in Path("/sys/fs/cgroup").glob(f"*/{ns}"):
                # runc removes each container's cgroup; the namespace's parent stays.
                for sub, _, _ in os.walk(d, topdown=False):
                    try:
                        os.rmdir(sub)
                    except OSError as e:
                        log(f"cgroup {sub}: {e}")
        if not self.had_run_dir and self.RUN_DIR.is_dir():
            # Only empty directories: the shims remove their sockets when they exit.
            for sub, _, _ in os.walk(self.RUN_DIR, topdown=False):
                try:
                    os.rmdir(sub)
                except OSError as e:
                    log(f"{sub}: {e}")
        self.proc = None


def http_ok(ip: str) -> bool:
    try:
        c = http.client.HTTPConnection(ip, 80, timeout=0.5)
        c.request("GET", "/")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def wait_http(ip: str, t0: float, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while not http_ok(ip):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no HTTP 200 from {ip}")
        time.sleep(0.001)
    return ms(t0)


# ----------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = Path(tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp"))
        # `berth serve --userns` needs the directories above its state directory searchable.
        os.chmod(self.work, 0o711)
        self.registry = Registry(self.work / "registry")
        (self.work / "registry").mkdir()
        self.berth = Berth(a.berth, self.work / "state", self.work / "berth.log",
                           a.bridge, a.subnet, a.serve_arg)
        self.eci: Eci | None = None
        self.image = ""
        self.groups: set[str] = set()
        self.containers: set[str] = set()
        self.crun = CrunFloor(self.work)
        self.ctrd = Containerd(self.work / "containerd")
        self.results: dict = {"notes": []}
        self.seq = 0

    def note(self, text: str) -> None:
        log("note: " + text)
        self.results["notes"].append(text)

    def name(self) -> str:
        self.seq += 1
        return f"{PREFIX}-{os.getpid()}-{self.seq}"

    # --- berth helpers

    def wait_running(self, gid: str, t0: float, timeout: float = 60) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while True:
            gs = self.eci.describe([gid])
            g = gs[0] if gs else {}
            st = g.get("Status")
            if st == "Running":
                return ms(t0), g
            if st in ("Failed", "Succeeded") or time.monotonic() > deadline:
                raise RuntimeError(f"group {gid}: {st}: {json.dumps(g)[:2000]}")
            # Poll every millisecond: a busy loop would take a core from berth.
            time.sleep(0.001)

    def wait_gone(self, ids: list[str], t0: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        left = list(ids)
        while left:
            present = set()
            for i in range(0, len(left), 20):
                present |= {g["ContainerGroupId"] for g in self.eci.describe(left[i:i + 20])}
            left = [g for g in left if g in present]
            if left and time.monotonic() > deadline:
                raise RuntimeError(f"{len(left)} groups still present after {timeout}s")
            if left:
                time.sleep(0.002)
        for g in ids:
            self.groups.discard(g)
        return ms(t0)

    def berth_start_one(self, command: list[str]) -> tuple[str, float, dict]:
        t0 = time.perf_counter()
        gid = self.eci.create(self.name(), self.image, command, self.registry.host)
        self.groups.add(gid)
        t, g = self.wait_running(gid, t0)
        return gid, t, g

    def crun_name(self, i: int) -> str:
        return f"{PREFIX}-{os.getpid()}-crun-{i}"

    def ctr_name(self, i: int | str) -> str:
        return f"{PREFIX}-ctr-{i}"

    def podman_run(self, command: list[str]) -> tuple[str, float]:
        name = self.name()
        self.containers.add(name)
        t0 = time.perf_counter()
        podman(*PODMAN[1:], "--name", name, self.image, *command)
        return name, ms(t0)

    # --- sections

    def setup(self) -> None:
        log(f"work dir {self.work}")
        self.registry.start()
        self.image = self.registry.push_busybox()
        log(f"image {self.image}")
        self.ctrd.start()
        log(f"containerd at {self.ctrd.address}")

    def start_berth(self) -> None:
        self.eci = self.berth.start()
        log(f"berth serve at {self.berth.endpoint}, state {self.berth.state}")
        if self.a.account_seccomp:
            subprocess.run([str(self.berth.binary), "admin", "--state-dir", str(self.berth.state),
                            "account", "set-seccomp", "default", self.a.account_seccomp],
                           check=True, capture_output=True)
            log(f"seccomp of the account: {self.a.account_seccomp}")
        waited = self.berth.wait_pool_full()
        log(f"namespace pool full ({self.berth.pool_size()}) after {waited:.1f} s")

    def pull(self) -> None:
        rounds = 3 if self.a.quick else 5
        berth_t, podman_t, skopeo_t, ctr_t = [], [], [], []
        for r in range(rounds):
            state = self.work / f"pull-state-{r}"
            t0 = time.perf_counter()
            subprocess.run([str(self.a.berth), "image", "--state-dir", str(state), "pull",
                            self.image], check=True, capture_output=True)
            berth_t.append(ms(t0))
            shutil.rmtree(state, ignore_errors=True)
            podman("rmi", "-f", self.image, check=False)
            t0 = time.perf_counter()
            podman("pull", "-q", "--tls-verify=false", self.image)
            podman_t.append(ms(t0))
            oci = self.work / f"oci-{r}"
            t0 = time.perf_counter()
            subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                            f"docker://{self.image}", f"oci:{oci}:latest"], check=True,
                           capture_output=True)
            skopeo_t.append(ms(t0))
            shutil.rmtree(oci, ignore_errors=True)
            # containerd shares blobs across namespaces: a fresh namespace alone would reuse
            # them. Each round's namespace is dropped with `images rm --sync` (content and
            # snapshots collected), so the next round finds the content store empty.
            if self.ctrd.blobs():
                self.note(f"ctr pull round {r}: {self.ctrd.blobs()} blobs already in "
                          "containerd's content store")
            ns = f"{self.ctrd.ns}-pull-{r}"
            ctr_t.append(self.ctrd.pull(self.image, ns))
            self.ctrd.drop_namespace(ns)
        self.results["pull_busybox_ms"] = {"berth": stats(berth_t), "podman": stats(podman_t),
                                           "skopeo": stats(skopeo_t), "ctr": stats(ctr_t)}

    def pull_big(self) -> None:
        if not PULL_BENCH.exists():
            self.note(f"{PULL_BENCH.relative_to(REPO)} is not built: 200 MB pull skipped "
                      "(cargo build --release -p berth-image --example pull_bench)")
            return
        log("200 MB pull: running the pull_bench example (3 rounds)")
        # The example pulls with ctr from this run's containerd (in namespaces of its own).
        env = dict(os.environ, BERTH_BENCH_CONTAINERD=self.ctrd.address)
        out = subprocess.run([str(PULL_BENCH)], capture_output=True, text=True, timeout=1800,
                             env=env)
        if out.returncode != 0:
            self.note(f"pull_bench failed: {out.stderr[-500:]}")
            return
        m = re.search(r"berth pull\+unpack ([\d.]+)s \| podman pull ([\d.]+)s .*skopeo copy "
                      r"\(no unpack\) ([\d.]+)s[^|\n]*(?:\| ctr pull ([\d.]+)s)?", out.stdout)
        rounds = re.findall(r"round \d+: berth ([\d.]+)s\s+podman ([\d.]+)s\s+skopeo ([\d.]+)s"
                            r"(?:\s+ctr ([\d.]+)s)?", out.stdout)
        if not m:
            self.note("pull_bench printed no medians")
            return
        if m[4] is None:
            self.note("pull_bench did not measure ctr: "
                      + next((ln for ln in out.stdout.splitlines() if "ctr" in ln), "no reason"))
        self.results["pull_200mb_s"] = {
            "berth_p50": float(m[1]), "podman_p50": float(m[2]), "skopeo_p50": float(m[3]),
            "ctr_p50": float(m[4]) if m[4] else None,
            "rounds": [[float(x) for x in r if x] for r in rounds],
            "rounds_are": "berth, podman, skopeo" + (", ctr" if m[4] else "") + " (s)",
            "image": out.stdout.splitlines()[0]}

    def cold_start(self) -> None:
        n = self.a.runs
        httpd = ["httpd", "-f", "-p", "80", "-h", "/www"]
        # Warm-up: the first group pulls the image; podman's image is already stored.
        gid, _, _ = self.berth_start_one(httpd)
        self.eci.delete(gid)
        self.wait_gone([gid], time.perf_counter())
        name, _ = self.podman_run(httpd)
        podman("rm", "-f", "-t", "0", name)
        self.containers.discard(name)
        self.crun.setup()
        self.crun.delete(self.crun_name(0))
        # ctr's image was pulled into containerd beforehand; one start and one `--rm true`
        # outside the count, as for the others.
        self.ctrd.run_d(self.ctr_name("warm"), httpd)
        self.ctrd.remove(self.ctr_name("warm"))
        self.ctrd.run_rm(self.ctr_name("warm-true"), ["true"])
        r = {k: [] for k in ("berth_running", "berth_http", "berth_delete_api", "berth_delete",
                             "podman_run", "podman_http", "podman_inspect", "podman_rm",
                             "crun_run", "ctr_run", "ctr_rm", "ctr_run_rm_true")}
        contenders = ["berth", "podman", "crun", "ctr"]
        for i in range(n):
            k = i % len(contenders)
            for who in contenders[k:] + contenders[:k]:
                if who == "ctr":
                    # Same image and command as berth and podman; no network (loopback only),
                    # so no HTTP check. Removal is timed on its own, after the start.
                    name = self.ctr_name(i)
                    r["ctr_run"].append(self.ctrd.run_d(name, httpd))
                    r["ctr_rm"].append(self.ctrd.remove(name))
                    r["ctr_run_rm_true"].append(self.ctrd.run_rm(self.ctr_name(f"{i}-true"),
                                                                 ["true"]))
                elif who == "crun":
                    name = self.crun_name(i)
                    r["crun_run"].append(self.crun.run(name))
                    self.crun.delete(name)
                elif who == "berth":
                    t0 = time.perf_counter()
                    gid = self.eci.create(self.name(), self.image, httpd, self.registry.host)
                    self.groups.add(gid)
                    t_run, g = self.wait_running(gid, t0)
                    ip = g.get("IntranetIp")
                    while not ip:
                        ip = self.eci.describe([gid])[0].get("IntranetIp")
                    r["berth_running"].append(t_run)
                    r["berth_http"].append(wait_http(ip, t0))
                    t0 = time.perf_counter()
                    self.eci.delete(gid)
                    r["berth_delete_api"].append(ms(t0))
                    r["berth_delete"].append(self.wait_gone([gid], t0))
                else:
                    name = self.name()
                    self.containers.add(name)
                    t0 = time.perf_counter()
                    podman(*PODMAN[1:], "--name", name, self.image, *httpd)
                    r["podman_run"].append(ms(t0))
                    t1 = time.perf_counter()
                    ip = podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}",
                                name).stdout.strip()
                    r["podman_inspect"].append(ms(t1))
                    r["podman_http"].append(wait_http(ip, t0))
                    t0 = time.perf_counter()
                    podman("rm", "-f", "-t", "0", name)
                    r["podman_rm"].append(ms(t0))
                    self.containers.discard(name)
            if (i + 1) % 10 == 0:
                log(f"cold start {i + 1}/{n}: berth p50 {pct(r['berth_running'], 50):.1f} ms, "
                    f"podman p50 {pct(r['podman_run'], 50):.1f} ms, "
                    f"crun p50 {pct(r['crun_run'], 50):.1f} ms, "
                    f"ctr p50 {pct(r['ctr_run'], 50):.1f} ms")
        self.results["cold_start_ms"] = {k: stats(v) for k, v in r.items()}

    def memory(self) -> None:
        n = 20
        serve_pid = self.berth.proc.pid
        time.sleep(1)
        serve_before = pss_kib(serve_pid)
        binary = str(self.a.berth.resolve())
        small = str(self.a.berth.resolve().with_name("berth-monitor"))

        def is_monitor(pid, argv):
            """A monitor of this build: of one container (its directory on the command line)
            or shared by an account's containers (`--shared`); not the zygote."""
            if not argv or "--zygote" in argv:
                return False
            try:
                exe = os.path.realpath(f"/proc/{pid}/exe", strict=True)
            except OSError:
                return False
            return exe == small or (len(argv) > 1 and argv[1] == "monitor" and exe == binary)

        # The groups' monitors are the ones that came with them (the pool's were there).
        monitors_before = {pid for pid, argv in processes() if is_monitor(pid, argv)}
        ids = []
        for _ in range(n):
            gid, _, _ = self.berth_start_one(["sleep", "3600"])
            ids.append(gid)
        time.sleep(3)
        monitors = [pid for pid, argv in processes()
                    if is_monitor(pid, argv) and pid not in monitors_before]
        mon_pss = sum(pss_kib(p) for p in monitors)
        serve_after = pss_kib(serve_pid)
        names = []
        podman_ids = []
        for _ in range(n):
            name = self.name()
            self.containers.add(name)
            out = podman(*PODMAN[1:], "--name", name, self.image, "sleep", "3600")
            names.append(name)
            podman_ids.append(out.stdout.strip())
        time.sleep(3)
        conmons = [pid for pid, argv in processes()
                   if argv and argv[0].endswith("conmon") and any(c in " ".join(argv)
                                                                   for c in podman_ids)]
        conmon_pss = sum(pss_kib(p) for p in conmons)
        # ctr: one containerd-shim-runc-v2 per container (io.containerd.runc.v2 groups
        # containers into one shim only for CRI pods).
        shims_before = set(self.ctrd.shims())
        ctr_names = [self.ctr_name(f"mem-{i}") for i in range(n)]
        for name in ctr_names:
            self.ctrd.run_d(name, ["sleep", "3600"])
        time.sleep(3)
        shims = [pid for pid in self.ctrd.shims() if pid not in shims_before]
        shim_pss = sum(pss_kib(p) for p in shims)
        self.results["memory_kib"] = {
            "groups": n, "berth_monitor_processes": len(monitors),
            "berth_monitor_pss_per_group": mon_pss / n,
            "berth_serve_pss_before": serve_before, "berth_serve_pss_after": serve_after,
            "berth_serve_growth_per_group": (serve_after - serve_before) / n,
            "berth_total_per_group": (mon_pss + max(0, serve_after - serve_before)) / n,
            "podman_conmon_processes": len(conmons), "conmon_pss_per_container": conmon_pss / n,
            "ctr_shim_processes": len(shims), "ctr_shim_pss_per_container": shim_pss / n,
        }
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(n) as ex:
            list(ex.map(self.eci.delete, ids))
        self.wait_gone(ids, t0)
        podman("rm", "-f", "-t", "0", *names)
        self.containers.difference_update(names)
        with cf.ThreadPoolExecutor(n) as ex:
            list(ex.map(self.ctrd.remove, ctr_names))

    def burst(self) -> None:
        n, pn = 100, 20
        self.berth.wait_pool_full()
        barrier = threading.Barrier(n + 1)
        ids: list[str] = []
        lock = threading.Lock()
        errors: list[str] = []

        def create(i):
            barrier.wait()
            try:
                gid = self.eci.create(f"{PREFIX}-burst-{i}", self.image, ["sleep", "3600"],
                                      self.registry.host)
                with lock:
                    ids.append(gid)
                    self.groups.add(gid)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(repr(e))

        threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        barrier.wait()
        for t in threads:
            t.join()
        t_accepted = ms(t0)
        if errors:
            raise RuntimeError(f"{len(errors)} creates failed: {errors[:3]}")
        deadline = time.monotonic() + 300
        # Only groups not yet Running are asked about again, so the polling itself costs
        # little CPU next to the groups starting on the same cores.
        pending = list(ids)
        while pending:
            still = []
            for i in range(0, len(pending), 20):
                gs = self.eci.describe(pending[i:i + 20])
                bad = [g for g in gs if g.get("Status") in ("Failed", "Succeeded")]
                if bad:
                    raise RuntimeError(f"burst group ended: {json.dumps(bad[0])[:1000]}")
                still += [g["ContainerGroupId"] for g in gs if g.get("Status") != "Running"]
            pending = still
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"burst: {n - len(pending)}/{n} running after 300 s")
            if pending:
                time.sleep(0.01)
        t_all = ms(t0)

        def prun(i):
            return self.podman_run(["sleep", "3600"])

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(pn) as ex:
            pres = list(ex.map(prun, range(pn)))
        p_all = ms(t0)
        # ctr: as many `ctr run -d` at once as podman's (each returns once its task started).
        ctr_names = [self.ctr_name(f"burst-{i}") for i in range(pn)]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(pn) as ex:
            list(ex.map(lambda nm: self.ctrd.run_d(nm, ["sleep", "3600"]), ctr_names))
        c_all = ms(t0)
        self.results["burst"] = {
            "berth_groups": n, "berth_all_accepted_ms": t_accepted, "berth_all_running_ms": t_all,
            "berth_groups_per_s": n / (t_all / 1000),
            "podman_containers": pn, "podman_all_running_ms": p_all,
            "podman_containers_per_s": pn / (p_all / 1000),
            "ctr_containers": pn, "ctr_all_running_ms": c_all,
            "ctr_containers_per_s": pn / (c_all / 1000)}

        # Burst delete: 50 groups at once -> all gone; then the other 50; podman 20 at once.
        first, rest = ids[:50], ids[50:]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(50) as ex:
            list(ex.map(self.eci.delete, first))
        d_api = ms(t0)
        d_all = self.wait_gone(first, t0)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(50) as ex:
            list(ex.map(self.eci.delete, rest))
        self.wait_gone(rest, t0)
        names = [p[0] for p in pres]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(pn) as ex:
            list(ex.map(lambda nm: podman("rm", "-f", "-t", "0", nm), names))
        p_del = ms(t0)
        self.containers.difference_update(names)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(pn) as ex:
            list(ex.map(self.ctrd.remove, ctr_names))
        c_del = ms(t0)
        self.results["burst_delete"] = {
            "berth_groups": 50, "berth_all_accepted_ms": d_api, "berth_all_gone_ms": d_all,
            "berth_groups_per_s": 50 / (d_all / 1000), "podman_containers": pn,
            "podman_all_removed_ms": p_del, "podman_containers_per_s": pn / (p_del / 1000),
            "ctr_containers": pn, "ctr_all_removed_ms": c_del,
            "ctr_containers_per_s": pn / (c_del / 1000)}

    def describe_10k(self) -> None:
        count = 10_000
        # A real record to copy: a group that ran `true` and succeeded (final: berth does not
        # try to run it again when it starts).
        t0 = time.perf_counter()
        gid = self.eci.create(self.name(), self.image, ["true"], self.registry.host)
        self.groups.add(gid)
        while self.eci.describe([gid])[0].get("Status") != "Succeeded":
            if ms(t0) > 60_000:
                raise RuntimeError("template group did not succeed")
            time.sleep(0.05)
        db = self.berth.state / "berth.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            account, status, record = c.execute(
                "SELECT account, status, record FROM groups WHERE id = ?", (gid,)).fetchone()
        self.eci.delete(gid)
        self.wait_gone([gid], time.perf_counter())
        self.berth.stop()
        copy_state = self.work / "state-10k"
        copy_state.mkdir()
        shutil.copy2(self.berth.state / "credentials.json", copy_state / "credentials.json")
        # The key that opens the sealed secrets of the database (where berth seals them).
        if (self.berth.state / "secrets.key").exists():
            shutil.copy2(self.berth.state / "secrets.key", copy_state / "secrets.key")
        src = sqlite3.connect(str(db))
        dst = sqlite3.connect(str(copy_state / "berth.db"))
        src.backup(dst)
        src.close()
        template = json.loads(record)
        alnum = string.ascii_lowercase + string.digits
        rows, sample_ids = [], []
        base = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        for i in range(count):
            rid = "eci-" + "".join(random.choices(alnum, k=20))
            rec = dict(template)
            rec["id"] = rid
            rec["spec"] = dict(template["spec"], name=f"{PREFIX}-{i}")
            rec["creation_time"] = (base + dt.timedelta(seconds=i)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")
            rec["client_token"] = None
            rows.append((rid, account, f"{PREFIX}-{i}", status, None, json.dumps(rec)))
            sample_ids.append(rid)
        dst.executemany("INSERT INTO groups (id, account, name, status, client_token, record) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
        dst.commit()
        dst.close()
        log(f"inserted {count} records into a copy of the database; starting berth on it")
        b10k = Berth(self.a.berth, copy_state, self.work / "berth-10k.log", self.a.bridge,
                     self.a.subnet, self.a.serve_arg)
        try:
            eci = b10k.start()
            total = eci.call("DescribeContainerGroups", Limit=1).get("TotalCount")
            ids_file = self.work / "ids-10k.txt"
            ids_file.write_text("\n".join(sample_ids) + "\n")
            native = DESCRIBE_LOAD.exists()
            clients = self.a.clients
            if not native:
                self.note(f"{DESCRIBE_LOAD.relative_to(REPO)} is not built: Describe load from "
                          f"{clients} Python processes, which cap the rate on this host "
                          "(cargo build --release -p berth-client --example describe_load)")
            res = {"groups_in_store": total, "clients": clients,
                   "load_generator": "describe_load" if native else "python",
                   "seconds": self.a.describe_seconds}
            for kind in ("by_id", "list_page"):
                # one client alone: latency without queueing
                lat = []
                t_end = time.monotonic() + min(3.0, self.a.describe_seconds / 3)
                while time.monotonic() < t_end:
                    t0 = time.perf_counter()
                    describe_once(eci, kind, sample_ids)
                    lat.append(ms(t0))
                res[f"{kind}_single_client_ms"] = stats(lat)
                cpu0 = process_cpu_s(b10k.proc.pid)
                if native:
                    res[kind] = native_load(b10k.endpoint, copy_state / "credentials.json", kind,
                                            ids_file, clients, self.a.describe_seconds)
                else:
                    res[kind] = load(b10k.endpoint, eci.key_id, eci.secret[:-1].decode(), kind,
                                     sample_ids, clients, self.a.describe_seconds)
                # Server CPU per answer: unlike the rate, it does not move with what else the
                # host runs (the load generator shares its two cores; steal time is not counted).
                cpu = process_cpu_s(b10k.proc.pid) - cpu0
                answered = max(1, res[kind]["requests"])
                res[kind]["server_cpu_us_per_request"] = round(cpu * 1e6 / answered, 1)
                log(f"describe {kind}: {res[kind]['requests_per_s']:.0f} req/s, p99 "
                    f"{res[kind]['latency_ms']['p99']:.1f} ms, server CPU "
                    f"{res[kind]['server_cpu_us_per_request']:.1f} us/request")
            self.results["describe_10k"] = res
        finally:
            b10k.stop()
        self.eci = self.berth.start()

    def describe_flood(self) -> None:
        """7. Account A floods DescribeContainerGroups while account B describes at a modest
        rate: B alone, B during A's flood with A throttled, B during the flood unthrottled."""
        seconds, rate = self.a.flood_seconds, self.a.flood_read_rate
        if not DESCRIBE_LOAD.exists():
            raise SystemExit(f"{DESCRIBE_LOAD.relative_to(REPO)} is missing: cargo build "
                             "--release -p berth-client --example describe_load")
        self.berth.stop()
        state = self.work / "state-flood"
        limits = [f"--throttle-read-rate={rate:g}", f"--throttle-read-burst={int(rate)}"]
        fb = Berth(self.a.berth, state, self.work / "berth-flood.log", self.a.bridge,
                   self.a.subnet, [*self.a.serve_arg, *limits], throttled=True)
        res: dict = {"seconds": seconds, "read_rate_limit": rate, "read_burst": int(rate),
                     "flood_connections": self.a.flood_clients, "b_rate": self.a.flood_b_rate,
                     "groups_per_account": 10}
        ids: dict[str, list[str]] = {"a": [], "b": []}
        ecis: dict[str, Eci] = {}
        try:
            fb.start()
            fb.wait_pool_full()
            for who in ("a", "b"):
                name = f"{PREFIX}-{who}"
                admin_cmd(fb, "account", "create", name)
                key = json.loads(admin_cmd(fb, "key", "create", "--account", name, "-o", "json"))
                (self.work / f"flood-{who}.json").write_text(json.dumps(key))
                ecis[who] = Eci(fb.endpoint, key["AccessKeyId"], key["AccessKeySecret"])
                for i in range(res["groups_per_account"]):
                    ids[who].append(ecis[who].create(f"{PREFIX}-{who}-{i}", self.image, ["true"],
                                                     self.registry.host))
            for who in ("a", "b"):
                self.wait_final(ecis[who], ids[who])
            ids_file = self.work / "flood-ids-a.txt"
            ids_file.write_text("\n".join(ids["a"]) + "\n")

            def phase(label: str, flood: bool, endpoint: str, b: Eci) -> None:
                log(f"describe flood: B at {self.a.flood_b_rate}/s for {seconds:g} s, {label}")
                proc = None
                if flood:
                    proc = subprocess.Popen(
                        [str(DESCRIBE_LOAD), "--endpoint", endpoint, "--credentials",
                         str(self.work / "flood-a.json"), "--mode", "by_id", "--ids",
                         str(ids_file), "--connections", str(self.a.flood_clients),
                         "--seconds", str(seconds + 2), "--sign", "rpc"],
                        stdout=subprocess.PIPE, text=True)
                    time.sleep(1.3)  # its connections are open and the flood is on
                out = {"b": paced_describe(b, ids["b"], self.a.flood_b_rate, seconds)}
                if proc is not None:
                    a_out = json.loads(proc.communicate(timeout=seconds + 60)[0])
                    out["a"] = {k: a_out[k] for k in ("requests", "throttled", "errors",
                                                      "first_error", "latency_ms")}
                    out["a"]["answered_per_s"] = a_out["requests"] / (seconds + 2)
                    out["a"]["throttled_per_s"] = a_out["throttled"] / (seconds + 2)
                res[label] = out
                bl = out["b"]["latency_ms"]
                log(f"  B p50 {bl['p50']:.2f} ms, p99 {bl['p99']:.2f} ms, success "
                    f"{out['b']['success_rate']:.4f}" + (
                        f"; A {out['a']['answered_per_s']:.0f}/s answered, "
                        f"{out['a']['throttled_per_s']:.0f}/s throttled" if flood else ""))

            phase("b_alone", False, fb.endpoint, ecis["b"])
            phase("b_with_a_flood_throttled", True, fb.endpoint, ecis["b"])
            fb.stop()
            # The same accounts and groups, throttling off.
            open_b = Berth(self.a.berth, state, self.work / "berth-flood.log", self.a.bridge,
                           self.a.subnet, self.a.serve_arg)
            fb = open_b
            fb.start()
            fb.wait_pool_full()
            ecis = {w: Eci(fb.endpoint, e.key_id, e.secret[:-1].decode())
                    for w, e in ecis.items()}
            phase("b_with_a_flood_unthrottled", True, fb.endpoint, ecis["b"])
            self.results["describe_flood"] = res
        finally:
            if fb.proc and fb.proc.poll() is None:
                for who, eci in ecis.items():
                    for gid in ids[who]:
                        try:
                            eci.delete(gid)
                        except Exception as e:  # noqa: BLE001
                            log(f"delete {gid}: {e}")
                for who, eci in ecis.items():
                    self.wait_final(eci, ids[who], gone=True)
            fb.stop()
        self.eci = self.berth.start()

    def probes(self) -> None:
        n, secs, period = self.a.probe_groups, self.a.probe_seconds, self.a.probe_period
        httpd = ["sh", "-c", "mkdir -p /www && echo ok > /www/ok && exec httpd -f -p 8080 -h /www"]
        probe_params = {
            "Container.1.ReadinessProbe.HttpGet.Path": "/ok",
            "Container.1.ReadinessProbe.HttpGet.Port": "8080",
            "Container.1.ReadinessProbe.PeriodSeconds": str(period),
            "Container.1.LivenessProbe.TcpSocket.Port": "8080",
            "Container.1.LivenessProbe.PeriodSeconds": str(period),
        }
        pid = self.berth.proc.pid
        out: dict = {"groups": n, "seconds": secs, "period_s": period}

        def host_cpu_s() -> float:
            f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            busy = sum(int(x) for i, x in enumerate(f) if i not in (3, 4))  # not idle, iowait
            return busy / os.sysconf("SC_CLK_TCK")

        def phase(label: str, extra: dict) -> None:
            self.berth.wait_pool_full()
            EXTRA_CREATE.update(extra)
            try:
                ids = []
                with cf.ThreadPoolExecutor(8) as ex:
                    for gid in ex.map(lambda i: self.eci.create(
                            f"{PREFIX}-probe-{label}-{i}", self.image, httpd,
                            self.registry.host), range(n)):
                        ids.append(gid)
                        self.groups.add(gid)
            finally:
                for k in extra:
                    EXTRA_CREATE.pop(k, None)
            deadline = time.monotonic() + 600
            while True:
                gs = []
                for i in range(0, n, 20):
                    gs += self.eci.describe(ids[i:i + 20])
                ready = sum(1 for g in gs if g.get("Status") == "Running"
                            and all(c.get("Ready") for c in g.get("Containers") or []))
                if ready == n:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"probes {label}: {ready}/{n} groups ready after 600 s")
                time.sleep(1)
            # Let the starts settle (pool refills, spare directories) before measuring.
            time.sleep(10)
            self.berth.wait_pool_full()
            c0, h0, t0 = process_cpu_split(pid), host_cpu_s(), time.monotonic()
            if label == "with" and self.a.probe_perf:
                subprocess.run(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o",
                                str(self.a.probe_perf), "--", "sleep", str(secs)],
                               capture_output=True, check=True)
            else:
                time.sleep(secs)
            c1, h1, t1 = process_cpu_split(pid), host_cpu_s(), time.monotonic()
            wall = t1 - t0
            out[label] = {"serve_cpu_pct": round(100 * (sum(c1) - sum(c0)) / wall, 3),
                          "serve_user_pct": round(100 * (c1[0] - c0[0]) / wall, 3),
                          "serve_system_pct": round(100 * (c1[1] - c0[1]) / wall, 3),
                          "host_cpu_pct": round(100 * (h1 - h0) / wall, 3)}
            restarts = sum(c.get("RestartCount", 0) for i in range(0, n, 20)
                           for g in self.eci.describe(ids[i:i + 20])
                           for c in g.get("Containers") or [])
            out[label]["restarts"] = restarts
            log(f"probes {label}: berth serve {out[label]['serve_cpu_pct']:.2f} % of a core "
                f"({out[label]['serve_user_pct']:.2f} user, "
                f"{out[label]['serve_system_pct']:.2f} system), "
                f"host {out[label]['host_cpu_pct']:.2f} %, {restarts} restarts")
            for gid in ids:
                self.eci.delete(gid)
            self.wait_gone(ids, time.perf_counter(), 300)

        phase("without", {})
        phase("with", probe_params)
        serve = out["with"]["serve_cpu_pct"] - out["without"]["serve_cpu_pct"]
        host = out["with"]["host_cpu_pct"] - out["without"]["host_cpu_pct"]
        checks_per_s = 2 * n / period
        out["serve_pct_per_1000_checks_per_s"] = round(serve / checks_per_s * 1000, 3)
        # 1,000 groups with two probes every 10 s: 200 checks/s.
        out["serve_pct_1000_groups_10s"] = round(serve / checks_per_s * 200, 3)
        out["host_pct_1000_groups_10s"] = round(host / checks_per_s * 200, 3)
        out["serve_pct_1000_groups_same_period"] = round(serve / n * 1000, 3)
        self.results["probes"] = out

    def wait_final(self, eci: Eci, ids: list[str], gone: bool = False,
                   timeout: float = 120) -> None:
        """Waits until the groups have ended (Succeeded or Failed), or are gone."""
        deadline = time.monotonic() + timeout
        while True:
            gs = eci.describe(ids)
            if gone and not gs:
                return
            if not gone and len(gs) == len(ids) and all(
                    g.get("Status") in ("Succeeded", "Failed") for g in gs):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"groups not {'gone' if gone else 'ended'} in {timeout} s")
            time.sleep(0.1)

    # --- cleanup

    def cleanup(self) -> None:
        log("cleaning up")
        if self.eci is not None and self.berth.proc and self.berth.proc.poll() is None:
            ids = list(self.groups)
            for gid in ids:
                try:
                    self.eci.delete(gid)
                except Exception as e:  # noqa: BLE001
                    if not (isinstance(e, EciError) and e.status == 404):
                        log(f"delete {gid}: {e}")
            try:
                self.wait_gone(ids, time.perf_counter(), 120)
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
        self.berth.stop()
        try:
            self.crun.cleanup()
        except OSError as e:
            log(f"cleanup of the crun floor: {e}")
        if self.containers:
            podman("rm", "-f", "-t", "0", *sorted(self.containers), check=False)
        if self.image:
            podman("rmi", "-f", self.image, check=False)
        try:
            self.ctrd.stop()
        except (OSError, subprocess.SubprocessError) as e:
            log(f"cleanup of containerd: {e}")
        self.registry.stop()
        subprocess.run(["ip", "link", "del", self.a.bridge], capture_output=True)
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")
                  if line.split()[4].startswith(str(self.work))]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        if mounts:
            self.note(f"{len(mounts)} mounts were left under the work dir (unmounted)")
        if self.a.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def admin_cmd(b: Berth, *args: str) -> str:
    """`berth admin ARGS` on the state dir of `b`; its stdout."""
    out = subprocess.run([str(b.binary), "admin", "--state-dir", str(b.state), *args],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"berth admin {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def paced_describe(eci: Eci, ids: list[str], rate: float, seconds: float) -> dict:
    """DescribeContainerGroups of one random group of `ids`, `rate` a second for `seconds`
    (each request at its scheduled time, or at once when late): latency of the answered
    ones, success rate, the codes of the others."""
    lat, failures = [], {}
    n = int(rate * seconds)
    t_start = time.perf_counter()
    for i in range(n):
        due = t_start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        try:
            gs = eci.describe([random.choice(ids)])
            if len(gs) != 1:
                raise RuntimeError(f"{len(gs)} groups")
            lat.append(ms(t0))
        except EciError as e:
            code = re.search(r'"Code":"([^"]+)"', e.body)
            key = code.group(1) if code else f"HTTP {e.status}"
            failures[key] = failures.get(key, 0) + 1
        except Exception as e:  # noqa: BLE001 - counted
            failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
    return {"requests": n, "answered": len(lat), "success_rate": len(lat) / n if n else None,
            "failures": failures, "latency_ms": stats(lat)}


def describe_once(eci: Eci, kind: str, ids: list[str]) -> None:
    if kind == "by_id":
        gs = eci.describe([random.choice(ids)])
        assert len(gs) == 1, gs
    else:
        eci.call("DescribeContainerGroups", Limit=20)


def _load_worker(endpoint, key_id, secret, kind, ids, seconds, start_at, q):
    eci = Eci(endpoint, key_id, secret)
    while time.time() < start_at:
        time.sleep(0.001)
    lat, errors = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            describe_once(eci, kind, ids)
            lat.append(ms(t0))
        except Exception:  # noqa: BLE001 - counted
            errors += 1
    q.put((lat, errors))


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def native_load(endpoint, credentials, kind, ids_file, connections, seconds) -> dict:
    """describe_load over `connections` keep-alive connections for `seconds` (RPC HMAC-SHA1
    signatures, as this script's client): requests/s, errors, latency."""
    out = subprocess.run(
        [str(DESCRIBE_LOAD), "--endpoint", endpoint, "--credentials", str(credentials),
         "--mode", kind, "--ids", str(ids_file), "--connections", str(connections),
         "--seconds", str(seconds), "--sign", "rpc"],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    r = json.loads(out.stdout)
    if r["errors"]:
        log(f"describe {kind}: {r['errors']} errors, first: {r['first_error']}")
    return {k: r[k] for k in ("requests", "errors", "requests_per_s", "latency_ms")}


def load(endpoint, key_id, secret, kind, ids, clients, seconds) -> dict:
    """`clients` processes (each one keep-alive connection) for `seconds`: requests/s, latency."""
    q = mp.Queue()
    start_at = time.time() + 0.5
    procs = [mp.Process(target=_load_worker,
                        args=(endpoint, key_id, secret, kind, ids, seconds, start_at, q))
             for _ in range(clients)]
    for p in procs:
        p.start()
    lat, errors = [], 0
    for _ in procs:
        l, e = q.get()
        lat += l
        errors += e
    for p in procs:
        p.join()
    return {"requests": len(lat), "errors": errors, "requests_per_s": len(lat) / seconds,
            "latency_ms": stats(lat)}


# ----------------------------------------------------------------------------- report


def table(res: dict) -> list[tuple]:
    rows = []

    def row(metric, berth, peer, peer_name, target="", met=None, lower=True):
        ratio = (berth / peer) if (berth is not None and peer) else None
        rows.append((metric, berth, peer, peer_name, ratio, target,
                     "" if met is None else ("met" if met else "NOT met")))

    cs = res.get("cold_start_ms")
    if cs:
        b, p = cs["berth_running"], cs["podman_run"]
        for q in ("p50", "p90", "p99"):
            met = None
            if q == "p50":
                met = b["p50"] <= 30 and p["p50"] / b["p50"] >= 4
            row(f"cold start -> running {q} (ms)", b[q], p[q], "podman run -d",
                "<=30 ms, >=4x" if q == "p50" else "", met)
        if cs.get("crun_run"):
            row("cold start -> running p50 (ms)", b["p50"], cs["crun_run"]["p50"],
                "crun run -d, host network")
        if cs.get("ctr_run"):
            for q in ("p50", "p90", "p99"):
                row(f"cold start -> running {q} (ms)", b[q], cs["ctr_run"][q],
                    "ctr run -d, no network (runc)")
        if cs.get("ctr_run_rm_true"):
            row("run `true`: start, exit, remove p50 (ms)", None, cs["ctr_run_rm_true"]["p50"],
                "ctr run --rm (runc)")
        for q in ("p50", "p90", "p99"):
            row(f"cold start -> HTTP 200 {q} (ms)", cs["berth_http"][q], cs["podman_http"][q],
                "podman run+inspect+GET")
        for q in ("p50", "p99"):
            row(f"delete -> gone {q} (ms)", cs["berth_delete"][q], cs["podman_rm"][q],
                "podman rm -f -t 0")
        if cs.get("ctr_rm"):
            for q in ("p50", "p99"):
                row(f"delete -> gone {q} (ms)", cs["berth_delete"][q], cs["ctr_rm"][q],
                    "ctr task rm -f + container rm")
    bu = res.get("burst")
    if bu:
        row("burst create groups/s", bu["berth_groups_per_s"], bu["podman_containers_per_s"],
            f"{bu['podman_containers']} podman run -d", ">=50/s", bu["berth_groups_per_s"] >= 50)
        row("burst create all running (ms)", bu["berth_all_running_ms"],
            bu["podman_all_running_ms"], f"{bu['podman_containers']} podman run -d")
        if bu.get("ctr_containers"):
            row("burst create groups/s", bu["berth_groups_per_s"], bu["ctr_containers_per_s"],
                f"{bu['ctr_containers']} ctr run -d")
            row("burst create all running (ms)", bu["berth_all_running_ms"],
                bu["ctr_all_running_ms"], f"{bu['ctr_containers']} ctr run -d")
    bd = res.get("burst_delete")
    if bd:
        row("burst delete groups/s", bd["berth_groups_per_s"], bd["podman_containers_per_s"],
            f"{bd['podman_containers']} podman rm")
        row("burst delete 50 all gone (ms)", bd["berth_all_gone_ms"], bd["podman_all_removed_ms"],
            f"{bd['podman_containers']} podman rm")
        if bd.get("ctr_containers"):
            row("burst delete groups/s", bd["berth_groups_per_s"], bd["ctr_containers_per_s"],
                f"{bd['ctr_containers']} ctr task rm -f + rm")
            row("burst delete 50 all gone (ms)", bd["berth_all_gone_ms"],
                bd["ctr_all_removed_ms"], f"{bd['ctr_containers']} ctr task rm -f + rm")
    pb = res.get("pull_busybox_ms")
    if pb:
        row("pull busybox p50 (ms)", pb["berth"]["p50"], pb["podman"]["p50"], "podman pull")
        row("pull busybox p50 (ms)", pb["berth"]["p50"], pb["skopeo"]["p50"],
            "skopeo copy (no unpack)")
        if pb.get("ctr"):
            row("pull busybox p50 (ms)", pb["berth"]["p50"], pb["ctr"]["p50"],
                "ctr images pull (+unpack)")
    pbig = res.get("pull_200mb_s")
    if pbig:
        b, p = pbig["berth_p50"], pbig["podman_p50"]
        row("pull+unpack 200 MB p50 (s)", b, p, "podman pull", ">=2x faster", p / b >= 2)
        row("pull+unpack 200 MB p50 (s)", b, pbig["skopeo_p50"], "skopeo copy (no unpack)")
        if pbig.get("ctr_p50"):
            row("pull+unpack 200 MB p50 (s)", b, pbig["ctr_p50"], "ctr images pull (+unpack)")
    d = res.get("describe_10k")
    if d:
        for kind in ("by_id", "list_page"):
            k = d[kind]
            row(f"Describe 10k {kind} p99 (ms), {d['clients']} conns", k["latency_ms"]["p99"],
                None, "", "<=20 ms", k["latency_ms"]["p99"] <= 20)
            row(f"Describe 10k {kind} req/s", k["requests_per_s"], None, "", ">=5000/s",
                k["requests_per_s"] >= 5000)
            for q in ("p50", "p99"):
                row(f"Describe 10k {kind} 1 client {q} (ms)", d[f"{kind}_single_client_ms"][q],
                    None, "")
    f = res.get("describe_flood")
    if f:
        for label, what in (("b_alone", "alone"), ("b_with_a_flood_throttled", "A floods"),
                            ("b_with_a_flood_unthrottled", "A floods, no throttle")):
            if label not in f:
                continue
            b = f[label]["b"]
            for q in ("p50", "p99"):
                row(f"Describe of B, {what}, {q} (ms)", b["latency_ms"][q], None, "")
            row(f"Describe of B, {what}, success", b["success_rate"], None, "")
            if "a" in f[label]:
                row(f"Describe of A, {what}, answered/s", f[label]["a"]["answered_per_s"],
                    None, "")
                row(f"Describe of A, {what}, Throttling/s", f[label]["a"]["throttled_per_s"],
                    None, "")
    pr = res.get("probes")
    if pr:
        row(f"probes: berth serve, {pr['groups']} groups, none (% of a core)",
            pr["without"]["serve_cpu_pct"], None, "")
        row(f"probes: berth serve, {pr['groups']} groups, HTTP+TCP every "
            f"{pr['period_s']} s (% core)", pr["with"]["serve_cpu_pct"], None, "")
        row("probes: berth serve per 1,000 groups, HTTP+TCP every 10 s (% core)",
            pr["serve_pct_1000_groups_10s"], None, "", "a few % (<= 5)",
            pr["serve_pct_1000_groups_10s"] <= 5)
    m = res.get("memory_kib")
    if m:
        row("PSS per idle group (KiB), monitors", m["berth_monitor_pss_per_group"],
            m["conmon_pss_per_container"], "conmon", "< conmon",
            m["berth_monitor_pss_per_group"] < m["conmon_pss_per_container"])
        row("PSS per idle group (KiB), + serve growth", m["berth_total_per_group"],
            m["conmon_pss_per_container"], "conmon", "< conmon",
            m["berth_total_per_group"] < m["conmon_pss_per_container"])
        if m.get("ctr_shim_processes"):
            row("PSS per idle group (KiB), monitors", m["berth_monitor_pss_per_group"],
                m["ctr_shim_pss_per_container"], "containerd-shim-runc-v2")
            row("PSS per idle group (KiB), + serve growth", m["berth_total_per_group"],
                m["ctr_shim_pss_per_container"], "containerd-shim-runc-v2")
    return rows


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def print_table(rows) -> None:
    head = ("metric", "berth", "peer", "peer is", "berth/peer", "target", "")
    cells = [head] + [tuple(fmt(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


# Parameters every CreateContainerGroup of berth adds (`--volumes`).
EXTRA_CREATE: dict[str, str] = {}
VOLUME_PARAMS = {
    "Volume.1.Name": "cache", "Volume.1.Type": "EmptyDirVolume",
    "Volume.2.Name": "conf", "Volume.2.Type": "ConfigFileVolume",
    "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Path": "app.conf",
    "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content":
        base64.b64encode(b"listen 8080\n").decode(),
    "Container.1.VolumeMount.1.Name": "cache", "Container.1.VolumeMount.1.MountPath": "/cache",
    "Container.1.VolumeMount.2.Name": "conf", "Container.1.VolumeMount.2.MountPath": "/etc/app",
}
# `--ports`: the httpd's port published on berth serve --public-ip (127.0.0.1 here).
PORT_PARAMS = {
    "AutoCreateEip": "true",
    "Container.1.Port.1.Port": "80", "Container.1.Port.1.Protocol": "TCP",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_bin = REPO / "target" / "release" / "berth"
    ap.add_argument("--berth", type=Path, default=default_bin, help="berth binary (release)")
    ap.add_argument("--runs", type=int, default=50, help="cold start runs (each of berth, podman)")
    ap.add_argument("--quick", action="store_true", help="10 runs, shorter load phases")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--bridge", default="berthbench")
    ap.add_argument("--subnet", default="10.216.0.0/16")
    ap.add_argument("--clients", type=int, default=8,
                    help="concurrent Describe connections (describe_load, else Python processes)")
    ap.add_argument("--describe-seconds", type=float, default=10.0)
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra argument for berth serve (repeat), e.g. --serve-arg=--netns-pool=32")
    ap.add_argument("--flood-seconds", type=float, default=10.0,
                    help="length of each phase of the describe flood")
    ap.add_argument("--flood-clients", type=int, default=8,
                    help="connections of account A's flood (describe_load)")
    ap.add_argument("--flood-read-rate", type=float, default=1000.0,
                    help="reads/s (and burst) allowed per account in the describe flood")
    ap.add_argument("--flood-b-rate", type=float, default=100.0,
                    help="account B's paced describes/s in the describe flood")
    ap.add_argument("--account-seccomp", metavar="PROFILE",
                    help="berth admin account set-seccomp of the benchmark's account: a profile "
                         "file, default or unconfined (berth's default profile when not given)")
    ap.add_argument("--skip", default="",
                    help="comma list of: pull,big,cold,memory,burst,describe,flood,probes")
    ap.add_argument("--probe-groups", type=int, default=200,
                    help="groups of the probe CPU measurement (each phase)")
    ap.add_argument("--probe-seconds", type=float, default=60.0,
                    help="length of each probe CPU measurement")
    ap.add_argument("--probe-period", type=int, default=1,
                    help="PeriodSeconds of the measured probes")
    ap.add_argument("--probe-perf", type=Path,
                    help="perf record berth serve during the measurement with probes, here")
    ap.add_argument("--keep", action="store_true", help="keep the temp work dir")
    ap.add_argument("--volumes", action="store_true",
                    help="every group berth creates gets an emptyDir (on its temporary storage) "
                         "at /cache and a ConfigFile volume of one file at /etc/app")
    ap.add_argument("--ports", action="store_true",
                    help="every group berth creates publishes its port 80 on 127.0.0.1 "
                         "(AutoCreateEip=true, berth serve --public-ip 127.0.0.1)")
    a = ap.parse_args()
    if a.volumes:
        EXTRA_CREATE.update(VOLUME_PARAMS)
    if a.ports:
        EXTRA_CREATE.update(PORT_PARAMS)
        a.serve_arg.append("--public-ip=127.0.0.1")
    if a.quick:
        a.runs = min(a.runs, 10)
        a.describe_seconds = min(a.describe_seconds, 5.0)
        a.flood_seconds = min(a.flood_seconds, 5.0)
        a.probe_seconds = min(a.probe_seconds, 20.0)
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not a.berth.exists():
        raise SystemExit(f"{a.berth} is missing: cargo build --release -p berth")
    if Containerd.missing():
        raise SystemExit(f"{', '.join(Containerd.missing())} not found (ctr is measured next "
                         "to berth): apt-get install -y containerd")
    peers = {"podman": "podman", "skopeo": "skopeo", "crun": "crun", "runc": "runc",
             "docker-registry": "docker-registry", "busybox": "busybox-static"}
    absent = sorted({pkg for tool, pkg in peers.items() if shutil.which(tool) is None})
    if absent:
        raise SystemExit(f"not found: {', '.join(absent)}: apt-get install -y {' '.join(absent)}")
    skip = set(filter(None, a.skip.split(",")))
    b = Bench(a)
    started = time.time()
    b.results["meta"] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(), "cpus": os.cpu_count(), "kernel": os.uname().release,
        "runs": a.runs, "quick": a.quick, "berth": str(a.berth),
        "seccomp": a.account_seccomp or "default", "serve_args": a.serve_arg,
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "podman": podman("--version", check=False).stdout.strip(),
        "ctr": subprocess.run(["ctr", "--version"], capture_output=True,
                              text=True).stdout.strip(),
        "notes": "podman with runc; ctr against a private containerd (own config, root, state "
                 "and socket in the work dir; CRI plugin off), io.containerd.runc.v2 with runc, "
                 "overlayfs snapshotter; ctr containers have no network (loopback only, no "
                 "CNI), stdio to /dev/null"}
    failed = None
    try:
        b.setup()
        b.results["meta"]["containerd"] = b.ctrd.version()
        if "pull" not in skip:
            log("3. pull busybox: berth / podman / skopeo / ctr")
            b.pull()
        podman("pull", "-q", "--tls-verify=false", b.image)
        b.ctrd.pull(b.image)
        b.start_berth()
        if "cold" not in skip:
            log(f"1+6. cold start and delete, {a.runs} runs each, alternating")
            b.cold_start()
        if "memory" not in skip:
            log("5. memory of 20 idle groups / 20 podman containers / 20 ctr containers")
            b.memory()
        if "burst" not in skip:
            log("2+6. burst of 100 groups / 20 podman / 20 ctr containers, burst delete")
            b.burst()
        if "describe" not in skip:
            log("4. DescribeContainerGroups with 10,000 groups in the store")
            b.describe_10k()
        if "flood" not in skip:
            log("7. DescribeContainerGroups of account B while account A floods")
            b.describe_flood()
        if "probes" not in skip:
            log(f"8. probe CPU: {a.probe_groups} groups without and with probes")
            b.probes()
        if "big" not in skip:
            b.pull_big()
    except BaseException as e:  # noqa: BLE001 - reported after cleanup
        failed = e
    finally:
        b.cleanup()
    b.results["meta"]["seconds"] = round(time.time() - started, 1)
    rows = table(b.results)
    print()
    print_table(rows)
    for n in b.results["notes"]:
        print(f"note: {n}")
    if a.json:
        a.json.write_text(json.dumps(b.results, indent=2) + "\n")
        log(f"wrote {a.json}")
    if failed is not None:
        if isinstance(failed, KeyboardInterrupt):
            raise SystemExit(130)
        raise failed


if __name__ == "__main__":
    main()
