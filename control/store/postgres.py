"""The control room's PostgreSQL 15 store (fleet scale): the semantics of SqliteStore, safe for several replicas.

Several control-room replicas write at once (a JetStream consumer shared between them redelivers a batch
that one replica took but did not acknowledge), so every rule that SQLite gets from its single writer is
made explicit here:
- an alert message is stored once by id (`INSERT ... ON CONFLICT DO NOTHING` on alert_msgs);
- raise/clear pairing per (site, device, kind) runs under a transaction-scoped advisory lock per key, taken
  for a whole batch in sorted order (two replicas with overlapping batches neither deadlock nor pair twice);
- a telemetry sample is stored once by (board, ts, seq), and the per-minute aggregates are built only from
  the samples actually inserted, so a redelivered reading does not count twice;
- the board rows a batch touches are locked in board order before any of them is written.

Readings: `samples` (raw, kept raw_hours) is range-partitioned by day and `minutes` (per-minute
min/mean/max, kept minute_days ≥ 90) by week. Why partitions rather than one table with an index: at 2,000
boards a week of minutes is 20 M rows and a day of samples 170 M; retention then is a DROP of one partition
(no delete of millions of rows, no vacuum debt), and a 90-day query of one board visits 14 weekly
partitions, each through its (bid, minute) primary key (EXPLAIN in tests/control/test_store_postgres.py).
Partitions are created ahead by the store (at open, at each prune, and on demand for a batch's readings);
a DEFAULT partition takes readings outside the window (a clock far off), so an insert never fails on a
missing partition.

Errors: every database error is a StoreError (the ingest retries the batch and acknowledges nothing
before it is stored). A connection that died while idle (the server restarted) is found at BEGIN, replaced
and the call run again once on a new connection; a failure inside a transaction is a StoreError and the
connection is dropped, so the next call connects afresh.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Json

from control import messages as m
from control.store import AckError, Changes, Store, StoreError, alert_filters, with_ack

log = logging.getLogger("firedamp.control.store")

MIGRATIONS: list[tuple[str, str]] = [
    ("the first schema", """
    CREATE TABLE boards (
        bid serial PRIMARY KEY, site text NOT NULL, device text NOT NULL, edge text,
        unit text, flow_unit text, state text, relay integer, faults bigint, flags bigint,
        ch4 float8, flow float8, total float8, score float8, threshold float8, forecast float8, ready boolean,
        seq bigint, ts float8, heard_at float8, link text, active json NOT NULL DEFAULT '[]', nodata text,
        UNIQUE (site, device));
    CREATE TABLE edges (
        site text NOT NULL, edge text NOT NULL, online boolean, status_at float8, heard_at float8,
        health json NOT NULL DEFAULT '{}', PRIMARY KEY (site, edge));
    CREATE TABLE alerts (
        id text PRIMARY KEY, site text NOT NULL, edge text NOT NULL, device text NOT NULL, kind text NOT NULL,
        severity text NOT NULL, advisory boolean NOT NULL, source text NOT NULL, message text NOT NULL,
        raised_ts float8 NOT NULL, details json NOT NULL, readings json,
        cleared_ts float8, cleared_id text, cleared_message text, received_at float8 NOT NULL);
    CREATE INDEX alerts_open ON alerts (site, device, kind) WHERE cleared_ts IS NULL;
    CREATE INDEX alerts_board ON alerts (site, device, raised_ts);
    CREATE INDEX alerts_raised ON alerts (raised_ts);
    CREATE TABLE alert_msgs (
        id text PRIMARY KEY, site text NOT NULL, device text NOT NULL, kind text NOT NULL, state text NOT NULL,
        ts float8 NOT NULL, message text NOT NULL, alert_id text);
    CREATE INDEX alert_msgs_pending ON alert_msgs (site, device, kind, ts) WHERE alert_id IS NULL;
    CREATE TABLE acks (
        alert_id text PRIMARY KEY REFERENCES alerts (id), "user" text NOT NULL, ts float8 NOT NULL,
        note text NOT NULL);
    CREATE TABLE samples (
        bid integer NOT NULL, ts float8 NOT NULL, seq bigint NOT NULL, ch4 float8, flow float8, state text,
        PRIMARY KEY (bid, ts, seq)) PARTITION BY RANGE (ts);
    CREATE TABLE samples_default PARTITION OF samples DEFAULT;
    CREATE TABLE minutes (
        bid integer NOT NULL, minute bigint NOT NULL, n integer NOT NULL, ch4_n integer NOT NULL,
        ch4_min float8, ch4_sum float8, ch4_max float8, flow_min float8, flow_sum float8, flow_max float8,
        PRIMARY KEY (bid, minute)) PARTITION BY RANGE (minute);
    CREATE TABLE minutes_default PARTITION OF minutes DEFAULT;
    CREATE TABLE events (bid integer NOT NULL, ts float8 NOT NULL, code text NOT NULL, text text NOT NULL);
    CREATE INDEX events_bid_ts ON events (bid, ts);
    CREATE INDEX events_ts ON events (ts);
    CREATE TABLE users (name text PRIMARY KEY, role text NOT NULL, hash text NOT NULL, created float8 NOT NULL);
    CREATE TABLE sessions (
        token_hash text PRIMARY KEY, "user" text NOT NULL, csrf text NOT NULL, expires float8 NOT NULL);
    """),
    ("alerts about an edge (device '') are paired by their edge too", """
    ALTER TABLE alert_msgs ADD COLUMN edge text NOT NULL DEFAULT '';
    """),
    ("a board's last A frame (battery, pressure, temperature, standard flow), from its retained state", """
    ALTER TABLE boards ADD COLUMN aux json;
    """),
]

_PRUNE_ROWS = 2000  # rows deleted per table per call (about once a minute): a few ms, never a stall
_PRUNE_PARTS = 2  # whole partitions dropped per table per call
_IDLE_MAX = 8  # idle connections kept for readers
_MIGRATE_LOCK = 0x66646d67  # advisory lock key: one replica migrates at a time
_PART_LOCK = 0x66647074  # advisory lock key: one replica creates partitions at a time
_AHEAD = 2  # partitions made ahead of the current one
_TS_MAX = 1e11  # s (year 5138): a reading stamped beyond is not stored (its minute would not fit)

# (table, key column, width of one partition in key units, key of a ts)
_DAY = 86400.0
_WEEK_MIN = 7 * 1440
_PARTS = {"samples": ("ts", _DAY, lambda ts: ts), "minutes": ("minute", _WEEK_MIN, lambda ts: ts // 60)}
_PART_NAME = re.compile(r"^(samples|minutes)_p(-?\d+)$")

_BYTES = '{} COLLATE "C"'  # order by code point, as SQLite does, whatever the database's collation
_BOARD_COLS = ("site", "device", "edge", "unit", "flow_unit", "state", "relay", "faults", "flags", "ch4", "flow",
               "total", "score", "threshold", "forecast", "ready", "seq", "ts", "heard_at", "link", "active", "nodata",
               "aux")
_ALERT_COLS = ("id", "site", "edge", "device", "kind", "severity", "advisory", "source", "message", "raised_ts",
               "details", "readings", "cleared_ts", "cleared_id", "cleared_message", "received_at")


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _safe_dsn(dsn: str) -> str:
    """The DSN for messages: host, port, database; never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable dsn>"
    return " ".join(f"{k}={info[k]}" for k in ("host", "port", "dbname", "user") if info.get(k)) or "<default>"


class PostgresStore(Store):
    def __init__(self, dsn: str, raw_hours: float = 48.0, minute_days: int = 100, fsync: bool = True,
                 password: str | None = None):
        self.dsn = dsn
        self.where = _safe_dsn(dsn)
        self.raw_s = raw_hours * 3600
        self.minute_s = minute_days * 86400
        self._kw: dict[str, Any] = {"autocommit": True, "connect_timeout": 5,
                                    "application_name": "firedamp-control-room",
                                    # a replica frozen mid-transaction must not hold the other's locks forever
                                    "options": "-c idle_in_transaction_session_timeout=60000"
                                               + ("" if fsync else " -c synchronous_commit=off")}
        if password:
            self._kw["password"] = password
        self._idle: list[psycopg.Connection] = []
        self._idle_lock = threading.Lock()
        self._bids: dict[tuple[str, str], int] = {}
        self._parts: dict[str, set[int]] = {"samples": set(), "minutes": set()}
        self._parts_lock = threading.Lock()
        self._closed = False
        self._migrate()
        self._tx(self._load_bids)
        self._ensure_window(time.time())

    # ------------------------------------------------------------------------------------------ connections

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.dsn, **self._kw)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL ({self.where}): {_why(exc)}") from exc

    def _take(self) -> tuple[psycopg.Connection, bool]:
        """A connection and whether it is new (one taken from the idle list may have died while idle)."""
        if self._closed:
            raise StoreError("the store is closed")
        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), False
        return self._connect(), True

    def _give(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._idle_lock:
            if len(self._idle) < _IDLE_MAX and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _tx(self, fn, *args) -> Any:
        """fn(cursor, *args) in one transaction. A connection found dead at BEGIN (died while idle: a server
        restart) is replaced once; any other database error is a StoreError and its connection dropped."""
        for attempt in (0, 1):
            conn, fresh = self._take()
            try:
                conn.execute("BEGIN")
            except psycopg.Error as exc:
                conn.close()
                if fresh or attempt:
                    raise StoreError(f"cannot write PostgreSQL ({self.where}): {_why(exc)}") from exc
                continue
            try:
                with conn.cursor() as cur:
                    out = fn(cur, *args)
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    if not conn.broken:
                        conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
                self._give(conn)
                if isinstance(exc, psycopg.Error):
                    raise StoreError(f"cannot write PostgreSQL ({self.where}): {_why(exc)}") from exc
                raise
            self._give(conn)
            return out
        raise AssertionError("unreachable")

    def _read(self, query, args: tuple | list = (), dicts: bool = True) -> list[Any]:
        """One read (autocommit: its own snapshot); retried once on a new connection if the first was dead."""
        for attempt in (0, 1):
            conn, fresh = self._take()
            try:
                with conn.cursor(row_factory=dict_row if dicts else psycopg.rows.tuple_row) as cur:
                    rows = cur.execute(query, args).fetchall()
            except psycopg.Error as exc:
                dead = conn.broken or conn.closed
                self._give(conn)
                if dead and not fresh and not attempt:
                    continue
                raise StoreError(f"cannot read PostgreSQL ({self.where}): {_why(exc)}") from exc
            self._give(conn)
            return rows
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        def do(cur: psycopg.Cursor) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            version = cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(f"PostgreSQL ({self.where}) has schema version {version}, newer than this "
                                 f"program knows ({len(MIGRATIONS)}): upgrade firedamp")
            for n in range(version, len(MIGRATIONS)):
                name, step = MIGRATIONS[n]
                cur.execute(step)
                cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (n + 1, name))
                log.info("PostgreSQL %s: schema migrated to version %d (%s)", self.where, n + 1, name)

        self._tx(do)

    def _load_bids(self, cur: psycopg.Cursor) -> None:
        self._bids = {(s, d): bid for bid, s, d in cur.execute("SELECT bid, site, device FROM boards")}

    def _known_parts(self, cur: psycopg.Cursor) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {"samples": set(), "minutes": set()}
        for (name,) in cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                   "WHERE i.inhparent IN ('samples'::regclass, 'minutes'::regclass)"):
            hit = _PART_NAME.match(name)
            if hit:
                out[hit.group(1)].add(int(hit.group(2)))
        return out

    def _window(self, table: str, now: float) -> tuple[int, int]:
        """The partition numbers kept ready for `table`: from its retention cut-off to two partitions ahead
        (prune, about once a minute, creates the next ones long before they are needed)."""
        col, width, key = _PARTS[table]
        keep = self.raw_s if table == "samples" else self.minute_s
        return int(key(now - keep) // width), int(key(now) // width) + _AHEAD

    def _ensure_window(self, now: float) -> int:
        want = {t: set(range(lo, hi + 1)) for t in _PARTS for lo, hi in [self._window(t, now)]}
        return self._ensure(want)

    def _ensure(self, want: dict[str, set[int]]) -> int:
        """Create the partitions of `want` that do not exist yet (own transaction: DDL locks the parent)."""
        with self._parts_lock:
            missing = {t: nums - self._parts[t] for t, nums in want.items()}
            if not any(missing.values()):
                return 0

            def do(cur: psycopg.Cursor) -> int:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PART_LOCK,))
                have = self._known_parts(cur)
                made = 0
                for table, nums in missing.items():
                    for n in sorted(nums - have[table]):
                        self._create_part(cur, table, n)
                        made += 1
                return made

            made = self._tx(do)
            for t, nums in missing.items():
                self._parts[t] |= nums
            return made

    @staticmethod
    def _create_part(cur: psycopg.Cursor, table: str, n: int) -> None:
        """Partition n of `table`; readings of its range that went to the DEFAULT partition move into it."""
        col, width, _ = _PARTS[table]
        lo, hi = n * width, (n + 1) * width
        if table == "minutes":
            lo, hi = int(lo), int(hi)
        part, default = sql.Identifier(f"{table}_p{n}"), sql.Identifier(f"{table}_default")
        cur.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                    .format(part, sql.Identifier(table)))
        cur.execute(sql.SQL("WITH moved AS (DELETE FROM {d} WHERE {c} >= %s AND {c} < %s RETURNING *) "
                            "INSERT INTO {p} SELECT * FROM moved").format(d=default, c=sql.Identifier(col), p=part),
                    (lo, hi))
        cur.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})")
                    .format(sql.Identifier(table), part, sql.Literal(lo), sql.Literal(hi)))

    def schema_version(self) -> int:
        return self._read("SELECT max(version) FROM schema_migrations", dicts=False)[0][0]

    # ------------------------------------------------------------------------------------------ ingest

    def _bid(self, cur: psycopg.Cursor, site: str, device: str, new: dict[tuple[str, str], int]) -> int:
        bid = self._bids.get((site, device)) or new.get((site, device))
        if bid is None:
            row = cur.execute("INSERT INTO boards (site, device) VALUES (%s, %s) ON CONFLICT (site, device) "
                              "DO NOTHING RETURNING bid", (site, device)).fetchone()
            if row is None:
                row = cur.execute("SELECT bid FROM boards WHERE site=%s AND device=%s", (site, device)).fetchone()
            bid = new[(site, device)] = row[0]
        return bid

    def _lock_boards(self, cur: psycopg.Cursor, keys: set[tuple[str, str]], new: dict) -> None:
        """Register the boards and lock their rows in board order: concurrent batches never deadlock on them."""
        bids = sorted({self._bid(cur, s, d, new) for s, d in sorted(keys)})
        if bids:
            cur.execute("SELECT 1 FROM boards WHERE bid = ANY(%s) ORDER BY bid FOR NO KEY UPDATE", (bids,))

    def apply(self, msgs: list[m.Message], now: float) -> Changes:
        if not msgs:
            return Changes()
        want: dict[str, set[int]] = {"samples": set(), "minutes": set()}
        for t in _PARTS:
            lo, hi = self._window(t, now)
            col, width, key = _PARTS[t]
            for msg in msgs:
                if isinstance(msg, m.Telemetry) and 0 <= msg.ts < _TS_MAX:
                    n = int(key(msg.ts) // width)
                    if lo <= n <= hi:
                        want[t].add(n)
        self._ensure(want)
        new: dict[tuple[str, str], int] = {}
        ch = self._tx(self._apply, msgs, now, new)
        self._bids.update(new)  # only once committed: a rolled-back board row has no bid
        return ch

    def _apply(self, cur: psycopg.Cursor, msgs: list[m.Message], now: float, new: dict) -> Changes:
        ch = Changes()
        alerts = [a for a in msgs if isinstance(a, m.Alert)]
        for key in sorted({f"{a.site}\x1f{a.device}\x1f{a.kind}" for a in alerts}):
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        boards = {(x.site, x.device) for x in msgs if isinstance(x, (m.Telemetry, m.State, m.Event))}
        boards |= {(a.site, a.device) for a in alerts if a.source == "edge" and a.device}
        self._lock_boards(cur, boards, new)
        tel: list[tuple[int, m.Telemetry]] = []
        for msg in msgs:
            if isinstance(msg, m.Telemetry):
                if 0 <= msg.ts < _TS_MAX:
                    tel.append((self._bid(cur, msg.site, msg.device, new), msg))
                else:
                    log.warning("telemetry of %s/%s stamped %r not stored: its time is out of range",
                                msg.site, msg.device, msg.ts)
                ch.boards.add((msg.site, msg.device))
            elif isinstance(msg, m.Alert):
                self._alert(cur, msg, now, ch, new)
            elif isinstance(msg, m.State):
                self._bid(cur, msg.site, msg.device, new)
                cur.execute(
                    "UPDATE boards SET edge=%s, link=%s, active=%s, state=coalesce(%s, state), "
                    "relay=coalesce(%s, relay), unit=coalesce(%s, unit), flow_unit=coalesce(%s, flow_unit), "
                    "aux=coalesce(%s, aux) WHERE site=%s AND device=%s",
                    (msg.edge, msg.link, Json(msg.active), msg.state, msg.relay, msg.unit, msg.flow_unit,
                     None if msg.aux is None else Json(msg.aux), msg.site, msg.device))
                self._edge(cur, msg.site, msg.edge, None if msg.retained else now)
                ch.boards.add((msg.site, msg.device))
            elif isinstance(msg, m.Status):
                cur.execute("INSERT INTO edges (site, edge, online, status_at, heard_at) VALUES (%s,%s,%s,%s,%s) "
                            "ON CONFLICT (site, edge) DO UPDATE SET online=excluded.online, "
                            "status_at=excluded.status_at, heard_at=coalesce(excluded.heard_at, edges.heard_at)",
                            (msg.site, msg.edge, msg.online, now, None if msg.retained else now))
                ch.edges.add((msg.site, msg.edge))
            elif isinstance(msg, m.Health):
                cur.execute("INSERT INTO edges (site, edge, health, heard_at) VALUES (%s,%s,%s,%s) "
                            "ON CONFLICT (site, edge) DO UPDATE SET health=excluded.health, "
                            "heard_at=coalesce(excluded.heard_at, edges.heard_at)",
                            (msg.site, msg.edge, Json(msg.counters), None if msg.retained else now))
                ch.edges.add((msg.site, msg.edge))
            elif isinstance(msg, m.Event):
                cur.execute("INSERT INTO events VALUES (%s,%s,%s,%s)",
                            (self._bid(cur, msg.site, msg.device, new), msg.ts, msg.code, msg.text))
        if tel:
            self._telemetry(cur, tel, now)
        return ch

    def _telemetry(self, cur: psycopg.Cursor, tel: list[tuple[int, m.Telemetry]], now: float) -> None:
        # once by (bid, ts, seq): a redelivered reading inserts nothing and so adds nothing to its minute
        inserted = {(r[0], r[1], r[2]) for r in cur.execute(
            "INSERT INTO samples (bid, ts, seq, ch4, flow, state) SELECT * FROM unnest(%s::int[], %s::float8[], "
            "%s::int8[], %s::float8[], %s::float8[], %s::text[]) ON CONFLICT DO NOTHING RETURNING bid, ts, seq",
            ([b for b, _ in tel], [t.ts for _, t in tel], [t.seq for _, t in tel], [t.ch4 for _, t in tel],
             [t.flow for _, t in tel], [t.state for _, t in tel]))}
        minutes: dict[tuple[int, int], list] = {}
        latest: dict[int, m.Telemetry] = {}
        for bid, t in tel:
            if (bid, t.ts, t.seq) not in inserted:
                continue
            inserted.discard((bid, t.ts, t.seq))  # the same reading twice in one batch counts once
            latest[bid] = t
            agg = minutes.get((bid, int(t.ts // 60)))
            if agg is None:
                agg = minutes[(bid, int(t.ts // 60))] = [0, 0, None, 0.0, None, None, 0.0, None]
            agg[0] += 1
            if t.ch4 is not None:
                agg[1] += 1
                agg[2], agg[3], agg[4] = _lo(agg[2], t.ch4), agg[3] + t.ch4, _hi(agg[4], t.ch4)
            agg[5], agg[6], agg[7] = _lo(agg[5], t.flow), agg[6] + t.flow, _hi(agg[7], t.flow)
        if not minutes:
            return
        rows = sorted(minutes.items())  # in key order: two writers lock the same minute rows in the same order
        cols = list(zip(*[(bid, minute, *agg) for (bid, minute), agg in rows], strict=True))
        cur.execute(
            "INSERT INTO minutes AS mi SELECT * FROM unnest(%s::int[], %s::int8[], %s::int[], %s::int[], "
            "%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
            "ON CONFLICT (bid, minute) DO UPDATE SET n=mi.n+excluded.n, ch4_n=mi.ch4_n+excluded.ch4_n, "
            "ch4_min=least(mi.ch4_min, excluded.ch4_min), "
            "ch4_sum=coalesce(mi.ch4_sum, 0)+coalesce(excluded.ch4_sum, 0), "
            "ch4_max=greatest(mi.ch4_max, excluded.ch4_max), flow_min=least(mi.flow_min, excluded.flow_min), "
            "flow_sum=mi.flow_sum+excluded.flow_sum, flow_max=greatest(mi.flow_max, excluded.flow_max)",
            [list(c) for c in cols])
        ts = sorted(latest.items())
        cur.execute(
            "UPDATE boards b SET unit=v.unit, flow_unit=v.flow_unit, state=v.state, relay=v.relay, "
            "faults=v.faults, flags=v.flags, ch4=v.ch4, flow=v.flow, total=v.total, score=v.score, "
            "threshold=v.threshold, forecast=v.forecast, ready=v.ready, seq=v.seq, ts=v.ts, heard_at=%s "
            "FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int8[], %s::int8[], "
            "%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::bool[], "
            "%s::int8[], %s::float8[]) AS v(bid, unit, flow_unit, state, relay, faults, flags, ch4, flow, total, "
            "score, threshold, forecast, ready, seq, ts) WHERE b.bid = v.bid",
            [now] + [list(c) for c in zip(*[(bid, t.unit, t.flow_unit, t.state, t.relay, t.faults, t.flags, t.ch4,
                                              t.flow, t.total, t.score, t.threshold, t.forecast, bool(t.ready),
                                              t.seq, t.ts) for bid, t in ts], strict=True)])

    def _edge(self, cur: psycopg.Cursor, site: str, edge: str, heard: float | None) -> None:
        cur.execute("INSERT INTO edges (site, edge, heard_at) VALUES (%s,%s,%s) ON CONFLICT (site, edge) DO UPDATE "
                    "SET heard_at=coalesce(excluded.heard_at, edges.heard_at)", (site, edge, heard))

    def _alert(self, cur: psycopg.Cursor, a: m.Alert, now: float, ch: Changes, new: dict) -> None:
        # the caller holds this (site, device, kind)'s advisory lock: pairing below sees every committed message
        if cur.execute("INSERT INTO alert_msgs (id, site, device, kind, state, ts, message, edge) "
                       "VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING",
                       (a.id, a.site, a.device, a.kind, a.state, a.ts, a.message, a.edge)).rowcount == 0:
            ch.duplicates += 1
            return
        if a.source == "edge":
            self._edge(cur, a.site, a.edge, now)
            if a.device:
                self._bid(cur, a.site, a.device, new)
                cur.execute("UPDATE boards SET edge=%s WHERE site=%s AND device=%s", (a.edge, a.site, a.device))
        # an alert is about a board (site, device) or, with device "", about an edge (site, edge)
        open_ = cur.execute("SELECT id FROM alerts WHERE site=%s AND device=%s AND kind=%s AND cleared_ts IS NULL "
                            "AND (device != '' OR edge=%s) ORDER BY raised_ts DESC LIMIT 1",
                            (a.site, a.device, a.kind, a.edge)).fetchone()
        if a.source == "control-room" and a.state == "raised" and open_ is not None:
            return  # another replica's watcher raised it already: one alert for one silence
        if a.state == "cleared":
            if open_ is None:
                return  # its raise has not arrived yet (or was never kept): linked when it does
            cur.execute("UPDATE alerts SET cleared_ts=%s, cleared_id=%s, cleared_message=%s WHERE id=%s",
                        (a.ts, a.id, a.message, open_[0]))
            cur.execute("UPDATE alert_msgs SET alert_id=%s WHERE id=%s", (open_[0], a.id))
            ch.alerts.add(open_[0])
            return
        if open_ is not None and a.kind not in m.ONE_SHOT:  # raised again while raised: the newer one stands
            cur.execute("UPDATE alerts SET cleared_ts=%s, cleared_message=%s WHERE id=%s",
                        (a.ts, "superseded by a newer alert of the same kind", open_[0]))
            ch.alerts.add(open_[0])
        cleared_ts = cleared_id = cleared_msg = None
        if a.kind in m.ONE_SHOT:
            cleared_ts, cleared_msg = a.ts, "(one-shot: nothing to clear)"
        else:
            pending = cur.execute("SELECT id, ts, message FROM alert_msgs WHERE site=%s AND device=%s AND kind=%s "
                                  "AND state='cleared' AND alert_id IS NULL AND ts>=%s AND (device != '' OR edge=%s) "
                                  "ORDER BY ts LIMIT 1", (a.site, a.device, a.kind, a.ts, a.edge)).fetchone()
            if pending is not None:
                cleared_id, cleared_ts, cleared_msg = pending
                cur.execute("UPDATE alert_msgs SET alert_id=%s WHERE id=%s", (a.id, cleared_id))
        cur.execute("INSERT INTO alerts VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (a.id, a.site, a.edge, a.device, a.kind, a.severity, bool(a.advisory), a.source, a.message, a.ts,
                     Json(a.details), None if a.readings is None else Json(a.readings), cleared_ts, cleared_id,
                     cleared_msg, now))
        cur.execute("UPDATE alert_msgs SET alert_id=%s WHERE id=%s", (a.id, a.id))
        ch.alerts.add(a.id)
        if a.device:  # "" for an alert about an edge
            ch.boards.add((a.site, a.device))

    def set_nodata(self, marks: dict[tuple[str, str], str | None], now: float) -> Changes:
        if not marks:
            return Changes()
        new: dict[tuple[str, str], int] = {}

        def do(cur: psycopg.Cursor) -> Changes:
            ch = Changes()
            self._lock_boards(cur, set(marks), new)
            for (site, device), reason in sorted(marks.items()):
                cur.execute("UPDATE boards SET nodata=%s WHERE site=%s AND device=%s", (reason, site, device))
                ch.boards.add((site, device))
            return ch

        ch = self._tx(do)
        self._bids.update(new)
        return ch

    def prune(self, now: float) -> int:
        """Drop partitions wholly past retention (a few per call), then delete a bounded number of older rows
        left in the oldest partitions; creates the partitions ahead as well. The number of rows removed."""
        self._ensure_window(now)

        def do(cur: psycopg.Cursor) -> int:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PART_LOCK,))
            n = 0
            have = self._known_parts(cur)
            for table, cutoff in (("samples", now - self.raw_s), ("minutes", (now - self.minute_s) // 60)):
                col, width, _ = _PARTS[table]
                gone = [p for p in sorted(have[table]) if (p + 1) * width <= cutoff][:_PRUNE_PARTS]
                for p in gone:
                    part = sql.Identifier(f"{table}_p{p}")
                    n += cur.execute(sql.SQL("SELECT count(*) FROM {}").format(part)).fetchone()[0]
                    cur.execute(sql.SQL("DROP TABLE {}").format(part))
                with self._parts_lock:
                    self._parts[table] -= set(gone)
                key = "bid, ts, seq" if table == "samples" else "bid, minute"
                n += cur.execute(sql.SQL("DELETE FROM {t} WHERE ({k}) IN (SELECT {k} FROM {t} WHERE {c} < %s "
                                         "LIMIT {lim})").format(t=sql.Identifier(table), k=sql.SQL(key),
                                                                c=sql.Identifier(col), lim=sql.Literal(_PRUNE_ROWS)),
                                 (cutoff,)).rowcount
            n += cur.execute(f"DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE ts < %s "
                             f"LIMIT {_PRUNE_ROWS})", (now - self.minute_s,)).rowcount
            cur.execute("DELETE FROM sessions WHERE expires < %s", (now,))
            return n

        return self._tx(do)

    # ------------------------------------------------------------------------------------------ reading

    @staticmethod
    def _board_dict(r: dict[str, Any]) -> dict[str, Any]:
        d = {k: r[k] for k in _BOARD_COLS}
        d["active"] = d["active"] or []
        d["ready"] = bool(d["ready"]) if d["ready"] is not None else False
        return d

    def boards(self) -> list[dict[str, Any]]:
        return [self._board_dict(r) for r in self._read(
            f"SELECT {', '.join(_BOARD_COLS)} FROM boards ORDER BY {_BYTES.format('site')}, "
            f"{_BYTES.format('edge')} NULLS FIRST, {_BYTES.format('device')}")]

    def board(self, site: str, device: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {', '.join(_BOARD_COLS)} FROM boards WHERE site=%s AND device=%s", (site, device))
        return self._board_dict(rows[0]) if rows else None

    def edges(self) -> list[dict[str, Any]]:
        out = []
        for d in self._read("SELECT site, edge, online, status_at, heard_at, health FROM edges ORDER BY "
                            f"{_BYTES.format('site')}, {_BYTES.format('edge')}"):
            d["health"] = d["health"] or {}
            out.append(d)
        return out

    def alerts(self, *, active: bool | None = None, site: str | None = None, device: str | None = None,
               since: float | None = None, until: float | None = None, limit: int = 200,
               ids: list[str] | None = None) -> list[dict[str, Any]]:
        where, args = alert_filters("%s", active=active, site=site, device=device, since=since, until=until)
        if ids is not None:
            where.append("a.id = ANY(%s)")
            args.append(list(ids))
        query = (f"SELECT {', '.join('a.' + c for c in _ALERT_COLS)}, k.\"user\" AS ack_user, k.ts AS ack_ts, "
                 "k.note AS ack_note FROM alerts a LEFT JOIN acks k ON k.alert_id = a.id"
                 + (" WHERE " + " AND ".join(where) if where else "")
                 + " ORDER BY (a.cleared_ts IS NULL) DESC, a.raised_ts DESC LIMIT %s")
        out = []
        for d in self._read(query, (*args, limit)):
            d["details"] = d["details"] if d["details"] is not None else {}
            d["readings"] = d["readings"] or None
            out.append(with_ack(d))
        return out

    def _raw_floor(self, bid: int, now: float) -> float:
        """Raw readings of this board are kept from here on (its oldest raw row, or the retention cut-off).
        Per board, not over the table: min(ts) WHERE bid = ... is one index probe per partition."""
        oldest = self._read("SELECT min(ts) FROM samples WHERE bid=%s", (bid,), dicts=False)[0][0]
        return max(now - self.raw_s, oldest if oldest is not None else float("inf"))

    def series(self, site: str, device: str, since: float, until: float, points: int) -> list[dict[str, Any]]:
        bid = self._bids.get((site, device)) or self._lookup(site, device)
        if bid is None or until <= since:
            return []
        width = max((until - since) / max(points, 1), 1.0)
        if since >= self._raw_floor(bid, time.time()):
            rows = self._read("SELECT floor((ts - %s) / %s)::bigint AS b, min(ch4), avg(ch4), max(ch4), min(flow), "
                              "avg(flow), max(flow), count(*) FROM samples WHERE bid=%s AND ts>=%s AND ts<%s "
                              "GROUP BY b ORDER BY b", (since, width, bid, since, until), dicts=False)
        else:
            width = max(width, 60.0)
            rows = self._read(self.SERIES_MINUTES, (since, width, bid, int(since // 60), int(-(-until // 60))),
                              dicts=False)
        return [{"t": since + (r[0] + 0.5) * width, "ch4_min": r[1], "ch4_mean": r[2], "ch4_max": r[3],
                 "flow_min": r[4], "flow_mean": r[5], "flow_max": r[6], "n": r[7]} for r in rows]

    SERIES_MINUTES = ("SELECT floor((minute * 60 - %s) / %s)::bigint AS b, min(ch4_min), sum(ch4_sum) / "
                      "nullif(sum(ch4_n), 0), max(ch4_max), min(flow_min), sum(flow_sum) / sum(n), max(flow_max), "
                      "sum(n) FROM minutes WHERE bid=%s AND minute>=%s AND minute<%s GROUP BY b ORDER BY b")

    def _lookup(self, site: str, device: str) -> int | None:
        """A board another replica registered after this one loaded its cache."""
        rows = self._read("SELECT bid FROM boards WHERE site=%s AND device=%s", (site, device), dicts=False)
        if rows:
            self._bids[(site, device)] = rows[0][0]
            return rows[0][0]
        return None

    def readings(self, site: str, device: str, since: float, until: float) -> list[dict[str, Any]]:
        bid = self._bids.get((site, device)) or self._lookup(site, device)
        if bid is None:
            return []
        out: list[dict[str, Any]] = []
        floor = max(since, self._raw_floor(bid, time.time()))
        if floor > since:
            for r in self._read("SELECT minute, ch4_min, ch4_sum / nullif(ch4_n, 0), ch4_max, flow_min, "
                                "flow_sum / n, flow_max FROM minutes WHERE bid=%s AND minute>=%s AND minute<%s "
                                "ORDER BY minute", (bid, int(since // 60), int(min(floor, until) // 60)),
                                dicts=False):
                out.append({"t": r[0] * 60.0, "kind": "minute", "ch4": r[2], "ch4_min": r[1], "ch4_max": r[3],
                            "flow": r[5], "flow_min": r[4], "flow_max": r[6], "state": ""})
        for r in self._read("SELECT ts, ch4, flow, state FROM samples WHERE bid=%s AND ts>=%s AND ts<%s ORDER BY ts",
                            (bid, floor, until), dicts=False):
            out.append({"t": r[0], "kind": "raw", "ch4": r[1], "ch4_min": r[1], "ch4_max": r[1], "flow": r[2],
                        "flow_min": r[2], "flow_max": r[2], "state": r[3]})
        return out

    def stats(self, since: float, until: float) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._read("SELECT b.site, b.device, max(mi.ch4_max), sum(mi.ch4_sum) / nullif(sum(mi.ch4_n), 0), "
                          "sum(mi.n) FROM minutes mi JOIN boards b ON b.bid = mi.bid WHERE mi.minute >= %s AND "
                          "mi.minute < %s GROUP BY b.bid, b.site, b.device",
                          (int(since // 60), int(-(-until // 60))), dicts=False)
        return {(r[0], r[1]): {"ch4_max": r[2], "ch4_mean": r[3], "readings": r[4]} for r in rows}

    # ------------------------------------------------------------------------------------------ people

    def acknowledge(self, alert_id: str, user: str, note: str, now: float) -> Changes:
        def do(cur: psycopg.Cursor) -> Changes:
            if cur.execute("SELECT 1 FROM alerts WHERE id=%s", (alert_id,)).fetchone() is None:
                raise AckError(404, "no such alert")
            # two operators on two replicas at once: the second waits for the first's row, then inserts nothing
            if cur.execute("INSERT INTO acks VALUES (%s,%s,%s,%s) ON CONFLICT (alert_id) DO NOTHING",
                           (alert_id, user, now, note)).rowcount == 0:
                done = cur.execute('SELECT "user" FROM acks WHERE alert_id=%s', (alert_id,)).fetchone()
                raise AckError(409, f"already acknowledged by {done[0]}")
            return Changes(alerts={alert_id})

        return self._tx(do)

    def add_user(self, name: str, role: str, password_hash: str, now: float) -> None:
        self._tx(lambda cur: cur.execute(
            "INSERT INTO users VALUES (%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET role=excluded.role, "
            "hash=excluded.hash", (name, role, password_hash, now)))

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT name, role, hash, created FROM users WHERE name=%s", (name,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return self._read(f"SELECT name, role, created FROM users ORDER BY {_BYTES.format('name')}")

    def put_session(self, token_hash: str, user: str, csrf: str, expires: float) -> None:
        self._tx(lambda cur: cur.execute("INSERT INTO sessions VALUES (%s,%s,%s,%s)",
                                         (token_hash, user, csrf, expires)))

    def session(self, token_hash: str, now: float) -> dict[str, Any] | None:
        rows = self._read('SELECT s."user", s.csrf, s.expires, u.role FROM sessions s JOIN users u '
                          'ON u.name = s."user" WHERE s.token_hash=%s AND s.expires > %s', (token_hash, now))
        return rows[0] if rows else None

    def drop_session(self, token_hash: str) -> None:
        self._tx(lambda cur: cur.execute("DELETE FROM sessions WHERE token_hash=%s", (token_hash,)))

    def close(self) -> None:
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _why(exc: psycopg.Error) -> str:
    """The server's or libpq's message, one line."""
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary else None) or str(exc)
    return " ".join(text.split())
