"""Detector stage: loads the .onnx model (models.runtime: verified metadata, shapes and seal) and scores
the due samples of every device in as few batched ONNX Runtime calls as possible.

The detector never imports paho; the model is advisory and never drives anything on a board.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("firedamp.detector")


class Detector:
    def __init__(self, path: str | Path | None = None, threads: int = 1):
        from models.runtime import Model  # numpy + onnxruntime only (never torch)

        self.model = Model(path or None, threads=threads)
        self.spec = self.model.spec
        self.calls = 0
        self.samples = 0
        self.seconds = 0.0

    def describe(self) -> str:
        s = self.spec
        return (f"model {self.model.path} version {s.version} ({s.form}, window {s.window}, features "
                f"{list(zip(s.features, s.units, strict=True))}, period {s.sample_period_s} s, threshold "
                f"{s.threshold:.3f}, digest {s.training_digest[:12]})")

    def new_state(self) -> Any:
        return self.model.new_state()

    def score(self, due: list[tuple[Any, list[float]]]) -> list[Any]:
        """[(stream, raw row)] → [Result], same order. One batched call per round; a device that has two
        samples due in this batch gets them in two rounds, in order."""
        results: list[Any] = [None] * len(due)
        pending = list(range(len(due)))
        while pending:
            seen: set[int] = set()
            this, later = [], []
            for i in pending:
                key = id(due[i][0])
                (later if key in seen else this).append(i)
                seen.add(key)
            t0 = time.perf_counter()
            out = self.model.step([due[i][0].state for i in this], np.array([due[i][1] for i in this], dtype=np.float64))
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            self.samples += len(this)
            for i, r in zip(this, out, strict=True):
                results[i] = r
            pending = later
        return results

    @property
    def mean_inference_us(self) -> float:
        return 1e6 * self.seconds / self.calls if self.calls else 0.0
