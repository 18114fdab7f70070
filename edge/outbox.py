"""Outbox stage: every alert is in SQLite (WAL) before it is on the wire, and leaves only on the broker's PUBACK.

paho keeps unacknowledged QoS 1 messages in memory only, so a process restart would lose them; here an
alert is committed first (together with the alert policy's state and each board's last sequence number, in
the same transaction, so a restart neither forgets an alert nor raises the same one again nor miscounts
lost frames), published in order, and deleted when the PUBACK arrives. The table is bounded: when full,
the oldest alerts are dropped, counted and logged as errors.

The outbox owns what happens when it cannot write (disk full, SD card remounted read-only): alerts are held
in memory in order (bounded by `max_held`; beyond, the oldest are dropped and counted), `pending()` offers
them after the stored ones so they are sent even while the disk stays full, an acknowledged one is simply
forgotten, and the rest are written back at most `_CHUNK` per transaction, so freeing a little room lets
some through. Deletions that cannot be written are kept and retried; those alerts are not offered again.
Errors it cannot handle itself are `OutboxError`, never a bare sqlite3.Error.
Thread-safe: the pipeline thread writes, the publisher thread reads and deletes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

from edge.errors import FiredampError

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
_CHUNK = 64  # alerts per transaction when held ones are written back (a full disk with a little room: progress)


class OutboxError(FiredampError):
    """The outbox database cannot be read (its writes never raise: they are held, see the module doc)."""


class Pending(NamedTuple):
    seq: int
    id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: str | Path, max_alerts: int = 100_000, fsync: bool = True, max_held: int = 10_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_alerts = max_alerts
        self.max_held = max_held
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self.stored = self._db.execute("SELECT count(*) FROM alerts").fetchone()[0]  # rows in the table
        self._next = (self._db.execute("SELECT max(seq) FROM alerts").fetchone()[0] or 0) + 1
        self._held: list[tuple[int, str, str, bytes, float]] = []  # (seq, id, topic, payload, created), in order
        self._held_state: dict[str, str] = {}
        self._unremoved: set[int] = set()  # acknowledged, but the delete could not be written yet
        self.written = 0
        self.removed = 0
        self.dropped = 0  # the table was full: oldest stored alerts dropped
        self.held_dropped = 0  # held in memory too long: oldest held alerts dropped
        self.last_error = ""
        if self.stored:
            log.info("outbox %s holds %d unsent alert(s) from before; sending them first, in order",
                     self.path, self.stored)

    @property
    def depth(self) -> int:
        """Alerts not yet acknowledged by the broker (stored or held)."""
        return self.stored + len(self._held)

    @property
    def held(self) -> int:
        """Alerts that could not be written yet (kept in memory, sent all the same)."""
        return len(self._held)

    @property
    def unwritten(self) -> bool:
        """Something (alerts, state, deletions) waits for the disk: call flush() now and then."""
        return bool(self._held or self._held_state or self._unremoved)

    # ------------------------------------------------------------------------------------------ writing

    def put(self, alerts: list[tuple[str, str, bytes, float]], state: dict[str, str] | None = None) -> None:
        """Alerts (id, topic, payload, created) and state (key → JSON: policy state, sequence numbers), in one
        transaction when the disk allows; otherwise held (see the module doc). Never raises on disk trouble."""
        with self._lock:
            for id_, topic, payload, created in alerts:
                self._held.append((self._next, id_, topic, payload, created))
                self._next += 1
            if state:
                self._held_state.update(state)
            over = len(self._held) - self.max_held
            if over > 0:
                del self._held[:over]
                self.held_dropped += over
                log.error("OUTBOX unwritable for long: dropped the %d oldest alert(s) held in memory (%d in total)",
                          over, self.held_dropped)
            self._flush()

    def flush(self) -> None:
        """Try again to write what is held (and deletions not yet written)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        was_failing = bool(self.last_error)
        try:
            if self._unremoved:
                self._delete(sorted(self._unremoved))
                self._unremoved.clear()
            while self._held or self._held_state:
                chunk = self._held[:_CHUNK]
                state = self._held_state if len(chunk) == len(self._held) else {}  # with the last chunk
                self._insert(chunk, state)
                del self._held[:len(chunk)]
                if state:
                    self._held_state = {}
        except sqlite3.Error as exc:
            if not was_failing:
                log.error("OUTBOX %s cannot be written (%s): alerts are held in memory and sent without it, and "
                          "stored as soon as it can be written (disk full or read-only?)", self.path, exc)
            self.last_error = str(exc)
            return
        if was_failing:
            log.info("outbox %s writable again: what was held in memory is stored", self.path)
        self.last_error = ""

    def _insert(self, rows: list[tuple[int, str, str, bytes, float]], state: dict[str, str]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            over = self.stored + len(rows) - self.max_alerts
            if over > 0:
                db.execute("DELETE FROM alerts WHERE seq IN (SELECT seq FROM alerts ORDER BY seq LIMIT ?)", (over,))
            n = db.total_changes
            db.executemany("INSERT OR IGNORE INTO alerts (seq, id, topic, payload, created) VALUES (?, ?, ?, ?, ?)",
                           rows)
            added = db.total_changes - n
            if state:
                db.executemany("INSERT OR REPLACE INTO policy_state (key, value) VALUES (?, ?)", state.items())
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # (SQLite may have rolled back by itself, e.g. on a full disk)
                db.execute("ROLLBACK")
            raise
        if over > 0:
            self.dropped += over
            self.stored -= over
            log.error("OUTBOX FULL (%d alerts): dropped the %d oldest unsent alert(s), %d dropped in total; "
                      "the broker has been unreachable too long or [outbox] max_alerts is too small",
                      self.max_alerts, over, self.dropped)
        self.stored += added
        self.written += added

    def _delete(self, seqs: list[int]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            n = sum(db.execute("DELETE FROM alerts WHERE seq = ?", (seq,)).rowcount for seq in seqs)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.stored -= n
        self.removed += n

    # ------------------------------------------------------------------------------------------ sending

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[Pending]:
        """Unacknowledged alerts with seq > after_seq, oldest first: the stored ones, then the held ones."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT seq, id, topic, payload FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
                                        (after_seq, limit + len(self._unremoved))).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc
            out = [Pending(seq, id_, topic, bytes(payload)) for seq, id_, topic, payload in rows
                   if seq not in self._unremoved][:limit]
            if len(out) < limit:
                out += [Pending(seq, id_, topic, payload) for seq, id_, topic, payload, _ in self._held
                        if seq > after_seq][:limit - len(out)]
        return out

    def remove(self, *seqs: int) -> None:
        """The broker acknowledged these alerts (one transaction: one fsync for a whole batch of PUBACKs); a
        held one is forgotten; a delete that cannot be written is retried, the alert is not offered again."""
        with self._lock:
            gone = set(seqs)
            if self._held:
                self._held = [h for h in self._held if h[0] not in gone]
            self._unremoved |= gone
            try:
                self._delete(sorted(self._unremoved))
            except sqlite3.Error as exc:
                if not self.last_error:
                    log.error("OUTBOX %s: cannot record %d acknowledged alert(s) (%s); retrying, they are not sent "
                              "again meanwhile", self.path, len(self._unremoved), exc)
                self.last_error = str(exc)
                return
            self._unremoved.clear()

    def load_state(self) -> dict[str, str]:
        with self._lock:
            try:
                return dict(self._db.execute("SELECT key, value FROM policy_state").fetchall())
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._held:
                log.error("OUTBOX %s still cannot be written: %d alert(s) held in memory end with this process "
                          "(they were offered to the broker meanwhile)", self.path, len(self._held))
            self._db.close()
