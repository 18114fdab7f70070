"""Outbox stage: every alert is in SQLite (WAL) before it is on the wire, and leaves only on the broker's PUBACK.

paho keeps unacknowledged QoS 1 messages in memory only, so a process restart would lose them; here an
alert is committed first (together with the alert policy's state, in the same transaction, so a restart
neither forgets an alert nor raises the same one again), published in insertion order, and deleted when
the PUBACK arrives. The table is bounded: when full, the oldest alerts are dropped, counted and logged as
errors. Thread-safe: the pipeline thread writes, the publisher thread reads and deletes. A write that fails
(disk full or read-only) raises sqlite3.Error with no transaction left open; the callers keep what they could
not write and try again (edge/service.py, edge/publisher.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("firedamp.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- publish order
    id TEXT NOT NULL UNIQUE,                -- the alert id consumers de-duplicate on
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Pending(NamedTuple):
    seq: int
    id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: str | Path, max_alerts: int = 100_000, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_alerts = max_alerts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self.depth = self._db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        self.written = 0
        self.removed = 0
        self.dropped = 0
        if self.depth:
            log.info("outbox %s holds %d unsent alert(s) from before; sending them first, in order",
                     self.path, self.depth)

    def put(self, alerts: list[tuple[str, str, bytes, float]], state: dict[str, str] | None = None) -> None:
        """Commit alerts (id, topic, payload, created) and policy state in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                over = self.depth + len(alerts) - self.max_alerts
                if over > 0:
                    db.execute("DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?)", (over,))
                db.executemany("INSERT OR IGNORE INTO alerts (id, topic, payload, created) VALUES (?, ?, ?, ?)", alerts)
                if state:
                    db.executemany("INSERT OR REPLACE INTO policy_state (key, value) VALUES (?, ?)", state.items())
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # (SQLite may have rolled back by itself, e.g. on a full disk)
                    db.execute("ROLLBACK")
                raise
            if over > 0:
                self.dropped += over
                self.depth -= over
                log.error("OUTBOX FULL (%d alerts): dropped the %d oldest unsent alert(s), %d dropped in total; "
                          "the broker has been unreachable too long or [outbox] max_alerts is too small",
                          self.max_alerts, over, self.dropped)
            self.depth += len(alerts)
            self.written += len(alerts)

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[Pending]:
        """Unsent alerts with seq > after_seq, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, id, topic, payload FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after_seq, limit)).fetchall()
        return [Pending(seq, id_, topic, bytes(payload)) for seq, id_, topic, payload in rows]

    def remove(self, *seqs: int) -> None:
        """The broker acknowledged these alerts (one transaction: one fsync for a whole batch of PUBACKs)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                n = sum(db.execute("DELETE FROM alerts WHERE seq = ?", (seq,)).rowcount for seq in seqs)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self.depth -= n
            self.removed += n

    def load_state(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM policy_state").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()
