"""The default seccomp profile, tried from inside containers under crun (the session's berth)
and runc (conftest's runc berth): no user or mount namespace, no mount, while a shell,
sleep and networking go on; an operator's per-account profile applies to that account's
groups only, `unconfined` removes the filter, and a broken profile is refused when it is set."""

from __future__ import annotations

import json

import support
from support import container, pretty, wait_status
from test_tenancy import admin, admin_ok, new_account, owned, sdk  # noqa: F401 (owned is a fixture)

SLEEPER = ["sleep", "3600"]

# Each probe prints name=0 when the kernel refused its syscall with EPERM (one exec each: an
# exec command is at most 256 characters).
PROBES = [
    "grep -q '^Seccomp:[[:space:]]*2' /proc/self/status; echo filtered=$?",
    "unshare -U true 2>&1 | grep -q 'Operation not permitted'; echo userns=$?",
    "unshare -m true 2>&1 | grep -q 'Operation not permitted'; echo mountns=$?",
    "mkdir -p /mnt; mount -t tmpfs none /mnt 2>&1 | grep -qi 'permi'; echo mount=$?",
]
CONFINED = ["filtered=0", "userns=0", "mountns=0", "mount=0"]

# Ordinary work under the filter: a shell pipeline, sleep, netlink and TCP.
WORK = [
    "sleep 0.1 && echo sleep=ok",
    "ip -4 addr show eth0 | grep -q 'inet ' && echo net=ok",
    "httpd -p 127.0.0.1:8080 -h /etc; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n'"
    " | nc -w 3 127.0.0.1 8080 | head -1",
]

# Allows everything but mkdir: what an account's own profile does is easy to see.
NO_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def _sleeper(groups, client, images, name: str, owned=None) -> str:
    gid = groups.create(name, [container("c", images.image, SLEEPER)], client=client)
    if owned is not None:
        owned.append((client, gid))
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    return gid


def _assert_confined(client, gid: str) -> None:
    out = "".join(support.exec_sh(client, gid, script) for script in PROBES + WORK)
    lines = out.splitlines()
    for want in CONFINED + ["sleep=ok", "net=ok"]:
        assert want in lines, f"{want} missing from:\n{out}"
    assert any(line.startswith("HTTP/1.") and " 200" in line for line in lines), out


def test_the_default_profile_confines_and_work_goes_on(berth, client, groups, images):
    gid = _sleeper(groups, client, images, "seccomp-default")
    _assert_confined(client, gid)
    # The container's own process (pid 1) carries the filter too, not only exec'd ones.
    out = support.exec_sh(client, gid, "grep '^Seccomp:' /proc/1/status")
    assert out.split() == ["Seccomp:", "2"], out


def test_an_accounts_profile_is_its_own(berth, client, groups, images, owned, tmp_path):
    name, key = new_account(berth, "seccomp")
    theirs = sdk(berth, key)
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps(NO_MKDIR))
    admin_ok(berth, "account", "set-seccomp", name, str(profile))
    assert json.loads(admin_ok(berth, "account", "show-seccomp", name)) == NO_MKDIR

    gid = _sleeper(groups, theirs, images, "seccomp-own", owned)
    out = support.exec_sh(theirs, gid, "mkdir /tmp/x 2>&1; echo rc=$?; unshare -U true && echo userns=ok")
    assert "Operation not permitted" in out and "rc=1" in out, out
    # The account's profile replaces the default one: user namespaces are open under it.
    assert "userns=ok" in out, out
    # The other accounts keep the default.
    mine = _sleeper(groups, client, images, "seccomp-mine")
    out = support.exec_sh(client, mine, "mkdir /tmp/x && echo made")
    assert "made" in out, out
    _assert_confined(client, mine)

    admin_ok(berth, "account", "set-seccomp", name, "unconfined")
    assert admin_ok(berth, "account", "show-seccomp", name).strip() == "unconfined"
    free = _sleeper(groups, theirs, images, "seccomp-free", owned)
    out = support.exec_sh(theirs, free, "grep '^Seccomp:' /proc/self/status")
    assert out.split() == ["Seccomp:", "0"], out
    # Groups started before keep what they started with.
    out = support.exec_sh(theirs, gid, "mkdir /tmp/y 2>&1; echo rc=$?")
    assert "rc=1" in out, out

    admin_ok(berth, "account", "set-seccomp", name, "default")
    back = _sleeper(groups, theirs, images, "seccomp-back", owned)
    _assert_confined(theirs, back)


def test_a_broken_profile_is_refused_when_set(berth, tmp_path):
    name, _ = new_account(berth, "seccomp-bad")
    cases = {
        "json.json": ("{oops", "not a seccomp profile"),
        "action.json": ('{"defaultAction": "SCMP_ACT_PERHAPS"}', "SCMP_ACT_PERHAPS"),
        "field.json": ('{"defaultAction": "SCMP_ACT_ERRNO", "sycalls": []}', "sycalls"),
        "big.json": (" " * (256 * 1024 + 1), "more than"),
    }
    for file, (text, says) in cases.items():
        path = tmp_path / file
        path.write_text(text)
        r = admin(berth, "account", "set-seccomp", name, str(path))
        assert r.returncode != 0 and says in r.stderr, f"{file}: {r.stdout}\n{r.stderr}"
    r = admin(berth, "account", "set-seccomp", "nobody-here", "unconfined")
    assert r.returncode != 0 and "nobody-here" in r.stderr, r.stderr
    # Nothing was stored.
    assert admin_ok(berth, "account", "show-seccomp", name).strip() == "default"


def test_the_default_profile_confines_under_runc(runc_berth, runc_groups, images):
    """Under conftest's runc berth: runc compiles the profile itself at every start."""
    client = runc_berth.client()
    gid = runc_groups.create("seccomp-runc", [container("c", images.image, SLEEPER)], client=client)
    wait_status(client, gid, ["Running"], 60, never=["Failed"])
    _assert_confined(client, gid)


def test_show_seccomp_of_an_unknown_account_fails(berth):
    r = admin(berth, "account", "show-seccomp", "no-such-account")
    assert r.returncode != 0 and "no account named no-such-account" in r.stderr, pretty(
        {"stdout": r.stdout, "stderr": r.stderr}
    )
