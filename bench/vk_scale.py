#!/usr/bin/env python3
"""The virtual kubelet with 1,000 pods on one virtual node.

    python3 bench/vk_scale.py [--pods 1000] [--json out.json]     (as root)

Kept out of bench/run.py's default run: it takes minutes. No Kubernetes API server can be
installed here, so the cluster is played by tests/e2e/kube_fake.py (in this process, plain
HTTP on 127.0.0.1); berth is the release `berth serve` on a state dir of its own (bridge
`berthvk`, 10.225.0.0/16), and the virtual kubelet is `berth virtual-kubelet` against both.
Every pod is what a real cluster hands a node: one busybox container with requests, the
toleration, and the service-account volume an admission controller adds (a projected token,
the `kube-root-ca.crt` ConfigMap and the namespace through the downward API). It measures:

  1. create: --pods pods bound to the node at once; the time each is first seen Running in
     the API server (status patched by the virtual kubelet), as pods/s end to end and per
     tenth;
  2. with all of them running: the virtual kubelet's RSS, PSS, threads and open files
     against those with no pod (the memory per pod), and the requests it makes to the API
     server during --idle seconds (a watch, not a poll per pod, shows as almost none);
  3. the requests per pod over the whole run, by kind (status patches, events, token
     requests, ConfigMap reads);
  4. delete: every pod marked deleted (grace 0) → removed from the API server by the
     virtual kubelet once its group is gone, pods/s end to end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
import run as R  # noqa: E402  (bench/run.py: registry, berth, helpers)
from kube_fake import FakeApiServer  # noqa: E402

NODE = "berth-vk-scale"
NAMESPACE = "scale"
TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}


def proc_counters(pid: int) -> dict:
    out = {"pss_kib": R.pss_kib(pid), "fds": len(os.listdir(f"/proc/{pid}/fd"))}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k == "VmRSS":
            out["rss_kib"] = int(v.split()[0])
        elif k == "Threads":
            out["threads"] = int(v.split()[0])
    return out


def kind_of(method: str, path: str) -> str:
    p = path.split("?")[0]
    watch = "watch=true" in path or "watch=1" in path
    if "/leases" in p:
        return f"{method} lease"
    if "/nodes" in p:
        return f"{method} node" + ("/status" if p.endswith("/status") else "")
    if p.endswith("/token"):
        return f"{method} token"
    if "/pods" in p:
        if watch:
            return "WATCH pods"
        return f"{method} pod" + ("/status" if p.endswith("/status") else "")
    for res in ("events", "configmaps", "secrets", "serviceaccounts"):
        if f"/{res}" in p:
            return f"{method} {res}" + (" (watch)" if watch else "")
    return f"{method} other"


class VkScale:
    def __init__(self, a):
        self.a = a
        self.work = Path(tempfile.mkdtemp(prefix="berth-vkscale-"))
        self.registry = R.Registry(self.work / "registry")
        self.berth = R.Berth(a.berth, self.work / "state", self.work / "berth.log", a.bridge,
                             a.subnet)
        self.api = FakeApiServer()
        self.vk: subprocess.Popen | None = None
        self.results: dict = {"pods": a.pods}

    def start(self) -> None:
        self.registry.start()
        self.image = self.registry.push_busybox()
        self.berth.start()
        self.berth.wait_pool_full(300)
        # The pods are the account's groups: a quota above them.
        subprocess.run([str(self.a.berth), "admin", "account", "set-quota", "default",
                        "--state-dir", str(self.berth.state), "--groups",
                        str(self.a.pods + 100), "--cpu", str(self.a.pods), "--memory",
                        str(self.a.pods * 2)], check=True, capture_output=True)
        self.api.start()
        self.api.put("api/v1", "configmaps", {
            "metadata": {"name": "kube-root-ca.crt", "namespace": NAMESPACE},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
        })
        kubeconfig = self.api.kubeconfig(self.work / "kubeconfig.json")
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.vk = subprocess.Popen(
            [str(self.a.berth), "--endpoint", f"http://{self.berth.endpoint}",
             "--credentials", str(self.berth.state / "credentials.json"),
             "virtual-kubelet", "--kubeconfig", str(kubeconfig), "--node-name", NODE,
             "--node-ip", "127.0.0.1", "--address", "127.0.0.1",
             "--kubelet-port", str(R.free_port())],
            stdout=open(self.work / "virtual-kubelet.log", "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.node_ready():
            if self.vk.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the virtual kubelet did not register; see {self.work}")
            time.sleep(0.2)
        time.sleep(2)

    def node_ready(self) -> bool:
        n = self.api.get("api/v1", "nodes", "", NODE) or {}
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in n.get("status", {}).get("conditions") or [])

    def pod(self, i: int) -> dict:
        return {
            "metadata": {
                "name": f"web-{i}", "namespace": NAMESPACE, "labels": {"app": "web"},
                "annotations": {"k8s.aliyun.com/plain-http-registry": self.registry.host},
            },
            "spec": {
                "nodeName": NODE, "tolerations": [TOLERATION], "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0, "serviceAccountName": "default",
                "containers": [{
                    "name": "app", "image": self.image, "command": ["sleep", "100000"],
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                    "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                      "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                }],
                "volumes": [{"name": "kube-api-access", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                        "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ]}}],
            },
        }

    def phases(self) -> dict:
        return {p["metadata"]["name"]: (p.get("status") or {}).get("phase")
                for p in self.api.list("api/v1", "pods")}

    def requests_since(self, n: int) -> collections.Counter:
        with self.api.lock:
            reqs = list(self.api.requests[n:])
        return collections.Counter(kind_of(m, p) for m, p in reqs)

    def run(self) -> None:
        n = self.a.pods
        vk = self.vk.pid
        idle = proc_counters(vk)
        self.results["vk_no_pods"] = idle
        req0 = len(self.api.requests)
        t0 = time.perf_counter()
        for i in range(n):
            self.api.put("api/v1", "pods", self.pod(i))
        created = R.ms(t0)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 900
        while len(seen) < n:
            for name, phase in self.phases().items():
                if phase == "Running" and name not in seen:
                    seen[name] = R.ms(t0)
                elif phase == "Failed":
                    raise SystemExit(f"pod {name} failed: see {self.work}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{n - len(seen)} pods not Running after 900 s")
            time.sleep(0.2)
        times = sorted(seen.values())
        self.results["create"] = {
            "pods_put_ms": created, "all_running_ms": times[-1],
            "pods_per_s": n / (times[-1] / 1000),
            "pods_per_s_by_tenth": R_tenths(times),
        }
        time.sleep(5)
        full = proc_counters(vk)
        self.results["vk_full"] = full
        self.results["vk_per_pod"] = {
            "rss_kib": (full["rss_kib"] - idle["rss_kib"]) / n,
            "pss_kib": (full["pss_kib"] - idle["pss_kib"]) / n,
            "fds": (full["fds"] - idle["fds"]) / n,
            "threads": full["threads"] - idle["threads"],
        }
        mark = len(self.api.requests)
        time.sleep(self.a.idle)
        self.results["idle_requests"] = {"seconds": self.a.idle,
                                         "by_kind": dict(self.requests_since(mark))}
        t1 = time.perf_counter()
        for i in range(n):
            self.api.mark_deleted(NAMESPACE, f"web-{i}", grace=0)
        deadline = time.monotonic() + 900
        while self.api.list("api/v1", "pods"):
            if time.monotonic() > deadline:
                raise SystemExit("pods not removed after 900 s")
            time.sleep(0.2)
        gone = R.ms(t1)
        self.results["delete"] = {"all_removed_ms": gone, "pods_per_s": n / (gone / 1000)}
        by_kind = self.requests_since(req0)
        self.results["requests_per_pod"] = {k: round(v / n, 2) for k, v in by_kind.items()}
        self.results["vk_after"] = proc_counters(vk)

    def stop(self) -> None:
        if self.vk and self.vk.poll() is None:
            self.vk.send_signal(signal.SIGTERM)
            try:
                self.vk.wait(30)
            except subprocess.TimeoutExpired:
                self.vk.kill()
        # Whatever is left: the groups of the pods.
        try:
            eci = R.Eci(self.berth.endpoint, *self.key())
            ids = [g["ContainerGroupId"] for g in eci.call(
                "DescribeContainerGroups", Limit="100").get("ContainerGroups") or []]
            while ids:
                for gid in ids:
                    eci.delete(gid)
                time.sleep(2)
                ids = [g["ContainerGroupId"] for g in eci.call(
                    "DescribeContainerGroups", Limit="100").get("ContainerGroups") or []
                       if g.get("Status") != "Terminating"]
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            print(f"cleanup: {e}", file=sys.stderr)
        self.berth.stop()
        self.registry.stop()
        self.api.stop()

    def key(self) -> tuple[str, str]:
        k = json.loads((self.berth.state / "credentials.json").read_text())
        return k["AccessKeyId"], k["AccessKeySecret"]


def R_tenths(times: list[float]) -> list[float]:
    """Pods per second within each tenth of the pods, in the order they ran."""
    out, k = [], max(1, len(times) // 10)
    prev = 0.0
    for i in range(k - 1, len(times), k):
        out.append(round(k / ((times[i] - prev) / 1000), 1))
        prev = times[i]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--berth", type=Path, default=R.REPO / "target" / "release" / "berth")
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--bridge", default="berthvk")
    ap.add_argument("--subnet", default="10.225.0.0/16")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    s = VkScale(a)
    try:
        s.start()
        s.run()
    finally:
        s.stop()
    out = json.dumps(s.results, indent=2)
    if a.json:
        a.json.write_text(out)
    print(out)


if __name__ == "__main__":
    main()
