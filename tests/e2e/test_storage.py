"""Temporary storage: each group writes into a btrfs subvolume of its EphemeralStorage size
(30 GiB by default); filling it fails inside the container with "Disk quota exceeded" while
the host and the other groups keep writing; the storage goes with the group. Parameters
berth cannot honour yet are refused by name at create, and nothing is recorded."""

from __future__ import annotations


import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from support import REGION, container, wait_status


def test_a_group_fills_its_own_storage_and_nothing_else(berth, client, groups, images):
    small = groups.create(
        "store-small", [container("c", images.image, ["sleep", "3600"])], ephemeral_storage=1
    )
    other = groups.create("store-other", [container("c", images.image, ["sleep", "3600"])])
    for gid in (small, other):
        wait_status(client, gid, ["Running"], 60, never=["Failed"])
    assert support.describe(client, small)["EphemeralStorage"] == 1
    assert support.describe(client, other)["EphemeralStorage"] == 30

    sub = berth.state_dir / "node" / "storage" / small
    assert sub.is_dir(), f"no subvolume {sub}"
    out = support.exec_sh(
        client,
        small,
        "dd if=/dev/zero of=/fill bs=1M count=1500 2>&1; echo rc=$?; sync; "
        "df -k / | tail -1",
    )
    assert "Disk quota exceeded" in out, out
    assert "rc=0" not in out, out
    # What was written stays below the size, and the other group still writes.
    written = int(support.exec_sh(client, small, "wc -c < /fill").strip())
    assert 900 << 20 <= written <= 1 << 30, written
    assert "ok" in support.exec_sh(client, other, "dd if=/dev/zero of=/f bs=1M count=64 2>/dev/null && echo ok")
    # DescribeContainerGroupMetric reports the use of the storage against its size.
    def filesystem():
        req = models.DescribeContainerGroupMetricRequest(
            region_id=REGION, container_group_id=small, period="15"
        )
        recs = client.describe_container_group_metric(req).body.to_map()["Records"]
        fs = recs[-1].get("Filesystem") or [] if recs else []
        fs = [f for f in fs if f.get("Capacity") == 1 << 30]
        return fs[0] if fs and fs[0]["Usage"] >= 900 << 20 else None

    fs = support.wait_for("the metric to show the full storage", filesystem, 30)
    assert fs["Available"] <= (1 << 30) - (900 << 20), fs
    # The writable layer is where the limit is: the full group can still delete and write.
    assert "ok" in support.exec_sh(client, small, "rm /fill && echo x > /y && echo ok")

    support.delete(client, small)
    support.wait_for(f"{small} to go", lambda: support.describe(client, small) is None, 60)
    support.assert_no_leftovers(
        berth.state_dir, [small], veths_allowed=[support.group_veth(berth.state_dir, other)]
    )


@pytest.mark.parametrize(
    "extra, name",
    [
        ({"ephemeral_storage": 0}, "EphemeralStorage"),
        ({"ephemeral_storage": 70000}, "EphemeralStorage"),
        (
            {
                "volume": [
                    models.CreateContainerGroupRequestVolume(
                        name="v",
                        type="NFSVolume",
                        nfsvolume=models.CreateContainerGroupRequestVolumeNFSVolume(
                            server="nfs.example", path="/"
                        ),
                    )
                ]
            },
            "Volume.1.NFSVolume",
        ),
        ({"dns_policy": "ClusterFirst"}, "DnsPolicy"),
    ],
)
def test_parameters_berth_cannot_honour_are_refused_by_name(client, groups, images, extra, name):
    before = {g["ContainerGroupId"] for g in support.list_groups(client)}
    with pytest.raises(ClientException) as err:
        groups.create("refused", [container("c", images.image, ["true"])], **extra)
    assert err.value.code.startswith("InvalidParameter"), err.value
    assert name in err.value.message, err.value.message
    assert {g["ContainerGroupId"] for g in support.list_groups(client)} == before
