"""A three-layer image (whiteouts, an opaque directory, hard links) checked file by file from
inside a running container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import support
from support import container

LAYERED = Path(__file__).resolve().parents[1] / "images" / "layered.py"

CHECK = " && ".join(
    [
        "test ! -e /data/old.txt",
        "test \"$(cat /data/kept.txt)\" = kept",
        "test ! -e /opq/old1",
        "test ! -e /opq/old2",
        "test \"$(cat /opq/new)\" = new",
        "test \"$(ls /opq)\" = new",
        "test \"$(stat -c %h /hl/a)\" = 2",
        "test \"$(stat -c %i /hl/a)\" = \"$(stat -c %i /hl/b)\"",
        "test \"$(cat /hl/s)\" = linked",
        "test -x /bin/sh",
        "echo LAYERS-OK",
    ]
)


def test_layers_are_stacked_as_oci_says(client, groups, images):
    subprocess.run(["python3", str(LAYERED), images.registry], check=True, capture_output=True)
    gid = groups.create(
        "e2e-layers",
        [container("check", f"{images.registry}/layered:latest", ["sh", "-c", CHECK + " || (ls -laR /data /opq /hl; exit 1)"])],
        restart_policy="Never",
    )
    group = support.wait_status(client, gid, ["Succeeded", "Failed"], 60)
    out = support.logs(client, gid, "check")
    assert group["Status"] == "Succeeded", f"{support.pretty(group)}\n{out}"
    assert "LAYERS-OK" in out, out
