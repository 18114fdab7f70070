"""Row 9, Modbus TCP: requests per second the edge's server answers while its pipeline serves BOARDS boards, and the
ingest figure (row 2's pass) with [modbus] on vs off.

Requests: CLIENTS separate processes, each one pymodbus sync client on loopback reading all 31 input registers of
unit 1..BOARDS in turn, for SECONDS; meanwhile a thread of this process feeds the pipeline BOARDS boards'
readings at 1 Hz each (what the boards send) through the service's own process()/commit. Ingest: row 2's
pass (32 boards interleaved, batches of the service's size, model on), alternately with Modbus off and on
(snapshots handed to the server, the server listening), the fastest of REPEATS each.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT
from bench.ingest import make_items

BOARDS = 32
CLIENTS = 2
SECONDS = 5.0
REPEATS = 9  # ingest passes each way, alternating: a pass takes ~0.2 s, and one slow spell of this shared machine
# can move a single pass by 30 % or more
GOAL_RPS = 2_000
GOAL_SLOWER = 0.05

_CLIENT = """
import sys, time
from pymodbus.client import ModbusTcpClient
port, units, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
c = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
assert c.connect()
n = bad = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    r = c.read_input_registers(0, count=31, device_id=1 + n % units)
    n += 1
    bad += r.isError()
print(n, bad)
"""


def _service(data_dir: Path, modbus: bool, port: int):
    from edge.config import parse_config
    from edge.service import Service

    boards = [{"port": f"/dev/bench{b}", "modbus_unit": b + 1} for b in range(BOARDS)]
    cfg = parse_config({"data_dir": str(data_dir), "log_level": "error", "history": {"enabled": False},
                        "mqtt": {"host": "127.0.0.1", "port": 9}, "boards": boards,
                        "modbus": {"enabled": modbus, "host": "127.0.0.1", "port": port}})
    return Service(cfg)


def _ingest(items, modbus: bool) -> float:
    from edge.demo.broker import free_port
    from edge.service import _BATCH

    with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp:
        svc = _service(Path(tmp), modbus, free_port())
        if svc.modbus:
            svc.modbus.start()
        try:
            t0 = time.perf_counter()
            for i in range(0, len(items), _BATCH):
                svc._commit(svc.process(items[i:i + _BATCH]))
            seconds = time.perf_counter() - t0
            if svc.decoder.ok != len(items):
                raise RuntimeError(f"modbus row: {svc.decoder.ok} of {len(items)} frames parsed")
            if modbus and len(svc.modbus.snapshots) != BOARDS:
                raise RuntimeError("modbus row: not every board has a snapshot")
            return len(items) / seconds
        finally:
            if svc.modbus:
                svc.modbus.stop()
            svc.outbox.close()


def _requests(seconds: float, clients: int) -> dict:
    from edge.demo.broker import free_port

    port = free_port()
    items = make_items(BOARDS, int(seconds) + 40)
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp:
        svc = _service(Path(tmp), True, port)
        svc.modbus.start()
        stop = threading.Event()

        def feed() -> None:  # BOARDS boards at 1 Hz: one batch of BOARDS readings a second
            for i in range(0, len(items), BOARDS):
                if stop.is_set():
                    return
                svc._commit(svc.process([(p, line, time.time()) for p, line, _ in items[i:i + BOARDS]]))
                stop.wait(1.0)

        svc._commit(svc.process([(p, line, time.time()) for p, line, _ in items[:BOARDS]]))
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            procs = [subprocess.Popen([sys.executable, "-c", _CLIENT, str(port), str(BOARDS), str(seconds)],
                                      cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
            outs = [p.communicate(timeout=seconds + 60)[0].split() for p in procs]
            frames = svc.decoder.ok
        finally:
            stop.set()
            feeder.join(5)
            health = svc.modbus.health()
            svc.modbus.stop()
            svc.outbox.close()
    answered = sum(int(o[0]) for o in outs)
    errors = sum(int(o[1]) for o in outs)
    return {"requests": answered, "errors": errors, "seconds": seconds, "clients": clients,
            "per_s": round(answered / seconds), "frames_meanwhile": frames,
            "server_counted": health["modbus_requests"].get("read_input_registers", 0)}


def measure(quick: bool = False) -> dict:
    seconds, repeats, samples = (1.0, 1, 40) if quick else (SECONDS, REPEATS, 600)
    req = _requests(seconds, CLIENTS)
    items = make_items(BOARDS, samples)
    off, on = [], []
    for _ in range(repeats):
        off.append(_ingest(items, False))
        on.append(_ingest(items, True))
    best_off, best_on = max(off), max(on)
    slower = 1 - best_on / best_off
    return {
        "boards": BOARDS, "requests": req,
        "ingest_off_frames_per_s": round(best_off), "ingest_on_frames_per_s": round(best_on),
        "ingest_frames": len(items), "ingest_repeats": repeats, "ingest_slower": round(slower, 4),
        "goal_requests_per_s": GOAL_RPS, "goal_slower": GOAL_SLOWER,
        "goal_met": bool(req["per_s"] >= GOAL_RPS and req["errors"] == 0 and slower < GOAL_SLOWER),
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    q = r["requests"]
    return [(f"Modbus TCP requests/s answered (04, 31 registers; {q['clients']} client processes) while the edge "
             f"serves {r['boards']} boards",
             f"{q['per_s']:,}/s ({q['errors']} errors)", "a DCS polling 32 units at 1 Hz: 32/s",
             f"≥ {r['goal_requests_per_s']:,}"),
            ("ingest frames/s with [modbus] on vs off (row 2's pass)",
             f"{r['ingest_on_frames_per_s']:,} on ({abs(100 * r['ingest_slower']):.1f} % "
             f"{'slower' if r['ingest_slower'] >= 0 else 'faster: noise'})",
             f"{r['ingest_off_frames_per_s']:,} off",
             f"< {100 * r['goal_slower']:.0f} % slower " + ("met" if r["goal_met"] else "NOT met"))]
