"""Read numeric columns from a CSV (simulator exports, SKAB, `firedamp history --csv`) with clear errors.

numpy only. Every problem raises firedamp.errors.DataError naming the file, the row (line number in the
file, the header is row 1) and the column. An empty cell is a missing reading (NaN), as the board's
protocol sends an empty ch4 when there is no valid reading; text that is not a number is an error.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from firedamp.errors import DataError


class Table(NamedTuple):
    path: Path
    columns: list[str]  # the feature columns, in the order asked for
    x: np.ndarray  # (T, F) float64, NaN where a cell was empty
    label: np.ndarray | None  # (T,) int8 0/1, or None without a label column


def read_csv(path: str | Path, sep: str = ",", columns: list[str] | None = None,
             label_column: str | None = None, exclude: tuple[str, ...] = ("time", "datetime", "timestamp")) -> Table:
    """Read `columns` (default: every column but the label and time-like ones) and the optional label."""
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
    idx = [header.index(c) for c in wanted]
    values: list[list[float]] = []
    for lineno, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
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
    return Table(path, list(columns), arr[:, :n], label)
