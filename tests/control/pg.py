"""A private PostgreSQL 15 for the control-room tests: one server per test session on a free loopback port, a
fresh database per test. As root the server runs as `postgres` (runuser), in a temp dir owned by it.

When postgresql-15 or psycopg is missing, the tests that need it skip and say what to install.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from edge.demo.broker import free_port

BIN = Path(os.environ.get("FIREDAMP_PG_BIN", "/usr/lib/postgresql/15/bin"))
_counter = itertools.count(1)


def missing() -> str | None:
    """Why a PostgreSQL test cannot run here (what to install), or None."""
    if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
        return f"needs PostgreSQL 15 ({BIN}/initdb): install it with: sudo apt-get install postgresql-15"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs psycopg 3: .venv/bin/pip install 'psycopg[binary]' (the fleet extra)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "needs runuser (util-linux) to start PostgreSQL as the postgres user"
    return None


class PgServer:
    """initdb + pg_ctl in a temp dir; `dsn(db)`, `create_db()`, and stop/start/restart for fault tests."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="firedamp-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "log"
        self.port = free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "fd", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(BIN / tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr.strip()}\n{tail}")
        return out

    def _opts(self) -> str:
        # fsync off: a test server's crash safety is not under test (the store's retry is); 2 cores shared
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts(), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-o", self._opts(), "-l", str(self.log), "-w",
                  "-t", "60", "restart")

    def dsn(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=fd dbname={db}"

    def create_db(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def close(self) -> None:
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    why = missing()
    if why:
        pytest.skip(why)
    t0 = time.monotonic()
    server = PgServer()
    server.started_s = time.monotonic() - t0
    yield server
    server.close()


@pytest.fixture
def pg_dsn(pg_server):
    """The DSN of a fresh, empty database on the session's server."""
    return pg_server.dsn(pg_server.create_db())
