"""A PostgreSQL server for the end-to-end tests: Debian's binaries, a data directory of the
test's own, listening on 127.0.0.1 on a free port (and a socket in its directory). As root,
the server runs as the `postgres` system user (PostgreSQL refuses root). A missing
PostgreSQL fails the test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from support import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "berth"


class Postgres:
    def __init__(self) -> None:
        assert (PG_BIN / "initdb").exists(), (
            f"{PG_BIN}/initdb is missing: install Debian's postgresql (.ci/run does)"
        )
        self.dir = Path(tempfile.mkdtemp(prefix="berth-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> str:
        res = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout}{res.stderr}"
        return res.stdout

    def start(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER,
                  "--no-sync")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=200")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.log), "-w", "start")

    def url(self, db: str) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str) -> str:
        res = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(db), "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        assert res.returncode == 0, f"psql {sql!r}: {res.stderr}"
        return res.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
