"""Cluster mode (issue 20, docs/CLUSTER.md): PostgreSQL from Debian on loopback, two
control-plane replicas (`berth serve --no-node`) and three node agents (`berth node`), each
node in a network namespace of its own with its own address.

Groups created through either replica are placed on the nodes by their room (spread), run
there, and are seen, logged and deleted through either replica; a node cannot report on
another node's group; a node killed with -9 is marked NotReady and its groups are handled per
restart policy (Always placed again elsewhere, Never failed), and the copies it still runs are
removed when it is back; the leader replica killed with -9 hands over to the other, which
places what is created after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from cluster import Hosts, Node, Replica, cluster_registry, sign
from postgres import Postgres
from support import BERTH_BIN, container, wait_for, wait_status
from test_tls import make_pki

NODES = 3
# How long before a reclaimed spot group ends its SpotToBeReleased event comes.
SPOT_NOTICE_S = 2


def admin(state_dir: Path, url: str, *args: str) -> dict | list:
    """`berth admin` on the cluster's database, with the replicas' key file."""
    res = subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(state_dir), "--store", url,
         "--store-key", str(state_dir.parent / "secrets.key"), "-o", "json", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, f"berth admin {' '.join(args)}: {res.stdout}{res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else {}


class Cluster:
    def __init__(self, base: Path, pg: Postgres):
        self.base = base
        self.pg = pg
        self.url = pg.create_database("berth_cluster")
        self.hosts = Hosts(NODES)
        self.replicas: list[Replica] = []
        self.nodes: list[Node] = []
        self.registry = None
        self.tracker: set[str] = set()

    def start(self) -> None:
        self.hosts.up()
        self.registry = cluster_registry(self.base / "registry")
        (self.base / "registry").mkdir()
        self.registry.start()
        [self.image] = self.registry.push_busybox()
        key = self.base / "secrets.key"
        # n3 serves the control plane's calls over TLS, its certificate signed by this CA.
        (self.base / "pki").mkdir()
        self.pki = make_pki(self.base / "pki", self.hosts.ips[2])
        for i in range(2):
            r = Replica(self.base / f"replica{i + 1}", self.base / f"replica{i + 1}.log",
                        ["--no-node", "--store", self.url, "--store-key", str(key),
                         "--schedule-timeout", "60s", "--spot-notice", f"{SPOT_NOTICE_S}s",
                         "--node-ca", str(self.pki["ca.pem"])])
            r.start()
            self.replicas.append(r)
        made = admin(self.replicas[0].state_dir, self.url, "node", "token", "create",
                     "--description", "e2e")
        self.token = made["Token"]
        # Only n2 lets groups mount host paths, below this directory.
        self.share = self.base / "n2-share"
        self.share.mkdir()
        for i, (ns, ip) in enumerate(zip(self.hosts.names, self.hosts.ips)):
            # Each node offers 2 vCPU and 4 GiB, whatever this machine has.
            extra = ["--metrics-interval", "1"]
            if i == 1:
                extra += ["--host-path-prefix", str(self.share)]
            if i == 2:
                extra += ["--tls-cert", str(self.pki["server.pem"]),
                          "--tls-key", str(self.pki["server.key"])]
            node = Node(self.base, f"n{i + 1}", ns, ip, i, extra)
            node.start(self.join_urls(i), self.token)
            self.nodes.append(node)

    def join_urls(self, first: int) -> str:
        """Every replica's URL, replica `first`'s first (so nodes start on different ones)."""
        urls = [r.node_url for r in self.replicas]
        return ",".join(urls[first % len(urls):] + urls[:first % len(urls)])

    def client(self, i: int = 0):
        return self.replicas[i].client()

    def create(self, name: str, restart_policy: str = "Never", cpu: float = 1.0,
               memory: float = 2.0, replica: int = 0, command=None, client=None,
               host_path: str | None = None, image_snapshot_id: str | None = None,
               **extra) -> str:
        """A group of one container; with `host_path`, mounted at /data."""
        from alibabacloud_eci20180808 import models
        mounts, volumes = [], []
        if host_path is not None:
            mounts = [models.CreateContainerGroupRequestContainerVolumeMount(
                name="data", mount_path="/data")]
            volumes = [models.CreateContainerGroupRequestVolume(
                name="data", type="HostPathVolume",
                host_path_volume=models.CreateContainerGroupRequestVolumeHostPathVolume(
                    path=host_path, type="DirectoryOrCreate"))]
        req = models.CreateContainerGroupRequest(
            region_id=support.REGION, container_group_name=name,
            restart_policy=restart_policy, cpu=cpu, memory=memory,
            container=[container("c", self.image,
                                 command or ["sh", "-c", "echo hello from $HOSTNAME; sleep 3600"],
                                 cpu=cpu, memory=memory, volume_mount=mounts)],
            volume=volumes, image_snapshot_id=image_snapshot_id,
            plain_http_registry=self.registry.host, termination_grace_period_seconds=2,
            **extra,
        )
        client = client or self.client(replica)
        gid = client.create_container_group(req).body.container_group_id
        self.tracker.add(gid)
        return gid

    def node_of(self, gid: str, replica: int = 0, client=None) -> str | None:
        """The node the Scheduled event names last."""
        events = support.events_of(client or self.client(replica), gid)
        named = [e["Message"].rsplit(" ", 1)[-1] for e in events
                 if e.get("Reason") == "Scheduled"]
        return named[-1] if named else None

    def stop(self) -> list[str]:
        problems = []
        client = None
        for r in self.replicas:
            if r.running():
                client = r.client()
                break
        if client is not None:
            ids = self.tracker | {g["ContainerGroupId"] for g in support.list_groups(client)}
            for gid in ids:
                try:
                    support.delete(client, gid)
                except Exception as e:  # noqa: BLE001 - collected as a problem
                    if getattr(e, "status_code", None) != 404:
                        problems.append(f"delete {gid}: {e}")
            try:
                wait_for("the groups to be deleted",
                         lambda: not support.list_groups(client), 90, 0.5)
            except AssertionError as e:
                problems.append(str(e))
        for n in self.nodes:
            # A node killed by a test comes back to remove what it still holds.
            if n.proc is not None and n.proc.poll() is not None:
                try:
                    n.start(self.join_urls(0), None)
                except AssertionError as e:
                    problems.append(f"node {n.name} did not come back: {e}")
        for n in self.nodes:
            if not n.stop():
                problems.append(f"node {n.name} did not stop")
        ids = sorted(self.tracker)
        deadline = time.monotonic() + 10
        while True:
            left = (
                [f"mount {m}" for m in support.mounts_under(self.base)]
                + [f"loop device {d}" for d in support.loop_devices_under(self.base)]
                + [f"process {p}" for p in support.processes_mentioning(ids)]
                + [f"cgroup {c}" for c in support.cgroup_dirs_named(ids)]
            )
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        problems += left
        for r in self.replicas:
            if not r.stop():
                problems.append(f"replica {r.state_dir} did not stop")
        if self.registry is not None:
            self.registry.stop()
        self.hosts.down()
        return problems


@pytest.fixture(scope="module")
def pg(host_ready):
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(pg):
    base = Path(tempfile.mkdtemp(prefix="berth-cluster-", dir="/tmp"))
    c = Cluster(base, pg)
    ok = False
    try:
        c.start()
        yield c
        ok = True
    finally:
        problems = c.stop()
        if problems and ok:
            pytest.fail("cluster teardown: " + "; ".join(problems) + f" (kept: {base})")
        if not problems:
            shutil.rmtree(base, ignore_errors=True)


def test_nodes_joined(cluster):
    nodes = admin(cluster.replicas[0].state_dir, cluster.url, "node", "ls")
    names = sorted(n["Name"] for n in nodes)
    assert names == ["n1", "n2", "n3"], nodes
    assert all(n["State"] == "Ready" for n in nodes), nodes
    # Each offers its temporary storage, free as of its last heartbeat; n2 its host paths.
    assert all(0 < n["StorageFreeBytes"] <= n["StorageBytes"] for n in nodes), nodes
    tls = {n["Name"]: n["Tls"] for n in nodes}
    assert tls == {"n1": False, "n2": False, "n3": True}, tls
    prefixes = {n["Name"]: n["HostPathPrefixes"] for n in nodes}
    assert prefixes == {"n1": [], "n2": [str(cluster.share)], "n3": []}, prefixes


def test_groups_spread_run_and_are_seen_through_either_replica(cluster):
    gids = [cluster.create(f"spread-{i}", replica=i % 2) for i in range(3)]
    for gid in gids:
        wait_status(cluster.client(1), gid, ["Running"], timeout=90)
    placed = sorted(cluster.node_of(g) for g in gids)
    assert placed == ["n1", "n2", "n3"], f"one group per node by room: {placed}"
    for gid in gids:
        for i in range(2):
            text = support.logs(cluster.client(i), gid, "c")
            assert "hello from" in text, text
            out = support.exec_sh(cluster.client(i), gid, "echo exec on $(hostname); echo err >&2")
            assert out.startswith("exec on "), out
            # Interactive: the replica relays the WebSocket to the node's.
            r = cluster.replicas[i]
            res = subprocess.run(
                [str(BERTH_BIN), "--endpoint", r.url, "--credentials", str(r.credentials_path),
                 "exec", "-i", gid, "--", "sh", "-c", "read x; echo got-$x; echo e >&2; exit 3"],
                input="abc\n", capture_output=True, text=True, timeout=60)
            assert res.returncode == 3, (res.returncode, res.stdout, res.stderr)
            assert "got-abc" in res.stdout and "e" in res.stderr, (res.stdout, res.stderr)
    # Metrics sampled on the node, read through a replica.
    from alibabacloud_eci20180808 import models

    def sampled() -> bool:
        req = models.DescribeContainerGroupMetricRequest(
            region_id=support.REGION, container_group_id=gids[0], period="15")
        records = cluster.client(1).describe_container_group_metric(req).body.to_map()["Records"]
        return bool(records) and records[-1]["Memory"]["WorkingSet"] > 0
    wait_for("metrics of a group on a node", sampled, 30, 0.5)
    for i, gid in enumerate(gids):
        support.delete(cluster.client(i % 2), gid)
    wait_for("the groups to be deleted",
             lambda: all(support.describe(cluster.client(0), g) is None for g in gids), 60, 0.5)
    # Nothing of them is left on their nodes.
    for n in cluster.nodes:
        left = [g for g in gids if (n.state_dir / "node" / "groups" / g).exists()]
        assert not left, f"{n.name} keeps {left}"


def test_a_node_cannot_report_another_nodes_group(cluster):
    gid = cluster.create("guarded")
    wait_status(cluster.client(0), gid, ["Running"], timeout=90)
    owner = cluster.node_of(gid)
    other = next(n for n in cluster.nodes if n.name != owner)
    ident = other.identity()
    body = json.dumps({"reports": [{"group": gid, "observed": {
        "intranet_ip": "10.9.9.9", "init_containers": [], "containers": [],
        "failed": "forged by another node", "events": [], "generation": 0}}]}).encode()
    path = "/node/v1/report"
    headers = sign(ident["node"], ident["key"], "POST", path, "", body)
    headers["content-type"] = "application/json"
    req = urllib.request.Request(cluster.replicas[0].url + path, data=body, headers=headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["refused"] == [gid], answer
    group = support.describe(cluster.client(0), gid)
    assert group["Status"] == "Running", group
    assert group.get("IntranetIp") != "10.9.9.9", group
    # A call signed with a wrong key is refused.
    headers = sign(ident["node"], "00" * 32, "POST", path, "", body)
    headers["content-type"] = "application/json"
    req = urllib.request.Request(cluster.replicas[0].url + path, data=body, headers=headers,
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    support.delete(cluster.client(0), gid)


def signed_post(cluster, node: Node, path: str, body: bytes) -> tuple[int, dict]:
    """A node call signed with `node`'s key; its status and JSON answer."""
    ident = node.identity()
    headers = sign(ident["node"], ident["key"], "POST", path, "", body)
    headers["content-type"] = "application/json"
    req = urllib.request.Request(cluster.replicas[0].url + path, data=body, headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_accounts_seccomp_profile_applies_on_the_node_it_runs_on(cluster, tmp_path):
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_eci20180808.client import Client

    state, url = cluster.replicas[1].state_dir, cluster.url
    name = f"seccomp-{uuid.uuid4().hex[:8]}"
    admin(state, url, "account", "create", name)
    key = admin(state, url, "key", "create", "--account", name)
    # Allows everything but mkdir.
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    admin(state, url, "account", "set-seccomp", name, str(profile))
    theirs = Client(Config(access_key_id=key["AccessKeyId"],
                           access_key_secret=key["AccessKeySecret"],
                           endpoint=cluster.replicas[1].url.removeprefix("http://"),
                           protocol="http", region_id=support.REGION,
                           connect_timeout=5000, read_timeout=60000))
    gid = cluster.create("seccomp-own", client=theirs)
    mine = cluster.create("seccomp-mine")
    wait_status(theirs, gid, ["Running"], timeout=90)
    wait_status(cluster.client(0), mine, ["Running"], timeout=90)
    out = support.exec_sh(theirs, gid, "mkdir /tmp/x 2>&1; echo rc=$?; unshare -U true && echo userns=ok")
    assert "Operation not permitted" in out and "rc=1" in out, out
    # The account's profile replaces the built-in one: user namespaces are open under it.
    assert "userns=ok" in out, out
    out = support.exec_sh(cluster.client(0), mine,
                          "mkdir /tmp/x && echo made; unshare -U true 2>&1; echo userns=$?")
    assert "made" in out and "userns=1" in out, out

    # A node learns the setting only of the accounts of groups placed on it.
    owner = cluster.node_of(gid, client=theirs)
    assert owner in [n.name for n in cluster.nodes], owner
    body = json.dumps({"group": gid}).encode()
    for n in cluster.nodes:
        status, answer = signed_post(cluster, n, "/node/v1/seccomp", body)
        if n.name == owner:
            assert status == 200 and answer["setting"]["kind"] == "profile", (status, answer)
        else:
            assert status == 403 and answer["code"] == "Forbidden", (n.name, status, answer)
    support.delete(theirs, gid)
    support.delete(cluster.client(0), mine)


def test_host_paths_go_only_to_a_node_that_allows_them(cluster):
    # Allowed by no node: refused at create, nothing recorded.
    before = len(support.list_groups(cluster.client(0)))
    with pytest.raises(ClientException) as refused:
        cluster.create("hostpath-nowhere", host_path="/etc")
    assert "Volume.1.HostPathVolume.Path" in refused.value.message, refused.value.message
    assert len(support.list_groups(cluster.client(0))) == before

    gid = cluster.create("hostpath", host_path=str(cluster.share / "g1"), replica=1)
    wait_status(cluster.client(0), gid, ["Running"], timeout=90)
    assert cluster.node_of(gid) == "n2"
    support.exec_sh(cluster.client(1), gid, "echo from-the-group > /data/out")
    assert (cluster.share / "g1" / "out").read_text() == "from-the-group\n"

    # With n2 cordoned no node takes such a group: it waits, saying why, until n2 is back.
    state = cluster.replicas[0].state_dir
    admin(state, cluster.url, "node", "cordon", "n2")
    try:
        waiting = cluster.create("hostpath-waits", host_path=str(cluster.share / "g2"))

        def told():
            return [e for e in support.events_of(cluster.client(0), waiting)
                    if "allows its volumes" in (e.get("Message") or "")]
        wait_for("the group to say why it waits", told, 30, 0.3)
    finally:
        admin(state, cluster.url, "node", "uncordon", "n2")
    wait_status(cluster.client(0), waiting, ["Running"], timeout=90)
    assert cluster.node_of(waiting) == "n2"
    for g in (gid, waiting):
        support.delete(cluster.client(0), g)


def test_image_caches_are_built_on_a_node_and_made_where_their_groups_go(cluster):
    from test_image_cache import cache_of, create_cache, delete_cache, wait_cache

    def holders(cid: str) -> list[str]:
        return sorted(n.name for n in cluster.nodes
                      if (n.state_dir / "node" / "images" / "caches" / f"{cid}.json").exists())

    def messages(client, gid: str) -> str:
        return " | ".join(e.get("Message", "") for e in support.events_of(client, gid))

    cid = create_cache(cluster.client(1), "cl-cache", [cluster.image], cluster.registry.host)
    assert wait_cache(cluster.client(0), cid, {"Ready", "Failed"})["Status"] == "Ready", \
        cache_of(cluster.client(0), cid)
    [built_on] = holders(cid)

    # Its group goes to the node that holds it, and starts from it.
    first = cluster.create("from-cache", image_snapshot_id=cid)
    wait_status(cluster.client(0), first, ["Running"], timeout=90)
    assert cluster.node_of(first) == built_on
    assert f"already present in image cache {cid}" in messages(cluster.client(0), first)

    # Placed elsewhere, a group has its node make the cache first.
    state = cluster.replicas[0].state_dir
    admin(state, cluster.url, "node", "cordon", built_on)
    try:
        second = cluster.create("cache-elsewhere", image_snapshot_id=cid, replica=1)
        wait_status(cluster.client(0), second, ["Running"], timeout=90)
    finally:
        admin(state, cluster.url, "node", "uncordon", built_on)
    made_on = cluster.node_of(second)
    assert made_on != built_on
    told = messages(cluster.client(1), second)
    assert f"Made image cache {cid} on this node" in told, told
    assert f"already present in image cache {cid}" in told, told
    assert holders(cid) == sorted([built_on, made_on])

    # Deleted, it is released on every node that held it; one away then, when it is back.
    for g in (first, second):
        support.delete(cluster.client(0), g)
    wait_for("the groups to go", lambda: all(
        support.describe(cluster.client(0), g) is None for g in (first, second)), 60, 0.3)
    away = next(n for n in cluster.nodes if n.name == made_on)
    away.kill()
    delete_cache(cluster.client(0), cid)
    wait_for("the cache to be released where the node is up",
             lambda: holders(cid) == [made_on], 30, 0.3)
    away.start(cluster.join_urls(0), None)
    wait_for("the node back to release the cache", lambda: not holders(cid), 30, 0.3)


def test_spot_groups_are_reclaimed_on_one_node_for_a_pay_as_you_go_group(cluster):
    # Each node offers 2 vCPU: three spot groups of 2 vCPU fill the cluster.
    spots = [cluster.create(f"spot-{i}", cpu=2.0, spot_strategy="SpotAsPriceGo",
                            spot_duration=0) for i in range(NODES)]
    for g in spots:
        wait_status(cluster.client(0), g, ["Running"], timeout=90)
    t0 = time.monotonic()
    paying = cluster.create("pay-as-you-go", cpu=2.0, replica=1)
    wait_status(cluster.client(0), paying, ["Running"], timeout=90)
    took = time.monotonic() - t0
    assert took >= SPOT_NOTICE_S, f"Running after {took:.1f} s, before the notice ended"
    statuses = {g: support.describe(cluster.client(0), g)["Status"] for g in spots}
    expired = [g for g, st in statuses.items() if st == "Expired"]
    assert len(expired) == 1, statuses
    [victim] = expired
    reasons = [e["Reason"] for e in support.events_of(cluster.client(0), victim)]
    assert "SpotToBeReleased" in reasons and "SpotReleased" in reasons, reasons
    assert cluster.node_of(paying) == cluster.node_of(victim)
    for g in spots + [paying]:
        support.delete(cluster.client(0), g)


def leader(cluster) -> int:
    """The index of the replica holding the leader's lease."""
    holder = cluster.pg.psql("berth_cluster",
                             "SELECT holder FROM leases WHERE name = 'cluster-leader'")
    for i, r in enumerate(cluster.replicas):
        if holder.endswith("/" + (r.state_dir / "node.id").read_text().strip()):
            return i
    raise AssertionError(f"no replica holds the lease: {holder!r}")


def test_the_leader_killed_hands_over_and_every_create_ends_in_one_group(cluster):
    import threading
    from alibabacloud_eci20180808 import models

    wait_for("a leader", lambda: cluster.pg.psql(
        "berth_cluster", "SELECT count(*) FROM leases WHERE name = 'cluster-leader'") == "1",
        30, 0.2)
    old = leader(cluster)
    other = 1 - old
    # A deletion the leader took and did not finish is taken up by the other replica.
    orphan = cluster.create("orphan", replica=old)
    # And a deadline the leader watched: watched by the next one.
    deadlined = cluster.create("deadlined", replica=old, active_deadline_seconds=15)
    wait_status(cluster.client(old), orphan, ["Running"], timeout=90)
    made: dict[str, str] = {}
    errors: list[str] = []

    def create_all() -> None:
        client = cluster.client(other)
        for i in range(6):
            req = models.CreateContainerGroupRequest(
                region_id=support.REGION, container_group_name=f"burst-{i}",
                restart_policy="Always", cpu=0.25, memory=0.5, client_token=f"burst-token-{i}",
                container=[container("c", cluster.image, ["sleep", "3600"], cpu=0.25,
                                     memory=0.5)],
                plain_http_registry=cluster.registry.host, termination_grace_period_seconds=2,
            )
            for _ in range(3):
                try:
                    gid = client.create_container_group(req).body.container_group_id
                    made[f"burst-token-{i}"] = gid
                    cluster.tracker.add(gid)
                    break
                except Exception as e:  # noqa: BLE001 - retried with the same token
                    errors.append(str(e))

    t = threading.Thread(target=create_all)
    support.delete(cluster.client(old), orphan)
    t.start()
    cluster.replicas[old].kill()
    t.join(timeout=120)
    assert len(made) == 6, f"creates accepted: {made}; errors: {errors}"
    for gid in made.values():
        wait_status(cluster.client(other), gid, ["Running"], timeout=90)
    groups = [g for g in support.list_groups(cluster.client(other))
              if g["ContainerGroupName"].startswith("burst-")]
    assert len(groups) == 6, f"one group per ClientToken: {[g['ContainerGroupId'] for g in groups]}"
    # Creates are placed by the replica they came through; the lease passes once it expires.
    wait_for("the other replica to lead", lambda: leader(cluster) == other, 15, 0.2)
    wait_for("the deletion left behind to be done",
             lambda: support.describe(cluster.client(other), orphan) is None, 60, 0.5)
    wait_status(cluster.client(other), deadlined, ["Failed"], timeout=60)
    reasons = [e["Reason"] for e in support.events_of(cluster.client(other), deadlined)]
    assert "DeadlineExceeded" in reasons, reasons
    support.delete(cluster.client(other), deadlined)
    cluster.replicas[old].start()
    for gid in made.values():
        support.delete(cluster.client(old), gid)


def kill_host(node: Node, gids: list[str]) -> None:
    """kill -9 the node agent and everything of its groups, as a host that is lost."""
    import os
    import signal as sig

    node.kill()
    pids = set(support.pids_matching(str(node.state_dir)))
    for gid in gids:
        for root, _dirs, files in os.walk(f"/sys/fs/cgroup/memory/berth/{gid}"):
            if "cgroup.procs" in files:
                pids |= {int(p) for p in Path(root, "cgroup.procs").read_text().split()}
    for pid in pids:
        try:
            os.kill(pid, sig.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_lost_node_groups_are_handled_per_policy(cluster):
    always = cluster.create("lost-always", restart_policy="Always",
                            command=["sleep", "3600"])
    never = cluster.create("lost-never", restart_policy="Never", command=["sleep", "3600"])
    for gid in (always, never):
        wait_status(cluster.client(0), gid, ["Running"], timeout=90)
    lost = {cluster.node_of(always), cluster.node_of(never)}
    assert len(lost) < NODES, lost
    for n in cluster.nodes:
        if n.name in lost:
            kill_host(n, [always, never])
    # Silent for 20 s: NotReady, then the Always group runs elsewhere, the Never one failed.
    wait_for("the Always group to run on another node",
             lambda: (cluster.node_of(always) not in lost
                      and support.describe(cluster.client(1), always)["Status"] == "Running"),
             90, 0.5)
    group = wait_status(cluster.client(1), never, ["Failed"], timeout=30)
    reasons = [e.get("Reason") for e in support.events_of(cluster.client(1), never)]
    assert "NodeLost" in reasons, (group, reasons)
    reasons = [e.get("Reason") for e in support.events_of(cluster.client(1), always)]
    assert "NodeLost" in reasons, reasons
    nodes = {n["Name"]: n for n in admin(cluster.replicas[0].state_dir, cluster.url, "node", "ls")}
    assert all(nodes[name]["State"] == "NotReady" for name in lost), nodes
    # Back: the nodes are Ready again; the copy of the group placed elsewhere is removed
    # (the failed one stays on its node, finished, until it is deleted).
    for n in cluster.nodes:
        if n.name in lost:
            n.start(cluster.join_urls(0), None)
    wait_for("the nodes to be Ready again", lambda: all(
        n["State"] == "Ready"
        for n in admin(cluster.replicas[0].state_dir, cluster.url, "node", "ls")), 30, 0.5)
    for n in cluster.nodes:
        if n.name in lost:
            wait_for(f"{n.name} to remove the copy it held",
                     lambda n=n: not (n.state_dir / "node" / "groups" / always).exists(), 30, 0.5)
    for gid in (always, never):
        support.delete(cluster.client(0), gid)


def test_a_drained_node_hands_its_groups_to_others_and_a_cordoned_one_takes_none(cluster):
    state = cluster.replicas[0].state_dir
    gid = cluster.create("drained", restart_policy="Always", command=["sleep", "3600"])
    wait_status(cluster.client(0), gid, ["Running"], timeout=90)
    first = cluster.node_of(gid)
    node = next(n for n in cluster.nodes if n.name == first)
    admin(state, cluster.url, "node", "drain", first)
    try:
        wait_for("the group to run on another node", lambda: (
            cluster.node_of(gid) not in (None, first)
            and support.describe(cluster.client(1), gid)["Status"] == "Running"), 60, 0.5)
        reasons = [e.get("Reason") for e in support.events_of(cluster.client(0), gid)]
        assert "Drained" in reasons, reasons
        wait_for(f"{first} to release the group",
                 lambda: not (node.state_dir / "node" / "groups" / gid).exists(), 30, 0.5)
        # Cordoned (drained) nodes take no new group.
        others = [n.name for n in cluster.nodes if n.name != first]
        for other in others:
            admin(state, cluster.url, "node", "cordon", other)
        waiting = cluster.create("waits", command=["sleep", "3600"], cpu=0.25, memory=0.5)
        wait_for("a FailedScheduling event", lambda: "FailedScheduling" in [
            e.get("Reason") for e in support.events_of(cluster.client(0), waiting)], 30, 0.5)
        assert cluster.node_of(waiting) is None
        admin(state, cluster.url, "node", "uncordon", others[0])
        wait_status(cluster.client(0), waiting, ["Running"], timeout=60)
        assert cluster.node_of(waiting) == others[0]
    finally:
        for n in cluster.nodes:
            admin(state, cluster.url, "node", "uncordon", n.name)
    for g in (gid, waiting):
        support.delete(cluster.client(0), g)


def test_log_following_and_port_forwards_through_either_replica(cluster):
    import re

    short = cluster.create("follow", command=["sh", "-c", "echo one; sleep 3; echo two; exit 4"],
                           cpu=0.25, memory=0.5)
    wait_for("the first line", lambda: "one" in support.logs(cluster.client(1), short, "c"),
             60, 0.3)
    res = cluster.replicas[1].cli("logs", "-f", short, timeout=60)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.stdout.split() == ["one", "two"], res.stdout

    server = cluster.create("forward", cpu=0.25, memory=0.5, command=[
        "sh", "-c",
        "mkdir -p /tmp/www && hostname > /tmp/www/name && "
        "exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"])
    wait_status(cluster.client(0), server, ["Running"], timeout=60)
    r = cluster.replicas[0]
    proc = subprocess.Popen(
        [str(BERTH_BIN), "--endpoint", r.url, "--credentials", str(r.credentials_path),
         "port-forward", server, "0:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        url = f"http://127.0.0.1:{m.group(1)}/name"
        name = wait_for("the forward to answer", lambda: urllib.request.urlopen(
            url, timeout=5).read().decode().strip(), 20, 0.3)
        assert name == support.exec_sh(cluster.client(0), server, "hostname").strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for gid in (short, server):
        support.delete(cluster.client(0), gid)


def test_groups_deleted_as_soon_as_created_leave_nothing_on_their_nodes(cluster):
    gids = []
    for i in range(8):
        gid = cluster.create(f"brief-{i}", cpu=0.25, memory=0.5, replica=i % 2,
                             command=["sleep", "3600"])
        support.delete(cluster.client((i + 1) % 2), gid)
        gids.append(gid)
    wait_for("the groups to be deleted",
             lambda: all(support.describe(cluster.client(0), g) is None for g in gids), 60, 0.5)
    time.sleep(2)  # a record on its way to a node would have started the group by now
    for n in cluster.nodes:
        left = [g for g in gids if (n.state_dir / "node" / "groups" / g).exists()]
        assert not left, f"{n.name} keeps {left}"
    assert not support.processes_mentioning(gids)
    assert not support.cgroup_dirs_named(gids)
