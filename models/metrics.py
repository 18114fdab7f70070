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


def forecast_errors(forecast: np.ndarray, current: np.ndarray, target: np.ndarray) -> dict[str, float | int]:
    """MAE/RMSE of the model's forecast and of persistence (the current value) on rows where all are finite."""
    f, c, t = (np.asarray(v, np.float64) for v in (forecast, current, target))
    ok = np.isfinite(f) & np.isfinite(c) & np.isfinite(t)
    if not ok.any():
        return {"rows": 0}
    ef, ep = f[ok] - t[ok], c[ok] - t[ok]
    return {
        "rows": int(ok.sum()),
        "mae": float(np.abs(ef).mean()), "rmse": float(np.sqrt((ef ** 2).mean())),
        "persistence_mae": float(np.abs(ep).mean()), "persistence_rmse": float(np.sqrt((ep ** 2).mean())),
    }
