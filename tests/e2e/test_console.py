"""The web console (/console) in a real headless browser: tests/console/console.test.mjs
driven by Node with playwright-core and the system's chromium, against a berth of its own
(bridge berthw0, 10.238.0.0/16). Screenshots of each page go to tests/e2e/artifacts/console.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
