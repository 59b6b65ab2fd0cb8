"""`berth virtual-kubelet` end to end: the real binary joins a cluster played by
`kube_fake.FakeApiServer` (no API server can be installed here) and runs its pods as real
container groups on the shared berth.

What is checked: the Node is registered with its labels, taint, capacity from the account's
quotas and the kubelet port, and its Lease is kept; a pod bound to the node becomes a group
(ConfigMap and Secret references resolved through the API) and its status goes Running with
the group's address; a restart of the virtual kubelet marks the node NotReady, then adopts
the group without making a second one; a DaemonSet pod is refused with a Failed status; a
deleted pod's group is deleted, then the pod is removed from the API server.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import support
from kube_fake import FakeApiServer

NODE = "berth-vk-e2e"
TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}


class VirtualKubelet:
    """`berth virtual-kubelet` against the fake API server and the shared berth."""

    def __init__(self, berth: support.Berth, api: FakeApiServer, workdir: Path):
        self.berth = berth
        self.api = api
        self.kubeconfig = api.kubeconfig(workdir / "kubeconfig.json")
        self.log = workdir / "virtual-kubelet.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, RUST_LOG="info,berth_kubelet=debug", NO_COLOR="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(support.BERTH_BIN),
                    "--endpoint",
                    self.berth.url,
                    "--credentials",
                    str(self.berth.credentials_path),
                    "virtual-kubelet",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--node-name",
                    NODE,
                    "--node-ip",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the virtual kubelet did not stop on SIGTERM\n{self.diag()}")

    def diag(self) -> str:
        rc = None if self.proc is None else self.proc.poll()
        return (
            f"---- virtual kubelet (exit {rc}), log:\n{support.tail(self.log, 80)}\n"
            f"---- unknown API calls: {self.api.unknown}\n{self.berth.diag(30)}"
        )


@pytest.fixture
def cluster(berth, tmp_path):
    api = FakeApiServer().start()
    vk = VirtualKubelet(berth, api, tmp_path)
    vk.start()
    yield api, vk
    vk.stop()
    # Whatever a failed test left: the groups of this node's pods.
    client = berth.client()
    for g in support.list_groups(client):
        if any(t.get("Key") == "k8s.pod.namespace" for t in g.get("Tags") or []):
            support.delete(client, g["ContainerGroupId"])
    api.stop()


def pod_groups(client, uid: str) -> list[dict]:
    return [
        g
        for g in support.list_groups(client)
        if {"Key": "k8s.pod.uid", "Value": uid} in (g.get("Tags") or [])
        and g.get("Status") not in ("Terminating",)
    ]


def node_ready(api: FakeApiServer) -> str | None:
    n = api.get("api/v1", "nodes", "", NODE)
    for c in (n or {}).get("status", {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"]
    return None


def test_node_registers_with_lease_and_capacity(cluster):
    api, vk = cluster
    support.wait_for("the Node to be Ready", lambda: node_ready(api) == "True", 30, 0.2, vk.diag)
    n = api.get("api/v1", "nodes", "", NODE)
    labels = n["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/hostname"] == NODE
    assert {"key": "virtual-kubelet.io/provider", "value": "berth", "effect": "NoSchedule"} in n[
        "spec"
    ]["taints"]
    st = n["status"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
    # The shared berth's account quotas: every figure is there and not zero.
    for k in ("cpu", "memory", "pods"):
        assert st["capacity"][k] not in ("0", "0m", "0Mi"), st["capacity"]
    lease = support.wait_for(
        "the node's Lease",
        lambda: api.get("apis/coordination.k8s.io/v1", "leases", "kube-node-lease", NODE),
        30,
        0.2,
        vk.diag,
    )
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["leaseDurationSeconds"] == 40
    # A graceful stop marks the node NotReady.
    assert vk.stop() == 0, vk.diag()
    assert node_ready(api) == "False", vk.diag()


def test_pod_runs_as_group_and_survives_a_restart(cluster, berth, images):
    api, vk = cluster
    client = berth.client()
    api.put(
        "api/v1",
        "configmaps",
        {"metadata": {"name": "settings", "namespace": "shop"}, "data": {"greeting": "hello"}},
    )
    api.put(
        "api/v1",
        "secrets",
        {
            "metadata": {"name": "creds", "namespace": "shop"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    pod = api.put(
        "api/v1",
        "pods",
        {
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"app": "web"},
                # The test registry speaks plain HTTP, as a self-managed one may.
                "annotations": {"k8s.aliyun.com/plain-http-registry": images.registry},
            },
            "spec": {
                "nodeName": NODE,
                "tolerations": [TOLERATION],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 3,
                "containers": [
                    {
                        "name": "app",
                        "image": images.image,
                        "command": ["sh", "-c", 'echo "$GREETING $(cat /creds/token)"; exec sleep 3600'],
                        "env": [
                            {
                                "name": "GREETING",
                                "valueFrom": {
                                    "configMapKeyRef": {"name": "settings", "key": "greeting"}
                                },
                            }
                        ],
                        "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                    }
                ],
                "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
            },
            "status": {"phase": "Pending"},
        },
    )
    uid = pod["metadata"]["uid"]

    def running():
        p = api.get("api/v1", "pods", "shop", "web")
        st = (p or {}).get("status", {})
        return p if st.get("phase") == "Running" and st.get("podIP") else None

    p = support.wait_for("the pod to run", running, 90, 0.3, vk.diag)
    st = p["status"]
    assert st["hostIP"] == "127.0.0.1"
    [cs] = st["containerStatuses"]
    assert cs["name"] == "app" and cs["ready"] is True and "running" in cs["state"], st
    [g] = pod_groups(client, uid)
    assert g["IntranetIp"] == st["podIP"]
    assert {"Key": "k8s.pod.name", "Value": "web"} in g["Tags"]
    assert g["Cpu"] == 0.25 and g["Memory"] == 0.5, (g["Cpu"], g["Memory"])
    out = support.wait_for(
        "the pod's log",
        lambda: "hello s3cret" in support.logs(client, g["ContainerGroupId"], "app"),
        30,
        0.3,
    )
    assert out

    # A restart: NotReady while down, then the same group, not a second one.
    assert vk.stop() == 0, vk.diag()
    assert node_ready(api) == "False"
    vk.start()
    support.wait_for("the Node to be Ready again", lambda: node_ready(api) == "True", 30, 0.2, vk.diag)
    time.sleep(3)  # more than one sweep of berth's groups
    assert [x["ContainerGroupId"] for x in pod_groups(client, uid)] == [g["ContainerGroupId"]]
    assert api.get("api/v1", "pods", "shop", "web")["status"]["phase"] == "Running"

    # Deletion: the group goes, then the pod is removed from the API server.
    api.mark_deleted("shop", "web", grace=3)
    support.wait_for(
        "the pod to be removed",
        lambda: api.get("api/v1", "pods", "shop", "web") is None,
        60,
        0.3,
        vk.diag,
    )
    assert support.describe(client, g["ContainerGroupId"]) is None
    assert not api.unknown, api.unknown


def test_daemonset_pod_is_refused(cluster, images):
    api, vk = cluster
    api.put(
        "api/v1",
        "pods",
        {
            "metadata": {
                "name": "agent-x1",
                "namespace": "kube-system",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds-1"}
                ],
            },
            "spec": {
                "nodeName": NODE,
                "tolerations": [TOLERATION],
                "containers": [{"name": "a", "image": images.image}],
            },
            "status": {"phase": "Pending"},
        },
    )

    def failed():
        st = (api.get("api/v1", "pods", "kube-system", "agent-x1") or {}).get("status", {})
        return st if st.get("phase") == "Failed" else None

    st = support.wait_for("the DaemonSet pod to fail", failed, 30, 0.2, vk.diag)
    assert st["reason"] == "ProviderFailed"
    assert "DaemonSet" in st["message"]
