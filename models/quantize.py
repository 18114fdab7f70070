"""Measure an int8 (dynamic quantisation) variant of a model against the float one: size, speed, accuracy.

`python -m models.quantize [models/firedamp-lstm.onnx]` writes the int8 file next to a temporary copy and
prints one table. Needs `onnx` (train extra) for the quantiser; the comparison itself uses models.runtime.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _step_us(model, batch: int, steps: int = 400) -> float:
    slots = np.array([model.alloc() for _ in range(batch)])
    x = np.tile(np.array([[0.5, 900.0]]), (batch, 1))
    for _ in range(20):
        model.step(slots, x)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step(slots, x)
    us = (time.perf_counter() - t0) / steps * 1e6
    for s in slots.tolist():
        model.free(s)
    return us


def compare(path: Path, seeds: int = 2) -> dict:
    from models.export import quantize_int8
    from models.runtime import Model
    from models.simeval import evaluate_sim

    with tempfile.TemporaryDirectory() as tmp:
        qpath = quantize_int8(path, Path(tmp) / "int8.onnx")
        f, q = Model(path), Model(qpath)
        out = {}
        for name, m, p in (("float32", f, path), ("int8", q, qpath)):
            ev = evaluate_sim(m, seeds=seeds)
            out[name] = {"bytes": p.stat().st_size, "step_us_b1": _step_us(m, 1), "step_us_b32": _step_us(m, 32),
                         "event_recall": ev["event_recall"], "false_per_24h": ev["false_advisories_per_24h"],
                         "forecast_mae": ev["forecast"]["mae"], "median_lead_s": ev["median_lead_s"]}
    return out


def main(argv: list[str]) -> int:
    from models.runtime import DEFAULT_MODEL

    path = Path(argv[0]) if argv else DEFAULT_MODEL
    res = compare(path)
    keys = ["bytes", "step_us_b1", "step_us_b32", "event_recall", "false_per_24h", "forecast_mae", "median_lead_s"]
    print(f"{'':14s}" + "".join(f"{k:>14s}" for k in keys))
    for name, r in res.items():
        print(f"{name:14s}" + "".join(f"{r[k]:14.4g}" if r[k] is not None else f"{'-':>14s}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
