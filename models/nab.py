"""NAB changepoint scoring (Lavin & Ahmad 2015, as numenta/NAB's sweeper computes it), numpy only.

Each true changepoint opens a window of `width_s` seconds to its right ([t_cp, t_cp + width_s], SKAB's
setting); windows that overlap are merged into one. A detection is one row where the detector reports a
change. Per window, only the best (earliest) detection inside it counts:
    y = -(right - i + 1) / width          (width = rows in the window; -1 at its left edge, -> 0 at its right)
    score = A_tp * sigma(y) / sigma(-1)   (so the earliest detection scores exactly A_tp)
a window with no detection scores -A_fn, and every detection outside all windows is a false positive:
    y = (i - right_prev) / (width_prev - 1)   past the previous window (3.0 when there is none yet)
    score = A_fp * sigma(y)                   (sigma(y) < 0 there; near 0 just after a window, -1 far after)
with the scaled sigmoid sigma(y) = 2 / (1 + e^(5y)) - 1, and -1 for y >= 3. NAB's profiles give A_fp as a
positive weight on a negative sigmoid; the issue's "A_fp = -0.11" is the same number with the sign moved.
The raw sum over a corpus is normalised to 0 (the null detector: no detections, -A_fn per window) ..
100 (the perfect detector: every window hit at its first row, A_tp per window).
"""

from __future__ import annotations

import math

import numpy as np

PROFILES = {  # name: (A_tp, A_fp, A_fn), NAB's config/profiles.json
    "standard": (1.0, 0.11, 1.0),
    "low_fp": (1.0, 0.22, 1.0),
    "low_fn": (1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: float) -> float:
    return -1.0 if y >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def windows(changepoints: np.ndarray, t_s: np.ndarray, width_s: float) -> list[tuple[int, int]]:
    """changepoints (K,) row indices, t_s (T,) row times in seconds -> merged [(left, right)] inclusive rows."""
    t = np.asarray(t_s, dtype=np.float64)
    out: list[tuple[int, int]] = []
    for cp in sorted(int(c) for c in changepoints):
        right = int(np.searchsorted(t, t[cp] + width_s, side="right")) - 1
        if out and cp <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], right))
        else:
            out.append((cp, right))
    return out


def raw_score(detections: np.ndarray, wins: list[tuple[int, int]], profile: str) -> dict[str, float]:
    """detections: row indices (any order); wins from `windows`. -> raw score, null and perfect, tp/fp/fn counts."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    max_tp = scaled_sigmoid(-1.0)
    best = [None] * len(wins)
    fp_score, fp = 0.0, 0
    for i in sorted(int(d) for d in detections):
        k = next((j for j, (lo, hi) in enumerate(wins) if lo <= i <= hi), None)
        if k is not None:
            lo, hi = wins[k]
            y = -(hi - i + 1) / (hi - lo + 1)
            s = a_tp * scaled_sigmoid(y) / max_tp
            best[k] = s if best[k] is None else max(best[k], s)
            continue
        prev = [w for w in wins if w[1] < i]
        if prev:
            lo, hi = prev[-1]
            y = (i - hi) / max(hi - lo, 1)  # width - 1 = hi - lo
        else:
            y = 3.0
        fp_score += a_fp * scaled_sigmoid(y)
        fp += 1
    tp = sum(b is not None for b in best)
    raw = fp_score + sum(b for b in best if b is not None) - a_fn * (len(wins) - tp)
    return {"raw": raw, "null": -a_fn * len(wins), "perfect": a_tp * len(wins), "tp": tp, "fp": fp,
            "fn": len(wins) - tp}


def normalised(parts: list[dict[str, float]]) -> float | None:
    """Sum raw/null/perfect over files -> 100 (raw - null) / (perfect - null); None without any window."""
    raw, null, perfect = (sum(p[k] for p in parts) for k in ("raw", "null", "perfect"))
    return None if perfect == null else 100.0 * (raw - null) / (perfect - null)


def changes(flag: np.ndarray) -> np.ndarray:
    """(T,) 0/1 alert flag -> row indices where it changes (both the rise and the fall are changepoints)."""
    f = np.asarray(flag, dtype=np.int8)
    return np.flatnonzero(np.diff(f) != 0) + 1
