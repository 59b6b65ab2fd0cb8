"""Hostile images: content made to trick the host, built here on top of the busybox test
image and pushed to the loopback registry.

* `/etc/passwd` a symlink out of the root (to the host's passwd or shadow, through
  `/proc/1/root`), a FIFO, a /dev/zero node, a 2 MiB file; the image's `User` is `daemon`, a
  name the host's passwd has and the image's has not. The container must fail with a clear
  reason without running, and berth must stay responsive (a FIFO must not block it). Had
  berth read a host file, `daemon` would have resolved and the container would have run.
* Layers whose entries try to land outside the root (`..`, a symlink written through, a hard
  link out of the root) are refused; absolute paths and a symlink of a lower layer stay
  inside. No file appears on the host, no host file changes.
* Decompression bombs, small on the wire: a layer unpacking to more than the runc berth's
  `--max-image-size`, and one with more entries than its `--max-image-entries`. The pull fails
  with a clear event and nothing of the layer stays on disk.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import support
from support import ImageVariants, container, entry, events_of, pretty, wait_for

USER = "daemon"  # in Debian's /etc/passwd (uid 1), not in the test image's
RAN = "CONTAINER-RAN"
TOKEN = uuid.uuid4().hex[:8]
# Paths on the host that a layer tries to create, and a host file one tries to reach.
ESCAPED = {kind: Path(f"/tmp/berth-escape-{TOKEN}-{kind}") for kind in
           ("dotdot", "symlink", "abs", "cross", "rel-symlink")}
VICTIM = Path(f"/tmp/berth-victim-{TOKEN}")
VICTIM_TEXT = "the host's own file\n"

BOMB_BYTES = 48 << 20  # over the runc berth's 32 MiB
BOMB_ENTRIES = 5000  # over its 4,000

# passwd variant -> what the container's failure must say
PASSWD = {
    "passwd-host-symlink": "symbolic links",  # ../../../../etc/passwd loops inside the root
    "passwd-shadow-symlink": f"unable to find user {USER}",  # ../../etc/shadow is not there
    "passwd-proc-symlink": f"unable to find user {USER}",  # /proc/1/root/... neither
    "passwd-fifo": "FIFO",
    "passwd-zero": "a device",
    "passwd-huge": "more than 1048576",
}


def _passwd_layer(kind: str) -> list:
    etc = entry("etc", "dir")
    p = "etc/passwd"
    up = "../../../../../../../.."
    return {
        "passwd-host-symlink": [etc, entry(p, "symlink", link=f"{up}/etc/passwd")],
        "passwd-shadow-symlink": [etc, entry(p, "symlink", link=f"{up}/etc/shadow")],
        "passwd-proc-symlink": [etc, entry(p, "symlink", link="/proc/1/root/etc/passwd")],
        "passwd-fifo": [etc, entry(p, "fifo")],
        "passwd-zero": [etc, entry(p, "char", dev=(1, 5))],
        "passwd-huge": [etc, entry(p, data=f"{USER}:x:1:1::/:/bin/sh\n".encode() * 90000)],
    }[kind]


@pytest.fixture(scope="module")
def hostile(images, tmp_path_factory):
    for path in ESCAPED.values():
        assert not path.exists(), path
    host_passwd = Path("/etc/passwd").read_text()
    assert any(line.startswith(f"{USER}:") for line in host_passwd.splitlines()), (
        f"the host's /etc/passwd has no {USER}: the symlink probes would prove nothing"
    )
    VICTIM.write_text(VICTIM_TEXT)
    try:
        yield _build(ImageVariants(tmp_path_factory.mktemp("hostile"), images.registry))
    finally:
        VICTIM.unlink(missing_ok=True)
        for path in ESCAPED.values():
            path.unlink(missing_ok=True)


def _build(v: ImageVariants):
    for name in PASSWD:
        v.add(name, [_passwd_layer(name)], user=USER)
    up = "../../../../../../../.."
    v.add("escape-dotdot", [[entry(f"{up}/tmp/{ESCAPED['dotdot'].name}", data=b"escaped\n")]])
    v.add("escape-symlink", [[entry("esc", "symlink", link="/tmp"),
                              entry(f"esc/{ESCAPED['symlink'].name}", data=b"escaped\n")]])
    v.add("escape-rel-symlink", [[entry("esc", "symlink", link=f"{up}/tmp"),
                                  entry(f"esc/{ESCAPED['rel-symlink'].name}", data=b"escaped\n")]])
    v.add("escape-hardlink", [[entry("victim", "hardlink", link=f"{up}{VICTIM}")]])
    # Refused by no rule, yet contained: an absolute path, an absolute hard link target, and
    # a symlink of one layer that the next layer writes through.
    v.add("escape-contained", [
        [entry(str(ESCAPED["abs"]), data=b"inside\n"),
         entry("esc", "symlink", link="/tmp"),
         entry("hl", "hardlink", link=str(ESCAPED["abs"]))],
        [entry(f"esc/{ESCAPED['cross'].name}", data=b"inside\n")],
    ])
    v.add("bomb-bytes", [[entry("bomb", zeros=BOMB_BYTES)]])
    v.add("bomb-entries", [[entry("many", "dir")] + [
        entry(f"many/{i}") for i in range(BOMB_ENTRIES)
    ]])
    return v, v.push()


def _text(group: dict) -> str:
    """Everything a tenant reads about the group: states, reasons, messages, events."""
    return pretty(group)


def _host_untouched() -> None:
    escaped = [str(p) for p in ESCAPED.values() if p.exists()]
    assert not escaped, f"layers wrote on the host: {escaped}"
    assert VICTIM.read_text() == VICTIM_TEXT, "a layer changed a host file"


def test_a_hostile_passwd_fails_the_container_and_spares_the_host(client, groups, images, hostile):
    _, refs = hostile
    made = {
        name: groups.create(
            name, [container("c", refs[name], ["sh", "-c", f"echo {RAN}; id"])],
            termination_grace_period_seconds=1,
        )
        for name in PASSWD
    }
    for name, gid in made.items():
        group = support.wait_status(client, gid, ["Failed", "Succeeded"], 60)
        text = _text(support.describe(client, gid, with_event=True))
        assert group["Status"] == "Failed", f"{name}:\n{text}"
        assert PASSWD[name] in text, f"{name}: the reason does not say {PASSWD[name]!r}:\n{text}"
        assert RAN not in support.logs(client, gid, "c"), f"{name}: the container ran"
        print(f"{name}: {support.container_of(group, 'c')['CurrentState']}")
    # berth still serves and starts containers.
    gid = groups.create(
        "after-hostile", [container("c", images.image, ["sh", "-c", f"echo {RAN}"])]
    )
    group = support.wait_status(client, gid, ["Succeeded", "Failed"], 60)
    assert group["Status"] == "Succeeded", pretty(group)


def _pull_failure(client, gid: str, needle: str, timeout: float = 60) -> str:
    """Waits for the Warning event of a failed pull that says needle; returns it."""

    def failed() -> str | None:
        for e in events_of(client, gid):
            if "Failed to pull image" in (e.get("Message") or "") and needle in e["Message"]:
                return e["Message"]
        return None

    return wait_for(
        f"{gid}: a pull failure saying {needle!r}",
        failed,
        timeout,
        diag=lambda: pretty(support.describe(client, gid, with_event=True)),
    )


def test_layer_entries_never_land_outside_the_root(client, groups, hostile):
    _, refs = hostile
    refused = {
        "escape-dotdot": "escapes the layer root",
        "escape-symlink": "which is not a directory",
        "escape-rel-symlink": "which is not a directory",
        "escape-hardlink": "escapes the layer root",
    }
    made = {
        name: groups.create(name, [container("c", refs[name], ["true"])])
        for name in refused
    }
    check = " && ".join([
        f"test \"$(cat {ESCAPED['abs']})\" = inside",
        f"test \"$(cat /esc/{ESCAPED['cross'].name})\" = inside",
        "echo more >> /hl",
        f"echo {RAN}",
    ])
    contained = groups.create(
        "escape-contained", [container("c", refs["escape-contained"], ["sh", "-c", check])]
    )
    for name, gid in made.items():
        message = _pull_failure(client, gid, refused[name])
        group = support.describe(client, gid)
        state = support.container_of(group, "c")["CurrentState"]
        assert state["State"] == "Waiting" and state["DetailStatus"] in (
            "ErrImagePull", "ImagePullBackOff"
        ), f"{name}: {pretty(group)}"
        assert "unpacking layer" in message, message
        print(f"{name}: {message}")
    group = support.wait_status(client, contained, ["Succeeded", "Failed"], 60)
    out = support.logs(client, contained, "c")
    assert group["Status"] == "Succeeded" and RAN in out, f"{pretty(group)}\n{out}"
    _host_untouched()


def _layer_traces(server, digest: str) -> list[str]:
    """What of the layer `digest` is on disk under the image store."""
    hexd = digest.split(":", 1)[1]
    store = server.state_dir / "node" / "images"
    assert (store / "layers").is_dir(), f"no image store at {store}"
    found = [str(p) for p in (store / "layers").iterdir() if hexd in p.name]
    found += [str(p) for p in (store / "layer-info").glob(f"{hexd}*")]
    found += [str(p) for p in (store / "tmp").iterdir()]
    return found


@pytest.mark.parametrize(
    "bomb,needle",
    [
        ("bomb-bytes", f"more than {int(support.RUNC_MAX_IMAGE_GIB * (1 << 30))} bytes"),
        ("bomb-entries", f"more than {support.RUNC_MAX_IMAGE_ENTRIES} entries"),
    ],
)
def test_a_decompression_bomb_is_refused_and_leaves_nothing(runc_berth, runc_groups, hostile,
                                                             bomb, needle):
    variants, refs = hostile
    layer = variants.top_layer(bomb)
    blob = variants.layout / "blobs" / "sha256" / layer.split(":")[1]
    assert blob.stat().st_size < 1 << 20, f"the bomb is {blob.stat().st_size} bytes on the wire"
    client = runc_berth.client()
    gid = runc_groups.create(bomb, [container("c", refs[bomb], ["true"])])
    message = _pull_failure(client, gid, needle)
    assert "refused" in message, message
    print(f"{bomb}: {message}")
    assert not _layer_traces(runc_berth, layer), _layer_traces(runc_berth, layer)
    runc_groups.delete_all()
    assert not _layer_traces(runc_berth, layer), _layer_traces(runc_berth, layer)
