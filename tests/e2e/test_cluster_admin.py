"""`berth admin node …`: a cluster's join tokens and nodes, managed in the store (issue 20).

On PostgreSQL (`--store`) and on the SQLite file of a state directory: a join token is made
(printed once as ID.SECRET, the store keeping only the SHA-256 of the secret), listed and
deleted; no node has joined, so `node ls` is empty and a node named is unknown; bad input is
refused with a message and a non-zero exit. `berth admin node` without a subcommand still
prints the runtime classes of this machine's node (or says berth serve has not run).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from postgres import Postgres
from support import BERTH_BIN

TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")


@pytest.fixture(scope="module")
def pg(host_ready):
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def run(state: Path, store: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(state), *store, *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def admin(state: Path, store: list[str], *args: str):
    res = run(state, store, "-o", "json", *args)
    assert res.returncode == 0, f"berth admin {' '.join(args)}: {res.stdout}{res.stderr}"
    return json.loads(res.stdout)


def refused(state: Path, store: list[str], *args: str) -> str:
    res = run(state, store, *args)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"berth admin {' '.join(args)} passed: {out}"
    assert "panicked" not in out, out
    return out


def round_trip(state: Path, store: list[str]) -> tuple[str, str]:
    """Makes two tokens, lists them, deletes one; returns the other's id and secret."""
    made = admin(state, store, "node", "token", "create", "--ttl", "2h",
                 "--description", "rack 1")
    m = TOKEN.match(made["Token"])
    assert m, made
    token_id, secret = m.groups()
    assert made["TokenId"] == token_id
    other = admin(state, store, "node", "token", "create")
    assert other["TokenId"] != token_id

    listed = admin(state, store, "node", "token", "ls")
    by_id = {t["TokenId"]: t for t in listed}
    assert set(by_id) == {token_id, other["TokenId"]}, listed
    mine = by_id[token_id]
    assert mine["Description"] == "rack 1"
    assert mine["Expired"] is False
    assert mine["ExpireTime"] == made["ExpireTime"]
    assert all(secret not in json.dumps(t) for t in listed), "a secret is listed"
    # The table names them too.
    table = run(state, store, "node", "token", "ls")
    assert table.returncode == 0 and token_id in table.stdout and "rack 1" in table.stdout

    assert admin(state, store, "node", "token", "rm", other["TokenId"])["Result"] == "deleted"
    assert "no join token" in refused(state, store, "node", "token", "rm", other["TokenId"])
    assert [t["TokenId"] for t in admin(state, store, "node", "token", "ls")] == [token_id]

    # Bad input: refused, nothing written.
    assert "between 1m and 30d" in refused(state, store, "node", "token", "create",
                                           "--ttl", "31d")
    assert "between 1m and 30d" in refused(state, store, "node", "token", "create",
                                           "--ttl", "10s")
    assert "--description" in refused(state, store, "node", "token", "create",
                                      "--description", "x" * 201)
    assert len(admin(state, store, "node", "token", "ls")) == 1

    # No node joined yet.
    assert admin(state, store, "node", "ls") == []
    for cmd in ("cordon", "uncordon", "drain", "rm"):
        assert "no node named rack-9" in refused(state, store, "node", cmd, "rack-9")
    return token_id, secret


def test_join_tokens_and_nodes_on_postgres(pg, tmp_path):
    url = pg.create_database("berth_cluster_admin")
    store = ["--store", url]
    token_id, secret = round_trip(tmp_path / "state", store)
    # PostgreSQL keeps the digest of the secret, never the secret.
    row = pg.psql("berth_cluster_admin",
                  f"SELECT digest FROM join_tokens WHERE id = '{token_id}'")
    assert row == hashlib.sha256(secret.encode()).hexdigest()
    dump = pg.psql("berth_cluster_admin", "SELECT string_agg(j::text, ' ') FROM join_tokens j")
    assert secret not in dump
    # Another state directory given the same key file (as a replica) sees the same tokens.
    other = tmp_path / "replica"
    listed = admin(other, [*store, "--store-key", str(tmp_path / "state" / "secrets.key")],
                   "node", "token", "ls")
    assert [t["TokenId"] for t in listed] == [token_id]


def test_join_tokens_and_nodes_on_sqlite(host_ready, tmp_path):
    state = tmp_path / "state"
    token_id, secret = round_trip(state, [])
    db = sqlite3.connect(state / "berth.db")
    try:
        rows = db.execute("SELECT id, digest, description FROM join_tokens").fetchall()
    finally:
        db.close()
    assert rows == [(token_id, hashlib.sha256(secret.encode()).hexdigest(), "rack 1")]
    # Without a subcommand: this machine's node, as before (berth serve never ran here).
    out = refused(state, [], "node")
    assert "has berth serve run?" in out, out
