"""The web console (/console) in a real headless browser: tests/console/console.test.mjs
driven by Node with playwright-core and the system's chromium, against a berth of its own
(bridge berthw0, 10.238.0.0/16). Screenshots of each page go to tests/e2e/artifacts/console.
A session made before a restart of berth is still signed in after it (sessions are kept in the
store).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

import support

BRIDGE = "berthw0"
SUBNET = "10.238.0.0/16"
CONSOLE_TESTS = support.REPO / "tests" / "console"
ARTIFACTS = support.REPO / "tests" / "e2e" / "artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def console_berth(host_ready):
    with support.own_berth("console", bridge=BRIDGE, subnet=SUBNET) as server:
        yield server


def test_console_in_a_browser(console_berth, images):
    problems = []
    if shutil.which("node") is None:
        problems.append("node is not installed (apt-get install nodejs)")
    if not Path(CHROMIUM).exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    if not (CONSOLE_TESTS / "node_modules" / "playwright-core").is_dir():
        problems.append(f"playwright-core is not installed: (cd {CONSOLE_TESTS} && npm ci)")
    if problems:
        pytest.fail("console test prerequisites missing:\n  " + "\n  ".join(problems))

    first = console_berth.credentials()
    _, second = support.new_account(console_berth, "console-other")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    env = dict(os.environ)
    env.update(
        BERTH_URL=console_berth.url,
        KEY1_ID=first["AccessKeyId"],
        KEY1_SECRET=first["AccessKeySecret"],
        KEY2_ID=second["AccessKeyId"],
        KEY2_SECRET=second["AccessKeySecret"],
        IMAGE=images.image,
        SHOTS=str(ARTIFACTS),
        CHROMIUM=CHROMIUM,
    )
    print(f"console screenshots: {ARTIFACTS}")
    res = subprocess.run(
        ["node", "console.test.mjs"],
        cwd=CONSOLE_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(res.stdout)
    assert res.returncode == 0, (
        f"the browser test failed (exit {res.returncode}); screenshots in {ARTIFACTS}\n"
        f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}\n{console_berth.diag()}"
    )
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    for page in ("create", "groups", "group", "caches", "usage", "second-account-phone"):
        assert f"{page}.png" in shots, shots


def _console_request(server, method: str, path: str, cookie: str = "", body: str | None = None):
    conn = http.client.HTTPConnection(server.endpoint, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    text = r.read().decode(errors="replace")
    conn.close()
    return r.status, r.getheader("Location") or "", r.getheader("Set-Cookie") or "", text


def test_a_console_session_outlives_a_restart_of_berth(console_berth):
    creds = console_berth.credentials()
    form = urllib.parse.urlencode(
        {"access_key_id": creds["AccessKeyId"], "access_key_secret": creds["AccessKeySecret"]}
    )
    status, location, set_cookie, _ = _console_request(console_berth, "POST", "/console/sign-in", body=form)
    assert (status, location) == (303, "/console/groups"), (status, location)
    cookie = set_cookie.split(";")[0]
    status, _, _, page = _console_request(console_berth, "GET", "/console/groups", cookie)
    assert status == 200, status
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)

    console_berth.stop()
    console_berth.start()

    status, _, _, page = _console_request(console_berth, "GET", "/console/groups", cookie)
    assert status == 200, f"the session did not outlive the restart: {status}"
    assert csrf in page, "the session's CSRF token changed with the restart"
    status, location, _, _ = _console_request(
        console_berth, "POST", "/console/sign-out", cookie, urllib.parse.urlencode({"csrf": csrf})
    )
    assert status == 303, status
    status, location, _, _ = _console_request(console_berth, "GET", "/console/groups", cookie)
    assert (status, location) == (303, "/console/sign-in"), "sign-out ended the session"
