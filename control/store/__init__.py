"""The control room's store: one small interface, SQLite on one machine (control/store/sqlite.py), PostgreSQL 15
for a fleet of replicas (control/store/postgres.py).

Everything above it (ingest, the stale-board watcher, the web views) uses only the methods of `Store`, so
another database slots in behind the same calls. Rows come back as plain dicts, ready for HTML and JSON.

Writes are idempotent: an alert message is stored once by its id (a re-delivered or re-sent alert is a
no-op), so a source may acknowledge a message to its broker as soon as `apply()` has returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from control.messages import Message


class StoreError(Exception):
    """The database cannot be read or written (the ingest retries; the web answers 503)."""


class AckError(Exception):
    """An acknowledgement that cannot be recorded (unknown alert, already acknowledged, empty note...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Changes:
    """What one write changed, for the live page: boards as (site, device), alerts by id, edges as (site, edge)."""

    boards: set[tuple[str, str]] = field(default_factory=set)
    alerts: set[str] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)
    duplicates: int = 0  # alert messages already stored (re-deliveries)

    def __bool__(self) -> bool:
        return bool(self.boards or self.alerts or self.edges)

    def merge(self, other: Changes) -> None:
        self.boards |= other.boards
        self.alerts |= other.alerts
        self.edges |= other.edges
        self.duplicates += other.duplicates


class Store(ABC):
    # ------------------------------------------------------------------------------------- ingest
    @abstractmethod
    def apply(self, messages: list[Message], now: float) -> Changes:
        """Store one batch in one transaction (alerts once by id; readings into raw and per-minute tables)."""

    @abstractmethod
    def set_nodata(self, marks: dict[tuple[str, str], str | None], now: float) -> Changes:
        """Mark boards as "no data" (reason) or live again (None)."""

    @abstractmethod
    def prune(self, now: float) -> int:
        """Delete a bounded number of rows past retention; the number deleted."""

    # ------------------------------------------------------------------------------------- reading
    @abstractmethod
    def boards(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def board(self, site: str, device: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def edges(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def alerts(self, *, active: bool | None = None, site: str | None = None, device: str | None = None,
               since: float | None = None, until: float | None = None, limit: int = 200,
               ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Alerts newest first; `active=True` only those not cleared; since/until bound the raise time, except
        that an alert still active (or cleared after `since`) overlaps the span and is included."""

    @abstractmethod
    def series(self, site: str, device: str, since: float, until: float, points: int) -> list[dict[str, Any]]:
        """CH4 and flow min/mean/max in `points` buckets over [since, until) (raw or per-minute rows)."""

    @abstractmethod
    def readings(self, site: str, device: str, since: float, until: float) -> list[dict[str, Any]]:
        """For CSV: raw readings where kept, per-minute rows beyond (column `kind` says which)."""

    @abstractmethod
    def stats(self, since: float, until: float) -> dict[tuple[str, str], dict[str, Any]]:
        """Per board: max and mean CH4 over the span (from the per-minute table)."""

    # ------------------------------------------------------------------------------------- people
    @abstractmethod
    def acknowledge(self, alert_id: str, user: str, note: str, now: float) -> Changes: ...

    @abstractmethod
    def add_user(self, name: str, role: str, password_hash: str, now: float) -> None: ...

    @abstractmethod
    def user(self, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def users(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def put_session(self, token_hash: str, user: str, csrf: str, expires: float) -> None: ...

    @abstractmethod
    def session(self, token_hash: str, now: float) -> dict[str, Any] | None: ...

    @abstractmethod
    def drop_session(self, token_hash: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


def alert_filters(mark: str, *, active: bool | None, site: str | None, device: str | None, since: float | None,
                  until: float | None) -> tuple[list[str], list[Any]]:
    """The WHERE terms and arguments of `Store.alerts()` (`mark`: the driver's placeholder, ? or %s), so the
    stores agree on what a span and a filter select."""
    where: list[str] = []
    args: list[Any] = []
    if active is True:
        where.append("a.cleared_ts IS NULL")
    elif active is False:
        where.append("a.cleared_ts IS NOT NULL")
    for column, value in (("site", site), ("device", device)):
        if value is not None:
            where.append(f"a.{column} = {mark}")
            args.append(value)
    if since is not None:  # raised in the span, or still active, or cleared inside it
        where.append(f"(a.raised_ts >= {mark} OR a.cleared_ts IS NULL OR a.cleared_ts >= {mark})")
        args += [since, since]
    if until is not None:
        where.append(f"a.raised_ts < {mark}")
        args.append(until)
    return where, args


def with_ack(d: dict[str, Any]) -> dict[str, Any]:
    """An alert row as the views read it: `active`, and `ack` {user, ts, note} or None from the joined columns."""
    d["active"] = d["cleared_ts"] is None
    user, ts, note = d.pop("ack_user"), d.pop("ack_ts"), d.pop("ack_note")
    d["ack"] = {"user": user, "ts": ts, "note": note} if user is not None else None
    return d


def open_store(cfg) -> Store:
    """The store named by control.toml [store] (cfg: control.config.Config)."""
    if cfg.store.kind == "postgresql":
        try:
            from control.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"[store] kind = 'postgresql' needs psycopg 3: pip install 'firedamp[fleet]' ({exc})") \
                from exc
        return PostgresStore(cfg.store.dsn, raw_hours=cfg.store.raw_hours, minute_days=cfg.store.minute_days,
                             fsync=cfg.store.fsync, password=cfg.store_password())
    from control.store.sqlite import SqliteStore

    return SqliteStore(cfg.store.path, raw_hours=cfg.store.raw_hours, minute_days=cfg.store.minute_days,
                       fsync=cfg.store.fsync)
