"""Run firedamp's benchmarks and print one table: speed, memory and detection quality, each beside its
reference measured in the same run (or, with --json, the same figures as one JSON object).

  firedamp bench                 every row (a few minutes); writes bench/results.md
  firedamp bench --quick         every row on a tiny input (a smoke run; writes nothing unless --results)
  firedamp bench --json          one JSON object on stdout (keys: bench/README.md)
  firedamp bench --only latency,memory

Needs the train extra (row 1 compares with PyTorch), Mosquitto (rows 3, 4, 7), the MicroPython binary
(row 5), nats-server and postgresql-15 (row 10): `make bench` installs them. Progress goes to stderr. Exit
status 1 if any row failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, machine_info

SCHEMA = "firedamp-bench/1"
# JSON key: (row number, module)
ROWS: dict[str, tuple[int, str]] = {
    "scoring": (1, "bench.scoring"),
    "ingest": (2, "bench.ingest"),
    "latency": (3, "bench.latency"),
    "memory": (4, "bench.memory"),
    "firmware": (5, "bench.firmware"),
    "detection": (6, "bench.detection"),
    "cold_start": (7, "bench.coldstart"),
    "control_room": (8, "bench.control_room"),
    "modbus": (9, "bench.modbus"),
    "fleet": (10, "bench.fleet"),
}
RESULTS = ROOT / "bench" / "results.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quick", action="store_true",
                        help="tiny inputs: checks that every benchmark runs (figures are not meaningful)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated rows to run (default all): {', '.join(ROWS)}")
    parser.add_argument("--results", default=None,
                        help="write the table as Markdown to this file (default: bench/results.md on a full "
                             "run of every row, nothing with --quick or --only)")


def run(args: argparse.Namespace) -> int:
    from edge.errors import ConfigError

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ConfigError(f"--only: unknown row {unknown[0]!r}; rows are {', '.join(ROWS)}")
    report = collect(names, args.quick)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(report))
    target = args.results or (RESULTS if not args.quick and names == list(ROWS) else None)
    if target:
        Path(target).write_text(markdown(report))
        print(f"bench: wrote {target}", file=sys.stderr)
    return 1 if any("error" in report[n] for n in names) else 0


def collect(names: list[str], quick: bool) -> dict:
    """Run the rows in order; a row that fails holds {"error": "..."} and the others still run."""
    report: dict = {"schema": SCHEMA, "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "quick": quick, "machine": machine_info(), "seconds": {}}
    t_all = time.monotonic()
    for name in names:
        number, module = ROWS[name]
        print(f"bench: row {number} {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        for attempt in (1, 2):
            try:
                report[name] = importlib.import_module(module).measure(quick=quick)
                break
            except Exception as exc:  # a benchmark that cannot run is reported, and the others still run
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
                if attempt == 1:  # e.g. another process on this machine opened our pty: once more, fresh ptys
                    print(f"bench: row {number} {name} failed ({report[name]['error'][:300]}); retrying once",
                          file=sys.stderr, flush=True)
        report["seconds"][name] = round(time.monotonic() - t0, 1)
        print(f"bench: row {number} {name}: {report['seconds'][name]:.1f} s"
              + (f"  FAILED: {report[name]['error']}" if "error" in report[name] else ""), file=sys.stderr, flush=True)
    report["seconds_total"] = round(time.monotonic() - t_all, 1)
    report["machine"]["load_1min_end"] = round(os.getloadavg()[0], 2)
    return report


def rows(report: dict) -> list[tuple[str, str, str, str, str]]:
    out = []
    for name, (number, module) in ROWS.items():
        if name not in report:
            continue
        r = report[name]
        if "error" in r:
            out.append((str(number), name, "FAILED", r["error"], ""))
            continue
        for measure, value, reference, goal in importlib.import_module(module).table(r):
            out.append((str(number), measure, value, reference, goal))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table_md(report: dict) -> str:
    lines = ["| # | measure | firedamp | reference (same run) | goal |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows(report)]
    return "\n".join(lines)


def _header(report: dict) -> str:
    m = report["machine"]
    return (f"{report['date']} on {m['cpu']} ({m['cores']} cores, {m['arch']}, {m['os']}); Python {m['python']}, "
            f"numpy {m['numpy']}, onnxruntime {m['onnxruntime']}, torch {m['torch']}; load average "
            f"{m['load_1min']} at start, {m['load_1min_end']} at end; {report['seconds_total']:.0f} s"
            + (" (--quick: tiny inputs, figures not meaningful)" if report["quick"] else ""))


def render(report: dict) -> str:
    return f"firedamp bench — {_header(report)}\n\n{table_md(report)}"


def _constants(text: str, mod) -> str:
    """Docstrings name the modules' constants (BOARDS, WARM, ...): show their values in results.md."""
    def value(m: re.Match) -> str:
        v = getattr(mod, m.group(), None)
        return f"{v:g}" if isinstance(v, float) else str(v) if isinstance(v, (int, str, Path)) else m.group()

    return re.sub(r"\b[A-Z][A-Z0-9_]{2,}\b", value, text)


def markdown(report: dict) -> str:
    """bench/results.md: the table, the machine, and how each row was measured (the modules' docstrings)."""
    how = []
    for name, (number, module) in ROWS.items():
        if name in report:
            mod = importlib.import_module(module)
            doc = _constants((mod.__doc__ or "").strip(), mod)
            how.append(f"**{number}. {name}** (`{module.replace('.', '/')}.py`): " + " ".join(doc.split()))
    return (f"# firedamp benchmarks\n\nWritten by `make bench` (`firedamp bench`): {_header(report)}.\n\n"
            "Each figure is beside its reference, measured in the same run on this machine. JSON keys: "
            "[README.md](README.md). Re-run with `make bench`.\n\n"
            f"{table_md(report)}\n\n## How each row is measured\n\n" + "\n\n".join(how) + "\n")
