"""Probes and lifecycle hooks: readiness drives Containers[].Ready and the group's Ready
condition (exec and HTTP GET), a failing liveness probe restarts the container with its
events (TCP), a startup probe holds the others back, a PreStop hook runs before the
container is stopped and a failing PostStart hook kills it; HTTP hooks carry their
headers, and HTTPS probes and hooks speak TLS to a server in the group
(tests/images/http_echo.c, which logs every request it gets); parameters berth must not
honour are refused by name."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from alibabacloud_eci20180808 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import (
    REGION, ImageVariants, container, container_of, entry, exec_sh, pretty, wait_for,
    wait_status,
)
from test_tls import make_pki

# Stops at once on SIGTERM (a shell as PID 1 ignores it otherwise).
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
# tests/images/http_echo.c in the echo image, with a certificate and key for HTTPS.
ECHO = "berth-http-echo"
ECHO_SOURCE = support.REPO / "tests" / "images" / "http_echo.c"
CERT = "/etc/berth-echo/cert.pem"
KEY = "/etc/berth-echo/key.pem"


def serving(cmd: str) -> list[str]:
    """A shell running `cmd` in the background, stopping at once on SIGTERM."""
    return ["sh", "-c", f"{cmd} & trap 'exit 0' TERM; while true; do sleep 1; done"]


@pytest.fixture(scope="module")
def echo_image(images, tmp_path_factory) -> str:
    """The busybox image with berth-http-echo (static, with OpenSSL) and a certificate."""
    work = tmp_path_factory.mktemp("echo-image")
    binary = work / ECHO
    res = subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(binary), str(ECHO_SOURCE), "-lssl", "-lcrypto",
         "-lpthread"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, f"building {ECHO_SOURCE} (needs libssl-dev):\n{res.stderr}"
    pki = make_pki(work)
    variants = ImageVariants(work, images.registry)
    variants.add("http-echo", [[
        entry(f"bin/{ECHO}", data=binary.read_bytes(), mode=0o755),
        entry("etc/berth-echo", "dir"),
        entry(CERT.lstrip("/"), data=pki["server.pem"].read_bytes()),
        entry(KEY.lstrip("/"), data=pki["server.key"].read_bytes()),
    ]])
    return variants.push()["http-echo"]


def ready_of(client, gid: str, name: str = "c") -> bool:
    return bool(container_of(support.describe(client, gid), name).get("Ready"))


def wait_ready(client, gid: str, want: bool, name: str = "c", timeout: float = 20, diag=None):
    wait_for(
        f"{gid}/{name} Ready={want}",
        lambda: ready_of(client, gid, name) == want,
        timeout,
        interval=0.3,
        diag=diag,
    )


def group_ready_condition(client, gid: str) -> str:
    body = client.describe_container_group_status(
        M.DescribeContainerGroupStatusRequest(
            region_id=REGION, container_group_ids=json.dumps([gid])
        )
    ).body.to_map()
    data = [d for d in body.get("Data") or [] if d.get("ContainerGroupId") == gid]
    conds = (data[0].get("PodStatus") or {}).get("Conditions") or []
    return next(c.get("status") for c in conds if c.get("type") == "Ready")


def events(client, gid: str) -> list[str]:
    return [f"{e.get('Reason')}: {e.get('Message')}" for e in support.events_of(client, gid)]


def test_exec_readiness_flips_ready(runtime_class, berth, client, groups, images):
    probe = M.CreateContainerGroupRequestContainerReadinessProbe(
        exec=M.CreateContainerGroupRequestContainerReadinessProbeExec(
            command=["cat", "/tmp/ready"]
        ),
        period_seconds=1,
        failure_threshold=1,
    )
    gid = groups.create(
        "e2e-ready-exec", [container("c", images.image, SLEEP, readiness_probe=probe)]
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    time.sleep(2)
    assert not ready_of(client, gid), "Ready before the probe passed"
    assert group_ready_condition(client, gid) == "False"
    exec_sh(client, gid, "touch /tmp/ready")
    wait_ready(client, gid, True, diag=berth.diag)
    assert group_ready_condition(client, gid) == "True"
    exec_sh(client, gid, "rm /tmp/ready")
    wait_ready(client, gid, False, diag=berth.diag)
    assert group_ready_condition(client, gid) == "False"
    described = container_of(support.describe(client, gid), "c")["ReadinessProbe"]
    assert described["Execs"] == ["cat", "/tmp/ready"], pretty(described)
    assert described["PeriodSeconds"] == 1 and described["FailureThreshold"] == 1
    assert any("Readiness probe failed" in e for e in events(client, gid)), events(client, gid)
    # Without a probe a running container is Ready.
    assert container_of(support.describe(client, gid), "c")["RestartCount"] == 0


def test_http_readiness_and_tcp_liveness(runtime_class, berth, client, groups, images):
    httpd = ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"]
    readiness = M.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
            path="/ok", port=8080, scheme="HTTP"
        ),
        period_seconds=1,
        failure_threshold=1,
        success_threshold=2,
    )
    liveness = M.CreateContainerGroupRequestContainerLivenessProbe(
        tcp_socket=M.CreateContainerGroupRequestContainerLivenessProbeTcpSocket(port=8080),
        period_seconds=1,
        failure_threshold=2,
    )
    gid = groups.create(
        "e2e-ready-http",
        [
            container("c", images.image, httpd, readiness_probe=readiness,
                      liveness_probe=liveness),
            container("plain", images.image, SLEEP),
        ],
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    wait_ready(client, gid, True, name="plain", diag=berth.diag)
    time.sleep(2)
    assert not ready_of(client, gid), "Ready while GET /ok answers 404"
    exec_sh(client, gid, "echo ok > /www/ok")
    wait_ready(client, gid, True, diag=berth.diag)
    exec_sh(client, gid, "rm /www/ok")
    wait_ready(client, gid, False, diag=berth.diag)
    group = support.describe(client, gid)
    c = container_of(group, "c")
    assert c["RestartCount"] == 0, "a passing TCP liveness probe restarted it:\n" + pretty(group)
    assert c["ReadinessProbe"]["HttpGet"] == {"Path": "/ok", "Port": 8080, "Scheme": "HTTP"}
    assert c["LivenessProbe"]["TcpSocket"]["Port"] == 8080, pretty(c)
    failed = [e for e in events(client, gid) if "Readiness probe failed" in e]
    assert any("404" in e for e in failed), failed


def test_failing_liveness_restarts_with_reason(runtime_class, berth, client, groups, images):
    liveness = M.CreateContainerGroupRequestContainerLivenessProbe(
        tcp_socket=M.CreateContainerGroupRequestContainerLivenessProbeTcpSocket(port=9999),
        period_seconds=1,
        failure_threshold=2,
    )
    gid = groups.create(
        "e2e-liveness",
        [container("c", images.image, SLEEP, liveness_probe=liveness)],
        restart_policy="Always",
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    wait_for(
        "a restart by the liveness probe",
        lambda: container_of(support.describe(client, gid), "c")["RestartCount"] >= 1,
        40,
        diag=berth.diag,
    )
    texts = events(client, gid)
    assert any(t.startswith("Unhealthy: Liveness probe failed") and "9999" in t
               for t in texts), texts
    assert any(t.startswith("Killing: Container c failed liveness probe") for t in texts), texts
    prev = container_of(support.describe(client, gid), "c")["PreviousState"]
    assert prev.get("State") == "Terminated", pretty(prev)


def with_extra_params(client, extra: dict[str, str]):
    """The SDK's client with parameters it has no field for (berth's StartupProbe)."""
    call = client.call_api

    def call_api(params, req, runtime):
        if params.action == "CreateContainerGroup":
            req.query = {**(req.query or {}), **extra}
        return call(params, req, runtime)

    client.call_api = call_api
    return client


def test_startup_probe_holds_the_others_back(berth, groups, images):
    client = with_extra_params(berth.client(), {
        "Container.1.StartupProbe.Exec.Command.1": "cat",
        "Container.1.StartupProbe.Exec.Command.2": "/tmp/started",
        "Container.1.StartupProbe.PeriodSeconds": "1",
        "Container.1.StartupProbe.FailureThreshold": "120",
    })
    liveness = M.CreateContainerGroupRequestContainerLivenessProbe(
        exec=M.CreateContainerGroupRequestContainerLivenessProbeExec(command=["false"]),
        period_seconds=1,
        failure_threshold=1,
    )
    gid = groups.create(
        "e2e-startup",
        [container("c", images.image, SLEEP, liveness_probe=liveness)],
        restart_policy="Always",
        client=client,
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    time.sleep(5)
    c = container_of(support.describe(client, gid), "c")
    assert c["RestartCount"] == 0 and not c["Ready"], "liveness ran before startup:\n" + pretty(c)
    exec_sh(client, gid, "touch /tmp/started")
    wait_for(
        "the liveness probe to run once the startup probe passed",
        lambda: container_of(support.describe(client, gid), "c")["RestartCount"] >= 1,
        30,
        diag=berth.diag,
    )
    assert any(t.startswith("Killing:") for t in events(client, gid))


def test_pre_stop_runs_before_the_stop(runtime_class, berth, client, groups, images):
    # The container records SIGTERM in the volume; the hook writes there first.
    main = ["sh", "-c", "trap 'echo term >> /data/log; exit 0' TERM; "
            "while true; do sleep 1; done"]
    c = container(
        "c", images.image, main,
        volume_mount=[M.CreateContainerGroupRequestContainerVolumeMount(
            name="v", mount_path="/data")],
        lifecycle_pre_stop_handler_exec=["sh", "-c", "echo prestop >> /data/log"],
        lifecycle_post_start_handler_exec=["sh", "-c", "echo poststart >> /data/log"],
    )
    volume = M.CreateContainerGroupRequestVolume(
        name="v", type="EmptyDirVolume",
        empty_dir_volume=M.CreateContainerGroupRequestVolumeEmptyDirVolume())
    gid = groups.create("e2e-prestop", [c], volume=[volume], restart_policy="Always")
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    wait_ready(client, gid, True, diag=berth.diag)
    assert exec_sh(client, gid, "cat /data/log").split() == ["poststart"]
    client.restart_container_group(
        M.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid))

    def after_restart():
        log = exec_sh(client, gid, "cat /data/log").split()
        return log if len(log) >= 4 else None

    log = wait_for("the restarted container's PostStart hook", after_restart, 60,
                   diag=berth.diag)
    assert log == ["poststart", "prestop", "term", "poststart"], log


def test_failing_post_start_kills_the_container(berth, client, groups, images):
    c = container("c", images.image, SLEEP, lifecycle_post_start_handler_exec=["false"])
    gid = groups.create("e2e-poststart", [c], restart_policy="Always")
    wait_for(
        "a restart after the failed PostStart hook",
        lambda: container_of(support.describe(client, gid), "c")["RestartCount"] >= 1,
        60,
        diag=berth.diag,
    )
    texts = events(client, gid)
    assert any(t.startswith("FailedPostStartHook:") for t in texts), texts


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"lifecycle_pre_stop_handler_tcp_socket_port": 22,
          "lifecycle_pre_stop_handler_tcp_socket_host": "10.0.0.1"},
         "LifecyclePreStopHandlerTcpSocketHost"),
        ({"lifecycle_post_start_handler_http_get_port": 80,
          "lifecycle_post_start_handler_http_get_host": "example.com"},
         "LifecyclePostStartHandlerHttpGetHost"),
        ({"liveness_probe": M.CreateContainerGroupRequestContainerLivenessProbe(
            tcp_socket=M.CreateContainerGroupRequestContainerLivenessProbeTcpSocket(port=80),
            success_threshold=2)}, "LivenessProbe.SuccessThreshold"),
        ({"readiness_probe": M.CreateContainerGroupRequestContainerReadinessProbe(
            tcp_socket=M.CreateContainerGroupRequestContainerReadinessProbeTcpSocket(
                port=70000))}, "ReadinessProbe.TcpSocket.Port"),
        ({"readiness_probe": M.CreateContainerGroupRequestContainerReadinessProbe(
            http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
                port=80, path="/a b"))}, "ReadinessProbe.HttpGet.Path"),
        ({"readiness_probe": M.CreateContainerGroupRequestContainerReadinessProbe(
            http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
                port=80, scheme="FTP"))}, "ReadinessProbe.HttpGet.Scheme"),
        ({"readiness_probe": M.CreateContainerGroupRequestContainerReadinessProbe(
            tcp_socket=M.CreateContainerGroupRequestContainerReadinessProbeTcpSocket(port=80),
            period_seconds=0)}, "ReadinessProbe.PeriodSeconds"),
    ],
)
def test_bad_probes_and_hooks_are_refused(client, groups, images, kw, name):
    before = len(support.list_groups(client))
    with pytest.raises(ClientException) as info:
        groups.create("e2e-probe-bad", [container("c", images.image, ["true"], **kw)])
    assert info.value.status_code == 400, info.value.message
    assert name in info.value.message, info.value.message
    assert len(support.list_groups(client)) == before


def test_pre_stop_runs_on_delete(berth, client, groups, images):
    # The container ignores SIGTERM, so the delete waits out the grace period; the hook's
    # line reaches the container's log before SIGKILL.
    ignore = ["sh", "-c", "while true; do sleep 1; done"]
    c = container("c", images.image, ignore, lifecycle_pre_stop_handler_exec=[
        "sh", "-c", "echo prestop-ran > /proc/1/fd/1"])
    gid = groups.create("e2e-prestop-delete", [c], termination_grace_period_seconds=10)
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    support.delete(client, gid)
    wait_for(
        "the PreStop hook's line in the log of the terminating container",
        lambda: "prestop-ran" in support.logs(client, gid, "c"),
        8,
        interval=0.2,
        diag=berth.diag,
    )
    assert support.describe(client, gid)["Status"] == "Terminating"


def requests_in(log: str, port: int) -> list[dict[str, str]]:
    """The requests berth-http-echo logged on `port`: the request line as "Request", then
    each header by name."""
    found: list[dict[str, str]] = []
    for line in log.splitlines():
        if not line.startswith(f"{port}> "):
            continue
        text = line[len(f"{port}> "):]
        if text.startswith("GET "):
            found.append({"Request": text})
        elif found and ": " in text:
            name, value = text.split(": ", 1)
            found[-1][name] = value
    return found


def assert_hooks_failed_only_before_the_server(texts: list[str]) -> None:
    """The containers of a group start in no fixed order, so a PostStart hook may find its
    sibling's server not yet listening (the container is then killed, its PreStop hook
    failing the same way, and started again); any other failure is one."""
    failed = [t for t in texts if t.startswith(("FailedPostStartHook", "FailedPreStopHook"))]
    assert all("refused" in t.lower() for t in failed), failed


def hook_header(which: str, name: str, value: str):
    cls = f"CreateContainerGroupRequestContainerLifecycle{which}HandlerHttpGetHttpHeader"
    return getattr(M, cls)(name=name, value=value)


def test_http_hooks_and_probe_reach_the_group_with_their_headers(berth, client, groups,
                                                                 echo_image):
    # The sibling logs every request it gets; `c` is killed by its liveness probe after 2 s,
    # so its PreStop hook runs.
    web = container("web", echo_image, serving(f"{ECHO} 8080"))
    liveness = M.CreateContainerGroupRequestContainerLivenessProbe(
        exec=M.CreateContainerGroupRequestContainerLivenessProbeExec(command=["false"]),
        initial_delay_seconds=2,
        period_seconds=1,
        failure_threshold=1,
    )
    readiness = M.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
            path="/ready", port=8080, scheme="HTTP"),
        period_seconds=1,
    )
    c = container(
        "c", echo_image, SLEEP, liveness_probe=liveness, readiness_probe=readiness,
        lifecycle_post_start_handler_http_get_path="/poststart",
        lifecycle_post_start_handler_http_get_port=8080,
        lifecycle_post_start_handler_http_get_http_header=[
            hook_header("PostStart", "X-Berth-Hook", "poststart"),
            hook_header("PostStart", "X-Token", "a b=c;d"),
        ],
        lifecycle_pre_stop_handler_http_get_path="/prestop",
        lifecycle_pre_stop_handler_http_get_port=8080,
        lifecycle_pre_stop_handler_http_get_http_header=[
            hook_header("PreStop", "X-Berth-Hook", "prestop")],
    )
    # The readiness probe's headers are berth's extension (ECI's probes have none).
    probe_headers = with_extra_params(berth.client(), {
        "Container.2.ReadinessProbe.HttpGet.HttpHeader.1.Name": "X-Berth-Probe",
        "Container.2.ReadinessProbe.HttpGet.HttpHeader.1.Value": "ready",
    })
    gid = groups.create("e2e-hooks-http", [web, c], restart_policy="Always",
                        client=probe_headers)

    def paths() -> list[str]:
        return [r["Request"].split()[1]
                for r in requests_in(support.logs(client, gid, "web"), 8080)]

    wait_for(
        "PostStart, readiness and PreStop requests in the web container's log",
        lambda: {"/poststart", "/ready", "/prestop"} <= set(paths()),
        40,
        diag=lambda: "\n".join(events(client, gid)) + "\nweb log:\n"
        + support.logs(client, gid, "web") + berth.diag(),
    )
    got = requests_in(support.logs(client, gid, "web"), 8080)
    by_path = {}
    for r in got:
        by_path.setdefault(r["Request"].split()[1], []).append(r)
    for r in by_path["/poststart"]:
        assert r["Request"] == "GET /poststart HTTP/1.1", r
        assert r["X-Berth-Hook"] == "poststart" and r["X-Token"] == "a b=c;d", r
    for r in by_path["/prestop"]:
        assert r["X-Berth-Hook"] == "prestop" and "X-Token" not in r, r
    for r in by_path["/ready"]:
        assert "X-Berth-Hook" not in r and r.get("X-Berth-Probe") == "ready", r
        assert r.get("User-Agent", "").startswith("berth-probe/"), r
    assert container_of(support.describe(client, gid), "web")["RestartCount"] == 0
    texts = events(client, gid)
    assert_hooks_failed_only_before_the_server(texts)


def test_https_probes_and_hook_speak_tls(berth, client, groups, echo_image):
    # c serves HTTPS on 8443 with the certificate baked into the image and is probed over
    # HTTPS; `plain` probes the same port over plain HTTP, which the TLS server cannot
    # answer, and is killed by its liveness probe after 2 s, its PreStop hook going there
    # over HTTPS with a header.
    https = M.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
            path="/healthz", port=8443, scheme="HTTPS"),
        period_seconds=1,
        failure_threshold=1,
    )
    live = M.CreateContainerGroupRequestContainerLivenessProbe(
        http_get=M.CreateContainerGroupRequestContainerLivenessProbeHttpGet(
            path="/live", port=8443, scheme="HTTPS"),
        period_seconds=1,
        failure_threshold=3,
    )
    http = M.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(
            path="/plain", port=8443, scheme="HTTP"),
        period_seconds=1,
        failure_threshold=1,
    )
    killer = M.CreateContainerGroupRequestContainerLivenessProbe(
        exec=M.CreateContainerGroupRequestContainerLivenessProbeExec(command=["false"]),
        initial_delay_seconds=2,
        period_seconds=1,
        failure_threshold=1,
    )
    gid = groups.create(
        "e2e-probe-https",
        [
            container("c", echo_image, serving(f"{ECHO} 8443 {CERT} {KEY}"),
                      readiness_probe=https, liveness_probe=live),
            container(
                "plain", echo_image, SLEEP, readiness_probe=http, liveness_probe=killer,
                lifecycle_pre_stop_handler_http_get_path="/prestop-tls",
                lifecycle_pre_stop_handler_http_get_port=8443,
                lifecycle_pre_stop_handler_http_get_scheme="HTTPS",
                lifecycle_pre_stop_handler_http_get_http_header=[
                    hook_header("PreStop", "X-Berth-Hook", "over-tls")],
            ),
        ],
        restart_policy="Always",
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    wait_ready(client, gid, True, diag=berth.diag)

    def probes_and_hook():
        got = requests_in(support.logs(client, gid, "c"), 8443)
        paths = {r["Request"].split()[1] for r in got}
        return got if {"/healthz", "/live", "/prestop-tls"} <= paths else None

    got = wait_for("the probes and the hook over TLS", probes_and_hook, 40, diag=berth.diag)
    for r in got:
        assert r["Request"].endswith(" HTTP/1.1"), got
        if r["Request"].startswith("GET /prestop-tls "):
            assert r["X-Berth-Hook"] == "over-tls", r
        else:
            assert r["User-Agent"].startswith("berth-probe/") and "X-Berth-Hook" not in r, r
    assert not any("/plain" in r["Request"] for r in got), got
    assert "8443> TLS handshake failed" in support.logs(client, gid, "c")
    group = support.describe(client, gid)
    c = container_of(group, "c")
    assert c["ReadinessProbe"]["HttpGet"] == {
        "Path": "/healthz", "Port": 8443, "Scheme": "HTTPS"}, pretty(c)
    assert c["RestartCount"] == 0, "a passing HTTPS liveness probe restarted it:\n" + pretty(c)
    texts = events(client, gid)
    assert not any(t.startswith("FailedPreStopHook") for t in texts), texts
    plain = [t for t in texts if "Readiness probe failed" in t and "/plain" in t]
    assert plain and all("http://" in t for t in plain), texts

    # The server goes: not Ready at the next probe, restarted after three failed ones.
    exec_sh(client, gid, f"kill $(pidof {ECHO})")
    wait_ready(client, gid, False, diag=berth.diag)
    assert group_ready_condition(client, gid) == "False"
    wait_for(
        "a restart by the HTTPS liveness probe",
        lambda: container_of(support.describe(client, gid), "c")["RestartCount"] >= 1,
        30,
        diag=berth.diag,
    )
    texts = events(client, gid)
    for kind, path in (("Readiness", "/healthz"), ("Liveness", "/live")):
        failed = [t for t in texts if f"{kind} probe failed" in t]
        assert any("https://" in t and f":8443{path}" in t for t in failed), texts
    assert any(t.startswith("Killing: Container c failed liveness probe") for t in texts), texts


def test_bad_probe_headers_are_refused_by_name(berth, groups, images):
    # A probe's HttpHeader is berth's extension, checked as a hook's is.
    name = "Container.1.ReadinessProbe.HttpGet.HttpHeader.1.Name"
    client = with_extra_params(berth.client(), {name: "X-A:B"})
    probe = M.CreateContainerGroupRequestContainerReadinessProbe(
        http_get=M.CreateContainerGroupRequestContainerReadinessProbeHttpGet(port=80))
    before = len(support.list_groups(client))
    with pytest.raises(ClientException) as info:
        groups.create("e2e-probe-header", [container("c", images.image, ["true"],
                                                     readiness_probe=probe)], client=client)
    assert info.value.status_code == 400, info.value.message
    assert name in info.value.message, info.value.message
    assert len(support.list_groups(client)) == before
