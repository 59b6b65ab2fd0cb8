"""A small stand-in for a Kubernetes API server, for the end-to-end tests of `berth
virtual-kubelet`: no API server can be installed from the package registries this project
reaches, so the tests play its side over plain HTTP on 127.0.0.1.

It keeps Nodes, Leases, Pods, Events, ConfigMaps and Secrets in memory, issues service-account
tokens (TokenRequest: a JWT with `iat` and `exp`, of `token_lifetime` seconds, which a test may
make shorter than a real API server's 10 minutes), with resourceVersions
and the answers a v1.30+ API server gives: lists with a resourceVersion, watches streamed as
JSON lines (chunked), 404/409 as `Status` objects, merge patches checked against the
resourceVersion they carry, deletion with a uid precondition. Only what the virtual kubelet
calls is served; anything else is a 404 recorded in `unknown`, so a test can say what was
asked that the fake does not know.
"""

from __future__ import annotations

import base64
import copy
import json
import queue
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# (group/version prefix, resource) → (kind, apiVersion, namespaced)
KINDS = {
    ("api/v1", "nodes"): ("Node", "v1", False),
    ("api/v1", "pods"): ("Pod", "v1", True),
    ("api/v1", "events"): ("Event", "v1", True),
    ("api/v1", "configmaps"): ("ConfigMap", "v1", True),
    ("api/v1", "secrets"): ("Secret", "v1", True),
    ("api/v1", "serviceaccounts"): ("ServiceAccount", "v1", True),
    ("apis/coordination.k8s.io/v1", "leases"): ("Lease", "coordination.k8s.io/v1", True),
    ("apis/node.k8s.io/v1", "runtimeclasses"): ("RuntimeClass", "node.k8s.io/v1", False),
    ("apis/authentication.k8s.io/v1", "tokenreviews"): (
        "TokenReview",
        "authentication.k8s.io/v1",
        False,
    ),
    ("apis/authorization.k8s.io/v1", "subjectaccessreviews"): (
        "SubjectAccessReview",
        "authorization.k8s.io/v1",
        False,
    ),
}

PATH = re.compile(
    r"^/(?P<gv>api/v1|apis/[^/]+/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<res>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?"
    r"(?:/(?P<sub>status|token))?$"
)


class FakeApiServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rv = 100
        # (gv, resource) → {(ns, name): object}
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.watchers: list[tuple[tuple[str, str], str | None, queue.Queue]] = []
        self.requests: list[tuple[str, str]] = []
        # TokenReview: token → (user, groups); SubjectAccessReview: user → allowed verbs.
        self.tokens: dict[str, tuple[str, list[str]]] = {}
        self.grants: dict[str, set[str]] = {}
        self.reviews: list[dict] = []
        # TokenRequest: the lifetime of the tokens issued, and the tokens, in order.
        self.token_lifetime = 3600
        self.issued: list[str] = []
        self.unknown: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeApiServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            for _, _, q in self.watchers:
                q.put(None)
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "vk", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "vk"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # ------------------------------------------------------------------ store

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _table(self, gv: str, res: str) -> dict:
        return self.objects.setdefault((gv, res), {})

    def _notify(self, gv: str, res: str, kind: str, obj: dict) -> None:
        for key, selector_node, q in list(self.watchers):
            if key != (gv, res):
                continue
            if selector_node is not None and obj.get("spec", {}).get("nodeName") != selector_node:
                continue
            q.put({"type": kind, "object": copy.deepcopy(obj)})

    def put(self, gv: str, res: str, obj: dict) -> dict:
        """Creates or replaces an object as a user would (kubectl apply), notifying watchers."""
        kind, api_version, _ = KINDS[(gv, res)]
        with self.lock:
            meta = obj.setdefault("metadata", {})
            key = (meta.get("namespace", ""), meta["name"])
            table = self._table(gv, res)
            existed = key in table
            obj["kind"], obj["apiVersion"] = kind, api_version
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta["resourceVersion"] = self._next_rv()
            table[key] = copy.deepcopy(obj)
            self._notify(gv, res, "MODIFIED" if existed else "ADDED", obj)
            return copy.deepcopy(obj)

    def get(self, gv: str, res: str, ns: str, name: str) -> dict | None:
        with self.lock:
            o = self._table(gv, res).get((ns, name))
            return copy.deepcopy(o) if o else None

    def list(self, gv: str, res: str) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for o in self._table(gv, res).values()]

    def mark_deleted(self, ns: str, name: str, grace: int = 30) -> None:
        """What `kubectl delete pod` does to a pod on a node: sets its deletion timestamp."""
        with self.lock:
            pod = self._table("api/v1", "pods")[(ns, name)]
            pod["metadata"]["deletionTimestamp"] = now_rfc3339()
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            pod["metadata"]["resourceVersion"] = self._next_rv()
            self._notify("api/v1", "pods", "MODIFIED", pod)

    # ------------------------------------------------------------------ HTTP

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}") if n else {}

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append((method, self.path))
                m = PATH.match(url.path)
                if not m or (m["gv"], m["res"]) not in KINDS:
                    with fake.lock:
                        fake.unknown.append(f"{method} {self.path}")
                    self._send(404, status(404, "NotFound", f"no route {url.path}"))
                    return
                gv, res, ns, name, sub = m["gv"], m["res"], m["ns"] or "", m["name"], m["sub"]
                try:
                    getattr(self, f"_{method.lower()}")(gv, res, ns, name, sub, q)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def _get(self, gv, res, ns, name, sub, q) -> None:
                kind, api_version, _ = KINDS[(gv, res)]
                if name is not None:
                    o = fake.get(gv, res, ns, name)
                    if o is None:
                        self._send(404, status(404, "NotFound", f'{res} "{name}" not found'))
                    else:
                        self._send(200, o)
                    return
                node = None
                sel = q.get("fieldSelector", "")
                if sel.startswith("spec.nodeName="):
                    node = sel.split("=", 1)[1]
                if q.get("watch") in ("true", "1"):
                    self._watch(gv, res, node, q)
                    return
                with fake.lock:
                    items = [
                        copy.deepcopy(o)
                        for (ons, _), o in fake._table(gv, res).items()
                        if (not ns or ons == ns)
                        and (node is None or o.get("spec", {}).get("nodeName") == node)
                    ]
                    rv = str(fake.rv)
                self._send(
                    200,
                    {
                        "kind": kind + "List",
                        "apiVersion": api_version,
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    },
                )

            def _watch(self, gv, res, node, q) -> None:
                events: queue.Queue = queue.Queue()
                entry = ((gv, res), node, events)
                with fake.lock:
                    fake.watchers.append(entry)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                deadline = time.monotonic() + min(int(q.get("timeoutSeconds", "290")), 290)
                try:
                    while time.monotonic() < deadline:
                        try:
                            ev = events.get(timeout=1)
                        except queue.Empty:
                            continue
                        if ev is None:
                            break
                        data = json.dumps(ev).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                finally:
                    with fake.lock:
                        fake.watchers.remove(entry)
                    self.close_connection = True

            def _review(self, res: str, body: dict) -> dict:
                spec = body.get("spec", {})
                with fake.lock:
                    fake.reviews.append(body)
                    if res == "tokenreviews":
                        who = fake.tokens.get(spec.get("token", ""))
                        body["status"] = (
                            {"authenticated": True, "user": {"username": who[0], "groups": who[1]}}
                            if who
                            else {"authenticated": False, "error": "unknown token"}
                        )
                    else:
                        attrs = spec.get("resourceAttributes") or {}
                        ok = attrs.get("verb") in fake.grants.get(spec.get("user", ""), set())
                        body["status"] = {"allowed": ok}
                return body

            def _token(self, ns: str, account: str, body: dict) -> dict:
                """A TokenRequest's answer: a JWT bound to the pod asked for."""
                b64 = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()
                now = int(time.time())
                with fake.lock:
                    life = fake.token_lifetime
                    bound = (body.get("spec") or {}).get("boundObjectRef") or {}
                    claims = {
                        "iat": now, "exp": now + life, "jti": uuid.uuid4().hex,
                        "sub": f"system:serviceaccount:{ns}:{account}",
                        "kubernetes.io": {"pod": {"name": bound.get("name"), "uid": bound.get("uid")}},
                    }
                    token = f"{b64({'alg': 'RS256'})}.{b64(claims)}.c2ln"
                    fake.issued.append(token)
                body["kind"], body["apiVersion"] = "TokenRequest", "authentication.k8s.io/v1"
                body["status"] = {
                    "token": token,
                    "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + life)),
                }
                return body

            def _post(self, gv, res, ns, name, sub, q) -> None:
                kind, api_version, namespaced = KINDS[(gv, res)]
                body = self._body()
                if res in ("tokenreviews", "subjectaccessreviews"):
                    body["kind"], body["apiVersion"] = kind, api_version
                    self._send(201, self._review(res, body))
                    return
                if res == "serviceaccounts" and sub == "token":
                    self._send(201, self._token(ns, name, body))
                    return
                meta = body.setdefault("metadata", {})
                if namespaced:
                    meta["namespace"] = ns
                if "name" not in meta and "generateName" in meta:
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                with fake.lock:
                    exists = (meta.get("namespace", ""), meta.get("name")) in fake._table(gv, res)
                if exists:
                    self._send(
                        409,
                        status(409, "AlreadyExists", f'{res} "{meta["name"]}" already exists'),
                    )
                    return
                meta.pop("resourceVersion", None)
                self._send(201, fake.put(gv, res, body))

            def _put(self, gv, res, ns, name, sub, q) -> None:
                body = self._body()
                with fake.lock:
                    cur = fake._table(gv, res).get((ns, name))
                if cur is None:
                    self._send(404, status(404, "NotFound", f'{res} "{name}" not found'))
                    return
                if body.get("metadata", {}).get("resourceVersion") != cur["metadata"][
                    "resourceVersion"
                ]:
                    self._send(409, status(409, "Conflict", "the object has been modified"))
                    return
                body["metadata"]["uid"] = cur["metadata"]["uid"]
                self._send(200, fake.put(gv, res, body))

            def _patch(self, gv, res, ns, name, sub, q) -> None:
                ctype = self.headers.get("Content-Type", "")
                body = self._body()
                if "merge-patch" not in ctype:
                    self._send(415, status(415, "UnsupportedMediaType", ctype))
                    return
                with fake.lock:
                    cur = fake._table(gv, res).get((ns, name))
                if cur is None:
                    self._send(404, status(404, "NotFound", f'{res} "{name}" not found'))
                    return
                want = body.get("metadata", {}).get("resourceVersion")
                if want is not None and want != cur["metadata"]["resourceVersion"]:
                    self._send(409, status(409, "Conflict", "the object has been modified"))
                    return
                if sub == "status":
                    new = copy.deepcopy(cur)
                    new["status"] = merge_patch(cur.get("status"), body.get("status", {}))
                else:
                    body.get("metadata", {}).pop("resourceVersion", None)
                    new = merge_patch(cur, {k: v for k, v in body.items() if k != "status"})
                self._send(200, fake.put(gv, res, new))

            def _delete(self, gv, res, ns, name, sub, q) -> None:
                body = self._body()
                with fake.lock:
                    table = fake._table(gv, res)
                    cur = table.get((ns, name))
                    if cur is None:
                        self._send(404, status(404, "NotFound", f'{res} "{name}" not found'))
                        return
                    uid = (body.get("preconditions") or {}).get("uid")
                    if uid is not None and uid != cur["metadata"]["uid"]:
                        self._send(409, status(409, "Conflict", "uid precondition failed"))
                        return
                    del table[(ns, name)]
                    cur["metadata"]["resourceVersion"] = fake._next_rv()
                    fake._notify(gv, res, "DELETED", cur)
                self._send(200, cur)

        return Handler
