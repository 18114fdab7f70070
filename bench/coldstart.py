"""Row 7, cold start: `firedamp run` from launch to the first published frame.

A board on a raw pty sends a reading every FEED_S s (so the wait for a frame adds at most that), a private
Mosquitto is already up, and a subscriber waits for the first telemetry message. The clock starts just
before the process is spawned. Median of RUNS launches. Beside it: the same interpreter only importing
numpy and onnxruntime (the floor any Python edge with this runtime pays), and the board's own warm-up
(firmware setting warmup_s), during which it sends no methane reading anyway.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, Listener, Pty, edge_process, mosquitto, reading_lines, write_config

RUNS = 3
FEED_S = 0.01


def _board_warmup_s() -> int:
    """warmup_s default from the firmware's settings schema (firmware/settings.py, which imports its
    neighbours: firmware/ on the path while it loads, as edge/flash.py does)."""
    path = str(ROOT / "firmware")
    sys.path.insert(0, path)
    try:
        import settings as fw_settings
    finally:
        sys.path.remove(path)
    return int(fw_settings.defaults()["warmup_s"])


def _import_floor_s() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import numpy, onnxruntime"], check=True, cwd=ROOT)
    return time.monotonic() - t0


def launch_to_first_frame(tmp: Path, broker) -> float:
    pty = Pty()
    stop = threading.Event()
    lines = reading_lines("cold-01", [0.4] * 6000, [900.0] * 6000)

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < len(lines):
            pty.write(lines[i])
            pty.drain()
            i += 1
            stop.wait(FEED_S)

    listener = Listener(broker.host, broker.port, ("firedamp/bench/cold-01/telemetry",))
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        cfg = write_config(tmp / "edge.toml", tmp / "data", [pty.device], broker.port)
        feeder.start()
        t0 = time.monotonic()
        with edge_process(cfg, tmp / "edge.log"):
            got = listener.wait(lambda m: m[0][0] if m else None, 30)
        if not got:
            raise RuntimeError(f"cold start: no telemetry within 30 s (log {tmp / 'edge.log'})")
        return float(got) - t0
    finally:
        stop.set()
        feeder.join(2)
        listener.close()
        pty.close()


def measure(quick: bool = False) -> dict:
    runs = 1 if quick else RUNS
    times = []
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp, mosquitto(Path(tmp)) as broker:
        for i in range(runs):
            d = Path(tmp) / f"run{i}"
            d.mkdir()
            times.append(launch_to_first_frame(d, broker))
    return {
        "runs": runs, "first_frame_s": round(statistics.median(times), 3), "all_s": [round(t, 3) for t in times],
        "import_numpy_onnxruntime_s": round(_import_floor_s(), 3), "board_warmup_s": _board_warmup_s(),
        "feed_period_s": FEED_S,
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    return [("cold start: `firedamp run` launch → first published frame (median of "
             f"{r['runs']})", f"{r['first_frame_s']:.2f} s",
             f"python importing numpy + onnxruntime: {r['import_numpy_onnxruntime_s']:.2f} s; "
             f"board warm-up before its first methane reading: {r['board_warmup_s']} s", "")]
