"""Detection and forecast metrics as pure numpy functions (point-wise, event-level, false alarms per day).

Shapes: every argument is a (T,) array over the same rows; `alert` and `label` are 0/1 or bool.
"""

from __future__ import annotations

import numpy as np


def confusion(alert: np.ndarray, label: np.ndarray) -> dict[str, int]:
    a, y = np.asarray(alert, bool), np.asarray(label, bool)
    return {"tp": int((a & y).sum()), "fp": int((a & ~y).sum()), "fn": int((~a & y).sum()), "tn": int((~a & ~y).sum())}


def rates(c: dict[str, int]) -> dict[str, float]:
    """SKAB's definitions: F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN), MAR = FN / (FN + TP)."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": tp / (tp + (fp + fn) / 2) if tp + fp + fn else 0.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> [(start, stop)) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist(), strict=True))


def events(alert: np.ndarray, label: np.ndarray, period_s: float) -> dict[str, object]:
    """Event-level: a labelled span is detected when any alert falls inside it; delay = first alert - start.

    False alarms: alert runs that start outside every labelled span (merged when less than 60 s apart),
    per 24 h of unlabelled rows.
    """
    a, y = np.asarray(alert, bool), np.asarray(label, bool)
    spans = runs(y)
    delays = []
    for s, e in spans:
        hit = np.flatnonzero(a[s:e])
        if hit.size:
            delays.append(float(hit[0]) * period_s)
    gap = max(1, int(round(60.0 / period_s)))
    onsets, last_end = 0, -10**12
    for s, e in runs(a & ~y):
        if s - last_end >= gap and not (s > 0 and y[s - 1]):
            onsets += 1
        last_end = e
    normal_days = float((~y).sum()) * period_s / 86400.0
    return {
        "events": len(spans),
        "detected": len(delays),
        "event_recall": len(delays) / len(spans) if spans else None,
        "median_delay_s": float(np.median(delays)) if delays else None,
        "false_alarms": onsets,
        "normal_hours": normal_days * 24.0,
        "false_alarms_per_24h": onsets / normal_days if normal_days > 0 else None,
    }


def forecast_errors(forecast: np.ndarray, current: np.ndarray, target: np.ndarray,
                    baselines: dict[str, np.ndarray] | None = None) -> dict[str, float | int]:
    """MAE/RMSE of the model's forecast, of persistence (the current value) and of each named baseline
    ({name}_mae, {name}_rmse), all on the same rows: those where every one of them and the target is finite."""
    f, c, t = (np.asarray(v, np.float64) for v in (forecast, current, target))
    named = {"persistence": c} | {k: np.asarray(v, np.float64) for k, v in (baselines or {}).items()}
    ok = np.isfinite(f) & np.isfinite(t)
    for v in named.values():
        ok &= np.isfinite(v)
    if not ok.any():
        return {"rows": 0}
    ef = f[ok] - t[ok]
    out: dict[str, float | int] = {"rows": int(ok.sum()), "mae": float(np.abs(ef).mean()),
                                   "rmse": float(np.sqrt((ef ** 2).mean()))}
    for name, v in named.items():
        e = v[ok] - t[ok]
        out[f"{name}_mae"], out[f"{name}_rmse"] = float(np.abs(e).mean()), float(np.sqrt((e ** 2).mean()))
    return out


def holt_max(x: np.ndarray, horizon: int, alpha: float, beta: float) -> np.ndarray:
    """(T,) -> (T,) Holt's linear trend (EWMA of the level, alpha; of its slope, beta), read as the max of the
    extrapolated line over the next `horizon` samples: level + max(slope, slope x horizon). Uses only the
    past; a NaN sample holds the state (and gives NaN); NaN until the first finite sample."""
    x = np.asarray(x, np.float64)
    out = np.full(x.shape, np.nan)
    level = slope = None
    for i, v in enumerate(x.tolist()):
        if v != v:  # NaN
            continue
        if level is None:
            level, slope = v, 0.0
        else:
            prev = level
            level = alpha * v + (1 - alpha) * (level + slope)
            slope = beta * (level - prev) + (1 - beta) * slope
        out[i] = level + max(slope, slope * horizon)
    return out
