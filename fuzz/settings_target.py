"""Fuzz target: the board's settings file (firmware/settings.py: decode, validate, Store.load) on CPython.

Oracle: loading never raises, always yields a complete settings set in which every key is in its SCHEMA
range and the cross-field rules hold (so the board can always boot); a file is taken without a reported
problem only if it is a well-formed, checksummed file whose every known value is valid and used as written.
"""

from __future__ import annotations

import binascii
import importlib
import json
import random

from fuzz.engine import Violation, mutate, random_bytes
from hardware.twin.virtual import load_firmware

NAME = "board settings file"

load_firmware()  # firmware/ and the fake machine on sys.path, as on the board
settings = importlib.import_module("settings")


class _MemStore(settings.Store):
    """The real Store with its file primitives in memory (the fuzz loop does no disk I/O)."""

    def __init__(self, files: dict[str, bytes]):
        super().__init__("/flash")
        self.files = files

    def _read(self, path):
        if path not in self.files:
            raise OSError(2, "no such file")
        return self.files[path].decode()  # text mode: bad UTF-8 is a ValueError, as on the board


# the keys added after firmware 0.1.0 (its last key was uart_baud): a settings file may lack them
ADDED = settings.KEYS[settings.KEYS.index("uart_baud") + 1:]


def valid_value(key: str, value) -> bool:
    try:
        return settings.parse(key, value if isinstance(value, str) else repr(value)) == value
    except ValueError:
        return False


def _reason(problem: str) -> str:
    for words, reason in (("missing", "missing key or file"), ("truncated", "truncated"),
                          ("checksum", "checksum"), ("bad JSON", "bad JSON"), ("not a JSON object", "not an object"),
                          ("wrong type", "wrong type"), ("must be", "value out of range"),
                          ("custom profile needs", "cross-field rule"), ("exactly one of", "cross-field rule"),
                          ("a battery needs", "cross-field rule"), ("p_min_kpa must be <", "cross-field rule"),
                          ("utf-8", "not UTF-8"), ("codec", "not UTF-8")):
        if words in problem:
            return reason
    return "other: " + problem[:40]


def check(data: bytes) -> str:
    store = _MemStore({"/flash/settings.json": data})
    values, problem = store.load()
    if sorted(values) != sorted(settings.KEYS):
        raise Violation("loaded settings do not hold every key")
    for key in settings.KEYS:
        if not valid_value(key, values[key]):
            raise Violation(f"loaded {key}={values[key]!r} is outside its range")
    if settings.check(values):
        raise Violation(f"loaded settings break a cross-field rule: {settings.check(values)}")
    if problem is None:
        raw = settings.decode(data.decode())
        for key in settings.KEYS:
            if key not in raw:  # a file from before a key existed: its default, silently (firmware/settings.py)
                if key not in ADDED or values[key] != settings.defaults()[key]:
                    raise Violation(f"{key} missing from the file, {values[key]!r} used, with no problem reported")
                continue
            if raw[key] != values[key] or type(raw[key]) is not type(values[key]) and not (
                    isinstance(raw[key], int) and isinstance(values[key], float)):
                raise Violation(f"{key}={raw[key]!r} in the file but {values[key]!r} was used, with no problem reported")
        return "accepted"
    return _reason(problem)


_WILD = [None, True, False, [], {}, "", "x" * 40, -1, 0, 1, 10**20, 1e308, -1e308, 0.5, float("nan"),
         float("inf"), "1234", "nan", "coal_face", "ma", "９", "a b", "é", 2**63]


def generate(rng: random.Random):
    r = rng.random()
    if r < 0.05:
        return random_bytes(rng)
    if r < 0.06:  # a checksummed file of deeply nested JSON (a parser that recurses runs out of stack)
        body = rng.choice("[{") * rng.randint(100, 50000)
        return (f"{body}\n{binascii.crc32(body.encode()):08x}\n").encode()
    values = settings.defaults()
    for _ in range(rng.choice([0, 0, 1, 1, 2, 4])):
        key = rng.choice(settings.KEYS)
        op = rng.random()
        if op < 0.4:
            values[key] = rng.choice(_WILD)
        elif op < 0.6:
            values.pop(key, None)
        elif op < 0.7:
            values[key + rng.choice(["", "_x", "X"])] = rng.choice(_WILD)
        else:  # a value near its limits
            row = settings.row_of(key)
            if isinstance(row[3], (int, float)) and row[1] != 2:
                values[key] = rng.choice([row[3], row[4], row[3] - 1, row[4] + 1, row[4] * 1.0001])
    try:
        body = json.dumps(values) if rng.random() < 0.95 else json.dumps([values])
    except ValueError:
        body = "{}"
    text = f"{body}\n{binascii.crc32(body.encode()):08x}\n"
    data = text.encode()
    if r < 0.35:
        data = mutate(data, rng)
    return data


def reseal(data: bytes) -> bytes:
    """Give a mutated file a correct checksum line again (for the coverage-guided run)."""
    body = data.split(b"\n", 1)[0]
    return body + b"\n%08x\n" % binascii.crc32(body)
