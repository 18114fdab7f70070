"""Row 3, alert latency: a frame written to a pty → the PUBACK of its alert from a real Mosquitto.

The edge service runs in this process (edge.service.Service, as `firedamp run` builds it) with one board on
a raw pty, a private Mosquitto on a free loopback port and the outbox's durability on (SQLite WAL with
synchronous=FULL, on disk). The bench plays the board: each frame flips its state between NORMAL and ALARM,
so every frame raises or clears one alert; it writes one frame, waits for that alert's PUBACK (seen by
wrapping the publisher's paho client), then sends the next. Telemetry and retained state go out as usual.
The broker runs as deploy/mosquitto/firedamp.conf sets `set_tcp_nodelay` (Mosquitto's default leaves
Nagle's algorithm on, which can hold a PUBACK for a delayed ACK, ~40 ms); the other setting is measured
too. Reference: mine regulations require over-limit methane to cut power within 2 s — the board does that by
itself; the alert reports what the board did.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, Pty, mosquitto, percentile, reading_lines

ALERTS = 1000
WARMUP = 20
GOAL_P99_MS = 20.0
REGULATION_S = 2.0


class _AckClock:
    """Wraps a paho client: PUBACK time of each alert, keyed by the frame seq carried in the alert."""

    def __init__(self, client):
        self.cond = threading.Condition()
        self.mid_seq: dict[int, int] = {}
        self.mid_t: dict[int, float] = {}
        self.acked: dict[int, float] = {}  # frame seq -> PUBACK time (perf_counter)
        publish, on_publish = client.publish, client.on_publish

        def publish_wrapper(topic, payload=None, *args, **kw):
            info = publish(topic, payload, *args, **kw)
            if topic.endswith("/alert"):
                seq = json.loads(payload)["readings"]["seq"]
                with self.cond:
                    self.mid_seq[info.mid] = seq
                    self._match(info.mid)
            return info

        def on_publish_wrapper(c, userdata, mid, reason_code, properties):
            t = time.perf_counter()
            with self.cond:
                self.mid_t[mid] = t
                self._match(mid)
            on_publish(c, userdata, mid, reason_code, properties)

        client.publish = publish_wrapper
        client.on_publish = on_publish_wrapper

    def _match(self, mid: int) -> None:
        if mid in self.mid_seq and mid in self.mid_t:
            self.acked[self.mid_seq.pop(mid)] = self.mid_t.pop(mid)
            self.cond.notify_all()

    def wait(self, seq: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while seq not in self.acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.acked[seq]


def run_once(n: int, nodelay: bool) -> dict:
    """n alerts, one at a time; `nodelay`: the broker runs with set_tcp_nodelay true."""
    from edge.config import parse_config
    from edge.service import Service

    total = WARMUP + n
    states = ["ALARM" if i % 2 else "NORMAL" for i in range(total + 1)]
    lines = reading_lines("bench-lat", [0.5 + 0.6 * (s == "ALARM") for s in states], [900.0] * len(states),
                          states)
    log = logging.getLogger("firedamp")
    saved = (log.handlers[:], log.propagate, log.level)
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-") as tmp, mosquitto(Path(tmp), nodelay) as broker:
        handler = logging.FileHandler(Path(tmp) / "edge.log")  # the service logs every alert, as it would to journald
        log.handlers[:] = [handler]
        log.propagate = False
        log.setLevel(logging.INFO)
        pty = Pty()
        cfg = parse_config({"data_dir": f"{tmp}/data", "boards": [{"port": pty.device}],
                            "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.1},
                            "outbox": {"fsync": True}, "history": {"enabled": True}})
        svc = Service(cfg)
        clock = _AckClock(svc.publisher.client)
        svc.start()
        try:
            deadline = time.monotonic() + 10
            while not (svc.publisher.connected and svc.readers[0].stats.up):
                if time.monotonic() > deadline:
                    raise RuntimeError("latency: the edge did not connect to the broker and open the pty in 10 s")
                time.sleep(0.01)
            pty.write(lines[0])  # first frame: the device appears (NORMAL, no alert)
            time.sleep(0.2)
            rng = random.Random(0)
            lat_ms, lost = [], 0
            for i in range(1, total + 1):
                t0 = time.perf_counter()
                pty.write(lines[i])
                t_ack = clock.wait(i, timeout=5.0)
                if t_ack is None:
                    lost += 1
                elif i > WARMUP:
                    lat_ms.append(1000.0 * (t_ack - t0))
                time.sleep(rng.uniform(0.001, 0.004))
            outbox_depth = svc.outbox.depth
        finally:
            svc.stop()
            pty.close()
            log.handlers[:], log.propagate, log.level = saved
            handler.close()
    if len(lat_ms) < n * 0.99:
        raise RuntimeError(f"latency: only {len(lat_ms)} of {n} alerts were acknowledged within 5 s")
    return {"alerts": len(lat_ms), "unacknowledged": lost, "outbox_depth_after": outbox_depth,
            "p50_ms": round(percentile(lat_ms, 50), 2), "p90_ms": round(percentile(lat_ms, 90), 2),
            "p99_ms": round(percentile(lat_ms, 99), 2), "max_ms": round(max(lat_ms), 2)}


def deploy_nodelay() -> bool:
    """Whether the shipped broker example (deploy/mosquitto/firedamp.conf) turns Nagle's algorithm off."""
    conf = ROOT / "deploy" / "mosquitto" / "firedamp.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    return any(line.split() == ["set_tcp_nodelay", "true"] for line in lines)


def measure(quick: bool = False) -> dict:
    n = 30 if quick else ALERTS
    shipped = deploy_nodelay()
    main = run_once(n, nodelay=shipped)
    other = run_once(n, nodelay=not shipped)
    return {
        **main, "fsync": True, "broker": "mosquitto", "broker_set_tcp_nodelay": shipped,
        "other_broker_setting": {"broker_set_tcp_nodelay": not shipped, **other},
        "regulation_s": REGULATION_S, "goal_p99_ms": GOAL_P99_MS, "goal_met": bool(main["p99_ms"] <= GOAL_P99_MS),
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    o = r["other_broker_setting"]
    nd = "set_tcp_nodelay true" if r["broker_set_tcp_nodelay"] else "default config"
    return [(f"alert latency, frame on pty → PUBACK (Mosquitto {nd}, outbox fsync on), {r['alerts']} alerts",
             f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms (max {r['max_ms']:.1f})",
             f"regulation: power-off ≤ {r['regulation_s']:g} s (by the board itself); broker with "
             f"set_tcp_nodelay {'true' if o['broker_set_tcp_nodelay'] else 'false'}: "
             f"p50 {o['p50_ms']:.1f}, p99 {o['p99_ms']:.1f} ms",
             f"p99 ≤ {r['goal_p99_ms']:g} ms " + ("met" if r["goal_met"] else "NOT met"))]
