"""Fixtures for the end-to-end tests.

A test run starts two of Debian's docker-registry on loopback (one plain, one with htpasswd
basic auth), pushes the busybox test image to both (tests/images/build.sh), then starts
`target/debug/berth serve` with a fresh state dir. At the end it deletes every group, stops
berth with SIGTERM and the registries, and checks that nothing was left on the host.

These tests run as root against real runtimes, cgroups and network namespaces. They fail,
never skip, when something they need is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGISTRY_PASSWORD, REGISTRY_USER, Berth, Groups, Images, Registry

# Loopback must never go through a proxy from the environment.
for _var in ("NO_PROXY", "no_proxy"):
    _have = os.environ.get(_var, "")
    os.environ[_var] = ",".join(x for x in (_have, "127.0.0.1", "localhost") if x)

TIMINGS: dict[str, float] = {}
_STATE: dict[str, object] = {}


@contextlib.contextmanager
def _timed(name: str):
    start = time.monotonic()
    yield
    TIMINGS[name] = time.monotonic() - start


@pytest.fixture(scope="session")
def host_ready() -> None:
    """What every test here needs from the host; fail loudly when it is missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root")
    for tool in (
        "crun", "runc", "docker-registry", "skopeo", "umoci", "htpasswd", "ip", "ps", "nft", "gcc"
    ):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed")
    for path in ("/usr/bin/busybox", "/usr/lib/cni/bridge", "/usr/lib/cni/static"):
        if not Path(path).exists():
            problems.append(f"{path} is missing")
    if not support.BERTH_BIN.exists():
        problems.append(f"{support.BERTH_BIN} is missing (run `cargo build --workspace`)")
    if problems:
        pytest.fail("end-to-end prerequisites missing:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def images(host_ready, tmp_path_factory) -> Images:
    plain = Registry(tmp_path_factory.mktemp("registry"))
    private = Registry(tmp_path_factory.mktemp("registry-auth"), (REGISTRY_USER, REGISTRY_PASSWORD))
    _STATE["registries"] = [plain, private]
    try:
        with _timed("start registries"):
            plain.start()
            private.start()
        with _timed("build and push images"):
            [image] = plain.push_busybox()
            private_image, unpulled = private.push_busybox(
                "busybox:latest", "unpulled/busybox:latest"
            )
    except BaseException:
        plain.stop()
        private.stop()
        raise
    yield Images(plain.host, image, private.host, private_image, unpulled)
    plain.stop()
    private.stop()


@pytest.fixture(scope="session")
def tracker() -> set[str]:
    """Every group id created in this run, for the final sweep and leftover checks."""
    return set()


@pytest.fixture(scope="session")
def berth(host_ready, images, tracker) -> Berth:
    # A short path of its own: socket paths under the state dir must stay below 108 bytes,
    # and pytest's clean-up of old temp dirs must never walk into a leaked mount.
    base = Path(tempfile.mkdtemp(prefix="berth-e2e-", dir="/tmp"))
    # Published ports (AutoCreateEip=true) go to 127.0.0.1: tests reach nothing else.
    server = Berth(base / "state", base / "berth.log", ["--public-ip", "127.0.0.1"])
    _STATE["berth"] = server
    # Ports already on the bridge belong to someone else (another berth on a developer's
    # machine); on CI there are none.
    veths_before = support.bridge_ports()
    with _timed("start berth"):
        server.start()
    yield server

    # Teardown: delete everything, stop berth, then look for anything left behind.
    problems: list[str] = []
    if not server.running():
        try:
            server.start()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"berth could not be restarted for cleanup: {exc}")
    if server.running():
        client = server.client()
        try:
            ids = {g["ContainerGroupId"] for g in support.list_groups(client)} | tracker
        except Exception as exc:  # noqa: BLE001
            ids = set(tracker)
            problems.append(f"DescribeContainerGroups failed at teardown: {exc!r}")
        for gid in sorted(ids):
            try:
                support.delete(client, gid)
            except ClientException as exc:
                if exc.status_code != 404:
                    problems.append(f"DeleteContainerGroup {gid}: {exc.code} {exc.message}")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"DeleteContainerGroup {gid}: {exc!r}")
        try:
            support.wait_for(
                "all groups to be deleted",
                lambda: not support.list_groups(client),
                timeout=60,
                diag=lambda: support.pretty(support.list_groups(client)),
            )
        except AssertionError as exc:
            problems.append(str(exc))
        tracker |= ids
        if not server.stop(timeout=30):
            problems.append("berth serve did not exit within 30s of SIGTERM")
        # Every group is gone: none may still be billed (ADR 0010).
        try:
            open_periods = [p for p in support.ledger_periods(server.state_dir) if not p["ended"]]
            if open_periods:
                problems.append(f"billed periods left open: {open_periods}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the metering ledger cannot be read: {exc!r}")
    for reg in _STATE.get("registries", []):
        reg.stop()
    try:
        support.assert_no_leftovers(
            server.state_dir, tracker, veths_allowed=veths_before, any_mount=True
        )
    except AssertionError as exc:
        problems.append(str(exc))
    support.finish_teardown("teardown", base, problems, server)


@pytest.fixture(scope="session")
def runc_berth(host_ready, images) -> Berth:
    """A second `berth serve`, with runc as its runtime, on a bridge and subnet of its own
    and with small unpack caps (support.RUNC_MAX_IMAGE_*), so that a decompression bomb is
    refused within seconds. Started by the first test that asks for it; at the end its
    groups are deleted, it is stopped, and nothing of it may remain on the host."""
    began = time.monotonic()
    with support.own_berth(
        "runc",
        [
            "--runtime", "runc",
            "--max-image-size", str(support.RUNC_MAX_IMAGE_GIB),
            "--max-image-entries", str(support.RUNC_MAX_IMAGE_ENTRIES),
        ],
        bridge=support.RUNC_BRIDGE,
        subnet=support.RUNC_SUBNET,
    ) as server:
        TIMINGS["start runc berth"] = time.monotonic() - began
        yield server


@pytest.fixture
def runc_groups(runc_berth, images):
    g = Groups(runc_berth, images, runc_berth.tracker)
    yield g
    g.delete_all()


@pytest.fixture
def client(berth):
    return berth.client()


def pytest_generate_tests(metafunc):
    """A test that takes `runtime_class` runs once per class (support.CLASSES), its groups
    (the `groups` fixture's) in that class. What cannot work under gvisor is marked
    `@pytest.mark.not_under_gvisor(reason)`: that case must fail (strict xfail), so the mark
    goes when the reason does."""
    if "runtime_class" not in metafunc.fixturenames:
        return
    limit = metafunc.definition.get_closest_marker("not_under_gvisor")
    params = []
    for cls in support.CLASSES:
        marks = []
        if cls == "gvisor" and limit is not None:
            marks.append(pytest.mark.xfail(reason=limit.args[0], strict=True))
        params.append(pytest.param(cls, marks=marks, id=cls))
    metafunc.parametrize("runtime_class", params)


@pytest.fixture
def groups(request, berth, images, tracker):
    cls = request.getfixturevalue("runtime_class") if "runtime_class" in request.fixturenames else None
    if cls == "gvisor" and shutil.which("runsc") is None:
        pytest.fail("runsc is not installed (apt-get install runsc): the gvisor class cannot run")
    g = Groups(berth, images, tracker, cls)
    yield g
    g.delete_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        server = _STATE.get("berth")
        if isinstance(server, Berth):
            report.sections.append(("berth serve log (tail)", server.diag(80)))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items())
        terminalreporter.write_line(f"e2e setup: {parts}")
