"""Fuzz target: the model file's metadata (`models.features.ModelSpec.from_metadata`), as ONNX Runtime hands
it to `models.runtime` (a str → str map).

Oracle: either a ModelError naming a key, or a spec the edge can use without tripping: one non-empty,
distinct name and one unit string per feature, finite mean/std/residual_std with std and residual_std > 0,
integer window/hidden/layers/horizon/smoothing ≥ 1 (never a JSON bool), a finite threshold > 0, the
forecast feature among the features, and 64-hex digests. Inputs are mutations of the shipped model's metadata.
"""

from __future__ import annotations

import dataclasses
import math
import random

from edge.errors import ModelError
from fuzz.engine import Violation
from models.features import ModelSpec

NAME = "model metadata"

_BASE: dict[str, str] | None = None


def base() -> dict[str, str]:
    global _BASE
    if _BASE is None:
        from models.runtime import Model

        _BASE = Model().spec.to_metadata()
    return dict(_BASE)


def _finite(v) -> bool:
    """A JSON number (not a bool) that a float can hold and that is neither nan nor infinite."""
    if type(v) not in (int, float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def check_spec(s: ModelSpec) -> None:
    def need(ok, what):
        if not ok:
            raise Violation(f"accepted, but {what}")

    n = len(s.features) if isinstance(s.features, list) else 0
    need(n >= 1 and all(type(x) is str and x for x in s.features) and len(set(s.features)) == n, "features")
    need(isinstance(s.units, list) and len(s.units) == n and all(type(u) is str for u in s.units), "units")
    for key in ("mean", "std", "residual_std"):
        v = getattr(s, key)
        need(isinstance(v, list) and len(v) == n and all(_finite(x) for x in v), f"{key} = {v!r:.60}")
    need(all(x > 0 for x in s.std) and all(x > 0 for x in s.residual_std), "std/residual_std > 0")
    for key in ("window", "hidden_size", "num_layers", "horizon", "smoothing"):
        v = getattr(s, key)
        need(type(v) is int and v >= 1, f"{key} = {v!r}")
    need(type(s.warmup) is int and s.warmup >= 0, f"warmup = {s.warmup!r}")
    need(_finite(s.threshold) and s.threshold > 0 and _finite(s.sample_period_s) and s.sample_period_s > 0,
         "threshold / sample period")
    need(s.forecast_feature in s.features and s.form in ("streaming", "windowed"), "forecast feature / form")
    need(isinstance(s.version, str) and isinstance(s.extra, dict), "version / extra")
    for key in ("training_digest", "content_sha256"):
        v = getattr(s, key)
        need(isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v), key)


def check(props) -> str:
    if isinstance(props, bytes):  # atheris hands bytes: "key=value" lines (see encode)
        props = decode(props)
    try:
        spec = ModelSpec.from_metadata(props)
    except ModelError as exc:
        msg = str(exc)
        keys = [k for k in list(props) + [f.name for f in dataclasses.fields(ModelSpec)] + ["schema"] if f"'{k}'" in msg]
        if not keys:
            raise Violation(f"the error names no key: {msg}") from None
        return "bad " + max(keys, key=len)
    check_spec(spec)
    return "accepted"


def encode(props: dict[str, str]) -> bytes:
    """A metadata map as "key=value" lines (the byte form the coverage-guided run mutates)."""
    return "".join(f"{k}={v}\n" for k, v in props.items()).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> dict[str, str]:
    """"key=value" lines -> a metadata map; lines without '=' are skipped."""
    props = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


_WILD = ["", "null", "true", "false", "0", "-1", "1", "1.5", "1e400", "-1e400", "NaN", "Infinity", "[]", "{}", "[1]",
         '["ch4"]', '["ch4", "ch4"]', '["ch4", "flow", "x"]', "[1, 2]", '[true, false]', "[0, 0]", "[-1, 1]",
         "1" + "0" * 400, "[" * 3000, '"x"', '"ch4"', "not json", "0" * 64, "A" * 64, "f" * 63, '{"a": 1}',
         "streaming", "windowed", "[NaN, 1]", "[1e-300, 1e-300]", "2147483648", "\x00", "é"]


def generate(rng: random.Random) -> dict[str, str]:
    props = base()
    keys = list(props)
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        op = rng.random()
        key = rng.choice(keys)
        if op < 0.6:
            props[key] = rng.choice(_WILD)
        elif op < 0.75:
            props.pop(key, None)
        elif op < 0.85:
            props[rng.choice(["Features", "x", "schema"])] = rng.choice(_WILD)
        else:  # a value of another key
            props[key] = props.get(rng.choice(keys), "")
    return props
