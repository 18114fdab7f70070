"""Read numeric columns from a CSV (simulator exports, SKAB, `firedamp history --csv`) with clear errors.

numpy only. Every problem raises firedamp.errors.DataError naming the file, the row (line number in the
file, the header is row 1) and the column. An empty cell is a missing reading (NaN), as the board's
protocol sends an empty ch4 when there is no valid reading; text that is not a number is an error.
Columns not asked for are never parsed (a site export may carry any number of them, text included).
With a time column, `regularise` puts the rows on the model's sample grid: a gap becomes missing samples.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from firedamp.errors import DataError

EDGE_MAX_GAP_SAMPLES = 5  # edge.windows.Windows.max_gap_samples: a longer silence starts a stream afresh


class Table(NamedTuple):
    path: Path
    columns: list[str]  # the feature columns, in the order asked for
    x: np.ndarray  # (T, F) float64, NaN where a cell was empty
    label: np.ndarray | None  # (T,) int8 0/1, or None without a label column
    t_s: np.ndarray | None = None  # (T,) seconds (Unix time, or the column's own numbers), with a time column


def read_csv(path: str | Path, sep: str = ",", columns: list[str] | None = None,
             label_column: str | None = None, exclude: tuple[str, ...] = ("time", "datetime", "timestamp"),
             time_column: str | None = None) -> Table:
    """Read `columns` (default: every column but the label and time-like ones), the optional label and the
    optional time column (seconds as a number, or an ISO 8601 date and time; without a zone it is UTC)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file (byte {exc.start} is not UTF-8)") from exc
    if len(sep) != 1:
        raise DataError(f"{path}: the separator must be one character, got {sep!r}")
    rows = csv.reader(text.splitlines(), delimiter=sep)
    header = next(rows, None)
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{path}: the file is empty (no header row)")
    header = [h.strip() for h in header]
    if columns is None:
        skip = {label_column, *exclude, "anomaly", "changepoint", "label"}
        columns = [h for h in header if h and h.lower() not in skip and h not in skip]
        if not columns:
            raise DataError(f"{path}: no data columns in the header {header}")
    wanted = list(columns) + ([label_column] if label_column else [])
    for name in wanted:
        if name not in header:
            raise DataError(f"{path}, row 1: column {name!r} is missing (the header has {', '.join(header)})")
    if time_column is not None and time_column not in header:
        raise DataError(f"{path}, row 1: time column {time_column!r} is missing (the header has {', '.join(header)})")
    idx = [header.index(c) for c in wanted]
    ti = header.index(time_column) if time_column is not None else None
    values: list[list[float]] = []
    times: list[float] = []
    for lineno, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if ti is not None:
            times.append(_seconds(row[ti].strip() if ti < len(row) else "", path, lineno, time_column))
        rec = []
        for name, i in zip(wanted, idx, strict=True):
            cell = row[i].strip() if i < len(row) else ""
            if cell == "":
                if name == label_column:
                    raise DataError(f"{path}, row {lineno}, column {name!r}: the label is empty (need 0 or 1)")
                rec.append(math.nan)
                continue
            try:
                v = float(cell)
            except ValueError:
                raise DataError(f"{path}, row {lineno}, column {name!r}: {cell[:30]!r} is not a number") from None
            if not math.isfinite(v):
                raise DataError(f"{path}, row {lineno}, column {name!r}: {cell[:30]!r} is not a finite number")
            if name == label_column and v not in (0.0, 1.0):
                raise DataError(f"{path}, row {lineno}, column {name!r}: label {cell!r} must be 0 or 1")
            rec.append(v)
        values.append(rec)
    if not values:
        raise DataError(f"{path}: no data rows after the header")
    arr = np.asarray(values, dtype=np.float64)
    n = len(columns)
    label = arr[:, n].astype(np.int8) if label_column else None
    return Table(path, list(columns), arr[:, :n], label, np.asarray(times) if ti is not None else None)


def _seconds(cell: str, path: Path, lineno: int, name: str) -> float:
    if cell == "":
        raise DataError(f"{path}, row {lineno}, column {name!r}: the time is empty")
    try:
        v = float(cell)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{path}, row {lineno}, column {name!r}: {cell[:30]!r} is neither seconds nor an ISO 8601 "
                        "date and time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def regularise(table: Table, period_s: float) -> tuple[Table, dict[str, float | int], np.ndarray]:
    """Put the rows of a table with times on the grid t0, t0 + period, ...: each row goes to its nearest slot;
    a slot no row reached is a missing sample (NaN, label 0); two rows in one slot (an export faster than the
    period, or a repeated row) keep the last. Times must not go backwards (DataError naming the row).
    Returns the new table, what was done (rows, samples, missing samples, gaps, longest gap in s, merged
    rows) and the (T,) mask of samples some row reached (False: the logger sent nothing for that sample)."""
    if table.t_s is None:
        raise ValueError("regularise needs a table read with a time column")
    t = table.t_s
    if t.size > 1:
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            raise DataError(f"{table.path}, row {int(back[0]) + 3}: the time goes backwards "
                            f"({t[back[0] + 1]:.3f} s after {t[back[0]]:.3f} s); sort the export by time")
    slot = np.rint((t - t[0]) / period_s).astype(np.int64)
    n = int(slot[-1]) + 1 if slot.size else 0
    if n > 50_000_000:
        raise DataError(f"{table.path}: {n} samples of {period_s:g} s between the first and last time; is --period right?")
    x = np.full((n, table.x.shape[1]), np.nan)
    x[slot] = table.x  # later rows overwrite earlier ones in the same slot
    label = None
    if table.label is not None:
        label = np.zeros(n, np.int8)
        label[slot] = table.label
    filled = np.zeros(n, bool)
    filled[slot] = True
    runs = np.diff(np.concatenate([[0], (~filled).astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(runs == 1), np.flatnonzero(runs == -1)
    info = {"rows": int(len(t)), "samples": n, "missing_samples": int((~filled).sum()), "gaps": int(starts.size),
            "longest_gap_s": float((stops - starts).max() * period_s) if starts.size else 0.0,
            "merged_rows": int(len(t) - filled.sum())}
    return Table(table.path, table.columns, x, label, t[0] + np.arange(n) * period_s), info, filled


def stretches(present: np.ndarray, max_gap: int = EDGE_MAX_GAP_SAMPLES) -> list[tuple[int, int]]:
    """(T,) bool samples some row reached -> [(start, stop)) of the stretches between silences longer than
    `max_gap` samples (each starts and ends on a present sample): what the edge scores as one stream."""
    idx = np.flatnonzero(np.asarray(present, bool))
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > max_gap + 1)
    return [(int(seg[0]), int(seg[-1]) + 1) for seg in np.split(idx, cuts + 1)]
