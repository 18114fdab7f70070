"""Shift reports: which span a shift is, and per board over a span: max/mean CH4, time in alarm, power-offs,
faults, alerts and who acknowledged them.

Shifts are `[shifts] starts` in the site's time zone (`[shifts] timezone`), each running to the next start;
the last runs past midnight to the first start of the next day. Local clock changes (DST) are honoured:
a shift is the wall-clock span, so it can be 7 or 9 hours long on those nights.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ALARM_KINDS = ("alarm", "power_off")  # "time in alarm": the gas at or over the alarm level, power cut or not


def shift_span(day: date, index: int, starts: list[str], zone: ZoneInfo) -> tuple[float, float]:
    """[start, end) in Unix seconds of shift `index` (0-based) that starts on local `day`."""
    def at(d: date, hhmm: str) -> float:
        hh, mm = map(int, hhmm.split(":"))
        return datetime.combine(d, time(hh, mm), zone).timestamp()

    start = at(day, starts[index])
    end = at(day, starts[index + 1]) if index + 1 < len(starts) else at(day + timedelta(days=1), starts[0])
    return start, end


def shift_of(ts: float, starts: list[str], zone: ZoneInfo) -> tuple[date, int]:
    """The shift (local start day, index) that contains `ts`."""
    local = datetime.fromtimestamp(ts, zone).date()
    for day in (local, local - timedelta(days=1)):
        for i in range(len(starts)):
            a, b = shift_span(day, i, starts, zone)
            if a <= ts < b:
                return day, i
    raise ValueError("no shift contains this time")  # not reached with sorted starts


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def board_rows(boards: list[dict[str, Any]], alerts: list[dict[str, Any]], stats: dict, since: float,
               until: float, now: float) -> list[dict[str, Any]]:
    """One row per board: readings statistics (per-minute table) and what its alerts say about the span."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for b in boards:
        st = stats.get((b["site"], b["device"]), {})
        rows[(b["site"], b["device"])] = {
            "site": b["site"], "edge": b["edge"], "device": b["device"], "unit": b["unit"],
            "ch4_max": st.get("ch4_max"), "ch4_mean": st.get("ch4_mean"), "readings": st.get("readings") or 0,
            "alarm_s": 0.0, "power_offs": 0, "faults": 0, "no_data": 0, "alerts": 0, "unacknowledged": 0,
            "acknowledged_by": [], "_alarm": []}
    for a in alerts:
        row = rows.get((a["site"], a["device"]))
        if row is None:
            continue
        end = a["cleared_ts"] if a["cleared_ts"] is not None else min(now, until)
        if a["kind"] in ALARM_KINDS and _overlap(a["raised_ts"], end, since, until) > 0:
            row["_alarm"].append((max(a["raised_ts"], since), min(end, until)))
        if not since <= a["raised_ts"] < until:
            continue  # raised before the span: counted in its own shift
        row["alerts"] += 1
        row["power_offs"] += a["kind"] == "power_off"
        row["faults"] += a["kind"] == "fault"
        row["no_data"] += a["kind"] == "no_data"
        if a["ack"]:
            if a["ack"]["user"] not in row["acknowledged_by"]:
                row["acknowledged_by"].append(a["ack"]["user"])
        elif a["severity"] != "info":
            row["unacknowledged"] += 1
    out = []
    for row in rows.values():
        row["alarm_s"] = round(_union_seconds(row.pop("_alarm")), 1)
        out.append(row)
    return out
