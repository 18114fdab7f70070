"""Row 8, the control room: ingest rate into SQLite, alert latency to the page, page load with 500 boards.

- ingest: `firedamp control-room` runs as its own process against a private Mosquitto. It subscribes once (its
  persistent session), stops; a load generator then publishes MESSAGES telemetry messages of BOARDS boards,
  built by the edge's own payload code, QoS 1 (the broker queues them for the absent session); the control
  room starts again and the bench times, from the first stored batch until the last of them is in its
  SQLite file (`samples` rows, read from outside), how long the drain took and how much CPU the process
  used in that time (its /proc stat; start-up imports not counted). msgs per CPU-second is the one-core figure. Durability as
  shipped: WAL, synchronous=FULL, one transaction per batch. Reference: the same messages through
  `SqliteStore.apply` alone (no broker, no parsing) in this process.
- latency: the edge service (edge.service.Service, model off) reads one board on a raw pty and publishes to
  Mosquitto; the control room (in the same process) stores the alerts; an HTTP client holds the main page's
  event stream (/live, logged in). Each frame flips the board between NORMAL and ALARM, so each raises or
  clears an alert; the bench writes a frame and waits for the `alerts` event on the stream. ALERTS frames;
  p50/p99 of frame written → event received. The stream waits up to 0.05 s to group changes (by design).
- page: a store with PAGE_BOARDS boards on 16 edges (and 40 alerts), served by the control room; Debian's
  chromium (headless, Playwright) logs in and loads the main page REPEATS times: navigation start → load
  event end (the whole page parsed, styles and script loaded, first render), median and worst.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from bench.common import ROOT, Pty, mosquitto, percentile, reading_lines

BOARDS = 2000
MESSAGES = 20_000
ALERTS = 200
PAGE_BOARDS = 500
REPEATS = 5
GOAL_INGEST = 2000.0
GOAL_P99_S = 1.0
GOAL_PAGE_S = 1.0
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _telemetry(n: int, boards: int, t0: float) -> list[tuple[str, bytes]]:
    from edge import payloads
    from edge.frames import Reading

    out = []
    for i in range(n):
        b = i % boards
        r = Reading(f"b{b:04d}", i // boards, 60_000 + i, 0.3 + (i % 7) * 0.01, "VOL", 900.0, "m3/min", 1.0 * i,
                    "NORMAL", 1, 0, 0)
        out.append((f"firedamp/site-{b % 8}/{r.device}/telemetry",
                    json.dumps(payloads.telemetry(r, t0 + i / boards, None), separators=(",", ":")).encode()))
    return out


def _control_toml(path: Path, broker_port: int, web_port: int, db: Path) -> Path:
    path.write_text(f"""[web]\nport = {web_port}\n[source]\nhost = "127.0.0.1"\nport = {broker_port}\n
client_id = "bench-control-room"\n[store]\npath = "{db}"\n[stale]\nboard_silent_s = 3600\nedge_silent_s = 3600\n""")
    return path


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-loadgen")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(60)
    c.loop_stop()
    c.disconnect()


def ingest(n: int, boards: int) -> dict:
    from edge.demo.broker import free_port

    with tempfile.TemporaryDirectory(prefix="firedamp-bench-cr-") as tmp, mosquitto(Path(tmp)) as broker:
        db = Path(tmp) / "control.sqlite"
        cfg = _control_toml(Path(tmp) / "control.toml", broker.port, free_port(), db)
        cmd = [sys.executable, "-m", "edge.cli", "control-room", "--config", str(cfg), "--log-level", "warning"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))

        def start() -> subprocess.Popen:
            with open(Path(tmp) / "cr.log", "ab") as log:
                return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)

        def count() -> int:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as ro:
                    return ro.execute("SELECT count(*) FROM samples").fetchone()[0]
            except sqlite3.Error:
                return 0

        first = start()  # makes the persistent session and its subscription, then goes away
        deadline = time.monotonic() + 30
        while count() < 1:  # a probe message stored: subscribed
            if time.monotonic() > deadline or first.poll() is not None:
                raise RuntimeError(f"control room did not start: {(Path(tmp) / 'cr.log').read_text()[-1500:]}")
            _publish(broker.port, _telemetry(1, 1, time.time()))
            time.sleep(0.3)
        first.terminate()
        first.wait(20)
        base = count()
        _publish(broker.port, _telemetry(n, boards, time.time()))
        t0 = time.monotonic()
        proc = start()
        try:
            deadline = time.monotonic() + 600
            first = None  # (stored, cpu, time) when the first batch was in: start-up (imports) not counted
            while (stored := count()) < base + n:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"ingest: {stored - base} of {n} stored; "
                                       f"{(Path(tmp) / 'cr.log').read_text()[-1500:]}")
                if first is None and stored > base:
                    first = (stored, _cpu_s(proc.pid), time.monotonic())
                time.sleep(0.05)
            end_cpu, end_t = _cpu_s(proc.pid), time.monotonic()
            first = first or (base, 0.0, t0)
            steady = base + n - first[0]
            wall, cpu = end_t - first[2], end_cpu - first[1]
        finally:
            proc.terminate()
            proc.wait(20)
        size = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob(db.name + "-wal"))
    return {"messages": n, "boards": boards, "measured": steady, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "start_to_all_stored_s": round(end_t - t0, 2), "per_s_wall": round(steady / wall),
            "per_cpu_s": round(steady / cpu), "db_bytes": size}


def store_alone(n: int, boards: int) -> float:
    """Messages/s through SqliteStore.apply alone (already-parsed, batches of 2000), fsync as shipped."""
    from control.messages import Checker
    from control.store.sqlite import SqliteStore

    checker = Checker("firedamp")
    msgs = [checker.check(t, p) for t, p in _telemetry(n, boards, time.time())]
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-st-") as tmp:
        store = SqliteStore(Path(tmp) / "s.sqlite", fsync=True)
        t0 = time.perf_counter()
        for i in range(0, n, 2000):
            store.apply(msgs[i:i + 2000], time.time())
        dt = time.perf_counter() - t0
        store.close()
    return n / dt


class _Stream:
    """Holds /live open; `wait_alerts(after)` returns the perf_counter time of the first `alerts` event after."""

    def __init__(self, port: int, cookie: str):
        self.cond = threading.Condition()
        self.times: list[float] = []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/live", headers={"Cookie": cookie})
        self.resp = self.conn.getresponse()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.resp:
                if line.startswith(b"event: alerts"):
                    with self.cond:
                        self.times.append(time.perf_counter())
                        self.cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait_alerts(self, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(t > after for t in self.times):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return next(t for t in self.times if t > after)


def _login(port: int, user: str, password: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/login", urllib.parse.urlencode({"user": user, "password": password}),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return (resp.headers.get("Set-Cookie") or "").split(";", 1)[0]


def _room(tmp: str, broker_port: int, store=None):
    from control.auth import hash_password
    from control.config import parse_config
    from control.server import ControlRoom
    from edge.demo.broker import free_port

    cfg = parse_config({"web": {"port": free_port()}, "source": {"host": "127.0.0.1", "port": broker_port,
                                                                 "client_id": f"bench-{free_port()}"},
                        "store": {"path": f"{tmp}/control.sqlite"}, "log_level": "warning"})
    room = ControlRoom(cfg, store=store)
    room.store.add_user("bench", "viewer", hash_password("bench-password"), time.time())
    return room.start()


def latency(n: int) -> dict:
    import logging

    from edge.config import parse_config
    from edge.service import Service

    states = ["ALARM" if i % 2 else "NORMAL" for i in range(n + 1)]
    lines = reading_lines("bench-cr", [0.5 + 0.6 * (s == "ALARM") for s in states], [900.0] * len(states), states)
    logging.getLogger("firedamp").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-lat-") as tmp, mosquitto(Path(tmp), nodelay=True) as broker:
        pty = Pty()
        svc = Service(parse_config({"data_dir": f"{tmp}/data", "boards": [{"port": pty.device}],
                                    "mqtt": {"host": broker.host, "port": broker.port}, "model": {"enabled": False},
                                    "outbox": {"fsync": True}}))
        svc.start()
        room = _room(tmp, broker.port)
        try:
            deadline = time.monotonic() + 15
            while not (svc.publisher.connected and svc.readers[0].stats.up and room.source.connected):
                if time.monotonic() > deadline:
                    raise RuntimeError("latency: edge or control room did not connect in 15 s")
                time.sleep(0.01)
            stream = _Stream(room.http.server_address[1], _login(room.http.server_address[1], "bench",
                                                                 "bench-password"))
            pty.write(lines[0])
            time.sleep(1.5)
            lat, missed = [], 0
            for i in range(1, n + 1):
                t0 = time.perf_counter()
                pty.write(lines[i])
                t1 = stream.wait_alerts(t0, timeout=5)
                if t1 is None:
                    missed += 1
                else:
                    lat.append(t1 - t0)
                time.sleep(0.25)  # let the board-row event of this frame pass
        finally:
            room.stop()
            svc.stop()
            pty.close()
    if len(lat) < 0.95 * n:
        raise RuntimeError(f"latency: only {len(lat)} of {n} alerts reached the page's stream")
    return {"alerts": len(lat), "missed": missed, "p50_s": round(percentile(lat, 50), 3),
            "p99_s": round(percentile(lat, 99), 3), "max_s": round(max(lat), 3)}


def page(boards: int, repeats: int) -> dict:
    import shutil

    from control import messages as m
    from control.store.sqlite import SqliteStore

    chromium = shutil.which("chromium")
    if not chromium:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    now = time.time()
    with tempfile.TemporaryDirectory(prefix="firedamp-bench-page-") as tmp, mosquitto(Path(tmp)) as broker:
        store = SqliteStore(f"{tmp}/control.sqlite", fsync=False)
        checker = m.Checker("firedamp")
        msgs = [checker.check(t, p) for t, p in _telemetry(boards * 3, boards, now - 3)]
        msgs += [m.State(f"site-{b % 8}", f"edge-{b % 16:02d}", f"b{b:04d}", now, "up", [], "NORMAL", 1, [], False,
                         0.3, "VOL", 900.0, "m3/min") for b in range(boards)]
        msgs += [m.Alert(f"bench-alert-{i:04d}", f"site-{b % 8}", f"edge-{b % 16:02d}", f"b{b:04d}", "alarm",
                         "critical", "raised", now - i, False, "methane alarm", None, {})
                 for i, b in enumerate(range(0, boards, max(1, boards // 40)))]
        store.apply(msgs, now)
        room = _room(tmp, broker.port, store=store)
        url = room.url
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                      "--disable-background-networking", "--disable-component-update",
                                      "--disable-sync", "--no-first-run", "--disable-quic"])
                pg = b.new_page(viewport={"width": 1400, "height": 900})
                pg.goto(url + "login")
                pg.fill("input[name=user]", "bench")
                pg.fill("input[name=password]", "bench-password")
                pg.click("button[type=submit]")
                pg.wait_for_load_state("load")
                times, parts = [], []
                for _ in range(repeats):
                    pg.goto(url, wait_until="load")
                    rows = pg.locator("tr[data-board]").count()
                    if rows != boards:
                        raise RuntimeError(f"page: {rows} board rows drawn, not {boards}")
                    nav = pg.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
                    nav = json.loads(nav)
                    times.append(nav["loadEventEnd"] / 1000.0)
                    parts.append({name: round(nav[k] / 1000.0, 3) for k, name in (
                        ("responseStart", "response_start"), ("responseEnd", "response_end"),
                        ("domInteractive", "dom_interactive"), ("loadEventEnd", "load_event_end"))})
                size = len(pg.content().encode())
                b.close()
        finally:
            room.stop()
    return {"boards": boards, "loads": repeats, "median_s": round(sorted(times)[len(times) // 2], 3),
            "max_s": round(max(times), 3), "html_bytes": size, "timings_s": parts}


def measure(quick: bool = False) -> dict:
    n, boards = (2000, 200) if quick else (MESSAGES, BOARDS)
    ing = ingest(n, boards)
    alone = store_alone(n, boards)
    lat = latency(10 if quick else ALERTS)
    pg = page(50 if quick else PAGE_BOARDS, 2 if quick else REPEATS)
    return {"ingest": ing, "store_apply_per_s": round(alone), "latency": lat, "page": pg,
            "goal_ingest_per_s": GOAL_INGEST, "goal_p99_s": GOAL_P99_S, "goal_page_s": GOAL_PAGE_S,
            "goals_met": {"ingest": ing["per_cpu_s"] >= GOAL_INGEST, "latency": lat["p99_s"] <= GOAL_P99_S,
                          "page": pg["max_s"] <= GOAL_PAGE_S}}


def table(r: dict) -> list[tuple[str, str, str, str]]:
    i, lat, pg, ok = r["ingest"], r["latency"], r["page"], r["goals_met"]

    def met(flag: bool) -> str:
        return "met" if flag else "NOT met"

    return [
        (f"control room ingest, telemetry into SQLite (synchronous=FULL), one process, {i['messages']:,} messages "
         f"of {i['boards']:,} boards", f"{i['per_cpu_s']:,} msgs per CPU-second ({i['per_s_wall']:,}/s wall; "
         f"{i['measured']:,} msgs: {i['cpu_s']} CPU-s in {i['wall_s']} s)", f"SqliteStore.apply alone: {r['store_apply_per_s']:,}/s; "
         f"2,000 boards at 1 Hz = 2,000/s", f"≥ {r['goal_ingest_per_s']:,.0f}/s {met(ok['ingest'])}"),
        (f"control room alert latency, frame on pty → edge → Mosquitto → store → page's event stream, "
         f"{lat['alerts']} alerts", f"p50 {lat['p50_s']:.3f} s, p99 {lat['p99_s']:.3f} s (max {lat['max_s']:.3f})",
         "the stream groups changes for up to 0.05 s; regulation: power-off ≤ 2 s (by the board itself)",
         f"p99 ≤ {r['goal_p99_s']:g} s {met(ok['latency'])}"),
        (f"control room page with {pg['boards']} boards, chromium: navigation → load event ({pg['loads']} loads)",
         f"median {pg['median_s']:.3f} s, worst {pg['max_s']:.3f} s", f"page {pg['html_bytes'] / 1024:.0f} KB of HTML",
         f"≤ {r['goal_page_s']:g} s {met(ok['page'])}"),
    ]
