"""The plain-assert firmware tests (fw_*.py, shared with the MicroPython runner) collected by pytest on CPython."""

import importlib
import os

import pytest

from tests.firmware.mpy_run import MODULES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = []
for _name in MODULES:
    _mod = importlib.import_module(_name)
    CASES += [(_name, t) for t in sorted(dir(_mod)) if t.startswith("test_")]


@pytest.mark.parametrize(("module", "test"), CASES, ids=[f"{m}.{t}" for m, t in CASES])
def test_firmware(module, test, monkeypatch):
    monkeypatch.chdir(ROOT)  # the tests read tests/vectors/frames.json relative to the repository
    getattr(importlib.import_module(module), test)()
