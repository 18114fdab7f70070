"""Local history: every board's readings in SQLite — raw frames for `raw_days` (default 7) and per-minute
min/mean/max for `minute_days` (≥ 90, mine rules); `firedamp history` (edge/commands/history.py) prints them.
A boards' A frames (pressure, temperature, standard flow and total, battery, run time left) are kept the same
way, as long, in tables of their own (`aux`, `aux_minutes`): a reading's rows and columns stay as they were.

Written by one thread in batches (about once a second), pruned a few hundred rows per batch so the service
never stalls on a big delete. `firedamp history --device ID --since 7d --csv` writes `time,ch4,flow,label`
(label 1 = the board was not NORMAL or had no reading), which `firedamp train` and `firedamp evaluate` read.
"""

from __future__ import annotations

import logging
import queue
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import DataError
from edge.frames import SEVERITY, Aux, Reading

log = logging.getLogger("firedamp.history")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw (
    device TEXT NOT NULL, t REAL NOT NULL, seq INTEGER, uptime_ms INTEGER, ch4 REAL, unit TEXT, flow REAL,
    flow_unit TEXT, total REAL, state TEXT, relay INTEGER, faults INTEGER, flags INTEGER
);
CREATE INDEX IF NOT EXISTS raw_device_t ON raw (device, t);
CREATE INDEX IF NOT EXISTS raw_t ON raw (t);
CREATE TABLE IF NOT EXISTS minutes (
    device TEXT NOT NULL, minute INTEGER NOT NULL, unit TEXT, flow_unit TEXT,
    n INTEGER NOT NULL, n_ch4 INTEGER NOT NULL, ch4_min REAL, ch4_sum REAL, ch4_max REAL,
    flow_min REAL, flow_sum REAL, flow_max REAL, worst_state TEXT,
    PRIMARY KEY (device, minute)
);
CREATE INDEX IF NOT EXISTS minutes_minute ON minutes (minute);
CREATE TABLE IF NOT EXISTS last_seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, uptime_ms INTEGER NOT NULL);
"""
# Schema versions (PRAGMA user_version): 0 = the tables above (files written before the A frame), 1 = + the A
# frame's tables. Each step only adds tables, so a file of any earlier version opens and keeps its rows.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS aux (
        device TEXT NOT NULL, t REAL NOT NULL, seq INTEGER, uptime_ms INTEGER, p_kpa REAL, t_c REAL, std_flow REAL,
        std_unit TEXT, std_total REAL, battery_mv INTEGER, run_min INTEGER
    );
    CREATE INDEX IF NOT EXISTS aux_device_t ON aux (device, t);
    CREATE INDEX IF NOT EXISTS aux_t ON aux (t);
    CREATE TABLE IF NOT EXISTS aux_minutes (
        device TEXT NOT NULL, minute INTEGER NOT NULL, std_unit TEXT, n INTEGER NOT NULL,
        n_p INTEGER NOT NULL, p_min REAL, p_sum REAL, p_max REAL,
        n_t INTEGER NOT NULL, t_min REAL, t_sum REAL, t_max REAL,
        n_std INTEGER NOT NULL, std_min REAL, std_sum REAL, std_max REAL,
        std_total REAL,
        n_bat INTEGER NOT NULL, bat_min INTEGER, bat_sum INTEGER, bat_max INTEGER,
        n_run INTEGER NOT NULL, run_min INTEGER, run_sum INTEGER, run_max INTEGER,
        PRIMARY KEY (device, minute)
    );
    CREATE INDEX IF NOT EXISTS aux_minutes_minute ON aux_minutes (minute);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
# per-minute columns of the A values: (name in aux_minutes, index in Aux); the totaliser keeps its highest
_AUX_STATS = (("p", 3), ("t", 4), ("std", 5), ("bat", 8), ("run", 9))


def _aux_minutes_upsert() -> str:
    """The statement that merges one minute's A values into aux_minutes (std_unit, n, then count/min/sum/max of
    each of _AUX_STATS, then std_total): made once, at import."""
    cols = ["std_unit", "n"] + [f"{c}{x}" for name, _ in _AUX_STATS
                                for c, x in (("n_", name), (name, "_min"), (name, "_sum"), (name, "_max"))]
    cols.append("std_total")
    merge = ["n = n + excluded.n", "std_unit = excluded.std_unit",
             "std_total = max(coalesce(std_total, excluded.std_total), coalesce(excluded.std_total, std_total))"]
    for name, _ in _AUX_STATS:
        merge += [f"n_{name} = n_{name} + excluded.n_{name}", f"{name}_sum = {name}_sum + excluded.{name}_sum",
                  f"{name}_min = min(coalesce({name}_min, excluded.{name}_min), coalesce(excluded.{name}_min, {name}_min))",
                  f"{name}_max = max(coalesce({name}_max, excluded.{name}_max), coalesce(excluded.{name}_max, {name}_max))"]
    return (f"INSERT INTO aux_minutes (device, minute, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 2))}) "
            f"ON CONFLICT(device, minute) DO UPDATE SET {', '.join(merge)}")


_AUX_MINUTES_UPSERT = _aux_minutes_upsert()
_SEVERITY = {s: i for i, s in enumerate(SEVERITY)}
_SEVERITY_SQL = " ".join(SEVERITY)  # instr() of a state in it: its rank (no state is part of another)
_PRUNE_ROWS = 500  # per batch: a few ms, never a stall


def _lo(a, b):
    return b if a is None else a if b is None else min(a, b)


def _hi(a, b):
    return b if a is None else a if b is None else max(a, b)


class History:
    """The SQLite store. Not thread-safe: one writer thread (HistoryWriter) or one reader (the CLI)."""

    def __init__(self, path: str | Path, raw_days: float = 7.0, minute_days: float = 400.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.raw_s = raw_days * 86400
        self.minute_s = minute_days * 86400
        self.db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._migrate()
        self.rows = 0
        self.pruned = 0

    def _migrate(self) -> None:
        """Bring a file of an older schema version up to SCHEMA_VERSION, one step per transaction."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            log.warning("history %s has schema version %d, newer than this edge's %d: read as far as it goes",
                        self.path, version, SCHEMA_VERSION)
        for step in range(version, SCHEMA_VERSION):
            self.db.executescript(f"BEGIN; {_MIGRATIONS[step]}; PRAGMA user_version = {step + 1}; COMMIT;")
            if version:  # (a new file goes from 0 to the latest silently)
                log.info("history %s: schema version %d -> %d", self.path, step, step + 1)

    def write(self, batch: list[tuple[Reading | Aux, float]], now: float | None = None,
              last_seq: dict[str, tuple[int, int]] | None = None) -> None:
        """Store a batch of (reading or A frame, arrival time) and merge it into the per-minute tables; prune a
        little. `last_seq`: device -> (seq, uptime_ms) of its latest frame of any type (read back by `last_seqs`)."""
        if last_seq:
            self.db.executemany("INSERT OR REPLACE INTO last_seq VALUES (?,?,?)",
                                [(d, seq, up) for d, (seq, up) in last_seq.items()])
        aux = [(r, t) for r, t in batch if r.type == "A"]
        if aux:
            batch = [(r, t) for r, t in batch if r.type == "R"]
            self._write_aux(aux)  # type: ignore[arg-type]
        if batch:
            self.db.executemany(
                "INSERT INTO raw VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(r.device, t, r.seq, r.uptime_ms, r.ch4, r.unit, r.flow, r.flow_unit, r.total, r.state, r.relay,
                  r.faults, r.flags) for r, t in batch])
            agg: dict[tuple[str, int], list] = {}
            for r, t in batch:
                key = (r.device, int(t // 60) * 60)
                a = agg.get(key)
                if a is None:
                    a = agg[key] = [r.unit, r.flow_unit, 0, 0, None, 0.0, None, None, 0.0, None, r.state]
                a[2] += 1
                if r.ch4 is not None:
                    a[3] += 1
                    a[4], a[5], a[6] = _lo(a[4], r.ch4), a[5] + r.ch4, _hi(a[6], r.ch4)
                a[7], a[8], a[9] = _lo(a[7], r.flow), a[8] + r.flow, _hi(a[9], r.flow)
                if _SEVERITY[r.state] > _SEVERITY[a[10]]:
                    a[10] = r.state
            self.db.executemany(
                f"""INSERT INTO minutes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(device, minute) DO UPDATE SET n = n + excluded.n, n_ch4 = n_ch4 + excluded.n_ch4,
                   ch4_min = min(coalesce(ch4_min, excluded.ch4_min), coalesce(excluded.ch4_min, ch4_min)),
                   ch4_max = max(coalesce(ch4_max, excluded.ch4_max), coalesce(excluded.ch4_max, ch4_max)),
                   ch4_sum = ch4_sum + excluded.ch4_sum,
                   flow_min = min(flow_min, excluded.flow_min), flow_max = max(flow_max, excluded.flow_max),
                   flow_sum = flow_sum + excluded.flow_sum,
                   worst_state = CASE WHEN instr('{_SEVERITY_SQL}', excluded.worst_state) > instr('{_SEVERITY_SQL}', worst_state)
                                 THEN excluded.worst_state ELSE worst_state END""",
                [(d, m, *a) for (d, m), a in agg.items()])
            self.rows += len(batch)
        self.prune(time.time() if now is None else now)
        self.db.commit()

    def _write_aux(self, batch: list[tuple[Aux, float]]) -> None:
        self.db.executemany("INSERT INTO aux VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            [(a.device, t, *a[1:10]) for a, t in batch])
        agg: dict[tuple[str, int], list] = {}
        for a, t in batch:
            key = (a.device, int(t // 60) * 60)
            m = agg.get(key)
            if m is None:  # std_unit, n, then (count, min, sum, max) per value of _AUX_STATS, std_total
                m = agg[key] = [a.std_unit, 0] + [0, None, 0, None] * len(_AUX_STATS) + [None]
            m[1] += 1
            for i, (_, k) in enumerate(_AUX_STATS):
                v = a[k]
                if v is not None:
                    j = 2 + 4 * i
                    m[j], m[j + 1], m[j + 2], m[j + 3] = m[j] + 1, _lo(m[j + 1], v), m[j + 2] + v, _hi(m[j + 3], v)
            m[-1] = _hi(m[-1], a.std_total)
        self.db.executemany(_AUX_MINUTES_UPSERT, [(d, minute, *m) for (d, minute), m in agg.items()])
        self.rows += len(batch)

    def prune(self, now: float) -> int:
        """Delete at most _PRUNE_ROWS expired rows of each table (readings and A frames, raw and per minute); returns
        rows deleted."""
        n = 0
        for table, column, keep_s in (("raw", "t", self.raw_s), ("minutes", "minute", self.minute_s),
                                      ("aux", "t", self.raw_s), ("aux_minutes", "minute", self.minute_s)):
            n += self.db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} < ? "
                                 "LIMIT ?)", (now - keep_s, _PRUNE_ROWS)).rowcount
        self.pruned += n
        return n

    def raw(self, device: str, since: float, until: float) -> list[tuple]:
        return self.db.execute(
            "SELECT t, ch4, flow, unit, flow_unit, total, state, relay, faults, flags, seq FROM raw "
            "WHERE device = ? AND t >= ? AND t < ? ORDER BY t, rowid", (device, since, until)).fetchall()

    def minutes(self, device: str, since: float, until: float) -> list[tuple]:
        return self.db.execute(
            "SELECT minute, ch4_min, CASE WHEN n_ch4 > 0 THEN ch4_sum / n_ch4 END, ch4_max, flow_min, flow_sum / n, "
            "flow_max, unit, flow_unit, worst_state, n FROM minutes WHERE device = ? AND minute >= ? AND minute < ? "
            "ORDER BY minute", (device, since, until)).fetchall()

    def aux(self, device: str, since: float, until: float) -> list[tuple]:
        """A frames: (t, p_kpa, t_c, std_flow, std_unit, std_total, battery_mv, run_min, seq); None = empty field."""
        return self.db.execute(
            "SELECT t, p_kpa, t_c, std_flow, std_unit, std_total, battery_mv, run_min, seq FROM aux "
            "WHERE device = ? AND t >= ? AND t < ? ORDER BY t, rowid", (device, since, until)).fetchall()

    def aux_minutes(self, device: str, since: float, until: float) -> list[tuple]:
        """Per minute: (minute, then min, mean, max of p_kpa, t_c, std_flow, battery_mv, run_min (None where the
        minute had no value), std_unit, std_total (its highest), n)."""
        stats = ", ".join(f"{x}_min, CASE WHEN n_{x} > 0 THEN {x}_sum * 1.0 / n_{x} END, {x}_max" for x, _ in _AUX_STATS)
        return self.db.execute(
            f"SELECT minute, {stats}, std_unit, std_total, n FROM aux_minutes WHERE device = ? AND minute >= ? "
            "AND minute < ? ORDER BY minute", (device, since, until)).fetchall()

    def last_seqs(self) -> dict[str, tuple[int, int]]:
        """device -> (seq, uptime_ms) of the last frame stored before the service stopped (or was killed)."""
        return {d: (seq, up) for d, seq, up in self.db.execute("SELECT device, seq, uptime_ms FROM last_seq")}

    def devices(self) -> list[str]:
        return [d for (d,) in self.db.execute("SELECT device FROM minutes UNION SELECT device FROM aux_minutes "
                                              "ORDER BY device")]

    def close(self) -> None:
        self.db.close()


class HistoryWriter(threading.Thread):
    """Takes readings from a bounded queue (drops and counts when full) and writes them about once a second."""

    def __init__(self, history: History, max_queue: int = 20_000, interval_s: float = 1.0):
        super().__init__(name="history", daemon=True)
        self.history = history
        self.q: queue.Queue = queue.Queue(max_queue)
        self.interval_s = interval_s
        self.dropped = 0  # readings not stored: the queue was full, or the disk refused them
        self.failing = ""  # why the last write failed ("" once a write succeeds)
        self._failed_t = 0.0
        self._halt = threading.Event()

    def put(self, reading: Reading | Aux, t: float) -> None:
        try:
            self.q.put_nowait((reading, t))
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 10_000 == 0:
                log.error("history queue full: %d reading(s) not stored (disk too slow?)", self.dropped)

    def run(self) -> None:
        while not self._halt.is_set():
            self._halt.wait(self.interval_s)
            self._flush()
        self._flush()

    def _flush(self) -> None:
        batch = []
        while True:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        try:
            self.history.write(batch)
        except sqlite3.Error as exc:  # disk full or read-only: counted, said once a minute, never a traceback
            try:
                self.history.db.rollback()
            except sqlite3.Error:
                pass
            self.dropped += len(batch)
            now = time.monotonic()
            if not self.failing or now - self._failed_t >= 60:
                self._failed_t = now
                log.error("history %s cannot be written (%s): %d reading(s) not stored so far (health "
                          "history_dropped); alerts are not affected", self.history.path, exc, self.dropped)
            self.failing = str(exc)
            return
        if self.failing:
            log.info("history %s writable again (%d reading(s) were not stored)", self.history.path, self.dropped)
            self.failing = ""

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)
        else:
            self._flush()
        self.history.close()


# ---------------------------------------------------------------------------------------------- times

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_YEAR_10000 = 253402300800.0  # 10000-01-01T00:00Z
TIME_FORMATS = ("use a span back from now: a number and s, m, h, d or w (90s, 30m, 12h, 1.5h, 7d, 2w); "
                "or a date or date-time: 2026-11-20, 2026-11-20T10:00, '2026-11-20 10:00:30' (UTC), "
                "2026-11-20T10:00+02:00 (with an offset); or now")


def parse_time(text: str, now: float | None = None) -> float:
    """A time given on the command line → unix seconds. Accepted (TIME_FORMATS says the same to the user):
    `now`; a span ago: a number and s, m, h, d or w ('90s', '30m', '12h', '1.5h', '7d', '2w'); an ISO 8601
    date or date-time ('2026-11-20', '2026-11-20T10:00', '2026-11-20 10:00:30'), UTC unless it ends with
    'Z' or an offset ('+02:00'). Raises DataError for anything else or a time outside the years 1970–9999."""
    now = time.time() if now is None else now
    s = text.strip()
    m = _REL.match(s.lower())
    if s.lower() == "now":
        t = now
    elif m:
        t = now - float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise DataError(f"time {text!r} not understood; {TIME_FORMATS}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        t = dt.timestamp()
    if not 0 <= t < _YEAR_10000:
        raise DataError(f"time {text!r} is before 1970 or after 9999")
    return t
