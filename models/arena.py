"""The per-stream state of one model for all its streams, as contiguous arrays indexed by a stream slot.

A stream (one board's input) is a slot number: `alloc()` at its first sample, `free(slot)` when it goes
away (a reboot, a long gap, a board removed). `alloc` hands out the lowest free slot and resets it to a
fresh stream's state, so a reused slot never carries another board's past. The arena grows by doubling
when every slot is taken; slots keep their numbers when it grows.

Shapes (N = capacity, L = num_layers, H = hidden_size, W = window, F = n_features):
    hc      (2, L, N, H) float32  LSTM h (hc[0]) and c (hc[1]); streaming form only (else L = H = 0)
    window  (N, W, F) float32     the last W normalised samples, oldest first (not kept when W = 1:
                                  then the graph's input is the new sample alone)
    table   (N, 2F+5) float64     one row per slot, so a step gathers and scatters it once:
              [:, :F]   ewma      EWMA of the squared scaled residual (1 on a fresh stream)
              [:, F:2F] pred      normalised prediction of the next sample (meaningful once count > 0)
              [:, 2F]   score     \
              [:, 2F+1] forecast   > the last valid result (forecast in raw units; top = feature index)
              [:, 2F+2] top       /
              [:, 2F+3] count     valid samples seen (a float64 holds every count exactly up to 2**53)
              [:, 2F+4] alpha     the EWMA's smoothing factor: 0 until the slot has a prediction
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
            "table": np.tile(self._fresh_row(), (capacity, 1)),
        }
        if old:
            fresh["hc"][:, :, :old] = self.hc
            fresh["window"][:old] = self.window
            fresh["table"][:old] = self.table
        for name, value in fresh.items():
            setattr(self, name, value)
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

    def _fresh_row(self) -> np.ndarray:
        f = self.spec.n_features
        row = np.zeros(2 * f + 5)
        row[:f] = 1.0  # ewma
        row[2 * f + 1] = np.nan  # no forecast yet
        return row

    def reset(self, slot: int) -> None:
        """Make `slot` a fresh stream: zero LSTM state and window, no prediction, EWMA 1, count 0."""
        self.hc[:, :, slot] = 0.0
        self.window[slot] = 0.0
        self.table[slot] = self._fresh_row()

    # views by name (each (N, ...) and indexed by slot)
    @property
    def ewma(self) -> np.ndarray:
        return self.table[:, : self.spec.n_features]

    @property
    def pred(self) -> np.ndarray:
        f = self.spec.n_features
        return self.table[:, f:2 * f]

    @property
    def count(self) -> np.ndarray:
        return self.table[:, 2 * self.spec.n_features + 3]

    def check(self, slots: np.ndarray) -> None:
        """Raise ValueError unless every slot is allocated and none appears twice (one sample per stream)."""
        if slots.size and (slots.min() < 0 or slots.max() >= self.capacity):
            raise ValueError(f"slot out of range 0..{self.capacity - 1}")
        if not self._used[slots].all():
            raise ValueError("step on a slot that is not allocated")
        if np.unique(slots).size != slots.size:
            raise ValueError("a slot appears twice in one step (give a stream one sample per call)")
