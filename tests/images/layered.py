#!/usr/bin/env python3
"""Builds a three-layer image on top of the busybox test image and pushes it.

    tests/images/layered.py REGISTRY [NAME]     (default NAME: layered:latest)

With --unique a fourth layer of random bytes makes an image whose top layer no store holds
yet. Layer 2 adds files; layer 3 removes some of them with whiteouts, replaces a directory with
an opaque one, and adds a hard-linked pair and a symlink, so a container can check that the
layers were stacked as OCI says. Needs umoci and skopeo; no docker.
"""
import io
import os
import subprocess
import sys
import tarfile
import tempfile


def add(tar, name, data=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.type, info.linkname = mode, 0, kind, link
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer(path, entries):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            add(tar, *e[:1], **e[1])


def main():
    args = [a for a in sys.argv[1:] if a != "--unique"]
    unique = "--unique" in sys.argv[1:]
    registry = args[0]
    name = args[1] if len(args) > 1 else "layered:latest"
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as work:
        keep = os.path.join(work, "base")
        env = dict(os.environ, BERTH_IMAGE_KEEP=keep)
        subprocess.run([os.path.join(here, "build.sh"), registry, "base-for-layers:latest"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        layout = os.path.join(keep, "oci")
        d = tarfile.DIRTYPE
        l2 = os.path.join(work, "l2.tar")
        layer(l2, [
            ("data", {"kind": d}),
            ("data/old.txt", {"data": b"old\n"}),
            ("data/kept.txt", {"data": b"kept\n"}),
            ("opq", {"kind": d}),
            ("opq/old1", {"data": b"1\n"}),
            ("opq/old2", {"data": b"2\n"}),
        ])
        l3 = os.path.join(work, "l3.tar")
        layer(l3, [
            ("data", {"kind": d}),
            ("data/.wh.old.txt", {}),
            ("opq", {"kind": d}),
            ("opq/.wh..wh..opq", {}),
            ("opq/new", {"data": b"new\n"}),
            ("hl", {"kind": d}),
            ("hl/a", {"data": b"linked\n"}),
            ("hl/b", {"kind": tarfile.LNKTYPE, "link": "hl/a"}),
            ("hl/s", {"kind": tarfile.SYMTYPE, "link": "a"}),
        ])
        if unique:
            # A layer no store has seen: its content is random.
            l4 = os.path.join(work, "l4.tar")
            layer(l4, [("unique", {"data": os.urandom(4096)})])
            l3 = [l3, l4]
        for tar in [l2] + (l3 if isinstance(l3, list) else [l3]):
            subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:latest", tar],
                           check=True)
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{layout}:latest", f"docker://{registry}/{name}"], check=True)
    print(f"pushed {registry}/{name}")


if __name__ == "__main__":
    main()
