"""Secrets at rest and the operator's /metrics, through the official SDK against a real berth:
a group pulling from a registry with basic auth runs (its password is opened where it is
used) while no answer, and no byte of berth.db, its WAL or its SHM, carries the password or
the access key's secret; /metrics answers only the operator's token."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request

import support
from support import REGISTRY_PASSWORD, container, wait_for


def _db_files(berth) -> list:
    db = berth.state_dir / "berth.db"
    return [p for p in (db, db.with_name("berth.db-wal"), db.with_name("berth.db-shm")) if p.exists()]


def test_database_and_answers_hold_no_secret(groups, client, images, berth):
    gid = groups.create(
        "e2e-secret",
        [container("c1", images.private_image, ["sleep", "3600"])],
        private=True,
        credentials=True,
    )

    def running() -> bool:
        g = support.describe(client, gid)
        return g is not None and g["Status"] == "Running"

    wait_for("the private image's group to run", running, 90, 0.5, berth.diag)

    answers = [
        json.dumps(support.list_groups(client)),
        json.dumps(support.describe(client, gid, with_event=True)),
    ]
    for text in answers:
        assert REGISTRY_PASSWORD not in text

    secret = berth.credentials()["AccessKeySecret"].encode()
    files = _db_files(berth)
    assert files, "no database files"
    for path in files:
        data = path.read_bytes()
        assert REGISTRY_PASSWORD.encode() not in data, path
        assert secret not in data, path
    key = berth.state_dir / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_metrics_answer_only_the_operator(berth):
    url = f"{berth.url}/metrics"
    for headers, status, code in (
        ({}, 401, "Unauthorized"),
        ({"Authorization": "Bearer not-the-token"}, 403, "Forbidden"),
    ):
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
            raise AssertionError(f"/metrics answered {headers} with a success")
        except urllib.error.HTTPError as exc:
            assert exc.code == status
            body = json.loads(exc.read())
            assert body["Code"] == code and body["RequestId"], body
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {berth.metrics_token}"})
    resp = urllib.request.urlopen(req, timeout=10)
    assert resp.status == 200
    assert resp.read().decode().endswith("# EOF\n")
