"""Timestamps as firedamp writes them in payloads, CSV and logs: ISO 8601 UTC to the millisecond, with Z."""

from datetime import UTC, datetime


def iso(t: float) -> str:
    """Unix time in seconds → "2026-12-01T20:18:04.123Z"."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
