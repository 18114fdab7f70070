"""A fleet on this machine, shown live: a 3-node NATS cluster, PostgreSQL, two control-room replicas, E edges.

It starts, each as its own process: a private 3-node NATS cluster (JetStream and an MQTT listener on every
node), a private PostgreSQL 15 (SQLite, loudly, when PostgreSQL is not installed), two `firedamp control-room`
replicas sharing one durable JetStream consumer and one database, and E `firedamp run` edge services, each
reading B virtual boards (`firedamp board`, accelerated by --speed). Every edge is given all three nodes'
MQTT addresses (`[mqtt] servers`, MQTT 3.1.1), starting on a different node. The first --story boards of each
edge run a short "story" (ventilation lost, the board alarms and cuts the power), the rest a normal mine.

Every few seconds it prints what the database holds: boards live / no data, alerts stored (and how long they
took from the edge to the database), each replica's messages, the edges' outboxes. It stops by itself after
--seconds, or on Ctrl-C; every child stops with it. `<run dir>/fleet-report.json` keeps the final figures
and every stored alert message.

Examples:
    firedamp fleet --edges 2 --boards 2
    firedamp fleet --edges 4 --boards 4 --seconds 120 --speed 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from edge.demo.broker import die_with_parent, free_port
from edge.errors import ConfigError, FiredampError

ROOT = Path(__file__).resolve().parents[1]
FIREDAMP = [sys.executable, "-m", "edge.cli"]
SITE = "fleet"
DURABLE = "firedamp-control-room"
STORY_DURATION_S = 300.0  # simulated s: ventilation lost at 75 s, restored at 210 s (models/scenarios.py)
_DETACHED = {"start_new_session": True, "preexec_fn": die_with_parent}  # Ctrl-C reaches us; we stop them in order


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--edges", type=int, default=2, metavar="E", help="edge services to start (default 2)")
    parser.add_argument("--boards", type=int, default=2, metavar="B", help="virtual boards per edge (default 2)")
    parser.add_argument("--story", type=int, default=1, metavar="N",
                        help="boards per edge that run the story scenario, so alarms happen (default 1)")
    parser.add_argument("--speed", type=float, default=10.0,
                        help="simulated seconds per wall-clock second for every board (default 10)")
    parser.add_argument("--seconds", type=float, default=None, metavar="N",
                        help="stop after N wall-clock seconds (default: run until Ctrl-C)")
    parser.add_argument("--every", type=float, default=5.0, metavar="S", help="print a summary every S s (default 5)")
    parser.add_argument("--run-dir", default="run/fleet", metavar="DIR",
                        help="configs, logs, outboxes and the report (default run/fleet; emptied at start)")
    parser.add_argument("--control-port", type=int, default=8080, metavar="PORT",
                        help="replica 1's page on http://127.0.0.1:PORT/ (default 8080; a free port if taken or 0); "
                             "replica 2's on a free port")
    parser.add_argument("--store", choices=("auto", "postgresql", "sqlite"), default="auto",
                        help="the control room's database (default auto: PostgreSQL 15 when installed, else SQLite "
                             "with a warning)")
    parser.add_argument("--no-model", action="store_true", help="edges without the anomaly model (less CPU)")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Replica:
    """One `firedamp control-room` process with its control.toml; `status()` reads its /-/status.json."""

    def __init__(self, n: int, run_dir: Path, data: dict[str, Any], port: int):
        self.n, self.port = n, port
        self.url = f"http://127.0.0.1:{port}/"
        self.config = run_dir / f"control-{n}.toml"
        self.log = run_dir / f"control-{n}.log"
        self.config.write_text(_toml(data))
        self.proc: subprocess.Popen | None = None
        self.cookie = ""

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*FIREDAMP, "control-room", "--config", str(self.config)], cwd=ROOT,
                                         stdout=log, stderr=log, **_DETACHED)

    def consuming(self) -> bool:
        return "JetStream consuming" in self.log.read_text(errors="replace") if self.log.exists() else False

    def status(self, user: str, password: str) -> dict[str, Any] | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            if not self.cookie:
                conn.request("POST", "/login", urllib.parse.urlencode({"user": user, "password": password}),
                             {"Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                resp.read()
                self.cookie = (resp.headers.get("Set-Cookie") or "").split(";", 1)[0]
            conn.request("GET", "/-/status.json", headers={"Cookie": self.cookie})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 401:
                self.cookie = ""
                return None
            return json.loads(body)["counters"] if resp.status == 200 else None
        except (OSError, ValueError, KeyError):
            return None


def _toml(data: dict[str, Any]) -> str:
    """A flat two-level dict as TOML (the configs this module writes)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not (v and isinstance(v[0], dict)))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines += ["", f"[[{k}]]"] + [f"{kk} = {value(vv)}" for kk, vv in item.items()]
    return "# written by `firedamp fleet`\n" + "\n".join(lines) + "\n"


class Fleet:
    """The whole fleet as child processes. `start()`, `summary()`, `report()`, `stop()`; usable in-process
    (the fault tests drive it: `fleet.pg.restart()`, `fleet.cluster.nodes[0].kill()`)."""

    def __init__(self, run_dir: Path, edges: int, boards: int, story: int = 1, speed: float = 10.0,
                 store: str = "auto", control_port: int = 8080, model: bool = True, note=print):
        if not 1 <= edges <= 200 or not 1 <= boards <= 32:
            raise ConfigError(f"--edges must be 1..200 and --boards 1..32 (one edge serves up to 32 boards), "
                              f"not {edges} and {boards}")
        if not 0 <= story <= boards:
            raise ConfigError(f"--story must be 0..--boards ({boards}), not {story}")
        if not speed > 0:
            raise ConfigError(f"--speed must be > 0, not {speed}")
        self.run_dir, self.n_edges, self.n_boards, self.story, self.speed = run_dir, edges, boards, story, speed
        self.store_kind, self.control_port, self.model, self.note = store, control_port, model, note
        self.cluster = None
        self.pg = None
        self.dsn = ""
        self.replicas: list[Replica] = []
        self.boards: list[tuple[str, subprocess.Popen]] = []
        self.edges: list[tuple[str, subprocess.Popen]] = []
        self.users = {"operator": secrets.token_urlsafe(9), "viewer": secrets.token_urlsafe(9)}
        self.board_silent_s = max(10.0, 60.0 / speed)  # the board warms up for ~30 simulated s first
        self.started = time.time()
        self._reader = None

    # ------------------------------------------------------------------------------------------ start
    def start(self, before_edges=None) -> Fleet:
        """Everything, in order; `before_edges(fleet)` runs once the cluster, database and replicas are up (a
        test's own subscriber connects there)."""
        from control.natscluster import MISSING, NATS_SERVER, NatsCluster

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._clean()
        if not NATS_SERVER:
            raise FiredampError(MISSING)
        t0 = time.monotonic()
        self.cluster = NatsCluster(self.run_dir / "nats", 3, detached=True)
        self.cluster.start()
        self.note(f"NATS cluster: 3 nodes, MQTT on {', '.join(f'{n.host}:{n.port}' for n in self.cluster.nodes)}, "
                  f"NATS {', '.join(self.cluster.servers)} (ready in {time.monotonic() - t0:.1f} s)")
        store = self._start_store()
        self._start_replicas(store)
        self._start_boards()
        if before_edges is not None:
            before_edges(self)
        self._start_edges()
        self.started = time.time()
        return self

    def _clean(self) -> None:
        old = self.run_dir / "pg-dir.txt"  # a database an earlier fleet left running (it was SIGKILLed)
        if old.exists():
            from control.pgserver import BIN

            data = Path(old.read_text().strip()) / "data"
            if data.exists():
                cmd = [str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                import os

                subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + cmd,
                               capture_output=True, timeout=60)
                shutil.rmtree(data.parent, ignore_errors=True)
        for name in ("nats", "edges", "boards"):
            shutil.rmtree(self.run_dir / name, ignore_errors=True)
        for pattern in ("*.toml", "*.log", "control.sqlite*", "fleet-report.json", "pg-dir.txt", "users.txt"):
            for p in self.run_dir.glob(pattern):
                p.unlink()

    def _start_store(self) -> dict[str, Any]:
        from control.pgserver import PgServer, missing

        why = missing() if self.store_kind != "sqlite" else "--store sqlite"
        if why and self.store_kind == "postgresql":
            raise FiredampError(f"--store postgresql: {why}")
        if why:
            path = (self.run_dir / "control.sqlite").resolve()
            self.note(f"WARNING: NO POSTGRESQL ({why}). The two replicas share one SQLite file, {path}: this "
                      "is not the fleet store, only a stand-in on one machine.")
            self.store_kind = "sqlite"
            return {"kind": "sqlite", "path": str(path), "fsync": False}
        t0 = time.monotonic()
        self.pg = PgServer(prefix="firedamp-fleet-pg-")
        (self.run_dir / "pg-dir.txt").write_text(str(self.pg.dir))
        self.pg.create_db("firedamp")
        self.dsn = self.pg.dsn("firedamp")
        self.store_kind = "postgresql"
        self.note(f"PostgreSQL 15: {self.dsn} (data {self.pg.data}, ready in {time.monotonic() - t0:.1f} s)")
        return {"kind": "postgresql", "dsn": self.dsn, "fsync": False}

    def _control_data(self, port: int, store: dict[str, Any]) -> dict[str, Any]:
        return {"default_profile": "coal_face", "web": {"host": "127.0.0.1", "port": port},
                "source": {"kind": "jetstream", "servers": self.cluster.servers, "durable": DURABLE,
                           "ack_wait_s": 10.0},
                "store": store, "stale": {"board_silent_s": self.board_silent_s,
                                          "edge_silent_s": max(30.0, self.board_silent_s * 2)}}

    def _start_replicas(self, store: dict[str, Any]) -> None:
        ports = [self.control_port if self.control_port and _port_free(self.control_port) else free_port(), free_port()]
        self.replicas = [Replica(i + 1, self.run_dir, self._control_data(p, store), p) for i, p in enumerate(ports)]
        first = self.replicas[0]
        for name, password in self.users.items():
            done = subprocess.run([*FIREDAMP, "control-room", "adduser", name, "--role", name, "--password-stdin",
                                   "--config", str(first.config)], input=password + "\n", capture_output=True,
                                  text=True, cwd=ROOT, timeout=120)
            if done.returncode != 0:
                raise FiredampError(f"could not add control-room user {name}: {done.stderr.strip()}")
        (self.run_dir / "users.txt").write_text("".join(f"{n} {p}\n" for n, p in self.users.items()))
        # one at a time: the first makes the shared durable consumer (it must exist before edges publish)
        for r in self.replicas:
            r.start()
            deadline = time.monotonic() + 90
            while not r.consuming():
                if r.proc.poll() is not None or time.monotonic() > deadline:
                    raise FiredampError(f"control-room replica {r.n} did not start consuming; see {r.log}:\n"
                                        + r.log.read_text(errors="replace")[-2000:])
                time.sleep(0.1)
            self.note(f"control room replica {r.n}: {r.url} (JetStream durable {DURABLE!r}, {self.store_kind})")

    def board_ids(self, e: int) -> list[str]:
        return [f"e{e + 1:02d}-b{b + 1:02d}" for b in range(self.n_boards)]

    def _start_boards(self) -> None:
        bdir = self.run_dir / "boards"
        bdir.mkdir(parents=True, exist_ok=True)
        for e in range(self.n_edges):
            for b, dev in enumerate(self.board_ids(e)):
                story = b < self.story
                cmd = [*FIREDAMP, "board", "--link", str(bdir / dev), "--flash", str(bdir / f"{dev}.flash"),
                       "--device-id", dev, "--speed", str(self.speed), "--seed", str(e * 100 + b),
                       "--record", str(bdir / f"{dev}-pins.jsonl"), "--exit-with-parent"]
                cmd += ["--scenario", "story", "--duration", str(STORY_DURATION_S)] if story else \
                    ["--scenario", "normal"]
                with open(bdir / f"{dev}.log", "ab") as log:
                    self.boards.append((dev, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log,
                                                              start_new_session=True)))
        deadline = time.monotonic() + 60 + 2 * len(self.boards)
        for dev, proc in self.boards:
            while not (bdir / dev).is_symlink():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise FiredampError(f"virtual board {dev} did not start; see {bdir / dev}.log")
                time.sleep(0.05)
        self.note(f"{len(self.boards)} virtual boards at {self.speed:g}x ({self.story} per edge on the story: "
                  f"ventilation lost at {75 / self.speed:.0f} s, restored at {210 / self.speed:.0f} s)")

    def edge_data(self, e: int) -> dict[str, Any]:
        nodes = self.cluster.nodes
        servers = [f"{nodes[(e + k) % len(nodes)].host}:{nodes[(e + k) % len(nodes)].port}" for k in range(len(nodes))]
        d = self.run_dir / "edges" / f"e{e + 1:02d}"
        return {"edge_id": f"edge-{e + 1:02d}", "site": SITE, "data_dir": str(d.resolve()), "log_level": "info",
                "boards": [{"port": str((self.run_dir / "boards" / dev).resolve()), "name": dev}
                           for dev in self.board_ids(e)],
                "mqtt": {"servers": servers, "protocol": "3.1.1", "client_id": f"fleet-edge-{e + 1:02d}",
                         "discovery": False, "status_interval_s": 10.0, "reconnect_min_s": 0.2,
                         "reconnect_max_s": 2.0},
                "model": {"enabled": self.model}, "outbox": {"fsync": False}}

    def _start_edges(self) -> None:
        for e in range(self.n_edges):
            data = self.edge_data(e)
            Path(data["data_dir"]).mkdir(parents=True, exist_ok=True)
            conf = self.run_dir / f"edge-{e + 1:02d}.toml"
            conf.write_text(_toml(data))
            with open(self.run_dir / f"edge-{e + 1:02d}.log", "ab") as log:
                self.edges.append((data["edge_id"], subprocess.Popen([*FIREDAMP, "run", "--config", str(conf)],
                                                                     cwd=ROOT, stdout=log, stderr=log, **_DETACHED)))
        self.note(f"{self.n_edges} edge services (firedamp run), {self.n_boards} boards each, MQTT 3.1.1 to all "
                  "three nodes (each edge starts on a different one)")

    # ------------------------------------------------------------------------------------------ read
    def _store(self):
        if self._reader is None:
            from control.config import parse_config
            from control.store import open_store

            self._reader = open_store(parse_config(self._control_data(1, self._store_section())))
        return self._reader

    def _store_section(self) -> dict[str, Any]:
        if self.store_kind == "postgresql":
            return {"kind": "postgresql", "dsn": self.dsn, "fsync": False}
        return {"kind": "sqlite", "path": str((self.run_dir / "control.sqlite").resolve()), "fsync": False}

    def alert_messages(self) -> list[dict[str, Any]]:
        """Every stored alert message (one row per message id) of this fleet's site, in the order stored."""
        q = "SELECT id, device, kind, state, ts, alert_id FROM alert_msgs WHERE site = %s"
        if self.store_kind == "postgresql":
            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.dsn, row_factory=dict_row, connect_timeout=5) as conn:
                return list(conn.execute(q + " ORDER BY ts", (SITE,)))
        with sqlite3.connect(self.run_dir / "control.sqlite", timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(q.replace("%s", "?") + " ORDER BY rowid", (SITE,))]

    def outbox_depths(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for e in range(self.n_edges):
            path = Path(self.edge_data(e)["data_dir"]) / "outbox.sqlite"
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as c:
                    out[f"edge-{e + 1:02d}"] = c.execute("SELECT count(*) FROM alerts").fetchone()[0]
            except sqlite3.Error:
                out[f"edge-{e + 1:02d}"] = None
        return out

    def summary(self) -> dict[str, Any]:
        """What the database and the replicas say now (errors reported, never raised: the database may be down)."""
        from control.store import StoreError

        now = time.time()
        s: dict[str, Any] = {"t_s": round(now - self.started, 1), "boards_expected": self.n_edges * self.n_boards}
        try:
            boards = [b for b in self._store().boards() if b["site"] == SITE and b["device"]]
            live = [b for b in boards if b["heard_at"] and now - b["heard_at"] <= self.board_silent_s]
            alerts = [a for a in self._store().alerts(site=SITE, limit=100_000) if a["source"] == "edge"]
            lags = sorted(a["received_at"] - a["raised_ts"] for a in alerts)
            s |= {"boards_live": len(live), "boards_no_data": s["boards_expected"] - len(live),
                  "alerts_stored": len(alerts), "alerts_open": sum(a["cleared_ts"] is None for a in alerts),
                  "alert_lag_p50_s": round(lags[len(lags) // 2], 2) if lags else None,
                  "alert_lag_max_s": round(lags[-1], 2) if lags else None}
        except (StoreError, OSError) as exc:
            s["store_error"] = str(exc)
        s["replicas"] = []
        for r in self.replicas:
            c = r.status("viewer", self.users["viewer"]) or {}
            s["replicas"].append({"replica": r.n, "running": bool(r.proc and r.proc.poll() is None),
                                  "connected": c.get("source_connected"), "messages": c.get("messages_accepted"),
                                  "batches": c.get("batches_stored"), "store_errors": c.get("store_errors")})
        s["outbox"] = self.outbox_depths()
        s["edges_running"] = sum(p.poll() is None for _, p in self.edges)
        s["boards_running"] = sum(p.poll() is None for _, p in self.boards)
        return s

    @staticmethod
    def format(s: dict[str, Any]) -> str:
        if "store_error" in s:
            head = f"database not answering: {s['store_error'][:120]}"
        else:
            lag = f", edge→database p50 {s['alert_lag_p50_s']} s, max {s['alert_lag_max_s']} s" \
                if s["alert_lag_p50_s"] is not None else ""
            head = (f"boards {s['boards_live']} live, {s['boards_no_data']} no data (of {s['boards_expected']}) | "
                    f"alerts stored {s['alerts_stored']} ({s['alerts_open']} open{lag})")
        reps = "; ".join(f"replica {r['replica']}: {'up' if r['running'] else 'DOWN'}"
                         f"{'' if r['connected'] else ' (not connected)'}, {r['messages'] or 0} messages stored, "
                         f"{r['store_errors'] or 0} store errors" for r in s["replicas"])
        waiting = sum(v or 0 for v in s["outbox"].values())
        return f"[{s['t_s']:6.1f} s] {head}\n          {reps} | outboxes: {waiting} alert(s) waiting"

    def report(self) -> dict[str, Any]:
        rep = self.summary()
        try:
            rep["alert_messages"] = self.alert_messages()
            rep["alerts"] = [{k: a[k] for k in ("id", "device", "kind", "source", "raised_ts", "cleared_ts",
                                                "received_at")} for a in self._store().alerts(site=SITE, limit=100_000)]
        except Exception as exc:  # the database is gone: say so in the report
            rep["alert_messages_error"] = repr(exc)
        rep["store"] = self.store_kind
        return rep

    # ------------------------------------------------------------------------------------------ stop
    def stop_edges(self, settle_s: float = 10.0) -> None:
        """Stop the edges first (each sends what its outbox holds and publishes offline), then give the
        replicas up to `settle_s` to store what is left in JetStream (until the alert count holds for 1 s)."""
        for _, p in self.edges:
            if p.poll() is None:
                p.terminate()
        for _, p in self.edges:
            _stop(p, 20)
        if not self.replicas:
            return
        deadline, last, since = time.monotonic() + settle_s, -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.summary().get("alerts_stored", -1)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= 1.0:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        self.stop_edges(settle_s=0)
        for _, p in self.boards:
            _stop(p)
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:
                pass
        for r in self.replicas:
            _stop(r.proc)
        if self.pg is not None:
            self.pg.close()
            (self.run_dir / "pg-dir.txt").unlink(missing_ok=True)
        if self.cluster is not None:
            self.cluster.stop()


def run(args: argparse.Namespace) -> int:
    if args.seconds is not None and not args.seconds > 0:
        raise ConfigError(f"--seconds must be > 0, not {args.seconds}")
    if not args.every > 0:
        raise ConfigError(f"--every must be > 0, not {args.every}")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # SIGTERM stops everything as Ctrl-C does
    run_dir = Path(args.run_dir)
    fleet = Fleet(run_dir, args.edges, args.boards, args.story, args.speed, args.store, args.control_port,
                  not args.no_model, note=lambda text: print(f"fleet: {text}", flush=True))
    t0 = time.monotonic()
    try:
        fleet.start()
        r1 = fleet.replicas[0]
        print(f"fleet: started in {time.monotonic() - t0:.0f} s. Open {r1.url} (replica 2: "
              f"{fleet.replicas[1].url}); log in as operator / {fleet.users['operator']} or viewer / "
              f"{fleet.users['viewer']}. Ctrl-C stops everything.", flush=True)
        start = time.monotonic()
        next_print = start + args.every
        while args.seconds is None or time.monotonic() - start < args.seconds:
            time.sleep(min(0.2, max(0.0, next_print - time.monotonic())))
            if time.monotonic() >= next_print:
                next_print += args.every
                print(fleet.format(fleet.summary()), flush=True)
        print(f"fleet: --seconds {args.seconds:g} reached: stopping", flush=True)
    except KeyboardInterrupt:
        print("fleet: stopping (Ctrl-C)", flush=True)
    finally:
        report = None
        fleet.stop_edges()
        if fleet.replicas:
            try:
                report = fleet.report()
                (run_dir / "fleet-report.json").write_text(json.dumps(report, indent=1, default=str))
            except Exception as exc:
                print(f"fleet: could not write the report: {exc!r}", flush=True)
        fleet.stop()
        if report is not None:
            print("fleet: final " + fleet.format(report).lstrip(), flush=True)
            kinds: dict[str, int] = {}
            for m in report.get("alert_messages", []):
                key = f"{m['device']} {m['kind']} {m['state']}"
                kinds[key] = kinds.get(key, 0) + 1
            for key, n in sorted(kinds.items()):
                print(f"fleet: stored alert messages: {key} x{n}", flush=True)
            print(f"fleet: report {run_dir / 'fleet-report.json'}; logs in {run_dir}", flush=True)
    return 0
