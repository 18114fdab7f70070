"""The control room's SQLite store (one machine): boards, edges, alerts once by id, acks, readings, users.

One write connection behind a lock (the ingest thread, the watcher and acknowledgements share it); every
reading thread gets its own connection (WAL: readers never wait for the writer). Migrations are numbered
and recorded in `PRAGMA user_version`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from control import messages as m
from control.store import AckError, Changes, Store, StoreError, alert_filters, with_ack

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE boards (
        bid INTEGER PRIMARY KEY, site TEXT NOT NULL, device TEXT NOT NULL, edge TEXT,
        unit TEXT, flow_unit TEXT, state TEXT, relay INTEGER, faults INTEGER, flags INTEGER,
        ch4 REAL, flow REAL, total REAL, score REAL, threshold REAL, forecast REAL, ready INTEGER,
        seq INTEGER, ts REAL, heard_at REAL, link TEXT, active TEXT NOT NULL DEFAULT '[]', nodata TEXT,
        UNIQUE (site, device));
    CREATE TABLE edges (
        site TEXT NOT NULL, edge TEXT NOT NULL, online INTEGER, status_at REAL, heard_at REAL,
        health TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (site, edge));
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY, site TEXT NOT NULL, edge TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL,
        severity TEXT NOT NULL, advisory INTEGER NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL,
        raised_ts REAL NOT NULL, details TEXT NOT NULL, readings TEXT,
        cleared_ts REAL, cleared_id TEXT, cleared_message TEXT, received_at REAL NOT NULL);
    CREATE INDEX alerts_open ON alerts (site, device, kind) WHERE cleared_ts IS NULL;
    CREATE INDEX alerts_board ON alerts (site, device, raised_ts);
    CREATE INDEX alerts_raised ON alerts (raised_ts);
    CREATE TABLE alert_msgs (
        id TEXT PRIMARY KEY, site TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
        ts REAL NOT NULL, message TEXT NOT NULL, alert_id TEXT);
    CREATE INDEX alert_msgs_pending ON alert_msgs (site, device, kind, ts) WHERE alert_id IS NULL;
    CREATE TABLE acks (
        alert_id TEXT PRIMARY KEY REFERENCES alerts (id), user TEXT NOT NULL, ts REAL NOT NULL, note TEXT NOT NULL);
    CREATE TABLE samples (bid INTEGER NOT NULL, ts REAL NOT NULL, ch4 REAL, flow REAL, state TEXT);
    CREATE INDEX samples_bid_ts ON samples (bid, ts);
    CREATE TABLE minutes (
        bid INTEGER NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL, ch4_n INTEGER NOT NULL,
        ch4_min REAL, ch4_sum REAL, ch4_max REAL, flow_min REAL, flow_sum REAL, flow_max REAL,
        PRIMARY KEY (bid, minute)) WITHOUT ROWID;
    CREATE TABLE events (bid INTEGER NOT NULL, ts REAL NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL);
    CREATE INDEX events_bid_ts ON events (bid, ts);
    CREATE TABLE users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL);
    """,
    # 2: alerts about an edge (device "") are paired by their edge too
    """
    ALTER TABLE alert_msgs ADD COLUMN edge TEXT NOT NULL DEFAULT '';
    """,
    # 3: a board's last A frame (battery, pressure, temperature, standard flow), from its retained state
    """
    ALTER TABLE boards ADD COLUMN aux TEXT;
    """,
]

_PRUNE_ROWS = 2000  # per call (about once a minute): a few ms, never a stall
_BOARD_COLS = ("site", "device", "edge", "unit", "flow_unit", "state", "relay", "faults", "flags", "ch4", "flow",
               "total", "score", "threshold", "forecast", "ready", "seq", "ts", "heard_at", "link", "active", "nodata",
               "aux")
_ALERT_COLS = ("id", "site", "edge", "device", "kind", "severity", "advisory", "source", "message", "raised_ts",
               "details", "readings", "cleared_ts", "cleared_id", "cleared_message", "received_at")


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class SqliteStore(Store):
    def __init__(self, path: str | Path, raw_hours: float = 48.0, minute_days: int = 100, fsync: bool = True):
        self.path = Path(path)
        self.raw_s = raw_hours * 3600
        self.minute_s = minute_days * 86400
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = self._connect()
            self._w.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the control-room database {self.path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from exc
        self._lock = threading.Lock()
        self._local = threading.local()
        self._bids: dict[tuple[str, str], int] = {
            (s, d): bid for bid, s, d in self._w.execute("SELECT bid, site, device FROM boards")}

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.row_factory = sqlite3.Row
        return db

    def _migrate(self) -> None:
        version = self._w.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this program knows "
                             f"({len(MIGRATIONS)}): upgrade firedamp")
        for n in range(version, len(MIGRATIONS)):
            self._w.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[n]}; PRAGMA user_version = {n + 1}; COMMIT;")

    @property
    def _r(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def _write(self, fn, *args) -> Any:
        """Run fn(db, *args) in one IMMEDIATE transaction on the write connection."""
        with self._lock:
            db = self._w
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(db, *args)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return out
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._r.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc

    # ------------------------------------------------------------------------------------------ ingest

    def _bid(self, db: sqlite3.Connection, site: str, device: str) -> int:
        bid = self._bids.get((site, device))
        if bid is None:
            db.execute("INSERT OR IGNORE INTO boards (site, device) VALUES (?, ?)", (site, device))
            bid = db.execute("SELECT bid FROM boards WHERE site=? AND device=?", (site, device)).fetchone()[0]
            self._bids[(site, device)] = bid
        return bid

    def apply(self, msgs: list[m.Message], now: float) -> Changes:
        return self._write(self._apply, msgs, now)

    def _apply(self, db: sqlite3.Connection, msgs: list[m.Message], now: float) -> Changes:
        ch = Changes()
        samples: list[tuple] = []
        minutes: dict[tuple[int, int], list] = {}
        latest: dict[int, m.Telemetry] = {}
        known = dict(self._bids)
        try:
            for msg in msgs:
                if isinstance(msg, m.Telemetry):
                    bid = self._bid(db, msg.site, msg.device)
                    latest[bid] = msg
                    samples.append((bid, msg.ts, msg.ch4, msg.flow, msg.state))
                    agg = minutes.get((bid, int(msg.ts // 60)))
                    if agg is None:
                        agg = minutes[(bid, int(msg.ts // 60))] = [0, 0, None, 0.0, None, None, 0.0, None]
                    agg[0] += 1
                    if msg.ch4 is not None:
                        agg[1] += 1
                        agg[2], agg[3], agg[4] = _lo(agg[2], msg.ch4), agg[3] + msg.ch4, _hi(agg[4], msg.ch4)
                    agg[5], agg[6], agg[7] = _lo(agg[5], msg.flow), agg[6] + msg.flow, _hi(agg[7], msg.flow)
                    ch.boards.add((msg.site, msg.device))
                elif isinstance(msg, m.Alert):
                    self._alert(db, msg, now, ch)
                elif isinstance(msg, m.State):
                    self._bid(db, msg.site, msg.device)
                    db.execute(
                        "UPDATE boards SET edge=?, link=?, active=?, state=coalesce(?, state), "
                        "relay=coalesce(?, relay), unit=coalesce(?, unit), flow_unit=coalesce(?, flow_unit), "
                        "aux=coalesce(?, aux) WHERE site=? AND device=?",
                        (msg.edge, msg.link, json.dumps(msg.active), msg.state, msg.relay, msg.unit, msg.flow_unit,
                         None if msg.aux is None else json.dumps(msg.aux), msg.site, msg.device))
                    self._edge(db, msg.site, msg.edge, None if msg.retained else now)
                    ch.boards.add((msg.site, msg.device))
                elif isinstance(msg, m.Status):
                    db.execute("INSERT INTO edges (site, edge, online, status_at, heard_at) VALUES (?,?,?,?,?) "
                               "ON CONFLICT (site, edge) DO UPDATE SET online=excluded.online, "
                               "status_at=excluded.status_at, heard_at=coalesce(excluded.heard_at, heard_at)",
                               (msg.site, msg.edge, int(msg.online), now, None if msg.retained else now))
                    ch.edges.add((msg.site, msg.edge))
                elif isinstance(msg, m.Health):
                    db.execute("INSERT INTO edges (site, edge, health, heard_at) VALUES (?,?,?,?) "
                               "ON CONFLICT (site, edge) DO UPDATE SET health=excluded.health, "
                               "heard_at=coalesce(excluded.heard_at, heard_at)",
                               (msg.site, msg.edge, json.dumps(msg.counters), None if msg.retained else now))
                    ch.edges.add((msg.site, msg.edge))
                elif isinstance(msg, m.Event):
                    db.execute("INSERT INTO events VALUES (?,?,?,?)",
                               (self._bid(db, msg.site, msg.device), msg.ts, msg.code, msg.text))
            if samples:
                db.executemany("INSERT INTO samples VALUES (?,?,?,?,?)", samples)
                db.executemany(
                    "INSERT INTO minutes VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (bid, minute) DO UPDATE SET "
                    "n=n+excluded.n, ch4_n=ch4_n+excluded.ch4_n, "
                    "ch4_min=min(coalesce(ch4_min, excluded.ch4_min), coalesce(excluded.ch4_min, ch4_min)), "
                    "ch4_sum=coalesce(ch4_sum, 0)+coalesce(excluded.ch4_sum, 0), "
                    "ch4_max=max(coalesce(ch4_max, excluded.ch4_max), coalesce(excluded.ch4_max, ch4_max)), "
                    "flow_min=min(flow_min, excluded.flow_min), flow_sum=flow_sum+excluded.flow_sum, "
                    "flow_max=max(flow_max, excluded.flow_max)",
                    [(bid, minute, *agg) for (bid, minute), agg in minutes.items()])
                db.executemany(
                    "UPDATE boards SET unit=?, flow_unit=?, state=?, relay=?, faults=?, flags=?, ch4=?, flow=?, "
                    "total=?, score=?, threshold=?, forecast=?, ready=?, seq=?, ts=?, heard_at=? WHERE bid=?",
                    [(t.unit, t.flow_unit, t.state, t.relay, t.faults, t.flags, t.ch4, t.flow, t.total, t.score,
                      t.threshold, t.forecast, int(t.ready), t.seq, t.ts, now, bid) for bid, t in latest.items()])
                # a board's telemetry is news from its edge too (telemetry payloads do not name the edge)
                db.execute(f"UPDATE edges SET heard_at=? WHERE (site, edge) IN (SELECT site, edge FROM boards WHERE "
                           f"bid IN ({','.join('?' * len(latest))}))", (now, *latest))
        except BaseException:
            self._bids = known  # the rows made in this transaction are rolled back with it
            raise
        return ch

    def _edge(self, db: sqlite3.Connection, site: str, edge: str, heard: float | None) -> None:
        db.execute("INSERT INTO edges (site, edge, heard_at) VALUES (?,?,?) ON CONFLICT (site, edge) DO UPDATE "
                   "SET heard_at=coalesce(excluded.heard_at, heard_at)", (site, edge, heard))

    def _alert(self, db: sqlite3.Connection, a: m.Alert, now: float, ch: Changes) -> None:
        if db.execute("INSERT OR IGNORE INTO alert_msgs (id, site, device, kind, state, ts, message, edge) "
                      "VALUES (?,?,?,?,?,?,?,?)", (a.id, a.site, a.device, a.kind, a.state, a.ts, a.message,
                                                   a.edge)).rowcount == 0:
            ch.duplicates += 1
            return
        if a.source == "edge":
            self._edge(db, a.site, a.edge, now)
            if a.device:
                self._bid(db, a.site, a.device)
                db.execute("UPDATE boards SET edge=? WHERE site=? AND device=?", (a.edge, a.site, a.device))
        # an alert is about a board (site, device) or, with device "", about an edge (site, edge)
        open_ = db.execute("SELECT id FROM alerts WHERE site=? AND device=? AND kind=? AND cleared_ts IS NULL "
                           "AND (device != '' OR edge=?) ORDER BY raised_ts DESC LIMIT 1",
                           (a.site, a.device, a.kind, a.edge)).fetchone()
        if a.source == "control-room" and a.state == "raised" and open_ is not None:
            return  # another replica's watcher raised it already: one alert for one silence
        if a.state == "cleared":
            if open_ is None:
                return  # its raise has not arrived yet (or was never kept): linked when it does
            db.execute("UPDATE alerts SET cleared_ts=?, cleared_id=?, cleared_message=? WHERE id=?",
                       (a.ts, a.id, a.message, open_["id"]))
            db.execute("UPDATE alert_msgs SET alert_id=? WHERE id=?", (open_["id"], a.id))
            ch.alerts.add(open_["id"])
            return
        if open_ is not None and a.kind not in m.ONE_SHOT:  # raised again while raised: the newer one stands
            db.execute("UPDATE alerts SET cleared_ts=?, cleared_message=? WHERE id=?",
                       (a.ts, "superseded by a newer alert of the same kind", open_["id"]))
            ch.alerts.add(open_["id"])
        cleared_ts = cleared_id = cleared_msg = None
        if a.kind in m.ONE_SHOT:
            cleared_ts, cleared_msg = a.ts, "(one-shot: nothing to clear)"
        else:
            pending = db.execute("SELECT m.id, m.ts, m.message FROM alert_msgs m WHERE m.site=? AND m.device=? AND "
                                 "m.kind=? AND m.state='cleared' AND m.alert_id IS NULL AND m.ts>=? AND (m.device != '' "
                                 "OR m.edge=?) ORDER BY m.ts LIMIT 1",
                                 (a.site, a.device, a.kind, a.ts, a.edge)).fetchone()
            if pending is not None:
                cleared_ts, cleared_id, cleared_msg = pending["ts"], pending["id"], pending["message"]
                db.execute("UPDATE alert_msgs SET alert_id=? WHERE id=?", (a.id, pending["id"]))
        db.execute("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (a.id, a.site, a.edge, a.device, a.kind, a.severity, int(a.advisory), a.source, a.message, a.ts,
                    json.dumps(a.details), None if a.readings is None else json.dumps(a.readings), cleared_ts,
                    cleared_id, cleared_msg, now))
        db.execute("UPDATE alert_msgs SET alert_id=? WHERE id=?", (a.id, a.id))
        ch.alerts.add(a.id)
        if a.device:  # "" for an alert about an edge
            ch.boards.add((a.site, a.device))

    def set_nodata(self, marks: dict[tuple[str, str], str | None], now: float) -> Changes:
        def do(db: sqlite3.Connection) -> Changes:
            ch = Changes()
            for (site, device), reason in marks.items():
                self._bid(db, site, device)
                db.execute("UPDATE boards SET nodata=? WHERE site=? AND device=?", (reason, site, device))
                ch.boards.add((site, device))
            return ch

        return self._write(do) if marks else Changes()

    def prune(self, now: float) -> int:
        def do(db: sqlite3.Connection) -> int:
            n = 0
            for table, col, cutoff in (("samples", "ts", now - self.raw_s), ("events", "ts", now - self.minute_s),
                                       ("minutes", "minute", (now - self.minute_s) // 60)):
                n += db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {col} < ? "
                                f"LIMIT {_PRUNE_ROWS})" if table != "minutes" else
                                f"DELETE FROM minutes WHERE (bid, minute) IN (SELECT bid, minute FROM minutes "
                                f"WHERE minute < ? LIMIT {_PRUNE_ROWS})", (cutoff,)).rowcount
            db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            return n

        return self._write(do)

    # ------------------------------------------------------------------------------------------ reading

    @staticmethod
    def _board_dict(r: sqlite3.Row) -> dict[str, Any]:
        d = {k: r[k] for k in _BOARD_COLS}
        d["active"] = json.loads(d["active"] or "[]")
        d["aux"] = json.loads(d["aux"]) if d["aux"] else None
        d["ready"] = bool(d["ready"]) if d["ready"] is not None else False
        return d

    def boards(self) -> list[dict[str, Any]]:
        return [self._board_dict(r) for r in self._read(
            f"SELECT {', '.join(_BOARD_COLS)} FROM boards ORDER BY site, edge, device")]

    def board(self, site: str, device: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {', '.join(_BOARD_COLS)} FROM boards WHERE site=? AND device=?", (site, device))
        return self._board_dict(rows[0]) if rows else None

    def edges(self) -> list[dict[str, Any]]:
        out = []
        for r in self._read("SELECT site, edge, online, status_at, heard_at, health FROM edges ORDER BY site, edge"):
            d = dict(r)
            d["online"] = None if d["online"] is None else bool(d["online"])
            d["health"] = json.loads(d["health"] or "{}")
            out.append(d)
        return out

    def alerts(self, *, active: bool | None = None, site: str | None = None, device: str | None = None,
               since: float | None = None, until: float | None = None, limit: int = 200,
               ids: list[str] | None = None) -> list[dict[str, Any]]:
        where, args = alert_filters("?", active=active, site=site, device=device, since=since, until=until)
        if ids is not None:
            where.append(f"a.id IN ({', '.join('?' * len(ids))})")
            args += ids
        sql = (f"SELECT {', '.join('a.' + c for c in _ALERT_COLS)}, k.user AS ack_user, k.ts AS ack_ts, "
               "k.note AS ack_note FROM alerts a LEFT JOIN acks k ON k.alert_id = a.id"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY (a.cleared_ts IS NULL) DESC, a.raised_ts DESC LIMIT ?")
        out = []
        for r in self._read(sql, (*args, limit)):
            d = dict(r)
            d["advisory"] = bool(d["advisory"])
            d["details"] = json.loads(d["details"])
            d["readings"] = json.loads(d["readings"]) if d["readings"] else None
            out.append(with_ack(d))
        return out

    def series(self, site: str, device: str, since: float, until: float, points: int) -> list[dict[str, Any]]:
        bid = self._bids.get((site, device))
        if bid is None or until <= since:
            return []
        width = max((until - since) / max(points, 1), 1.0)
        if since >= self._raw_floor():
            sql = ("SELECT CAST((ts - ?) / ? AS INTEGER) AS b, min(ch4), avg(ch4), max(ch4), min(flow), avg(flow), "
                   "max(flow), count(*) FROM samples WHERE bid=? AND ts>=? AND ts<? GROUP BY b ORDER BY b")
            rows = self._read(sql, (since, width, bid, since, until))
        else:
            width = max(width, 60.0)
            sql = ("SELECT CAST((minute * 60 - ?) / ? AS INTEGER) AS b, min(ch4_min), sum(ch4_sum) / "
                   "nullif(sum(ch4_n), 0), max(ch4_max), min(flow_min), sum(flow_sum) / sum(n), max(flow_max), "
                   "sum(n) FROM minutes WHERE bid=? AND minute>=? AND minute<? GROUP BY b ORDER BY b")
            rows = self._read(sql, (since, width, bid, int(since // 60), int(-(-until // 60))))
        return [{"t": since + (r[0] + 0.5) * width, "ch4_min": r[1], "ch4_mean": r[2], "ch4_max": r[3],
                 "flow_min": r[4], "flow_mean": r[5], "flow_max": r[6], "n": r[7]} for r in rows]

    def _raw_floor(self) -> float:
        rows = self._read("SELECT min(ts) FROM samples")
        oldest = rows[0][0]
        return max(time.time() - self.raw_s, oldest if oldest is not None else float("inf"))

    def readings(self, site: str, device: str, since: float, until: float) -> list[dict[str, Any]]:
        bid = self._bids.get((site, device))
        if bid is None:
            return []
        out: list[dict[str, Any]] = []
        floor = max(since, self._raw_floor())
        if floor > since:
            for r in self._read("SELECT minute, ch4_min, ch4_sum / nullif(ch4_n, 0), ch4_max, flow_min, flow_sum / n, "
                                "flow_max FROM minutes WHERE bid=? AND minute>=? AND minute<? ORDER BY minute",
                                (bid, int(since // 60), int(min(floor, until) // 60))):
                out.append({"t": r[0] * 60.0, "kind": "minute", "ch4": r[2], "ch4_min": r[1], "ch4_max": r[3],
                            "flow": r[5], "flow_min": r[4], "flow_max": r[6], "state": ""})
        for r in self._read("SELECT ts, ch4, flow, state FROM samples WHERE bid=? AND ts>=? AND ts<? ORDER BY ts",
                            (bid, floor, until)):
            out.append({"t": r[0], "kind": "raw", "ch4": r[1], "ch4_min": r[1], "ch4_max": r[1], "flow": r[2],
                        "flow_min": r[2], "flow_max": r[2], "state": r[3]})
        return out

    def stats(self, since: float, until: float) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._read("SELECT b.site, b.device, max(mi.ch4_max), sum(mi.ch4_sum) / nullif(sum(mi.ch4_n), 0), "
                          "sum(mi.n) FROM minutes mi JOIN boards b ON b.bid = mi.bid WHERE mi.minute >= ? AND "
                          "mi.minute < ? GROUP BY mi.bid", (int(since // 60), int(-(-until // 60))))
        return {(r[0], r[1]): {"ch4_max": r[2], "ch4_mean": r[3], "readings": r[4]} for r in rows}

    # ------------------------------------------------------------------------------------------ people

    def acknowledge(self, alert_id: str, user: str, note: str, now: float) -> Changes:
        def do(db: sqlite3.Connection) -> Changes:
            if db.execute("SELECT 1 FROM alerts WHERE id=?", (alert_id,)).fetchone() is None:
                raise AckError(404, "no such alert")
            done = db.execute("SELECT user, ts FROM acks WHERE alert_id=?", (alert_id,)).fetchone()
            if done is not None:
                raise AckError(409, f"already acknowledged by {done['user']}")
            db.execute("INSERT INTO acks VALUES (?,?,?,?)", (alert_id, user, now, note))
            return Changes(alerts={alert_id})

        return self._write(do)

    def add_user(self, name: str, role: str, password_hash: str, now: float) -> None:
        self._write(lambda db: db.execute(
            "INSERT INTO users VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET role=excluded.role, "
            "hash=excluded.hash", (name, role, password_hash, now)))

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT name, role, hash, created FROM users WHERE name=?", (name,))
        return dict(rows[0]) if rows else None

    def users(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT name, role, created FROM users ORDER BY name")]

    def put_session(self, token_hash: str, user: str, csrf: str, expires: float) -> None:
        self._write(lambda db: db.execute("INSERT INTO sessions VALUES (?,?,?,?)", (token_hash, user, csrf, expires)))

    def session(self, token_hash: str, now: float) -> dict[str, Any] | None:
        rows = self._read("SELECT s.user, s.csrf, s.expires, u.role FROM sessions s JOIN users u ON u.name = s.user "
                          "WHERE s.token_hash=? AND s.expires > ?", (token_hash, now))
        return dict(rows[0]) if rows else None

    def drop_session(self, token_hash: str) -> None:
        self._write(lambda db: db.execute("DELETE FROM sessions WHERE token_hash=?", (token_hash,)))

    def close(self) -> None:
        with self._lock:
            self._w.close()


def new_id() -> str:
    return str(uuid.uuid4())
