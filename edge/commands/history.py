"""`firedamp history`: print the readings edge/history.py stored for one board, as a table or CSV."""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

from edge.errors import ConfigError, DataError
from edge.history import History, parse_time
from firedamp.times import iso


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = textwrap.fill("Print the readings the edge service stored for one board: every reading of the last "
                     "7 days (by default), or per-minute minimum/mean/maximum for months (--minutes). "
                     "--csv gives a file to retrain or evaluate the model on this site's own data. For a board "
                     "with a pressure/temperature input or a battery, the table also shows its pressure (kPa), "
                     "temperature (°C), standard flow and total, battery (mV) and run time left (min).")
    p.epilog = ("Examples:  firedamp history --device pico-01 --since 2h\n"
                "           firedamp history --device pico-01 --since 30d --minutes\n"
                "           firedamp history --device pico-01 --since 7d --csv > normal.csv"
                "\n           (then: firedamp train --data normal.csv --features ch4,flow --out site.onnx)")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--device", required=False, help="board id as it appears in its frames (e.g. pico-01); "
                   "leave out to list the boards on record")
    p.add_argument("--since", default="24h", help="where the listing starts (default: 24h). A span back from now: "
                   "a number and s, m, h, d or w, e.g. 90s, 30m, 12h, 1.5h, 7d, 2w. Or a date or date-time in "
                   "ISO 8601, read as UTC: 2026-11-20, 2026-11-20T10:00, '2026-11-20 10:00:30'; add Z or an "
                   "offset for another zone: 2026-11-20T10:00+02:00. Or now")
    p.add_argument("--until", default=None, help="where it ends, the same forms (default: now)")
    p.add_argument("--minutes", action="store_true", help="per-minute min/mean/max (kept ≥ 90 days) instead of "
                   "every reading (kept 7 days by default)")
    p.add_argument("--csv", action="store_true", help="CSV on standard output: time,ch4,flow,label, the format "
                   "`firedamp train` and `firedamp evaluate` read (units: see the table output)")
    p.add_argument("--all-columns", action="store_true", help="with --csv: also units, total, state, relay, "
                   "faults, flags, seq (or min/max per minute), and the pressure, temperature, standard flow, "
                   "battery and run time columns of a board that sends them")
    p.add_argument("--config", default="/etc/firedamp/edge.toml", help="edge.toml, for where the history is "
                   "stored (default: /etc/firedamp/edge.toml)")
    p.add_argument("--db", default=None, help="history database file (overrides --config)")


def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    from edge.config import load

    return load(args.config).history_path


def run(args: argparse.Namespace) -> int:
    path = _db_path(args)
    hint = ("; run it as the service's user: sudo -u firedamp /opt/firedamp/.venv/bin/firedamp history ...")
    try:
        if not path.exists():
            raise ConfigError(f"no history database at {path} (has `firedamp run` stored anything yet?)")
        h = History(path)
    except PermissionError as exc:
        raise DataError(f"cannot read the history database {path}: {exc.strerror}{hint}") from exc
    except (OSError, sqlite3.Error) as exc:
        ro = "readonly" in str(exc) or "unable to open" in str(exc)
        raise DataError(f"cannot read the history database {path}: {exc}{hint if ro else ''}") from exc
    try:
        if not args.device:
            for d in h.devices():
                print(d)
            return 0
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else time.time() + 1
        if since >= until:
            raise DataError(f"--since {args.since!r} ({iso(since)}) is not before --until "
                            f"{args.until or 'now'!r} ({iso(until)})")
        out = sys.stdout
        w = csv.writer(out, lineterminator="\n") if args.csv else None
        if args.minutes:
            rows = h.minutes(args.device, since, until)
            head = ["time", "ch4", "flow", "label", "ch4_min", "ch4_max", "flow_min", "flow_max", "unit", "flow_unit",
                    "worst_state", "samples"]
            table = [[iso(m), _f(mean), _f(fmean), int(ws != "NORMAL" or mean is None), _f(cmin), _f(cmax), _f(fmin),
                      _f(fmax), _unit(u), fu, ws, n] for m, cmin, mean, cmax, fmin, fmean, fmax, u, fu, ws, n in rows]
            aux_rows = h.aux_minutes(args.device, since, until)
            if aux_rows:  # the minute's means (the totaliser: its highest), beside the same minute's readings
                by_minute = {a[0]: [_f(a[2]), _f(a[5]), _f(a[8]), a[16], _f(a[17]), _f(a[11]), _f(a[14])]
                             for a in aux_rows}
                head += AUX_HEAD
                blank = [""] * len(AUX_HEAD)
                table = [row + by_minute.get(m, blank) for row, (m, *_) in zip(table, rows, strict=True)]
        else:
            rows = h.raw(args.device, since, until)
            head = ["time", "ch4", "flow", "label", "unit", "flow_unit", "total", "state", "relay", "faults", "flags",
                    "seq"]
            table = [[iso(t), _f(ch4), _f(flow), int(state != "NORMAL" or ch4 is None), _unit(u), fu, _f(total), state,
                      relay, f"{faults:04x}", f"{flags:02x}", seq]
                     for t, ch4, flow, u, fu, total, state, relay, faults, flags, seq in rows]
            aux_rows = h.aux(args.device, since, until)
            if aux_rows:
                head += AUX_HEAD
                table = _with_aux(table, [r[0] for r in rows], aux_rows)
        if not table:
            hint = "" if args.minutes else f" (every reading is kept {h.raw_s / 86400:g} days; older: --minutes)"
            what = "minutes" if args.minutes else "readings"
            print(f"no {what} for {args.device!r} between {iso(since)} and {iso(until)}{hint}", file=sys.stderr)
            return 1
        if w:
            keep = len(head) if args.all_columns else 4  # time,ch4,flow,label: what train/evaluate read as is
            w.writerow(head[:keep])
            w.writerows(row[:keep] for row in table)
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(head, *table, strict=True)]
            for row in [head, *table]:
                print("  ".join(str(x).rjust(n) for x, n in zip(row, widths, strict=True)))
        return 0
    finally:
        h.close()


AUX_HEAD = ["p_kpa", "t_c", "std_flow", "std_unit", "std_total", "battery_mv", "run_min"]


def _with_aux(table: list[list], times: list[float], aux_rows: list[tuple]) -> list[list]:
    """Each A frame's values on the row of the reading it followed (the last one at or before it: a board sends
    A right after each periodic reading); rows without one get empty cells. An A frame before the first reading
    of the span has no row and is not shown."""
    cells: dict[int, list] = {}
    i = -1
    for t, p, tc, std, unit, total, mv, run, _seq in aux_rows:
        while i + 1 < len(times) and times[i + 1] <= t:
            i += 1
        if i >= 0:
            cells[i] = [_f(p), _f(tc), _f(std), unit, _f(total), "" if mv is None else mv, "" if run is None else run]
    blank = [""] * len(AUX_HEAD)
    return [row + cells.get(k, blank) for k, row in enumerate(table)]


def _f(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}".rstrip("0").rstrip(".") if v % 1 else f"{v:.0f}"


def _unit(u: str | None) -> str:
    return {"VOL": "%vol", "LEL": "%LEL"}.get(u or "", u or "")
