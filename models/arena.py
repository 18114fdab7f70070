"""The per-stream state of one model for all its streams, as contiguous arrays indexed by a stream slot.

A stream (one board's input) is a slot number: `alloc()` at its first sample, `free(slot)` when it goes
away (a reboot, a long gap, a board removed). `alloc` hands out the lowest free slot and resets it to a
fresh stream's state, so a reused slot never carries another board's past. The arena grows by doubling
when every slot is taken; slots keep their numbers when it grows.

Each quantity's rows for a run of slots a..b-1 are one contiguous block, so a step over them reads and
writes in place and each numpy call in it is the fast same-shape, contiguous kind (a strided or broadcast
operand costs a call 2-4x more at these sizes: see models.runtime); the float64 quantities are stacked in
two arrays so a step over scattered slots gathers and scatters each array once
(N = capacity, L = num_layers, H = hidden_size, W = window, F = n_features):
    hc        (2, L, N, H) float32  LSTM h (hc[0]) and c (hc[1]); streaming form only (else L = H = 0)
    window    (N, W, F) float32     the last W normalised samples, oldest first (not kept when W = 1:
                                    then the graph's input is the new sample alone)
    feat      (3, N, F) float64     per feature:
        [0] ewma      EWMA of the squared scaled residual (1 on a fresh stream)
        [1] pred      normalised prediction of the next sample (meaningful once count > 0)
        [2] alpha     the EWMA's smoothing factor: 0 until the slot has a prediction
    last      (4, N) float64        per slot (float64 holds the integers exactly up to 2**53):
        [0] score, [1] forecast (raw units), [2] top (index into spec.features): the last valid result
        [3] count     valid samples seen
"""

from __future__ import annotations

import heapq

import numpy as np

from models.features import ModelSpec


class Arena:
    def __init__(self, spec: ModelSpec, capacity: int = 32):
        self.spec = spec
        self._free: list[int] = []
        self._used = np.zeros(0, dtype=bool)
        self.capacity = 0
        self._grow(max(1, int(capacity)))

    def _grow(self, capacity: int) -> None:
        spec, old = self.spec, self.capacity
        streaming = spec.form == "streaming"
        layers, hidden = (spec.num_layers, spec.hidden_size) if streaming else (0, 0)
        w = spec.window if spec.window > 1 else 0
        f = spec.n_features
        fresh = {
            "hc": np.zeros((2, layers, capacity, hidden), np.float32),
            "window": np.zeros((capacity, w, f), np.float32),
            "feat": np.zeros((3, capacity, f)),
            "last": np.zeros((4, capacity)),
        }
        if old:
            fresh["hc"][:, :, :old] = self.hc
            fresh["window"][:old] = self.window
            fresh["feat"][:, :old] = self.feat
            fresh["last"][:, :old] = self.last
        for name, value in fresh.items():
            setattr(self, name, value)
        self.ewma, self.pred, self.alpha = self.feat  # views by name, each (N, F) or (N,)
        self.score, self.forecast, self.top, self.count = self.last
        self.hc_rows = self.hc.reshape(2 * layers, capacity, hidden)  # a view: h and c layers as rows of slots
        used = np.zeros(capacity, dtype=bool)
        used[:old] = self._used
        self._used = used
        for slot in range(old, capacity):
            heapq.heappush(self._free, slot)
        self.capacity = capacity

    @property
    def in_use(self) -> int:
        return int(self._used.sum())

    def alloc(self) -> int:
        """A slot holding a fresh stream's state (the lowest free one; the arena doubles when full)."""
        if not self._free:
            self._grow(2 * self.capacity)
        slot = heapq.heappop(self._free)
        self.reset(slot)
        self._used[slot] = True
        return slot

    def free(self, slot: int) -> None:
        """Give a slot back; its state is wiped when it is next allocated. Freeing a free slot is an error."""
        if not (0 <= slot < self.capacity and self._used[slot]):
            raise ValueError(f"slot {slot} is not allocated")
        self._used[slot] = False
        heapq.heappush(self._free, slot)

    def reset(self, slot: int) -> None:
        """Make `slot` a fresh stream: zero LSTM state and window, no prediction, EWMA 1, count 0."""
        self.hc[:, :, slot] = 0.0
        self.window[slot] = 0.0
        self.feat[:, slot] = 0.0
        self.ewma[slot] = 1.0
        self.last[:, slot] = 0.0
        self.forecast[slot] = np.nan  # no forecast yet

    def row(self, slot: int) -> np.ndarray:
        """A copy of the slot's float64 quantities (feat, then last) as one vector: its whole state but the
        LSTM's and the window, to compare before and after."""
        return np.concatenate([self.feat[:, slot].ravel(), self.last[:, slot]])

    def check(self, slots: np.ndarray) -> None:
        """Raise ValueError unless every slot is allocated and none appears twice (one sample per stream)."""
        if slots.size and (slots.min() < 0 or slots.max() >= self.capacity):
            raise ValueError(f"slot out of range 0..{self.capacity - 1}")
        if not self._used[slots].all():
            raise ValueError("step on a slot that is not allocated")
        if np.unique(slots).size != slots.size:
            raise ValueError("a slot appears twice in one step (give a stream one sample per call)")
