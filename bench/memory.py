"""Row 4, memory: resident set of `firedamp run` with 8 boards after a warm-up, install size, model size.

- RSS: `firedamp run` as a child process reading BOARDS raw ptys (history and outbox on, as deployed) and
  publishing to a private Mosquitto; each board sends WARM readings (past the model's warm-up), then VmRSS
  and VmHWM (peak) are read from /proc. Beside it: a bare interpreter that only imports numpy and
  onnxruntime (the floor), and one that imports torch (what scoring with PyTorch would start from).
- Install size: the files listed in the RECORD of each installed distribution in the runtime closure
  (numpy, onnxruntime, pyserial, paho-mqtt and what they require, extras excluded), summed from this venv,
  plus firedamp's own edge/ and models/ packages. Beside it: the torch distribution alone, and this whole
  venv's site-packages (runtime + the train extra + dev tools).
- Model: the shipped .onnx, and the same weights quantised to int8 by models.export.quantize_int8.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from bench.common import (
    ROOT,
    Listener,
    Pty,
    edge_process,
    mine_series,
    mosquitto,
    reading_lines,
    rss_kb,
    write_config,
)

BOARDS = 8
WARM = 120  # readings per board: the model's warm-up is 60 samples
RUNTIME_DISTS = ("numpy", "onnxruntime", "pyserial", "paho-mqtt")
GOAL_RSS_MB = 80.0


# ---------------------------------------------------------------------------------------------- install size

def _closure(names: tuple[str, ...]) -> list[str]:
    """The distributions `names` need at run time (requirements without extras, markers evaluated here)."""
    from packaging.requirements import Requirement

    seen: dict[str, None] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = None
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(seen)


def _dist_bytes(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    return total


def _tree_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and not any(s in p.parts for s in skip))


def install_size() -> dict:
    dists = _closure(RUNTIME_DISTS)
    per = {d: _dist_bytes(d) for d in dists}
    own = _tree_bytes(ROOT / "edge") + _tree_bytes(ROOT / "models")
    site = Path(metadata.distribution("numpy").locate_file(""))
    try:
        torch_bytes = _dist_bytes("torch")
    except metadata.PackageNotFoundError:
        torch_bytes = 0
    return {
        "runtime_mb": round((sum(per.values()) + own) / 1e6, 1), "runtime_dists": {k: round(v / 1e6, 2) for k, v in per.items()},
        "firedamp_mb": round(own / 1e6, 2), "torch_mb": round(torch_bytes / 1e6, 1),
        "venv_site_packages_mb": round(_tree_bytes(site) / 1e6, 1),
        "method": "sum of the files in each installed distribution's RECORD (runtime closure, no extras) "
                  "+ firedamp's edge/ and models/; references: torch's RECORD, and du of this venv's site-packages",
    }


# ---------------------------------------------------------------------------------------------- model size

def model_size() -> dict:
    from models.export import quantize_int8
    from models.runtime import DEFAULT_MODEL, Model

    logging.disable(logging.WARNING)  # onnxruntime.quantization's advice to pre-process, on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            q = quantize_int8(DEFAULT_MODEL, Path(tmp) / "int8.onnx")
            Model(q)  # the int8 file is a valid, sealed firedamp model
            int8 = q.stat().st_size
    finally:
        logging.disable(logging.NOTSET)
    return {"float_bytes": DEFAULT_MODEL.stat().st_size, "int8_bytes": int8}


# ---------------------------------------------------------------------------------------------- RSS

def _import_rss_mb(code: str) -> float:
    probe = (f"{code}\nfor line in open('/proc/self/status'):\n"
             "    if line.startswith('VmRSS'): print(int(line.split()[1]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return round(int(out.stdout.split()[-1]) / 1024, 1)


def _health(messages: list, want: int) -> dict | None:
    """The edge's last health report once it counts `want` frames (its own counters, not telemetry QoS 0)."""
    if not messages:
        return None
    h = json.loads(messages[-1][2])
    return h if h["frames_ok"] >= want else None


def _links_up(messages: list, boards: int) -> bool:
    if not messages:
        return False
    links = json.loads(messages[-1][2])["links"]
    return len(links) == boards and all(links.values())


def edge_rss(boards: int, warm: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp, mosquitto(Path(tmp)) as broker:
        ptys = [Pty() for _ in range(boards)]
        listener = None
        try:
            cfg = write_config(Path(tmp) / "edge.toml", Path(tmp) / "data", [p.device for p in ptys], broker.port,
                               status_interval_s=1.0)
            listener = Listener(broker.host, broker.port, ("firedamp/bench/bench/health",))
            series = [mine_series(warm, seed=8000 + b) for b in range(boards)]
            lines = [reading_lines(f"mem-{b}", *series[b]) for b in range(boards)]
            with edge_process(cfg, Path(tmp) / "edge.log") as proc:
                # wait until the edge is online and has every port open (bytes written before pyserial opens
                # a port can be flushed by its open)
                health = listener.wait(lambda m: _links_up(m, boards), 30)
                if not health:
                    raise RuntimeError(f"memory: firedamp run did not open its {boards} ports and come online "
                                       f"(log {tmp}/edge.log)")
                for i in range(warm):
                    for b, p in enumerate(ptys):
                        p.write(lines[b][i])
                    time.sleep(0.004)
                want = boards * warm
                health = listener.wait(lambda m: _health(m, want), 30)
                if not health:
                    last = _health(listener.messages, 0) or {}
                    log_tail = (Path(tmp) / "edge.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"memory: the edge did not report {want} frames in 30 s (frames_ok "
                                       f"{last.get('frames_ok')}, rejected {last.get('frames_rejected')}); "
                                       f"edge log ends: {log_tail}")
                time.sleep(1.0)
                mem = rss_kb(proc.pid)
                if proc.poll() is not None:
                    raise RuntimeError("memory: firedamp run exited")
        finally:
            if listener:
                listener.close()
            for p in ptys:
                p.close()
    return {"rss_mb": round(mem["VmRSS"] / 1024, 1), "peak_rss_mb": round(mem["VmHWM"] / 1024, 1),
            "boards": boards, "readings_per_board": warm, "frames_ok": health["frames_ok"],
            "samples_scored": health["samples_scored"]}


def measure(quick: bool = False) -> dict:
    rss = edge_rss(BOARDS if not quick else 2, WARM if not quick else 70)
    return {
        **rss,
        "python_numpy_onnxruntime_mb": _import_rss_mb("import numpy, onnxruntime"),
        "python_torch_mb": _import_rss_mb("import torch"),
        "install": install_size(), "model": model_size(),
        "goal_rss_mb": GOAL_RSS_MB, "goal_met": bool(rss["rss_mb"] <= GOAL_RSS_MB),
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    i, m = r["install"], r["model"]
    return [
        (f"memory: RSS of `firedamp run`, {r['boards']} boards, after {r['readings_per_board']} readings each",
         f"{r['rss_mb']:.1f} MB (peak {r['peak_rss_mb']:.1f})",
         f"python + numpy + onnxruntime imported: {r['python_numpy_onnxruntime_mb']:.1f} MB; "
         f"python + torch imported: {r['python_torch_mb']:.1f} MB",
         f"≤ {r['goal_rss_mb']:g} MB " + ("met" if r["goal_met"] else "NOT met")),
        ("runtime install (numpy, onnxruntime, pyserial, paho-mqtt + deps, RECORD sizes; + firedamp)",
         f"{i['runtime_mb']:.0f} MB", f"torch alone {i['torch_mb']:.0f} MB; this dev venv {i['venv_site_packages_mb']:.0f} MB", ""),
        ("model file: float32 | int8 (dynamic quantisation)", f"{m['float_bytes'] / 1024:.1f} KB | {m['int8_bytes'] / 1024:.1f} KB",
         "", ""),
    ]

