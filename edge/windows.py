"""Windows stage: readings → the model's input rows, one per sample period per device, in the model's order.

Feature names, units and the sample period come from the model file's metadata (models.features.ModelSpec);
the normalisation and window buffer live in models/ (the code training uses) and are applied by the model
runtime. Here each frame field is mapped to a model feature by name, with its unit checked: a board whose
units cannot be converted exactly to the model's gets no advisory scoring and one clear warning, never a
crash. Extra frames (a board sends one at once on every state change) are not fed; a gap longer than
`max_gap_samples` periods or a reboot starts the device's model state afresh (its arena slot is freed and
a fresh one taken), and a board silent for `expire_s` gives its slot back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from edge.errors import ModelError
from edge.frames import Reading

log = logging.getLogger("firedamp.windows")

# frame field -> how its unit is written on the wire -> canonical unit name
_GAS_UNIT = {"VOL": "%vol", "LEL": "%lel"}
_CONVERT = {("l/min", "m3/min"): 0.001, ("m3/min", "l/min"): 1000.0, ("l", "m3"): 0.001, ("m3", "l"): 1000.0}
CHANNELS = ("ch4", "flow", "total")


def canonical_unit(u: str) -> str:
    """'% vol', '%VOL', 'vol%' -> '%vol'; 'm³/min' -> 'm3/min'; 'L/min' -> 'l/min'."""
    u = u.strip().lower().replace(" ", "").replace("³", "3")
    return {"vol%": "%vol", "%v/v": "%vol", "lel%": "%lel", "%lel": "%lel"}.get(u, u)


def wire_units(r: Reading) -> dict[str, str]:
    flow = canonical_unit(r.flow_unit)
    return {"ch4": _GAS_UNIT[r.unit], "flow": flow, "total": flow.split("/")[0]}


@dataclass(slots=True)
class Stream:
    """One device's model input stream: its slot in the model's state arena plus the bookkeeping for sampling."""

    device: str
    slot: int
    last_uptime_ms: int = -1
    fed: int = 0
    last_t: float = 0.0  # arrival time of its last frame (edge clock), for expiry


@dataclass
class Windows:
    spec: Any  # models.features.ModelSpec
    slots: Any  # has alloc() -> int and free(slot): the detector (the model's state arena)
    max_gap_samples: int = 5
    streams: dict[str, Stream] = field(default_factory=dict)
    _plans: dict[tuple[str, str], list[tuple[int, float]] | str] = field(default_factory=dict)
    _rows: dict[tuple[str, str], Any] = field(default_factory=dict)  # units -> itemgetter of the plan's fields
    _warned: set[tuple[str, str, str]] = field(default_factory=set)
    unscored: int = 0  # readings not scored because of units
    resets: int = 0  # streams started afresh after a reboot or a long gap
    expired: int = 0  # streams dropped (slot freed) after their board fell silent for `expire_s`
    _next_sweep: float = 0.0

    def __post_init__(self) -> None:
        unknown = [f for f in self.spec.features if f not in CHANNELS]
        if unknown:
            raise ModelError(f"model feature(s) {unknown} are not board channels (the edge knows {list(CHANNELS)})")
        self._period_ms = self.spec.sample_period_s * 1000.0
        # A board silent this long would start afresh on its next frame anyway (a gap > max_gap_samples), with
        # a wide margin for frames that queue up behind a stalled edge: its slot is freed so a removed board
        # does not hold one for ever.
        self.expire_s = max(60.0, 4 * self.max_gap_samples * self.spec.sample_period_s)

    def plan(self, r: Reading) -> list[tuple[int, float]] | str:
        """[(reading field index, factor)] in model order, or why this board's units do not fit."""
        key = (r.unit, r.flow_unit)
        plan = self._plans.get(key)
        if plan is None:
            have = wire_units(r)
            steps: list[tuple[int, float]] | str = []
            for name, want in zip(self.spec.features, self.spec.units, strict=True):
                got, want = have[name], canonical_unit(want)
                factor = 1.0 if got == want else _CONVERT.get((got, want))
                if factor is None:
                    steps = f"{name} comes in {got} but the model expects {want}"
                    break
                steps.append((Reading._fields.index(name), factor))
            plan = self._plans[key] = steps
            if not isinstance(steps, str) and all(k == 1.0 for _, k in steps) and len(steps) > 1:
                self._rows[key] = itemgetter(*(i for i, _ in steps))  # units as the model's: no scaling
        return plan

    def add(self, r: Reading, t: float | None = None) -> tuple[Stream, Sequence[float]] | None:
        """A reading (arrived at edge time `t`) → (stream, raw feature row) when it is this device's next
        sample, else None."""
        if t is not None and t >= self._next_sweep:
            self.expire(t)
        key = r[4:7:2]  # (unit, flow_unit)
        plan = self._plans.get(key)
        if plan is None:
            plan = self.plan(r)
        if isinstance(plan, str):
            self.unscored += 1
            key = (r.device, r.unit, r.flow_unit)
            if key not in self._warned:
                self._warned.add(key)
                log.warning("%s: no advisory scoring: %s (model %s); board alarms are still reported",
                            r.device, plan, self.spec.version)
            return None
        s = self.streams.get(r.device)
        if s is None:
            s = self.streams[r.device] = Stream(r.device, self.slots.alloc())
        elif s.last_uptime_ms >= 0:
            dt = r.uptime_ms - s.last_uptime_ms
            if dt < 0 or dt > self.max_gap_samples * self._period_ms:  # reboot or long gap: start afresh
                self.slots.free(s.slot)
                s.slot = self.slots.alloc()
                self.resets += 1
            elif dt < 0.5 * self._period_ms:
                return None  # an extra frame sent on a state change, inside this sample period
        s.last_uptime_ms = r.uptime_ms
        s.fed += 1
        if t is not None:
            s.last_t = t
        get = self._rows.get(key)
        if get is not None:  # the reading's own values (a tuple): no scaling, a missing one is NaN
            row = get(r)
            return (s, row) if None not in row else (s, [math.nan if v is None else v for v in row])
        return s, [math.nan if r[i] is None else r[i] * k for i, k in plan]

    def expire(self, t: float) -> int:
        """Free the slots of streams whose last frame arrived more than expire_s before `t`; returns how many."""
        self._next_sweep = t + self.expire_s / 4
        gone = [d for d, s in self.streams.items() if t - s.last_t > self.expire_s]
        for d in gone:
            self.slots.free(self.streams.pop(d).slot)
        self.expired += len(gone)
        return len(gone)
