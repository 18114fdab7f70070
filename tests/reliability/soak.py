"""Soak: many virtual boards on one `firedamp run` for simulated hours, the broker restarted at random moments.

    python tests/reliability/soak.py --boards 16 --hours 24 --speed 100     (make soak)

Each board is the unchanged firmware on the fake machine (hardware/twin), in its own process, in a mine whose
methane climbs past the alarm level and falls back now and then, so alarms are raised and cleared all day,
and that restarts (soft reset) at random moments every 12 simulated hours.
The board side writes down every change of (state, fault, flags) it reports: that is the ground truth of the
alerts the edge must deliver. The edge runs as a real process (`python -m edge.cli run`) with the shipped
model and history on; the control room is a persistent MQTT subscriber. At the end the figures are printed
and checked: every board alert delivered, exactly once by id (duplicates after a restart are counted and
dropped by id, as consumers do), in order per device, no rejected frame, edge RSS and open fds flat.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BOARD_KINDS = ("power_off", "alarm", "fault", "warning", "low_flow", "calibration_due")


def _conftest():
    """The shared test fixtures' helpers (Broker, Subscriber, edge_settings) without pytest's fixture machinery."""
    name = "firedamp_test_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


# ---------------------------------------------------------------------------------------------- the board side

class Sample(NamedTuple):
    ch4: float
    flow: float
    label: int
    event: str


class GasCycles:
    """Background methane 0.30 % with noise; `cycles` times a rise to 1.25 % (ALARM on a coal-face board, below
    the 1.5 % power-off) held a few minutes, then back. Flow steady. Deterministic for a seed."""

    def __init__(self, seed: int, duration_s: float, cycles: int):
        rng = random.Random(seed)
        self.duration_s = duration_s
        slot = duration_s / max(cycles, 1)
        self.peaks = [slot * (i + 0.5) + rng.uniform(-0.2, 0.2) * slot for i in range(cycles)]
        self.hold = min(300.0, slot / 6)
        self.ramp = min(120.0, slot / 8)
        self.phase = rng.uniform(0, 6.28)

    def sample(self, t: float) -> Sample:
        ch4 = 0.30 + 0.03 * math.sin(t / 900.0 + self.phase)
        for c in self.peaks:
            d = abs(t - c)
            if d < self.hold / 2 + self.ramp:
                level = 1.0 if d <= self.hold / 2 else 1.0 - (d - self.hold / 2) / self.ramp
                ch4 = max(ch4, 0.30 + 0.95 * level)
        return Sample(ch4, 600.0, 0, "")


def run_board(args: argparse.Namespace) -> int:
    """One virtual board: run `seconds` of simulated time, log its reported conditions, wait for SIGTERM."""
    from hardware.twin.virtual import VirtualBoard

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    os.nice(5)  # sixteen boards on two cores: the edge under test gets the CPU first, as it would on a Pi
    scenario = GasCycles(args.seed, args.seconds, args.cycles)
    vb = VirtualBoard(scenario, args.link, Path(args.flash), device_id=args.device_id, speed=args.speed)
    states = importlib.import_module("protocol").STATES  # firmware/protocol.py (on the path via the twin)
    truth = open(args.truth, "w", buffering=1)  # noqa: SIM115 - closed below
    last = None
    while not vb.links[0].connected() and not stop.is_set():  # simulated time starts when the edge listens
        time.sleep(0.05)
    end_us = vb.clock.us + int(args.seconds * 1e6)
    wall0, sim0 = time.monotonic(), vb.clock.us
    rng = random.Random(args.seed)  # soft resets at random moments: a board restarting mid-shift
    resets = sorted(sim0 + int(rng.uniform(0.1, 0.9) * args.seconds * 1e6) for _ in range(args.restarts))
    while vb.clock.us < end_us and not stop.is_set():
        if resets and vb.clock.us >= resets[0]:
            resets.pop(0)
            vb.restart()
        vb.step()
        ctl = vb.ctl
        key = (states[ctl.alarm.state], ctl.faults != 0, ctl.flags & 0x03)
        if key != last:
            last = key
            truth.write(json.dumps({"t_s": round(vb.sim_s, 1), "state": key[0], "fault": key[1],
                                    "flags": key[2]}) + "\n")
        ahead = (vb.clock.us - sim0) / 1e6 / args.speed - (time.monotonic() - wall0)
        if ahead > 0.002:
            time.sleep(ahead)
    truth.write(json.dumps({"done": True, "steps": vb.steps, "reboots": vb.reboots, "crashes": vb.crashes,
                            "dropped_bytes": vb.dropped_bytes, "sim_s": vb.sim_s,
                            "wall_s": time.monotonic() - wall0}) + "\n")
    truth.close()
    stop.wait()
    vb.close()
    return 0


def expected_alerts(truth_lines: list[dict]) -> list[tuple[str, str]]:
    """The board alerts docs/mqtt.md promises for these reported conditions, in order: (kind, raised/cleared)."""
    active = dict.fromkeys(BOARD_KINDS, False)
    out = []
    for e in truth_lines:
        if "state" not in e:
            continue
        s = e["state"]
        now = {"power_off": s == "POWEROFF", "alarm": s == "ALARM", "fault": s == "FAULT" or e["fault"],
               "warning": s == "WARNING", "low_flow": bool(e["flags"] & 2), "calibration_due": bool(e["flags"] & 1)}
        for kind in BOARD_KINDS:
            if now[kind] != active[kind]:
                active[kind] = now[kind]
                out.append((kind, "raised" if now[kind] else "cleared"))
    return out


# ---------------------------------------------------------------------------------------------- the driver

def proc_figures(pid: int) -> tuple[int, int]:
    """(resident set size in kB, open file descriptors) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def soak(workdir: Path, boards: int, hours: float, speed: float, seed: int, restart_s: tuple[float, float],
         log=print) -> dict:
    """Run the soak; returns the figures (the caller asserts on them)."""
    fx = _conftest()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    sim_s = hours * 3600
    cycles = max(2, int(hours * 1.2))  # about one alarm per board every 50 simulated minutes
    restarts = max(1, int(hours / 12))  # and a soft reset of every board every 12 simulated hours
    bdir = workdir / "broker"
    bdir.mkdir(exist_ok=True)
    broker = fx.Broker(dir=bdir, port=fx.free_port())
    fx.write_broker_config(broker, "", False, persistence=True)
    broker.start()
    room = fx.Subscriber(broker, ["firedamp/soak/+/alert", "firedamp/soak/pi-soak/health"], persistent=True,
                         client_id="soak-control-room")
    links = [workdir / f"board{i:02d}" for i in range(boards)]
    procs: list[subprocess.Popen] = []
    edge = None
    broker_restarts = 0
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()
    t0 = time.monotonic()
    try:
        for i, link in enumerate(links):
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "board", "--link", str(link), "--flash", f"{link}.flash",
                 "--device-id", f"soak-{i:02d}", "--seconds", str(sim_s), "--speed", str(speed),
                 "--seed", str(seed * 100 + i), "--cycles", str(cycles), "--restarts", str(restarts), "--truth", f"{link}.truth"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(f"{link}.log", "wb")))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while not all(link.exists() for link in links):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("virtual boards did not start: see " + str(workdir))
            time.sleep(0.1)
        settings = fx.edge_settings(workdir, broker, [str(link) for link in links], edge_id="pi-soak", site="soak",
                                    mqtt={"telemetry": False, "discovery": False, "status_interval_s": 2},
                                    log_level="warning")
        toml = fx.write_edge_toml(workdir / "edge.toml", settings)
        edge_log = open(workdir / "edge.log", "wb")  # noqa: SIM115
        edge = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(toml)], cwd=ROOT,
                                stdout=edge_log, stderr=subprocess.STDOUT)

        def watch() -> None:
            while not done.wait(2.0):
                try:
                    samples.append((time.monotonic() - t0, *proc_figures(edge.pid)))
                except OSError:
                    return

        def chaos() -> None:
            nonlocal broker_restarts
            while not done.wait(rng.uniform(*restart_s)):
                broker.stop()
                broker_restarts += 1
                if done.wait(rng.uniform(0.2, 3.0)):
                    broker.start()
                    return
                broker.start()

        threads = [threading.Thread(target=watch, daemon=True), threading.Thread(target=chaos, daemon=True)]
        for t in threads:
            t.start()
        truth_files = [Path(f"{link}.truth") for link in links]

        def finished(p: Path) -> bool:
            return p.exists() and '"done"' in p.read_text()[-300:]

        last_log = time.monotonic()
        while not all(finished(p) for p in truth_files):
            if any(p.poll() is not None for p in procs) or edge.poll() is not None:
                raise RuntimeError(f"a board or the edge died early: see {workdir}")
            if time.monotonic() - last_log > 60:
                last_log = time.monotonic()
                log(f"soak: {time.monotonic() - t0:.0f} s, {sum(finished(p) for p in truth_files)}/{boards} boards "
                    f"done, broker restarted {broker_restarts} times, edge RSS {samples[-1][1] / 1024 if samples else 0:.1f} MB")
            time.sleep(1.0)
        done.set()
        for t in threads:
            t.join(10)
        if not broker.running:
            broker.start()
        # every alert leaves the outbox (PUBACK), then the edge stops cleanly
        outbox = Path(settings["data_dir"]) / "outbox.sqlite"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            db = sqlite3.connect(str(outbox), timeout=5)
            try:
                depth = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
            finally:
                db.close()
            if depth == 0:
                break
            time.sleep(0.5)
        time.sleep(3)  # a fresh health message and the last PUBACKed alerts reach the subscriber
        rss_end, fds_end = proc_figures(edge.pid)
        edge.send_signal(signal.SIGTERM)
        edge_rc = edge.wait(30)
        wall = time.monotonic() - t0
    finally:
        done.set()
        if edge and edge.poll() is None:
            edge.kill()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        room.close()
        broker.stop()
    f = _figures(links, room, samples, rss_end, fds_end, broker_restarts, wall, edge_rc, depth, boards, hours, speed,
                 (workdir / "edge.log").read_text(errors="replace"))
    f["planned_board_resets"] = restarts * boards
    return f


def _figures(links, room, samples, rss_end, fds_end, restarts, wall, edge_rc, depth, boards, hours, speed, edge_log):
    truth = {}
    board_runs = []
    for i, link in enumerate(links):
        lines = [json.loads(x) for x in Path(f"{link}.truth").read_text().splitlines() if x]
        truth[f"soak-{i:02d}"] = expected_alerts(lines)
        board_runs.append(lines[-1])
    by_id: dict[str, dict] = {}
    copies = Counter()
    health = None
    for topic, payload, _ in room.messages:
        if topic.endswith("/health"):
            health = json.loads(payload)
            continue
        a = json.loads(payload)
        copies[a["id"]] += 1
        if a["id"] in by_id:
            if by_id[a["id"]] != a:
                raise AssertionError(f"alert {a['id']} delivered twice with different contents")
            continue
        by_id[a["id"]] = a
    got = defaultdict(list)
    other = Counter()
    out_of_order = 0
    last_ts: dict[str, float] = {}
    order_examples = []
    prev: dict[str, dict] = {}
    for a in by_id.values():  # first arrival order
        if a["ts"] < last_ts.get(a["device"], 0):
            out_of_order += 1
            order_examples.append((prev[a["device"]]["kind"], prev[a["device"]]["ts"], a["kind"], a["ts"]))
        last_ts[a["device"]] = a["ts"]
        prev[a["device"]] = a
        if a["kind"] in BOARD_KINDS:
            got[a["device"]].append((a["kind"], a["state"]))
        else:
            other[f"{a['kind']} {a['state']}"] += 1
    mismatched = sorted(d for d in truth if got.get(d, []) != truth[d])
    base = [s for s in samples if s[0] >= wall * 0.15] or samples
    rss_base, fds_base = base[0][1], base[0][2]
    return {
        "boards": boards, "hours": hours, "speed": speed, "wall_s": round(wall, 1), "broker_restarts": restarts,
        "board_steps": sum(b.get("steps", 0) for b in board_runs),
        "board_crashes": sum(b.get("crashes", 0) for b in board_runs),
        "board_resets": sum(b.get("reboots", 0) for b in board_runs),
        "alerts_raised_on_boards": sum(len(v) for v in truth.values()),
        "board_alerts_delivered": sum(len(v) for v in got.values()),
        "alerts_delivered_distinct": len(by_id),
        "raised_delivered": sum(a["state"] == "raised" for a in by_id.values()), "duplicate_copies": sum(copies.values()) - len(copies),
        "other_alerts": dict(other), "devices_mismatched": mismatched,
        "mismatch_example": {d: (truth[d][:6], got.get(d, [])[:6]) for d in mismatched[:2]},
        "out_of_order": out_of_order, "out_of_order_examples": order_examples[:3], "outbox_left": depth, "edge_exit": edge_rc,
        "frames_ok": health and health["frames_ok"], "frames_rejected": health and health["frames_rejected"],
        "frames_lost": health and health["frames_lost"], "edge_alerts_raised": health and health["alerts_raised"],
        "ingest_dropped": health and health["ingest_dropped"],
        "rss_kb_after_warmup": rss_base, "rss_kb_end": rss_end, "rss_kb_max": max(s[1] for s in samples),
        "fds_after_warmup": fds_base, "fds_end": fds_end, "tracebacks_in_edge_log": edge_log.count("Traceback"),
    }


def report(f: dict) -> str:
    rej = f["frames_rejected"] or {}
    return "\n".join([
        f"soak: {f['boards']} virtual boards x {f['hours']:g} simulated h at {f['speed']:g}x on one edge, "
        f"{f['wall_s']:.0f} s wall; broker restarted {f['broker_restarts']} times",
        f"  boards: {f['board_steps']} firmware loop iterations, {f['board_crashes']} crashes, {f['board_resets']} resets "
        f"({f['planned_board_resets']} planned soft resets)",
        f"  frames: {f['frames_ok']} ok, {sum(rej.values())} rejected {dict((k, v) for k, v in rej.items() if v)}, "
        f"{f['frames_lost']} lost, ingest queue drops {f['ingest_dropped']}",
        f"  alerts: raised on the boards {f['alerts_raised_on_boards']}, delivered {f['board_alerts_delivered']} "
        f"(devices mismatched: {len(f['devices_mismatched'])}), out of order {f['out_of_order']}, "
        f"left in outbox {f['outbox_left']}",
        f"          distinct ids delivered {f['alerts_delivered_distinct']}, of them raised {f['raised_delivered']} "
        f"(edge counted {f['edge_alerts_raised']} raised), extra copies dropped by id {f['duplicate_copies']}, other alerts {f['other_alerts']}",
        f"  edge RSS: {f['rss_kb_after_warmup'] / 1024:.1f} MB after warm-up, {f['rss_kb_end'] / 1024:.1f} MB at the "
        f"end (max {f['rss_kb_max'] / 1024:.1f} MB); open fds {f['fds_after_warmup']} -> {f['fds_end']}; "
        f"edge exit {f['edge_exit']}, tracebacks {f['tracebacks_in_edge_log']}",
    ])


def failures(f: dict) -> list[str]:
    """The promises of the soak; empty when all hold."""
    bad = []
    if f["devices_mismatched"]:
        bad.append(f"board alerts not delivered as raised on {f['devices_mismatched']}: {f['mismatch_example']}")
    if f["alerts_raised_on_boards"] < f["boards"] * 2:
        bad.append("too few alerts raised to mean anything")
    if f["raised_delivered"] != f["edge_alerts_raised"]:
        bad.append("the edge raised a different number of alerts than were delivered")
    if f["out_of_order"] or f["outbox_left"] or f["edge_exit"] != 0 or f["tracebacks_in_edge_log"]:
        bad.append(f"out of order {f['out_of_order_examples']}, left in the outbox, unclean exit or a traceback")
    if sum((f["frames_rejected"] or {"?": 1}).values()):
        bad.append(f"rejected frames: {f['frames_rejected']}")
    if f["board_crashes"] or f["board_resets"] != f["planned_board_resets"]:
        bad.append("a board crashed or reset unplanned")
    if f["other_alerts"].get("reboot raised", 0) != f["planned_board_resets"]:
        bad.append("the edge did not report every board restart exactly once")
    if f["rss_kb_end"] > f["rss_kb_after_warmup"] * 1.10 + 8 * 1024:
        bad.append("edge resident memory grew")
    if f["fds_end"] > f["fds_after_warmup"] + 2:
        bad.append("edge open file descriptors grew")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    b = sub.add_parser("board", help="(internal) one virtual board of the soak")
    for name, kind in (("--link", str), ("--flash", str), ("--device-id", str), ("--seconds", float),
                       ("--speed", float), ("--seed", int), ("--cycles", int), ("--restarts", int),
                       ("--truth", str)):
        b.add_argument(name, type=kind, required=True)
    p.add_argument("--boards", type=int, default=16)
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--speed", type=float, default=100.0, help="simulated seconds per wall second (default 100)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default="/tmp/firedamp-soak", help="work folder (default /tmp/firedamp-soak)")
    args = p.parse_args(argv)
    if args.cmd == "board":
        return run_board(args)
    import shutil

    shutil.rmtree(args.dir, ignore_errors=True)
    wall = args.hours * 3600 / args.speed
    f = soak(Path(args.dir), args.boards, args.hours, args.speed, args.seed, (wall / 40, wall / 15))
    print(report(f))
    bad = failures(f)
    print("soak: " + ("PASSED" if not bad else "FAILED: " + "; ".join(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
