"""A private PostgreSQL 15 for the control-room tests: one server per test session on a free loopback port, a
fresh database per test, started by the product's launcher (control/pgserver.py; as root it runs as
`postgres` via runuser, in a temp dir owned by it).

When postgresql-15 or psycopg is missing, the tests that need it skip and say what to install.
"""

from __future__ import annotations

import pytest

from control.pgserver import BIN, PgServer, missing  # noqa: F401


@pytest.fixture(scope="session")
def pg_server():
    why = missing()
    if why:
        pytest.skip(why)
    server = PgServer()
    yield server
    server.close()


@pytest.fixture
def pg_dsn(pg_server):
    """The DSN of a fresh, empty database on the session's server."""
    return pg_server.dsn(pg_server.create_db())
