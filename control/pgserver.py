"""A private PostgreSQL 15 on this machine: initdb + pg_ctl in a folder of its own, on a free loopback port.

Used by `firedamp fleet` (control/fleet.py) and by the control-room tests' `pg_server` fixture
(tests/control/pg.py). As root the server runs as `postgres` (runuser), in a folder owned by it
(TOOLCHAIN.md). The cluster trusts local connections from user `fd`: a launcher for one machine's fleet
and for tests, never a production database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edge.demo.broker import free_port

BIN = Path(os.environ.get("FIREDAMP_PG_BIN", "/usr/lib/postgresql/15/bin"))
_counter = itertools.count(1)


def missing() -> str | None:
    """Why a private PostgreSQL cannot be started here (what to install), or None."""
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

    def __init__(self, prefix: str = "firedamp-pg-", max_connections: int = 200):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))  # under /tmp: `postgres` can reach it whoever we are
        self.data, self.log = self.dir / "data", self.dir / "log"
        self.port = free_port()
        self.max_connections = max_connections
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        t0 = time.monotonic()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "fd", "-E", "UTF8", "--no-sync")
        self.start()
        self.started_s = time.monotonic() - t0

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
        # fsync off: a test or demo server's crash safety is not under test (the store's retry is); 2 cores shared
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c full_page_writes=off -c max_connections={self.max_connections} -c shared_buffers=32MB")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts(), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-o", self._opts(), "-l", str(self.log), "-w",
                  "-t", "60", "restart")

    def dsn(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=fd dbname={db}"

    def create_db(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def close(self) -> None:
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
