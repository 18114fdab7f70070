"""Detector stage: loads the .onnx model (models.runtime: verified metadata, shapes and seal) and scores
the due samples of every device in as few batched ONNX Runtime calls as possible.

Each device stream is a slot of the model's state arena (models.arena), handed out by `alloc` when Windows
starts a stream and given back by `free`; a batch is one `Model.step` over those slots.

The detector never imports paho; the model is advisory and never drives anything on a board.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime import Result, Scores  # numpy only at import; onnxruntime when a model is loaded

log = logging.getLogger("firedamp.detector")
_new = tuple.__new__
assert len(Result._fields) == 6 and not Result._field_defaults  # Results builds one with _new


class Results:
    """One batch's model results as arrays (models.runtime.Scores), one entry per due row. `results[k]` is row
    k's models.runtime.Result (what the policy and the telemetry payload read), built only when asked for."""

    __slots__ = ("arrays", "_lists", "_thr", "_names")

    def __init__(self, arrays: Any, spec: Any):
        self.arrays = arrays
        self._lists: tuple | None = None
        self._thr, self._names = spec.threshold, spec.features

    def __len__(self) -> int:
        return len(self.arrays.score)

    def __getitem__(self, k: int) -> Result:
        if self._lists is None:  # one conversion per batch: Python floats and bools, as the policy compares them
            self._lists = tuple(a.tolist() for a in self.arrays)
        score, anomalous, forecast, top, ready = self._lists
        # tuple.__new__ is what Result(...) runs, without its Python-level __new__ frame
        return _new(Result, (score[k], self._thr, anomalous[k], forecast[k], self._names[top[k]], ready[k]))

    def as_list(self) -> list[Result]:
        """Every row's Result at once (what the pipeline reads, one per reading: a list index instead of a call)."""
        thr, names = self._thr, self._names
        return [_new(Result, (s, thr, a, f, names[t], r))
                for s, a, f, t, r in zip(*(a.tolist() for a in self.arrays), strict=True)]


class Detector:
    def __init__(self, path: str | Path | None = None, threads: int = 1):
        from models.runtime import Model  # numpy + onnxruntime only (never torch)

        self.model = Model(path or None, threads=threads)
        self.spec = self.model.spec
        # Windows takes every slot from the arena and score() keeps a round's slots distinct: no need to check
        self.model.check_slots = False
        self.calls = 0
        self.samples = 0
        self.seconds = 0.0

    def describe(self) -> str:
        s = self.spec
        return (f"model {self.model.path} version {s.version} ({s.form}, window {s.window}, features "
                f"{list(zip(s.features, s.units, strict=True))}, period {s.sample_period_s} s, threshold "
                f"{s.threshold:.3f}, digest {s.training_digest[:12]})")

    def alloc(self) -> int:
        """A slot of the model's state arena for a new stream (a board's first sample, or after a reset)."""
        return self.model.alloc()

    def free(self, slot: int) -> None:
        self.model.free(slot)

    def score(self, due: list[tuple[Any, list[float]]]) -> Results:
        """[(stream, raw row)] → Results, row k's at [k]. One step per round over all the streams' slots; a
        stream with two samples due in this batch gets them in two rounds, in order."""
        n = len(due)
        slots = [s.slot for s, _ in due]
        x = np.array([row for _, row in due], dtype=np.float64)
        k = len(set(slots))
        if k == n:  # one sample per stream, one call
            return Results(self._step(slots, x), self.spec)
        out = Scores(np.zeros(n), np.zeros(n, bool), np.zeros(n), np.zeros(n, np.int64), np.zeros(n, bool))
        first = slots[:k]
        if n % k == 0 and slots == first * (n // k):
            # the usual batch: every stream's rows in the same order each time round (boards sending at the same
            # rate): round j is rows j*k..(j+1)*k-1, all with the first round's slots
            at = self._slots(first)
            for j in range(0, n, k):
                r = self._step(at, x[j:j + k])
                for have, got in zip(out, r, strict=True):
                    have[j:j + k] = got
            return Results(out, self.spec)
        # round j holds each stream's (j+1)-th row, in row order: one pass (32 boards in a 512-line batch are
        # 16 rounds; scanning the pending rows again each round cost ~1 µs a frame)
        rounds: list[list[int]] = []
        seen: dict[int, int] = {}
        for i, s in enumerate(slots):
            j = seen.get(s, 0)
            seen[s] = j + 1
            if j == len(rounds):
                rounds.append([])
            rounds[j].append(i)
        for this in rounds:
            at = slice(this[0], this[-1] + 1) if this[-1] - this[0] == len(this) - 1 else this  # a run: views
            r = self._step([slots[i] for i in this], x[at])
            for have, got in zip(out, r, strict=True):
                have[at] = got
        return Results(out, self.spec)

    @staticmethod
    def _slots(slots: list[int]) -> range | np.ndarray:
        """A round's slots as Model.step takes them: a range when they are one run in order (the model reads
        and writes its arena in place), else an array."""
        s0 = slots[0]
        if slots[-1] - s0 == len(slots) - 1 and slots == list(range(s0, s0 + len(slots))):
            return range(s0, s0 + len(slots))
        return np.array(slots, dtype=np.intp)

    def _step(self, slots: list[int] | range | np.ndarray, x: np.ndarray) -> Scores:
        t0 = time.perf_counter()
        r = self.model.step(self._slots(slots) if isinstance(slots, list) else slots, x)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.samples += len(slots)
        return r

    @property
    def mean_inference_us(self) -> float:
        return 1e6 * self.seconds / self.calls if self.calls else 0.0
