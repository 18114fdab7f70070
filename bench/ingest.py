"""Row 2, ingest throughput: frames per second through parse → validate → window → score → policy on one core.

The edge service's own pipeline code (edge.service.Service.process, then its outbox commit of any alerts)
runs in this thread on pre-made wire lines of BOARDS boards interleaved as they arrive, in batches of the
service's batch size; MQTT is not connected (telemetry is counted as skipped) and the history writer is
off (it is a thread of its own). Reference: the frames a 115200-baud line carries (8N1: 10 bits a byte).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import mine_series, reading_lines

BOARDS = 32
BAUD = 115200
GOAL_FPS = 100_000


def make_items(boards: int, samples: int) -> list[tuple[str, bytes, float]]:
    """(port, line, arrival time) of `samples` readings from each board, interleaved in time."""
    per = []
    for b in range(boards):
        ch4, flow = mine_series(samples, seed=7000 + b)
        per.append(reading_lines(f"bench-{b:02d}", ch4, flow))
    t0 = time.time()
    return [(f"/dev/bench{b}", per[b][i], t0 + i) for i in range(samples) for b in range(boards)]


def one_pass(items: list[tuple[str, bytes, float]], data_dir: Path) -> dict:
    from edge.config import parse_config
    from edge.service import _BATCH, Service

    cfg = parse_config({"data_dir": str(data_dir), "log_level": "error", "history": {"enabled": False},
                        "mqtt": {"host": "127.0.0.1", "port": 9}})
    svc = Service(cfg)
    try:
        alerts = 0
        t0 = time.perf_counter()
        for i in range(0, len(items), _BATCH):
            batch = svc.process(items[i:i + _BATCH])
            svc._commit(batch)
            alerts += len(batch)
        seconds = time.perf_counter() - t0
        det = svc.detector
        return {"seconds": seconds, "frames_ok": svc.decoder.ok, "rejected": svc.decoder.rejected_total,
                "scored": det.samples if det else 0, "score_seconds": det.seconds if det else 0.0,
                "alerts": alerts, "batch": _BATCH}
    finally:
        svc.outbox.close()


def parse_only(items: list[tuple[str, bytes, float]]) -> float:
    from edge.frames import Decoder

    d = Decoder()
    t0 = time.perf_counter()
    for _, line, _ in items:
        d.track(d.decode(line))
    return len(items) / (time.perf_counter() - t0)


def measure(quick: bool = False) -> dict:
    # 7 passes of ~0.5 s: on this shared machine identical passes ran at 78k-135k frames/s within a minute, and
    # 3 passes could all fall in a slow spell; the fastest pass is the least disturbed one, as in every row
    samples, repeats = (80, 1) if quick else (1500, 7)
    boards = 4 if quick else BOARDS
    items = make_items(boards, samples)
    mean_len = sum(len(line) for _, line, _ in items) / len(items)
    line_fps = BAUD / 10.0 / mean_len
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp:
            runs.append(one_pass(items, Path(tmp)))
    best = min(runs, key=lambda r: r["seconds"])
    if best["frames_ok"] != len(items) or best["scored"] < len(items) * 0.9:
        raise RuntimeError(f"ingest: {best['frames_ok']} of {len(items)} frames parsed, {best['scored']} scored")
    fps = len(items) / best["seconds"]
    return {
        "boards": boards, "frames": len(items), "repeats": repeats, "batch": best["batch"],
        "frames_per_s": round(fps), "us_per_frame": round(1e6 / fps, 2),
        "score_share": round(best["score_seconds"] / best["seconds"], 3),
        "parse_only_frames_per_s": round(parse_only(items)), "alerts": best["alerts"],
        "mean_frame_bytes": round(mean_len, 1), "line_frames_per_s": round(line_fps, 1),
        "lines_worth": round(fps / line_fps, 1),
        "goal_frames_per_s": GOAL_FPS, "goal_met": bool(fps >= GOAL_FPS),
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    return [(f"ingest frames/s, parse→validate→window→score→policy, 1 core ({r['boards']} boards)",
             f"{r['frames_per_s']:,} ({r['us_per_frame']:.1f} µs/frame; scoring {100 * r['score_share']:.0f} %)",
             f"one 115200-baud line: {r['line_frames_per_s']:.0f} frames/s ({r['mean_frame_bytes']:.0f} B); "
             f"= {r['lines_worth']:,.0f} lines; parse alone {r['parse_only_frames_per_s']:,}/s",
             f"≥ {r['goal_frames_per_s']:,} " + ("met" if r["goal_met"] else "NOT met"))]
