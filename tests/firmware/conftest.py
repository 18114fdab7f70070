"""Firmware tests run on CPython with firmware/ and the fake machine (hardware/twin/machine.py) on the path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("tests/firmware", "hardware/twin", "firmware"):
    p = str(ROOT / sub)
    if p not in sys.path:
        sys.path.insert(0, p)
