"""Environment variables from fields (`EnvironmentVar.N.FieldRef.FieldPath`): the group's
address, name and id seen inside the container; a path berth does not resolve, or one given
with a Value, is refused by name with nothing created."""

from __future__ import annotations

import pytest
from alibabacloud_eci20180808 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import container, exec_sh, wait_status


def field(key: str, path: str, value: str | None = None):
    return M.CreateContainerGroupRequestContainerEnvironmentVar(
        key=key,
        value=value,
        field_ref=M.CreateContainerGroupRequestContainerEnvironmentVarFieldRef(field_path=path),
    )


def test_fields_are_resolved_inside_the_container(berth, client, groups, images):
    env = [
        field("IP", "status.podIP"),
        field("IPS", "status.podIPs"),
        field("NAME", "metadata.name"),
        field("UID", "metadata.uid"),
    ]
    gid = groups.create(
        "e2e-env-fields",
        [container("c", images.image, ["sleep", "3600"], environment_var=env)],
    )
    group = wait_status(client, gid, ["Running"], 60, never=["Failed"], diag=berth.diag)
    out = exec_sh(client, gid, 'echo "$IP $IPS $NAME $UID"').strip()
    ip = group["IntranetIp"]
    assert ip and out == f"{ip} {ip} e2e-env-fields {gid}", out


@pytest.mark.parametrize(
    "path,value,why",
    [
        ("spec.nodeName", None, "names no field"),
        ("metadata.labels['app']", None, "names no field"),
        ("status.podIP", "10.0.0.1", "one source"),
    ],
)
def test_unresolvable_fields_are_refused_by_name(client, groups, images, path, value, why):
    before = {g["ContainerGroupId"] for g in support.list_groups(client)}
    with pytest.raises(ClientException) as refused:
        groups.create(
            "e2e-env-bad",
            [container("c", images.image, ["true"], environment_var=[field("X", path, value)])],
        )
    assert refused.value.code == "InvalidParameter", refused.value.message
    assert "Container.1.EnvironmentVar.1.FieldRef.FieldPath" in refused.value.message
    assert why in refused.value.message, refused.value.message
    assert {g["ContainerGroupId"] for g in support.list_groups(client)} == before
