"""Tenancy: accounts and keys made with `berth admin` while `berth serve` runs, one account's
groups out of another's reach, disabled keys and accounts refused, ClientToken under
concurrency, and the modes of the state files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config

import support
from support import BERTH_BIN, REGION, container, pretty, wait_for

SLEEPER = ["sleep", "3600"]


def admin(berth, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BERTH_BIN), "admin", "--state-dir", str(berth.state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def admin_ok(berth, *args: str):
    r = admin(berth, *args)
    assert r.returncode == 0, f"berth admin {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return json.loads(r.stdout) if "-o" in args else r.stdout


def new_account(berth, prefix: str) -> tuple[str, dict]:
    """An account made with `berth admin` and a key of it (as `-o json` prints it)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin_ok(berth, "account", "create", name)
    key = admin_ok(berth, "key", "create", "--account", name, "-o", "json")
    assert key["Account"] == name, pretty(key)
    return name, key


def sdk(berth, key: dict) -> Client:
    return Client(
        Config(
            access_key_id=key["AccessKeyId"],
            access_key_secret=key["AccessKeySecret"],
            endpoint=berth.endpoint,
            protocol="http",
            region_id=REGION,
            connect_timeout=5000,
            read_timeout=60000,
        )
    )


def ids_of(client: Client) -> set[str]:
    return {g["ContainerGroupId"] for g in support.list_groups(client)}


@pytest.fixture
def owned(berth, tracker):
    """Groups made by other accounts' clients: deleted through their own client at the end."""
    made: list[tuple[Client, str]] = []
    yield made
    for client, gid in made:
        try:
            support.delete(client, gid)
        except ClientException as exc:
            if exc.status_code != 404:
                raise
    for client, gid in made:
        tracker.add(gid)
        wait_for(
            f"group {gid} to be deleted",
            lambda c=client, g=gid: support.describe(c, g) is None,
            60,
            diag=berth.diag,
        )


def create(client: Client, images, name: str, **kw) -> str:
    resp = client.create_container_group(
        models.CreateContainerGroupRequest(
            region_id=REGION,
            container_group_name=name,
            restart_policy="Never",
            container=[container("main", images.image, SLEEPER, cpu=0.25, memory=0.5)],
            plain_http_registry=images.registry,
            termination_grace_period_seconds=1,
            **kw,
        )
    )
    return resp.body.container_group_id


def refused(call) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


# ----------------------------------------------------------------------------- admin commands


def test_admin_manages_accounts_and_keys_of_a_running_server(berth):
    name, first = new_account(berth, "team")
    second = admin_ok(berth, "key", "create", "--account", name, "-o", "json")
    assert first["AccessKeyId"] != second["AccessKeyId"]

    accounts = {a["Name"]: a for a in admin_ok(berth, "account", "ls", "-o", "json")}
    assert accounts[name]["Status"] == "Enabled" and accounts[name]["Keys"] == 2, pretty(accounts)
    assert "default" in accounts, pretty(accounts)
    keys = admin_ok(berth, "key", "ls", "--account", name, "-o", "json")
    assert {k["AccessKeyId"] for k in keys} == {first["AccessKeyId"], second["AccessKeyId"]}
    assert all("AccessKeySecret" not in k for k in keys), pretty(keys)
    # The secret is printed once: the listing never shows it.
    listing = admin_ok(berth, "key", "ls", "--account", name)
    assert first["AccessKeySecret"] not in listing

    # Both keys work at once, without a restart.
    for key in (first, second):
        assert ids_of(sdk(berth, key)) == set()

    # Mistakes are refused and change nothing.
    assert admin(berth, "account", "create", name).returncode != 0
    assert admin(berth, "account", "create", "bad name").returncode != 0
    assert admin(berth, "key", "create", "--account", "no-such-account").returncode != 0
    other, _ = new_account(berth, "other")
    assert admin(berth, "key", "rm", "--account", other, first["AccessKeyId"]).returncode != 0

    admin_ok(berth, "key", "rm", "--account", name, second["AccessKeyId"])
    exc = refused(lambda: ids_of(sdk(berth, second)))
    assert exc.code == "InvalidAccessKeyId.NotFound", exc.message
    assert ids_of(sdk(berth, first)) == set()

    # The first account's credentials still work.
    ids_of(berth.client())  # raises if the first account's key were refused


def test_admin_works_on_a_stopped_server(berth):
    berth.stop()
    try:
        name, key = new_account(berth, "offline")
    finally:
        berth.start()
    assert ids_of(sdk(berth, key)) == set()
    admin_ok(berth, "account", "disable", name)
    exc = refused(lambda: ids_of(sdk(berth, key)))
    assert exc.code == "InvalidAccessKeyId.Inactive", exc.message
    ids_of(berth.client())  # raises if the first account's key were refused


# ----------------------------------------------------------------------------- isolation


def test_another_account_cannot_reach_a_group(berth, images, owned):
    _, key_a = new_account(berth, "a")
    _, key_b = new_account(berth, "b")
    a, b = sdk(berth, key_a), sdk(berth, key_b)
    gid = create(a, images, "owned-by-a")
    owned.append((a, gid))
    support.wait_status(a, gid, ["Running"], diag=berth.diag)

    assert gid not in ids_of(b)
    assert support.describe(b, gid) is None
    assert gid not in ids_of(berth.client())
    exc = refused(
        lambda: b.restart_container_group(
            models.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid)
        )
    )
    assert exc.status_code == 404, f"{exc.code} {exc.message}"
    exc = refused(lambda: support.delete(b, gid))
    assert exc.status_code == 404, f"{exc.code} {exc.message}"
    exc = refused(lambda: support.logs(b, gid, "main"))
    assert exc.status_code == 404, f"{exc.code} {exc.message}"

    group = support.describe(a, gid)
    assert group is not None and group["Status"] == "Running", pretty(group)
    assert group["Containers"][0]["RestartCount"] == 0, pretty(group)


# ----------------------------------------------------------------------------- disabled keys


def test_disabled_key_and_account_are_refused(berth, images, owned):
    name, key = new_account(berth, "off")
    spare = admin_ok(berth, "key", "create", "--account", name, "-o", "json")
    client = sdk(berth, key)
    # The key served a request first, so the server has checked it already.
    assert ids_of(client) == set()

    admin_ok(berth, "key", "disable", "--account", name, key["AccessKeyId"])
    exc = refused(lambda: create(client, images, "refused-key"))
    assert (exc.status_code, exc.code) == (400, "InvalidAccessKeyId.Inactive"), exc.message
    assert exc.request_id
    assert ids_of(sdk(berth, spare)) == set(), "a refused create made a group"

    admin_ok(berth, "key", "enable", "--account", name, key["AccessKeyId"])
    gid = create(client, images, "allowed-again")
    owned.append((client, gid))

    admin_ok(berth, "account", "disable", name)
    for c in (client, sdk(berth, spare)):
        exc = refused(lambda c=c: ids_of(c))
        assert (exc.status_code, exc.code) == (400, "InvalidAccessKeyId.Inactive"), exc.message
    exc = refused(lambda: support.delete(client, gid))
    assert exc.code == "InvalidAccessKeyId.Inactive", exc.message
    accounts = {a["Name"]: a for a in admin_ok(berth, "account", "ls", "-o", "json")}
    assert accounts[name]["Status"] == "Disabled"

    admin_ok(berth, "account", "enable", name)
    assert ids_of(client) == {gid}, "the group changed while its account was disabled"


# ----------------------------------------------------------------------------- ClientToken


def test_fifty_concurrent_creates_with_one_token_make_one_group(berth, images, owned):
    _, key = new_account(berth, "tok")
    client = sdk(berth, key)
    token = f"tok-{uuid.uuid4().hex}"

    def attempt(_: int) -> str:
        # One client per thread: the SDK's client is not meant to be shared.
        return create(sdk(berth, key), images, "idempotent", client_token=token)

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = set(pool.map(attempt, range(50)))
    assert len(ids) == 1, ids
    [gid] = ids
    owned.append((client, gid))
    groups = support.list_groups(client)
    assert [g["ContainerGroupId"] for g in groups] == [gid], pretty(groups)

    exc = refused(lambda: create(client, images, "other-name", client_token=token))
    assert (exc.status_code, exc.code) == (400, "IdempotentParameterMismatch"), exc.message
    exc = refused(lambda: create(client, images, "too-long", client_token="x" * 65))
    assert exc.status_code == 400 and exc.code.startswith("InvalidParameter"), exc.code

    # After the delete, a retry answers the same id and starts nothing new.
    support.delete(client, gid)
    wait_for("the group to be deleted", lambda: support.describe(client, gid) is None, 60)
    assert create(client, images, "idempotent", client_token=token) == gid
    assert support.list_groups(client) == []


# ----------------------------------------------------------------------------- file modes


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_private(berth) -> None:
    assert mode(berth.state_dir) == 0o700, oct(mode(berth.state_dir))
    db = berth.state_dir / "berth.db"
    for path in (db, db.with_name("berth.db-wal"), db.with_name("berth.db-shm")):
        if path.exists():
            assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"


def test_state_files_are_private_and_tightened_at_start(berth):
    assert_private(berth)
    assert mode(berth.credentials_path) == 0o600
    berth.stop()
    db = berth.state_dir / "berth.db"
    os.chmod(berth.state_dir, 0o755)
    os.chmod(db, 0o644)
    berth.start()
    assert_private(berth)
    log = berth.log.read_text(errors="replace")
    assert "tightened" in log and "berth.db" in log, berth.diag(40)
