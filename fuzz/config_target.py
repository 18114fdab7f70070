"""Fuzz target: edge.toml through `edge.config.load` (TOML text → validated Config).

Oracle: load either returns a Config or raises ConfigError (never another exception); an accepted Config has
every value of the type and in the range its field declares, and the TLS rule holds (tls_required ⇒ tls).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile

from edge import config as cfgmod
from edge.errors import ConfigError
from fuzz.engine import Violation, mutate, random_bytes

NAME = "edge.toml"

_DIR = tempfile.mkdtemp(prefix="fuzz-edge-toml-")
_PATH = os.path.join(_DIR, "edge.toml")
_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _check_section(obj, where: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if dataclasses.is_dataclass(value):
            _check_section(value, f"{where}{f.name}.")
            continue
        if kind == "list[BoardConfig]":
            for b in value:
                _check_section(b, f"{where}{f.name}[].")
            continue
        if kind == "list[str]":  # [mqtt] servers
            if not isinstance(value, list) or any(type(v) is not str for v in value):
                raise Violation(f"{where}{f.name} = {value!r} is not a list of strings")
            continue
        want = _TYPES[kind]
        if type(value) is not want:
            raise Violation(f"{where}{f.name} = {value!r} is not a {kind}")
        meta = f.metadata
        if "range" in meta and not meta["range"][0] <= value <= meta["range"][1]:
            raise Violation(f"{where}{f.name} = {value!r} is outside {meta['range']}")
        if "choices" in meta and value not in meta["choices"]:
            raise Violation(f"{where}{f.name} = {value!r} is not one of {meta['choices']}")
        if "pattern" in meta and not meta["pattern"].fullmatch(value):
            raise Violation(f"{where}{f.name} = {value!r} breaks {meta['allowed']}")


def _reason(msg: str) -> str:
    for words, reason in (("not valid TOML", "not TOML"), ("unknown key", "unknown key"), ("is required", "missing key"),
                          ("must be a table", "not a table"), ("must be a list", "not a list"),
                          ("listed twice", "port twice"), ("tls_required", "TLS required but off"),
                          ("password", "password rule"), ("reconnect_max_s", "reconnect order"),
                          ("go together", "cert without key"), ("no such file", "file missing"),
                          ("is not allowed", "value out of range or wrong type")):
        if words in msg:
            return reason
    return "other: " + msg[:40]


def check(data: bytes) -> str:
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        cfg = cfgmod.load(_PATH)
    except ConfigError as exc:
        if _PATH not in str(exc):
            raise Violation(f"the error does not name the file: {exc}") from None
        return _reason(str(exc))
    _check_section(cfg, "")
    if cfg.mqtt.tls_required and not cfg.mqtt.tls:
        raise Violation("tls_required = true accepted without tls")
    if len({b.port for b in cfg.boards}) != len(cfg.boards):
        raise Violation("the same port listed twice")
    return "accepted"


# ---------------------------------------------------------------------------------------------- generator

def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_WILD = [True, False, 0, -1, 1, 65536, 2**63, 0.0, -0.5, 1e308, float("inf"), float("nan"), "", "x", "a b", "a/b",
         "../../etc", "é", "5", "3.1.1", "4", "debug", "loud", [], [1], {}, {"port": "/dev/x"}, "\x00", "#", "+"]
_SECTIONS = {"": cfgmod.Config, "mqtt": cfgmod.MqttConfig, "model": cfgmod.ModelConfig, "policy": cfgmod.PolicyConfig,
             "outbox": cfgmod.OutboxConfig, "history": cfgmod.HistoryConfig}


def _valid(field: dataclasses.Field, rng: random.Random):
    meta = field.metadata
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if "choices" in meta:
        return rng.choice(meta["choices"])
    if "range" in meta:
        lo, hi = meta["range"]
        v = rng.choice([lo, hi, rng.uniform(lo, hi)])
        return int(round(v)) if kind == "int" else float(v)
    if "pattern" in meta:
        return rng.choice(["mine-a", "pi_01", "A" * 32, "x"])
    return {"bool": rng.random() < 0.5, "str": rng.choice(["", "/tmp/x", "localhost"])}.get(kind, None)


def generate(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.05:
        return random_bytes(rng)
    if r < 0.06:
        return b"site = " + rng.choice([b"[", b"{a = "]) * rng.randint(100, 3000)
    lines: list[str] = []
    for section, cls in _SECTIONS.items():
        if section and rng.random() < 0.4:
            continue
        if section:
            lines.append(f"[{section}]")
        for f in dataclasses.fields(cls):
            if f.name in ("boards", "mqtt", "model", "policy", "outbox", "history") or rng.random() < 0.6:
                continue
            value = _valid(f, rng)
            if value is None:
                continue
            if rng.random() < 0.1:
                value = rng.choice(_WILD)
            lines.append(f"{f.name} = {_toml(value)}")
        if rng.random() < 0.05:
            lines.append(f"{rng.choice(['edgeid', 'tls_require', 'Port', 'x'])} = 1")
        if not section:
            for _ in range(rng.choice([0, 1, 2])):
                lines.append("[[boards]]")
                lines.append(f"port = {_toml(rng.choice(['/dev/ttyACM0', '/dev/ttyACM1', '', 5]))}")
    text = "\n".join(lines) + "\n"  # [[boards]] tables follow the top-level keys, then the sections
    data = text.encode()
    return mutate(data, rng) if r < 0.3 else data
