"""Fixtures of the control-room tests: `control_room(broker, **sections)`, `web(room)`, `edge_sim(broker)`."""

import os

import pytest

from tests.control import kit
from tests.control.pg import pg_dsn, pg_server  # noqa: F401  (a private PostgreSQL 15: the fleet store's tests)


@pytest.fixture
def control_room(tmp_path, request):
    rooms = []

    def make(broker, **sections):
        if os.environ.get("FIREDAMP_TEST_STORE") == "postgresql":  # the same tests on the fleet store
            sections["store"] = {"kind": "postgresql", "dsn": request.getfixturevalue("pg_dsn"),
                                 **sections.get("store", {})}
        room = kit.start(tmp_path / f"room{len(rooms)}", broker, **sections)
        rooms.append(room)
        return room

    yield make
    for room in rooms:
        room.stop()


@pytest.fixture
def web():
    return lambda room: kit.Web(room.http.server_address[1])


@pytest.fixture
def edge_sim():
    sims = []

    def make(broker, **kw):
        sim = kit.EdgeSim(broker, **kw)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.close()
