"""Smoke test of `firedamp bench`: every benchmark runs on a tiny input (--quick), and the JSON holds every key
bench/README.md documents, with the documented type, and no key it does not document. Figures are never
checked here: speed is shown in bench/, not asserted by tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("scoring", "ingest", "latency", "memory", "firmware", "detection", "cold_start", "control_room", "modbus",
        "fleet")


def firedamp(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def documented() -> list[tuple[str, str]]:
    """(key pattern, type) rows of the JSON key table in bench/README.md."""
    out = []
    for line in (ROOT / "bench" / "README.md").read_text().splitlines():
        m = re.match(r"\| `([a-z_0-9.<>\[\]]+)` \| ([^|]+) \|", line)
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


def leaves(value, path: str = "") -> list[tuple[str, object]]:
    """Flatten: dict keys joined with '.', a list of objects as `key[]`, anything else is a leaf."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [leaf for v in value for leaf in leaves(v, path + "[]")]
    return [(path, value)]


def pattern(key: str) -> re.Pattern:
    return re.compile(re.sub(r"<[a-z_]+>", r"[^.\\[\\]]+", re.escape(key).replace(r"\<", "<").replace(r"\>", ">")) + "$")


def type_ok(value: object, kind: str) -> bool:
    kind = kind.replace(", optional", "")
    if value is None:
        return kind.endswith(" or null")
    base = kind.removesuffix(" or null")
    if isinstance(value, bool):
        return base == "bool"
    return {"string": isinstance(value, str), "integer": isinstance(value, int),
            "number": isinstance(value, (int, float)), "list": isinstance(value, list)}.get(base, False)


def test_readme_documents_keys_with_known_types():
    rows = documented()
    assert len(rows) > 100
    for key, kind in rows:
        assert kind.replace(", optional", "").removesuffix(" or null") in ("string", "integer", "number", "bool", "list"), key


@pytest.fixture(scope="module")
def quick_report():
    missing = [what for what, ok in (
        ("torch (the train extra)", importlib.util.find_spec("torch") is not None),
        ("mosquitto", shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")),
        ("the MicroPython binary", (Path(sys.executable).parent / "micropython").exists()),
        ("nats-server", shutil.which("nats-server") or os.path.exists("/usr/sbin/nats-server")),
        ("postgresql-15", os.path.exists("/usr/lib/postgresql/15/bin/initdb")),
    ) if not ok]
    if missing:
        pytest.skip(f"firedamp bench needs {', '.join(missing)} (make bench installs them)")
    done = firedamp("bench", "--quick", "--json")
    assert done.returncode == 0, f"firedamp bench --quick failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


@pytest.mark.torch
@pytest.mark.mosquitto
@pytest.mark.micropython
def test_every_row_runs_and_reports_every_documented_key(quick_report):
    report = quick_report
    assert report["quick"] is True
    for row in ROWS:
        assert "error" not in report[row], f"row {row} failed: {report[row].get('error')}"
    assert set(report["seconds"]) == set(ROWS)
    flat = leaves(report)
    for key, kind in documented():
        rx = pattern(key)
        hits = [(p, v) for p, v in flat if rx.match(p)]
        if "optional" not in kind:
            assert hits, f"documented key {key} is missing from the JSON"
        for p, v in hits:
            assert type_ok(v, kind), f"{p} = {v!r} is not {kind}"
    patterns = [pattern(k) for k, _ in documented()]
    undocumented = [p for p, _ in flat if not any(rx.match(p) for rx in patterns)]
    assert not undocumented, f"keys missing from bench/README.md: {undocumented}"


@pytest.mark.torch
@pytest.mark.mosquitto
@pytest.mark.micropython
def test_scoring_compares_the_same_weights(quick_report):
    s = quick_report["scoring"]
    assert s["torch_max_abs_diff"] < 1e-4  # the torch copy of the ONNX weights computes the same thing
    assert set(s["us_per_sample"]) == {"1", "8", "32"}


def test_results_file_holds_the_table(tmp_path):
    out = tmp_path / "results.md"
    done = firedamp("bench", "--quick", "--only", "ingest", "--results", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "| # | measure | firedamp | reference (same run) | goal |" in text
    assert "ingest frames/s" in text and "115200-baud" in text
    assert "## How each row is measured" in text
    assert "| # | measure" in done.stdout  # the same table on stdout


def test_unknown_row_is_a_clear_error():
    done = firedamp("bench", "--only", "ingest,nosuch", timeout=60)
    assert done.returncode == 1
    assert "firedamp: --only: unknown row 'nosuch'" in done.stderr
