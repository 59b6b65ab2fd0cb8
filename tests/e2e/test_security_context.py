"""Security context, checked from inside the containers: RunAsUser and RunAsGroup (`id`),
ReadOnlyRootFilesystem, RunAsNonRoot refusing an image that runs as root (reason in
DescribeContainerGroups), Capability.Drop (berth's extension: a dropped CHOWN makes `chown`
fail and leaves CapEff), the group's namespaced sysctls (seen in /proc/sys inside, the
host's unchanged) and a non-namespaced sysctl refused by name with nothing recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_util import models as util_models
from alibabacloud_openapi_util.client import Client as OpenApiUtilClient

import support
from support import REGION, container, exec_sh, wait_for, wait_status

M = models
SLEEP = ["sleep", "3600"]
CAP_CHOWN = 1 << 0


def sc(**kw):
    return M.CreateContainerGroupRequestContainerSecurityContext(**kw)


def cap_eff(client, gid: str, name: str = "c") -> int:
    status = exec_sh(client, gid, "grep CapEff /proc/self/status", name)
    return int(status.split()[-1], 16)


def test_run_as_user_and_group(client, groups, images):
    gid = groups.create(
        "sc-user",
        [
            container(
                "c",
                images.image,
                SLEEP,
                security_context=sc(run_as_user=1234),
                security_context_run_as_group=2345,
                security_context_run_as_non_root=True,
            )
        ],
    )
    wait_status(client, gid, ["Running"], never=["Failed"])
    assert exec_sh(client, gid, "id -u; id -g").split() == ["1234", "2345"]


def test_read_only_root_filesystem(client, groups, images):
    gid = groups.create(
        "sc-rofs",
        [container("c", images.image, SLEEP, security_context=sc(read_only_root_filesystem=True))],
    )
    wait_status(client, gid, ["Running"], never=["Failed"])
    out = exec_sh(client, gid, "touch /x 2>&1 && echo written || echo refused")
    assert "refused" in out and "Read-only file system" in out, out
    group = support.describe(client, gid)
    assert support.container_of(group, "c")["SecurityContext"]["ReadOnlyRootFilesystem"] is True


def test_run_as_non_root_refuses_a_root_image(client, groups, images):
    # busybox runs as root: the container must not start, and say why.
    gid = groups.create(
        "sc-nonroot",
        [container("c", images.image, SLEEP, security_context_run_as_non_root=True)],
    )

    def refused():
        g = support.describe(client, gid, with_event=True)
        c = support.container_of(g, "c")
        state = c.get("CurrentState") or {}
        return (g, state) if "runAsNonRoot" in (state.get("Message") or "") else None

    group, state = wait_for("the root image to be refused", refused, 60)
    assert state.get("State") != "Running", support.pretty(group)
    assert state.get("Reason"), support.pretty(group)
    assert any("runAsNonRoot" in (e.get("Message") or "") for e in group.get("Events") or [])
    assert group["Status"] != "Running", support.pretty(group)


def create_raw(berth, query: dict) -> dict:
    """CreateContainerGroup with parameters the SDK's models do not have."""
    params = open_api_models.Params(
        action="CreateContainerGroup",
        version="2018-08-08",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    req = open_api_models.OpenApiRequest(query=OpenApiUtilClient.query(query))
    return berth.client().call_api(params, req, util_models.RuntimeOptions())["body"]


def test_dropped_capability_is_missing(berth, client, groups, images):
    base = M.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name="sc-drop",
        restart_policy="Never",
        plain_http_registry=images.registry,
        termination_grace_period_seconds=5,
        container=[
            container("c", images.image, SLEEP),
            container("all", images.image, SLEEP, security_context=sc(
                capability=M.CreateContainerGroupRequestContainerSecurityContextCapability(
                    add=["NET_BIND_SERVICE"]))),
        ],
    ).to_map()
    base["Container"][0]["SecurityContext"] = {"Capability": {"Drop": ["CHOWN"]}}
    base["Container"][1]["SecurityContext"]["Capability"]["Drop"] = ["ALL"]
    gid = create_raw(berth, base)["ContainerGroupId"]
    groups.tracker.add(gid)
    groups.created.append(gid)
    wait_status(client, gid, ["Running"], never=["Failed"])
    assert cap_eff(client, gid) & CAP_CHOWN == 0
    out = exec_sh(client, gid, "touch /tmp/f; chown 1:1 /tmp/f && echo changed || echo refused")
    assert "refused" in out, out
    # ALL leaves only what was added back: NET_BIND_SERVICE (bit 10).
    assert cap_eff(client, gid, "all") == 1 << 10

    bad = dict(base, ContainerGroupName="sc-drop-bad")
    bad["Container"] = [dict(base["Container"][0])]
    bad["Container"][0]["SecurityContext"] = {"Capability": {"Drop": ["FLY"]}}
    with pytest.raises(ClientException) as exc:
        create_raw(berth, bad)
    assert "Capability.Drop" in exc.value.message


def sysctl(name: str, value: str):
    return M.CreateContainerGroupRequestSecurityContextSysctl(name=name, value=value)


def test_namespaced_sysctls_stay_inside(client, groups, images):
    host_range = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    host_shmmni = Path("/proc/sys/kernel/shmmni").read_text()
    gid = groups.create(
        "sc-sysctl",
        [container("c", images.image, SLEEP), container("d", images.image, SLEEP)],
        security_context=M.CreateContainerGroupRequestSecurityContext(
            sysctl=[
                sysctl("net.ipv4.ip_local_port_range", "20000 30000"),
                sysctl("kernel.shmmni", "1234"),
            ]
        ),
    )
    wait_status(client, gid, ["Running"], never=["Failed"])
    for name in ("c", "d"):
        out = exec_sh(
            client,
            gid,
            "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shmmni",
            name,
        )
        assert out.split() == ["20000", "30000", "1234"], out
    assert Path("/proc/sys/net/ipv4/ip_local_port_range").read_text() == host_range
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shmmni
    group = support.describe(client, gid)
    assert {(s["Name"], s["Value"]) for s in group["EciSecurityContext"]["Sysctls"]} == {
        ("net.ipv4.ip_local_port_range", "20000 30000"),
        ("kernel.shmmni", "1234"),
    }


@pytest.mark.parametrize(
    "name,value,param",
    [
        ("kernel.panic", "1", "SecurityContext.Sysctl.1.Name"),
        ("vm.swappiness", "1", "SecurityContext.Sysctl.1.Name"),
        ("net.core.somaxconn", "1\n2", "SecurityContext.Sysctl.1.Value"),
    ],
)
def test_host_sysctls_are_refused(client, groups, images, name, value, param):
    before = {g["ContainerGroupName"] for g in support.list_groups(client)}
    with pytest.raises(ClientException) as exc:
        groups.create(
            "sc-sysctl-bad",
            [container("c", images.image, SLEEP)],
            security_context=M.CreateContainerGroupRequestSecurityContext(
                sysctl=[sysctl(name, value)]
            ),
        )
    assert exc.value.status_code == 400 and param in exc.value.message, exc.value.message
    after = {g["ContainerGroupName"] for g in support.list_groups(client)}
    assert "sc-sysctl-bad" not in after - before
    with pytest.raises(ClientException) as exc:
        groups.create(
            "sc-host-sysctl",
            [container("c", images.image, SLEEP)],
            host_security_context=M.CreateContainerGroupRequestHostSecurityContext(
                sysctl=[M.CreateContainerGroupRequestHostSecurityContextSysctl(
                    name="kernel.sem", value="1 1 1 1")]
            ),
        )
    assert "HostSecurityContext" in exc.value.message
