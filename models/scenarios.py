"""Seeded mine scenarios: methane (% CH4) and ventilation flow (m3/min) as a board reads them, with labels.

The physics, per sample of `period_s` (exact first-order discretisation, so any period is stable):
- emission E (m3/min CH4) from the face: a base plus a production term that follows the cutting
  schedule (three 8 h shifts; cutting runs of 20-45 min with pauses; fresh coal desorbs with a 10 min lag);
- airflow Q (m3/min): a nominal value with slow turbulence and the odd door opening (short 5-10 % dips);
- the roadway mixes like a stirred volume V: dc/dt = (100*E/Q - c) / (V/Q), so c tends to E/Q with a lag
  that grows as the flow falls (a ventilation loss is a slow accumulation, a fan stoppage a fast one);
- the catalytic sensor: first-order response (t90 about 18 s), noise 0.01 % and 0.01 % resolution;
- the pulse flow meter: 1 % noise, 0.1 m3/min resolution.
Anomalies are injected into the causes (E, Q) or into the instruments (drift, stuck, spikes, dropout).
A sample is labelled 1 while the anomaly acts, and afterwards while the noise-free readings still differ
from the same mine without the anomaly (same seed) by more than 0.05 % CH4 or 5 % flow.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

CH4_RESOLUTION = 0.01  # % CH4: the board reports 2 decimals (docs/protocol.md)
FLOW_RESOLUTION = 0.1  # m3/min
SENSOR_T90_S = 18.0
DEFAULT_DURATION_S = 3 * 3600.0
STORY_DURATION_S = 900.0


class Sample(NamedTuple):
    ch4: float  # % CH4 by volume as the sensor reads it
    flow: float  # m3/min as the pulse meter measures it
    label: int  # 1 inside an anomaly's label span
    event: str  # "" or the anomaly's name


class Scenario:
    """A precomputed run: arrays of length n at `period_s`; `sample(t)` returns the sample covering t."""

    def __init__(self, name: str, seed: int, period_s: float, ch4: np.ndarray, flow: np.ndarray,
                 label: np.ndarray, info: dict[str, float]):
        self.name, self.seed, self.period_s = name, seed, period_s
        self.ch4, self.flow, self.label = ch4, flow, label.astype(np.int8)
        self.duration_s = len(ch4) * period_s
        self.info = info  # e.g. onset_s, restore_s: for evaluation and the demo's narration

    def __len__(self) -> int:
        return len(self.ch4)

    def sample(self, t_s: float) -> Sample:
        """The reading at time t (s from the start); times past the end hold the last sample."""
        i = min(max(int(t_s / self.period_s + 1e-9), 0), len(self.ch4) - 1)
        lab = int(self.label[i])
        return Sample(float(self.ch4[i]), float(self.flow[i]), lab, self.name if lab else "")

    def arrays(self) -> np.ndarray:
        """(n, 2) float64: columns ch4, flow — the feature order of the shipped model."""
        return np.stack([self.ch4, self.flow], axis=1)


class _Mine:
    """Normal mine state for one seed: the causes (E, Q) and instrument noise, as arrays."""

    def __init__(self, rng: np.random.Generator, n: int, dt: float, tau_mix0_s: float | None = None):
        self.n, self.dt = n, dt
        t = np.arange(n) * dt
        start_h = rng.uniform(0, 24)
        self.q0 = rng.uniform(800, 1100)
        e_base, e_prod = rng.uniform(2.0, 3.0), rng.uniform(2.0, 3.5)
        self.volume_m3 = self.q0 * (tau_mix0_s or rng.uniform(60, 120)) / 60.0  # V/Q0 = mixing time
        cutting = _cutting_schedule(rng, t, start_h)
        prod = _lag(cutting, dt, 600.0)
        drift_e = _ou(rng, n, dt, tau_s=1800.0, sigma=0.06)
        self.e = (e_base + e_prod * prod) * (1.0 + drift_e)
        q = self.q0 * (1.0 + _ou(rng, n, dt, tau_s=300.0, sigma=0.015))
        for _ in range(rng.poisson(max(n * dt / 3600.0, 0.0) * 0.5)):  # door openings, ~1 per 2 h
            i0 = int(rng.uniform(0, n))
            k = int(rng.uniform(30, 120) / dt) + 1
            q[i0:i0 + k] *= 1.0 - rng.uniform(0.04, 0.10)
        self.q = q
        self.noise_ch4 = rng.normal(0.0, 0.01, n)
        self.noise_flow = rng.normal(0.0, 0.01, n)

    def readings(self, e: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free sensor reading of CH4 (after mixing and sensor lag) and true flow."""
        c = _mix(e, q, self.volume_m3, self.dt)
        return _lag(c, self.dt, SENSOR_T90_S / math.log(10.0)), q


def _cutting_schedule(rng: np.random.Generator, t: np.ndarray, start_h: float) -> np.ndarray:
    """0/1 per sample: shear runs of 20-45 min with 5-20 min pauses, from 1 h to 7 h into each 8 h shift."""
    hours = (start_h + t / 3600.0) % 8.0
    on = np.zeros(t.shape)
    pos, end = 0.0, float(t[-1]) + 1.0 if t.size else 0.0
    running = bool(rng.integers(0, 2))
    while pos < end:
        length = rng.uniform(20, 45) * 60 if running else rng.uniform(5, 20) * 60
        if running:
            on[(t >= pos) & (t < pos + length)] = 1.0
        pos += length
        running = not running
    return on * ((hours > 1.0) & (hours < 7.0))


def _ou(rng: np.random.Generator, n: int, dt: float, tau_s: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck (AR(1)) noise with stationary std `sigma` and correlation time `tau_s`."""
    a = math.exp(-dt / tau_s)
    w = rng.normal(0.0, sigma * math.sqrt(1 - a * a), n)
    out = np.empty(n)
    x = rng.normal(0.0, sigma)
    for i in range(n):
        x = a * x + w[i]
        out[i] = x
    return out


def _lag(x: np.ndarray, dt: float, tau_s: float) -> np.ndarray:
    """First-order lag y' = (x - y)/tau, exact for piecewise constant x; starts at x[0]."""
    a = 1.0 - math.exp(-dt / tau_s)
    out = np.empty_like(x, dtype=np.float64)
    y = float(x[0]) if len(x) else 0.0
    for i, v in enumerate(x.tolist()):
        y += a * (v - y)
        out[i] = y
    return out


def _mix(e: np.ndarray, q: np.ndarray, volume_m3: float, dt: float) -> np.ndarray:
    """Stirred-volume roadway: dc/dt = (100 E/Q - c) Q/V, with Q floored at 1 m3/min (natural draught)."""
    out = np.empty(len(e))
    qs = np.maximum(q, 1.0)
    target = (100.0 * e / qs).tolist()
    a = (1.0 - np.exp(-dt * qs / 60.0 / volume_m3)).tolist()
    c = target[0] if target else 0.0
    for i in range(len(target)):
        c += a[i] * (target[i] - c)
        out[i] = c
    return out


def _ramp(n: int, i0: int, k: int) -> np.ndarray:
    """0 before i0, linear 0 -> 1 over k samples, then 1."""
    r = np.zeros(n)
    r[i0:] = np.clip((np.arange(n - i0) + 1) / max(k, 1), 0.0, 1.0)
    return r


# An anomaly gets the rng, the mine, the sample period and returns modified causes and an instrument hook.
class _Injected(NamedTuple):
    e: np.ndarray
    q: np.ndarray
    cause: np.ndarray  # bool (n,): the anomaly acts here
    instrument: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    info: dict[str, float]


def _onset(rng: np.random.Generator, n: int) -> int:
    return int(n * rng.uniform(0.35, 0.55))


def _none(rng, m: _Mine) -> _Injected:
    return _Injected(m.e, m.q, np.zeros(m.n, bool), None, {})


def _outburst(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    rise, decay = rng.uniform(5, 30), rng.uniform(60, 240)
    amp = rng.uniform(30, 100)  # m3/min CH4 released
    t = (np.arange(m.n) - i0) * m.dt
    pulse = np.where(t < 0, 0.0, np.minimum(t / rise, 1.0) * np.exp(-np.maximum(t - rise, 0) / decay))
    cause = (t >= 0) & ((t < rise) | (pulse > 0.02))
    return _Injected(m.e + amp * pulse, m.q, cause, None, {"onset_s": i0 * m.dt})


def _ventilation_loss(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    c_now = 100 * m.e[i0] / m.q[i0]
    frac = c_now / rng.uniform(1.3, 2.2)  # would settle at 1.3-2.2 % CH4 at today's emission
    ramp = _ramp(m.n, i0, int(rng.uniform(30, 90) / m.dt))
    i1 = m.n  # half the runs: restored after 25-45 min
    if rng.uniform() < 0.5:
        i1 = min(m.n, i0 + int(rng.uniform(25, 45) * 60 / m.dt))
    ramp[i1:] = 1.0 - _ramp(m.n, i1, int(60 / m.dt))[i1:]
    q = m.q * (1.0 - (1.0 - frac) * ramp)
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True
    return _Injected(m.e, q, cause, None, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


def _fan_stoppage(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    residual = rng.uniform(0.03, 0.10)  # natural draught
    t = (np.arange(m.n) - i0) * m.dt
    down = np.where(t < 0, 1.0, residual + (1 - residual) * np.exp(-np.maximum(t, 0) / 20.0))
    i1 = min(m.n, i0 + int(rng.uniform(10, 25) * 60 / m.dt))  # fan restarted
    down[i1:] = 1.0 - (1.0 - down[i1 - 1]) * (1 - _ramp(m.n, i1, int(40 / m.dt))[i1:])
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True
    return _Injected(m.e, m.q * down, cause, None, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


def _drainage_leak(rng, m: _Mine) -> _Injected:
    """Air ingress (a leak in a drainage range or a short-circuit of air): flow up, concentration down."""
    i0 = _onset(rng, m.n)
    i1 = min(m.n, i0 + int(rng.uniform(15, 40) * 60 / m.dt))
    ramp = _ramp(m.n, i0, int(rng.uniform(20, 60) / m.dt))
    ramp[i1:] = 0.0
    q = m.q * (1.0 + rng.uniform(0.25, 0.6) * ramp)
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True
    return _Injected(m.e, q, cause, None, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


def _sensor_drift(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    rate = rng.uniform(0.3, 0.6) * rng.choice([-1.0, 1.0]) / 3600.0  # % CH4 per s
    off = np.maximum(np.arange(m.n) - i0, 0) * m.dt * rate
    cause = np.arange(m.n) >= i0

    def hook(ch4, flow):
        return ch4 + off, flow

    return _Injected(m.e, m.q, cause, hook, {"onset_s": i0 * m.dt})


def _stuck_sensor(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    i1 = min(m.n, i0 + int(rng.uniform(10, 30) * 60 / m.dt))
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True

    def hook(ch4, flow):
        ch4 = ch4.copy()
        ch4[i0:i1] = ch4[i0 - 1]
        return ch4, flow

    return _Injected(m.e, m.q, cause, hook, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


def _spikes(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    span = int(rng.uniform(2, 6) * 60 / m.dt)
    idx = np.sort(rng.choice(np.arange(i0, min(m.n, i0 + span)), size=int(rng.integers(6, 16)), replace=False))
    idx[0] = i0
    height = rng.uniform(0.3, 3.0, len(idx))
    cause = np.zeros(m.n, bool)
    cause[idx[0]: idx[-1] + 2] = True

    def hook(ch4, flow):
        ch4 = ch4.copy()
        ch4[idx] += height
        return ch4, flow

    return _Injected(m.e, m.q, cause, hook, {"onset_s": i0 * m.dt})


def _pulse_dropout(rng, m: _Mine) -> _Injected:
    i0 = _onset(rng, m.n)
    i1 = min(m.n, i0 + int(rng.uniform(2, 10) * 60 / m.dt))
    keep = rng.uniform(0.0, 0.6, i1 - i0) * (rng.uniform(size=i1 - i0) > 0.3)
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True

    def hook(ch4, flow):
        flow = flow.copy()
        flow[i0:i1] *= keep
        return ch4, flow

    return _Injected(m.e, m.q, cause, hook, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


def _story(rng, m: _Mine) -> _Injected:
    """Demo: normal, ventilation loss (flow first, CH4 climbs past 1.0 % and 1.5 %), restore, CH4 falls."""
    i0, i1 = int(0.25 * m.n), int(0.70 * m.n)
    frac = 100 * float(np.mean(m.e[i0:i1])) / m.q0 / 2.1  # would settle near 2.1 % CH4
    ramp = _ramp(m.n, i0, max(1, int(0.02 * m.n)))
    ramp[i1:] = 1.0 - _ramp(m.n, i1, max(1, int(0.02 * m.n)))[i1:]
    cause = np.zeros(m.n, bool)
    cause[i0:i1] = True
    return _Injected(m.e, m.q * (1.0 - (1.0 - frac) * ramp), cause, None, {"onset_s": i0 * m.dt, "restore_s": i1 * m.dt})


SCENARIOS: dict[str, Callable[..., _Injected]] = {
    "normal": _none,
    "outburst": _outburst,
    "ventilation_loss": _ventilation_loss,
    "fan_stoppage": _fan_stoppage,
    "drainage_leak": _drainage_leak,
    "sensor_drift": _sensor_drift,
    "stuck_sensor": _stuck_sensor,
    "spikes": _spikes,
    "pulse_dropout": _pulse_dropout,
    "story": _story,
}
ANOMALIES = [n for n in SCENARIOS if n not in ("normal", "story")]


def make(name: str, seed: int = 0, period_s: float = 1.0, duration_s: float | None = None) -> Scenario:
    """Build scenario `name` for `seed`; the same (name, seed, period_s, duration_s) gives the same data."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    if not period_s > 0:
        raise ValueError("period_s must be > 0")
    if duration_s is None:
        duration_s = STORY_DURATION_S if name == "story" else DEFAULT_DURATION_S
    n = max(int(round(duration_s / period_s)), 10)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    # The story must fit its duration: the roadway's mixing time scales with it (15 s for 10 min).
    tau = float(np.clip(duration_s / 40.0, 5.0, 90.0)) if name == "story" else None
    mine = _Mine(rng, n, period_s, tau)
    inj = SCENARIOS[name](rng, mine)
    ch4_base, flow_base = mine.readings(mine.e, mine.q)
    ch4_true, flow_true = mine.readings(inj.e, inj.q)
    if inj.instrument is not None:
        ch4_true, flow_true = inj.instrument(ch4_true, flow_true)
    effect = (np.abs(ch4_true - ch4_base) > 0.05) | (np.abs(flow_true - flow_base) > 0.05 * flow_base)
    label = inj.cause | _after(effect, inj.cause)
    ch4 = ch4_true + mine.noise_ch4
    flow = flow_true * (1.0 + mine.noise_flow)
    if name == "stuck_sensor":  # a stuck sensor repeats its last reading exactly, noise included
        s = np.flatnonzero(inj.cause)
        ch4[s] = ch4[s[0] - 1]
    ch4 = np.clip(np.round(np.round(ch4 / CH4_RESOLUTION) * CH4_RESOLUTION, 2), -0.5, 100.0)
    flow = np.maximum(np.round(np.round(flow / FLOW_RESOLUTION) * FLOW_RESOLUTION, 1), 0.0)
    return Scenario(name, seed, period_s, ch4, flow, label, inj.info)


def _after(effect: np.ndarray, cause: np.ndarray) -> np.ndarray:
    """The part of `effect` that is contiguous with or follows the start of `cause` (its tail)."""
    if not cause.any():
        return np.zeros_like(effect)
    i0 = int(np.flatnonzero(cause)[0])
    out = np.zeros_like(effect)
    out[i0:] = effect[i0:]
    return out
