"""Fixtures of the edge tests: `service_factory(settings)` builds a Service and stops it at teardown."""

import pytest

from edge.config import parse_config
from edge.service import Service


@pytest.fixture
def service_factory():
    services = []

    def make(settings):
        svc = Service(parse_config(settings))
        services.append(svc)
        return svc

    yield make
    for s in services:
        if s._thread and s._thread.is_alive():
            s.stop()
