"""What the edges publish (docs/mqtt.md), checked: topic + payload bytes → one typed message, or a counted reason.

Nothing from the wire reaches the store unchecked: ids are bounded printable strings, numbers are finite
numbers, enums are from their lists, free text is cut to a length. The store gets plain Python values (it
never sees the raw payload), and the page escapes all of them again when it shows them.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edge.frames import FAULT_NAMES, FLOW_UNITS, STATES, STD_UNITS, UNITS

log = logging.getLogger("firedamp.control")

MAX_PAYLOAD = 64 * 1024  # bytes; the largest edge payload (health) is ~1.5 KB
MAX_ID = 64  # characters in a site, edge or device id
MAX_TEXT = 1000  # characters of a message or event text kept
KINDS = ("power_off", "alarm", "fault", "warning", "low_flow", "calibration_due", "link", "anomaly", "forecast",
         "frames_lost", "reboot", "duplicate_id", "ingest_overflow", "battery_low", "pt_fault")
ONE_SHOT = frozenset({"frames_lost", "reboot", "ingest_overflow"})  # only ever "raised"
SEVERITIES = ("critical", "warning", "info")
REASONS = ("too_large", "encoding", "json", "not_object", "topic", "id", "field", "topic_mismatch")


class Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class Telemetry:
    site: str
    device: str
    ts: float
    seq: int
    ch4: float | None
    unit: str
    flow: float
    flow_unit: str
    total: float
    state: str
    relay: int
    faults: int
    flags: int
    score: float | None
    threshold: float | None
    forecast: float | None
    ready: bool


@dataclass
class State:
    site: str
    edge: str
    device: str
    ts: float
    link: str  # "up" / "down"
    active: list[str]
    state: str | None
    relay: int | None
    faults: list[str]
    calibration_due: bool
    ch4: float | None
    unit: str | None
    flow: float | None
    flow_unit: str | None
    retained: bool = False  # a broker's stored copy, received at subscribe: says nothing about "heard now"
    aux: dict[str, Any] | None = None  # the board's last A frame (see _aux): only boards that send them


@dataclass
class Alert:
    id: str
    site: str
    edge: str
    device: str
    kind: str
    severity: str
    state: str  # "raised" / "cleared"
    ts: float
    advisory: bool
    message: str
    readings: dict[str, Any] | None
    details: dict[str, Any] = field(default_factory=dict)
    source: str = "edge"  # "control-room" for the alerts the control room raises itself (no data)


@dataclass
class Status:
    site: str
    edge: str
    online: bool
    retained: bool = False


@dataclass
class Health:
    site: str
    edge: str
    counters: dict[str, Any]
    retained: bool = False


@dataclass
class Event:
    site: str
    device: str
    ts: float
    code: str
    text: str


Message = Telemetry | State | Alert | Status | Health | Event


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _ident(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID or not value.isprintable() \
            or any(c in value for c in "/+#"):
        raise Rejected("id", f"{what} must be 1..{MAX_ID} printable characters without / + #, not {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Doc:
    """Typed access to one payload's fields; any wrong field is Rejected('field', 'name: why')."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc

    def _bad(self, key: str, want: str) -> Rejected:
        return Rejected("field", f"{key} must be {want}, not {_short(self.doc.get(key))}")

    def num(self, key: str, null: bool = False) -> float | None:
        v = self.doc.get(key)
        if v is None and null:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self._bad(key, "a number" + (" or null" if null else ""))
        return float(v)

    def int(self, key: str, lo: int = 0, hi: int = 2**53) -> int:
        v = self.doc.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self._bad(key, f"an integer in {lo}..{hi}")
        return v

    def enum(self, key: str, allowed: tuple, null: bool = False) -> Any:
        v = self.doc.get(key)
        if v is None and null:
            return None
        if v not in allowed or isinstance(v, bool):
            raise self._bad(key, "one of " + ", ".join(map(str, allowed)))
        return v

    def bool(self, key: str, default: bool | None = None) -> bool:
        v = self.doc.get(key, default)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false")
        return v

    def text(self, key: str) -> str:
        v = self.doc.get(key)
        if not isinstance(v, str):
            raise self._bad(key, "a string")
        return "".join(c if c.isprintable() else " " for c in v[:MAX_TEXT])

    def strings(self, key: str, allowed: tuple | None = None) -> list[str]:
        v = self.doc.get(key, [])
        if not isinstance(v, list) or len(v) > 64 or any(not isinstance(x, str) for x in v) or \
                (allowed is not None and any(x not in allowed for x in v)):
            raise self._bad(key, "a list of " + ("names of " + ", ".join(allowed) if allowed else "strings"))
        return [x[:MAX_ID] for x in v]

    def same(self, key: str, expected: str) -> None:
        if self.doc.get(key) != expected:
            raise Rejected("topic_mismatch", f"{key} {_short(self.doc.get(key))} does not match the topic's "
                                             f"{_short(expected)}")


def _aux(v: Any) -> dict[str, Any]:
    """The state's `aux` object (docs/mqtt.md) checked field by field → {ts, seq, p_kpa, t_c, std_flow, std_unit,
    std_total, battery_mv, run_min}; a value the board sent empty stays None."""
    if not isinstance(v, dict):
        raise Rejected("field", f"aux must be an object, not {_short(v)}")
    d = _Doc(v)

    def opt_int(key: str, hi: int) -> int | None:
        return None if v.get(key) is None else d.int(key, 0, hi)

    try:
        return {"ts": _iso_ts(v.get("time")), "seq": d.int("seq"), "p_kpa": d.num("p_kpa", null=True),
                "t_c": d.num("t_c", null=True), "std_flow": d.num("std_flow", null=True),
                "std_unit": d.enum("std_unit", STD_UNITS), "std_total": d.num("std_total", null=True),
                "battery_mv": opt_int("battery_mv", 99999), "run_min": opt_int("run_min", 999999)}
    except Rejected as exc:
        raise Rejected(exc.reason, f"aux: {exc}") from None


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON value re-built from checked parts (bounded depth; strings cut), for details/readings."""
    if depth > 4:
        raise Rejected("field", "details nested too deep")
    if isinstance(value, dict):
        return {str(k)[:MAX_ID]: _plain(v, depth + 1) for k, v in list(value.items())[:64]}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:64]]
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, float) and not math.isfinite(value):
        raise Rejected("field", "a number in details is not finite")
    return value


def parse(topic: str, payload: bytes, prefix: str) -> Message | None:
    """One MQTT message → a Message; None for topics the control room does not use (e.g. discovery, and the
    edges' `aux` messages: a board's last A values reach it in the retained state, stored from there).
    Raises Rejected(reason, detail) for anything malformed."""
    parts = topic.split("/")
    if parts[0] != prefix:
        return None
    if len(parts) == 4 and parts[3] == "aux":
        return None
    if len(parts) != 4 or parts[3] not in ("telemetry", "state", "alert", "status", "health", "event"):
        raise Rejected("topic", "not <prefix>/<site>/<device or edge>/<telemetry|state|alert|event|status|health>")
    _, site, name, leaf = parts
    site = _ident(site, "the site in the topic")
    name = _ident(name, "the device or edge in the topic")
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", f"payload of {len(payload)} bytes (at most {MAX_PAYLOAD})")
    if leaf == "status":
        text = payload.strip()
        if text not in (b"online", b"offline"):
            raise Rejected("field", f"status must be online or offline, not {_short(payload[:40])}")
        return Status(site, name, text == b"online")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise Rejected("encoding", f"not UTF-8 at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise Rejected("json", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise Rejected("not_object", f"payload is a JSON {type(doc).__name__}, not an object")
    d = _Doc(doc)
    if leaf == "health":
        d.same("edge", name)
        counters = {k[:MAX_ID]: v for k, v in doc.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        return Health(site, name, counters)
    if leaf == "telemetry":
        d.same("device", name)
        return Telemetry(site, name, d.num("ts"), d.int("seq"), d.num("ch4", null=True), d.enum("unit", UNITS),
                         d.num("flow"), d.enum("flow_unit", FLOW_UNITS), d.num("total"), d.enum("state", STATES),
                         d.enum("relay", (0, 1)), d.int("faults", 0, 0xFFFF), d.int("flags", 0, 0xFFFF),
                         d.num("score", null=True), d.num("threshold", null=True), d.num("forecast", null=True),
                         d.bool("ready", False))
    if leaf == "event":
        d.same("device", name)
        return Event(site, name, _iso_ts(doc.get("time")), d.text("code")[:32], d.text("text"))
    if leaf == "state":
        d.same("device", name)
        d.same("site", site)
        flags = doc.get("flags") or {}
        if not isinstance(flags, dict):
            raise d._bad("flags", "an object")
        has_reading = "state" in doc
        return State(site, _ident(doc.get("edge"), "edge"), name, _iso_ts(doc.get("time")),
                     d.enum("link", ("up", "down")), d.strings("active", KINDS),
                     d.enum("state", STATES) if has_reading else None,
                     d.enum("relay", (0, 1)) if has_reading else None,
                     d.strings("faults", FAULT_NAMES), bool(flags.get("calibration_due") is True),
                     d.num("ch4", null=True) if has_reading else None,
                     d.enum("unit", UNITS) if has_reading else None,
                     d.num("flow") if has_reading else None,
                     d.enum("flow_unit", FLOW_UNITS) if has_reading else None,
                     aux=_aux(doc["aux"]) if "aux" in doc else None)
    # alert
    d.same("device", name)
    d.same("site", site)
    readings = doc.get("readings")
    details = doc.get("details", {})
    if readings is not None and not isinstance(readings, dict):
        raise d._bad("readings", "an object or null")
    if not isinstance(details, dict):
        raise d._bad("details", "an object")
    alert_id = doc.get("id")
    if not isinstance(alert_id, str) or not 8 <= len(alert_id) <= 64 or not alert_id.isprintable():
        raise d._bad("id", "an alert id (8..64 printable characters)")
    return Alert(alert_id, site, _ident(doc.get("edge"), "edge"), name, d.enum("kind", KINDS),
                 d.enum("severity", SEVERITIES), d.enum("state", ("raised", "cleared")), d.num("ts"),
                 d.bool("advisory"), d.text("message"), _plain(readings), _plain(details))


def _iso_ts(text: Any) -> float:
    from datetime import datetime

    if not isinstance(text, str):
        raise Rejected("field", f"time must be an ISO 8601 string, not {_short(text)}")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Rejected("field", f"time {_short(text)} is not ISO 8601") from None


class Checker:
    """parse() with counting: `check(topic, payload)` → Message or None; rejections counted per reason and
    logged (the first of each reason, then every 1000th), with the topic and what was wrong."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.rejected: Counter[str] = Counter({r: 0 for r in REASONS})
        self.accepted = 0
        self.ignored = 0

    def check(self, topic: str, payload: bytes, retained: bool = False) -> Message | None:
        try:
            msg = parse(topic, payload, self.prefix)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            n = self.rejected[exc.reason]
            if n == 1 or n % 1000 == 0:
                log.warning("rejected message on %s (%s, %d so far): %s", _short(topic), exc.reason, n, exc)
            return None
        if msg is None:
            self.ignored += 1
            return None
        self.accepted += 1
        if retained and isinstance(msg, (State, Status, Health)):
            msg.retained = True
        return msg
