"""DnsConfig and HostAliase: written into every container's /etc/resolv.conf and /etc/hosts,
described back, and nothing that could add a line of its own accepted."""

from __future__ import annotations

import pytest
from alibabacloud_eci20180808 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import container, exec_sh, pretty, wait_status

SLEEP = ["sh", "-c", "while true; do sleep 1; done"]


def test_resolver_and_hosts_follow_the_group(berth, client, groups, images):
    gid = groups.create(
        "e2e-dns",
        [container("c", images.image, SLEEP), container("d", images.image, SLEEP)],
        dns_config=M.CreateContainerGroupRequestDnsConfig(
            name_server=["10.9.9.9"],
            search=["ns1.svc.local", "svc.local"],
            option=[
                M.CreateContainerGroupRequestDnsConfigOption(name="ndots", value="3"),
                M.CreateContainerGroupRequestDnsConfigOption(name="edns0"),
            ],
        ),
        host_aliase=[
            M.CreateContainerGroupRequestHostAliase(ip="10.0.0.9", hostname=["db", "db.local"]),
            M.CreateContainerGroupRequestHostAliase(ip="fd00::9", hostname=["cache"]),
        ],
    )
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    for name in ("c", "d"):
        resolv = exec_sh(client, gid, "cat /etc/resolv.conf", name=name).splitlines()
        assert resolv[0] == "nameserver 10.9.9.9", resolv
        search = next(line for line in resolv if line.startswith("search "))
        assert search.split()[1:3] == ["ns1.svc.local", "svc.local"], resolv
        options = next(line for line in resolv if line.startswith("options ")).split()[1:]
        assert "ndots:3" in options and "edns0" in options, resolv
        assert sum(line.startswith("nameserver") for line in resolv) <= 3, resolv
        hosts = exec_sh(client, gid, "cat /etc/hosts", name=name)
        assert "10.0.0.9\tdb db.local\n" in hosts and "fd00::9\tcache\n" in hosts, hosts
    group = support.describe(client, gid)
    assert group["DnsConfig"]["NameServers"] == ["10.9.9.9"], pretty(group)
    assert group["DnsConfig"]["Searches"] == ["ns1.svc.local", "svc.local"], pretty(group)
    assert {"Name": "ndots", "Value": "3"} in group["DnsConfig"]["Options"], pretty(group)
    assert {"Ip": "10.0.0.9", "Hostnames": ["db", "db.local"]} in group["HostAliases"], pretty(group)


def test_without_settings_the_hosts_resolvers_serve(berth, client, groups, images):
    gid = groups.create("e2e-dns-default", [container("c", images.image, SLEEP)])
    wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    resolv = exec_sh(client, gid, "cat /etc/resolv.conf")
    for line in resolv.splitlines():
        if line.startswith("nameserver"):
            addr = line.split()[1]
            assert not addr.startswith("127.") and addr != "::1", resolv


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"dns_config": M.CreateContainerGroupRequestDnsConfig(
            name_server=["10.1.1.1\nnameserver 8.8.8.8"])}, "DnsConfig.NameServer.1"),
        ({"dns_config": M.CreateContainerGroupRequestDnsConfig(search=["a b"])},
         "DnsConfig.Search.1"),
        ({"dns_config": M.CreateContainerGroupRequestDnsConfig(
            option=[M.CreateContainerGroupRequestDnsConfigOption(name="ndots", value="1\nx")])},
         "DnsConfig.Option.1.Value"),
        ({"host_aliase": [M.CreateContainerGroupRequestHostAliase(
            ip="not-an-ip", hostname=["x"])]}, "HostAliase.1.Ip"),
        ({"host_aliase": [M.CreateContainerGroupRequestHostAliase(
            ip="10.0.0.1", hostname=["x\n10.0.0.2 y"])]}, "HostAliase.1.Hostname.1"),
    ],
)
def test_values_that_would_add_lines_are_refused(client, groups, images, kw, name):
    with pytest.raises(ClientException) as info:
        groups.create("e2e-dns-bad", [container("c", images.image, ["true"])], **kw)
    assert info.value.status_code == 400, info.value.message
    assert name in info.value.message, info.value.message
    assert not support.list_groups(client, container_group_name="e2e-dns-bad")
