"""`berth serve --store postgres://…`: the control plane's state in PostgreSQL (issue 20).

One PostgreSQL from Debian on loopback, a berth of its own on it. Groups are created, run and
deleted through the official SDK as on SQLite; a second berth on the same database is
refused (it would run the same groups); `berth admin --store` writes to the same
database while berth runs (a key made there signs requests at once, a key disabled there is
refused at once); the state outlives a graceful restart and a kill -9; the state directory
holds no SQLite database, and PostgreSQL holds the rows.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException

import support
from postgres import Postgres
from support import BERTH_BIN, container, free_port, wait_status

BRIDGE, SUBNET = "berthpg0", "10.247.0.0/16"


@pytest.fixture(scope="module")
def pg(host_ready):
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def admin(berth, url: str, *args: str) -> dict | list:
    res = subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(berth.state_dir), "--store", url,
         "-o", "json", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, f"berth admin {' '.join(args)}: {res.stdout}{res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else {}


def test_groups_accounts_and_restarts_on_postgres(images, pg):
    url = pg.create_database("berth_e2e")
    with support.own_berth("pg", ["--store", url], bridge=BRIDGE, subnet=SUBNET) as server:
        groups = support.Groups(server, images, server.tracker)
        gid = groups.create("on-pg", [container("c", images.image, ["sleep", "3600"])],
                            restart_policy="Always")
        wait_status(server.client(), gid, ["Running"])
        assert not (server.state_dir / "berth.db").exists(), "a SQLite file beside PostgreSQL"
        assert pg.psql("berth_e2e", f"SELECT status FROM groups WHERE id = '{gid}'") == "Running"

        # An account and a key made by the admin command on the same database sign at once.
        admin(server, url, "account", "create", "tenant-b")
        made = admin(server, url, "key", "create", "--account", "tenant-b")
        b = support.sdk_client(server, made)
        assert support.list_groups(b) == [], "another account sees no group of default's"
        admin(server, url, "key", "disable", "--account", "tenant-b", made["AccessKeyId"])
        with pytest.raises(ClientException) as refused:
            support.list_groups(b)
        assert refused.value.code == "InvalidAccessKeyId.Inactive", refused.value.message

        # A second berth on the same database (given its key, as a replica would be) would run
        # the same groups again: refused.
        other = server.base / "other-state"
        res = subprocess.run(
            [str(BERTH_BIN), "serve", "--listen", f"127.0.0.1:{free_port()}",
             "--state-dir", str(other), "--store", url,
             "--store-key", str(server.state_dir / "secrets.key"), "--bridge", BRIDGE, "--subnet", SUBNET,
             "--netns-pool", "0"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0 and "another berth serve runs the groups" in out, out
        assert "panicked" not in out, out

        # The records outlive a graceful restart and a crash (a restart of the same state
        # directory takes its own lease back at once).
        for stop in (server.stop, server.kill):
            stop()
            server.start()
            wait_status(server.client(), gid, ["Running"])
        got = support.describe(server.client(), gid)
        assert got["Containers"][0]["RestartCount"] == 0, support.pretty(got)

        support.delete(server.client(), gid)
        support.wait_for("the group to be gone from PostgreSQL",
                         lambda: pg.psql("berth_e2e", "SELECT count(*) FROM groups") == "0",
                         timeout=60, diag=server.diag)


def test_a_store_that_cannot_be_opened_stops_the_start(host_ready, tmp_path, pg):
    for url, why in [
        (f"postgres://berth@127.0.0.1:{pg.port}/absent", "absent"),
        ("postgres://berth:s3cret@127.0.0.1:1/berth", "Connection refused"),
        ("no such url", "URL"),
    ]:
        res = subprocess.run(
            [str(BERTH_BIN), "serve", "--listen", f"127.0.0.1:{free_port()}",
             "--state-dir", str(tmp_path / "state"), "--store", url],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0 and "panicked" not in out, out
        assert "cannot open the PostgreSQL store" in out and why in out, out
        assert "s3cret" not in out, "a password in an error"
