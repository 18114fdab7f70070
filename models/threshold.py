"""Alarm thresholds calibrated on normal data: peaks over threshold (POT) with a generalised Pareto tail.

numpy only. Siffer et al. (KDD 2017, "SPOT"): pick an initial high quantile t of the normal scores, fit a
generalised Pareto distribution to the excesses over t, and extrapolate to the score exceeded with
probability `risk` per sample. The fit here is the method of moments (no scipy), which is stable for the
few hundred to few thousand excesses a calibration set gives.
"""

from __future__ import annotations

import math

import numpy as np


def pot_threshold(scores: np.ndarray, risk: float = 1e-5, level: float = 0.98) -> float:
    """(N,) scores of normal data -> the threshold exceeded with probability `risk` per sample."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 50:
        raise ValueError(f"need at least 50 finite scores to calibrate, got {s.size}")
    t = float(np.quantile(s, level))
    excess = s[s > t] - t
    if excess.size < 10 or float(np.var(excess)) <= 0:
        return float(max(s.max(), t) * 1.05 + 1e-9)
    m, v = float(np.mean(excess)), float(np.var(excess))
    gamma = 0.5 * (1.0 - m * m / v)
    sigma = 0.5 * m * (m * m / v + 1.0)
    ratio = risk * s.size / excess.size
    if abs(gamma) < 1e-6:
        z = t - sigma * math.log(ratio)
    else:
        z = t + sigma / gamma * (ratio ** (-gamma) - 1.0)
    return float(max(z, t))
