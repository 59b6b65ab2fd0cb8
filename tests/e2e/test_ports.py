"""Published ports (AutoCreateEip=true): the containers' declared ports mapped on the node's
public address (127.0.0.1 for the suite's berth) through the CNI portmap plugin, reported as
InternetIp and in the PublishedPorts extension; conflicts refused; nothing left in the nat
table after delete. And DnsPolicy."""

from __future__ import annotations

import json
import socket

import pytest
from alibabacloud_eci20180808 import models as M
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_util import models as util_models

import support
from support import REGION, container, exec_sh, pretty, wait_status

SLEEP = ["sh", "-c", "while true; do sleep 1; done"]
# Ports of the default --host-port-range (30000-32767) the test uses.
LOW, HIGH = 31000, 32700


def free_port_in_range() -> int:
    for port in range(LOW, HIGH):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {LOW}-{HIGH} on 127.0.0.1")


def call(client, action: str, query: dict) -> dict:
    """One ECI action with raw parameters, answered as the raw JSON body (berth's extensions
    included, which the SDK's models drop)."""
    params = open_api_models.Params(
        action=action,
        version="2018-08-08",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={"RegionId": REGION, **query})
    return client.call_api(params, req, util_models.RuntimeOptions())["body"]


def raw_group(client, gid: str) -> dict:
    body = call(client, "DescribeContainerGroups", {"ContainerGroupIds": json.dumps([gid])})
    [group] = [g for g in body["ContainerGroups"] if g["ContainerGroupId"] == gid]
    return group


def get(port: int, path: str = "/hostname") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while data := s.recv(4096):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def answers(port: int, text: str) -> bool:
    try:
        return text in get(port)
    except OSError:
        return False


def web(images, port: int):
    return container(
        "web",
        images.image,
        ["httpd", "-f", "-p", str(port), "-h", "/etc"],
        port=[M.CreateContainerGroupRequestContainerPort(port=port, protocol="TCP")],
    )


def test_published_port_answers_and_goes_with_the_group(berth, client, groups, images):
    port = free_port_in_range()
    a = groups.create("e2e-ports-a", [web(images, port)], auto_create_eip=True)
    wait_status(client, a, ["Running"], 60, never=["Failed"], diag=berth.diag)

    group = support.describe(client, a)
    assert group["InternetIp"] == "127.0.0.1", pretty(group)
    raw = raw_group(client, a)
    # The container's own port number: it is in the range and free.
    assert raw["PublishedPorts"] == [
        {"HostPort": port, "ContainerPort": port, "Protocol": "TCP"}
    ], pretty(raw)
    support.wait_for(
        f"the group's httpd on 127.0.0.1:{port}",
        lambda: answers(port, "e2e-ports-a"),
        30,
        diag=berth.diag,
    )
    assert support.portmap_rules([a]), "no portmap rule names the group"

    # Asking for the host port that group a holds is refused; nothing is created.
    before = {g["ContainerGroupId"] for g in support.list_groups(client)}
    with pytest.raises(ClientException) as refused:
        call(
            client,
            "CreateContainerGroup",
            {
                "ContainerGroupName": "e2e-ports-conflict",
                "AutoCreateEip": "true",
                "PlainHttpRegistry": images.registry,
                "Container.1.Name": "web",
                "Container.1.Image": images.image,
                "Container.1.Command.1": "sleep",
                "Container.1.Command.2": "60",
                "Container.1.Port.1.Port": "80",
                "Container.1.Port.1.HostPort": str(port),
            },
        )
    assert refused.value.code == "InvalidParameter.HostPortInUse", refused.value.message
    assert str(port) in refused.value.message, refused.value.message
    assert {g["ContainerGroupId"] for g in support.list_groups(client)} == before

    # Without HostPort, the same container port gets another host port of the range.
    b = groups.create("e2e-ports-b", [web(images, port)], auto_create_eip=True)
    wait_status(client, b, ["Running"], 60, never=["Failed"], diag=berth.diag)
    [published] = raw_group(client, b)["PublishedPorts"]
    other = published["HostPort"]
    assert other != port and 30000 <= other <= 32767, published
    assert published["ContainerPort"] == port, published
    support.wait_for(
        f"group b's httpd on 127.0.0.1:{other}",
        lambda: answers(other, "e2e-ports-b"),
        30,
        diag=berth.diag,
    )

    support.delete(client, a)
    support.delete(client, b)
    support.wait_for(
        "the groups to be deleted",
        lambda: support.describe(client, a) is None and support.describe(client, b) is None,
        60,
        diag=berth.diag,
    )
    assert not support.portmap_rules([a, b])
    assert not answers(port, "e2e-ports-a")
    support.assert_no_leftovers(berth.state_dir, [a, b])

    # Its port is free again.
    c = groups.create("e2e-ports-c", [web(images, port)], auto_create_eip=True)
    assert raw_group(client, c)["PublishedPorts"][0]["HostPort"] == port


def test_published_ports_outlive_a_restart_of_berth(berth, client, groups, images):
    """A graceful stop and a crash of berth leave the group's mapping working; the berth that
    follows re-adopts it: the port stays the group's, and its delete removes the rules."""
    port = free_port_in_range()
    gid = groups.create("e2e-ports-restart", [web(images, port)], auto_create_eip=True)
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    support.wait_for(
        "the published httpd", lambda: answers(port, "e2e-ports-restart"), 30, diag=berth.diag
    )
    rules = sorted(support.portmap_rules([gid]))
    assert rules

    for how in ("stop", "kill"):
        if how == "stop":
            assert berth.stop(), "berth serve did not stop"
        else:
            berth.kill()
        assert answers(port, "e2e-ports-restart"), f"the port went with berth ({how})"
        berth.start()
        wait_status(client, gid, ["Running"], 30, never=["Failed"], diag=berth.diag)
        assert sorted(support.portmap_rules([gid])) == rules, f"rules changed ({how})"
        assert raw_group(client, gid)["PublishedPorts"][0]["HostPort"] == port
        with pytest.raises(ClientException) as refused:
            call(
                client,
                "CreateContainerGroup",
                {
                    "ContainerGroupName": "e2e-ports-again",
                    "AutoCreateEip": "true",
                    "PlainHttpRegistry": images.registry,
                    "Container.1.Name": "web",
                    "Container.1.Image": images.image,
                    "Container.1.Port.1.Port": str(port),
                    "Container.1.Port.1.HostPort": str(port),
                },
            )
        assert refused.value.code == "InvalidParameter.HostPortInUse", refused.value.message
        assert answers(port, "e2e-ports-restart"), f"the port stopped answering ({how})"

    support.delete(client, gid)
    support.wait_for(
        "the group to be deleted", lambda: support.describe(client, gid) is None, 60
    )
    assert not support.portmap_rules([gid])


def test_berth_run_publishes_in_dockers_spelling(berth, client, images, tracker):
    port = free_port_in_range()
    res = berth.cli(
        "run", "--name", "e2e-ports-cli", "--restart", "Never", "-p", f"{port}:8080",
        images.image, "--", "httpd", "-f", "-p", "8080", "-h", "/etc",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    gid = res.stdout.strip()
    tracker.add(gid)
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    assert raw_group(client, gid)["PublishedPorts"] == [
        {"HostPort": port, "ContainerPort": 8080, "Protocol": "TCP"}
    ]
    support.wait_for(
        "the published httpd", lambda: answers(port, "e2e-ports-cli"), 30, diag=berth.diag
    )
    support.delete(client, gid)
    support.wait_for(
        "the group to be deleted", lambda: support.describe(client, gid) is None, 60
    )
    assert not support.portmap_rules([gid])


@pytest.mark.parametrize(
    "query, name",
    [
        ({"EipInstanceId": "eip-123"}, "EipInstanceId"),
        ({"AutoCreateEip": "true", "EipBandwidth": "5"}, "EipBandwidth"),
        ({"Container.1.Port.1.Port": "80", "Container.1.Port.1.HostPort": "31999"}, "HostPort"),
        (
            {
                "AutoCreateEip": "true",
                "Container.1.Port.1.Port": "80",
                "Container.1.Port.1.HostPort": "22",
            },
            "HostPort",
        ),
        ({"DnsPolicy": "ClusterFirst"}, "DnsPolicy"),
        ({"DnsPolicy": "None"}, "DnsPolicy"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(client, images, query, name):
    with pytest.raises(ClientException) as refused:
        call(
            client,
            "CreateContainerGroup",
            {
                "ContainerGroupName": "e2e-ports-refused",
                "PlainHttpRegistry": images.registry,
                "Container.1.Name": "c",
                "Container.1.Image": images.image,
                **query,
            },
        )
    assert refused.value.code.startswith("InvalidParameter"), refused.value.code
    assert name in refused.value.message, refused.value.message


def test_dns_policy_none_leaves_the_host_resolvers_out(berth, client, groups, images):
    gid = groups.create(
        "e2e-dns-none",
        [container("c", images.image, SLEEP)],
        dns_policy="None",
        dns_config=M.CreateContainerGroupRequestDnsConfig(name_server=["10.9.9.9"]),
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    resolv = exec_sh(client, gid, "cat /etc/resolv.conf")
    assert resolv == "nameserver 10.9.9.9\n", resolv
    default = groups.create(
        "e2e-dns-default-policy",
        [container("c", images.image, SLEEP)],
        dns_policy="Default",
        dns_config=M.CreateContainerGroupRequestDnsConfig(name_server=["10.9.9.9"]),
    )
    wait_status(client, default, ["Running"], 60, never=["Failed"], diag=berth.diag)
    resolv = exec_sh(client, default, "cat /etc/resolv.conf").splitlines()
    assert resolv[0] == "nameserver 10.9.9.9" and len(resolv) > 1, resolv
