"""HTML helpers for the views: escaping (every value that came over the wire goes through `h`), formats,
the page layout from templates/, and stable element ids for the live page."""

from __future__ import annotations

import hashlib
import html
import time
from datetime import datetime
from pathlib import Path
from string import Template
from urllib.parse import quote
from zoneinfo import ZoneInfo

from firedamp import times

TEMPLATES = Path(__file__).parent / "templates"
_CACHE: dict[str, Template] = {}

# the board states in order of concern, with the word shown (colour is never the only sign)
STATE_CLASS = {"NORMAL": "normal", "WARMUP": "warmup", "WARNING": "warning", "ALARM": "alarm",
               "POWEROFF": "poweroff", "FAULT": "fault"}
FAULT_BITS = ("LINE", "RAIL", "RANGE", "STUCK", "NOFLOW", "SETTINGS", "SELFTEST", "POWER", "LOOP", "BATTERY")


def h(value: object) -> str:
    """Escaped text for HTML content and quoted attributes; None is shown as an em dash."""
    if value is None:
        return "—"
    return html.escape(str(value), quote=True)


def url(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def template(name: str) -> Template:
    t = _CACHE.get(name)
    if t is None:
        t = _CACHE[name] = Template((TEMPLATES / name).read_text())
    return t


def dom_id(prefix: str, *parts: str) -> str:
    """A stable id made only of [a-z0-9-] for a board or alert, whatever characters its name has."""
    return prefix + "-" + hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "never"
    s = max(0.0, (now or time.time()) - ts)
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"


def clock(ts: float | None, zone: ZoneInfo, seconds: bool = True) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso(ts: float | None) -> str | None:
    """firedamp.times.iso, with None (never heard) kept as None for the JSON pages."""
    return None if ts is None else times.iso(ts)


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def unit_text(unit: str | None) -> str:
    return "% LEL" if unit == "LEL" else "% CH4"


def fault_names(mask: int | None) -> list[str]:
    return [n for i, n in enumerate(FAULT_BITS) if mask and mask >> i & 1]


def page(title: str, body: str, session: dict | None, page_name: str, footer: str = "") -> str:
    who = ""
    if session:
        who = (f'{h(session["user"])} ({h(session["role"])}) <form class="inline" method="post" action="/logout">'
               f'<input type="hidden" name="csrf" value="{h(session["csrf"])}"><button type="submit">Log out</button>'
               "</form>")
    return template("layout.html").substitute(title=h(title), body=body, who=who, page=h(page_name), footer=footer)
