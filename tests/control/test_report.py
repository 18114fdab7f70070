"""Shift spans in the site's time zone (DST nights included) and the per-board figures of a report."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from control.report import board_rows, shift_of, shift_span

STARTS = ["06:00", "14:00", "22:00"]
WARSAW = ZoneInfo("Europe/Warsaw")


def local(y, mo, d, h, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=WARSAW).timestamp()


def test_three_eight_hour_shifts_and_the_night_shift_runs_past_midnight():
    assert shift_span(date(2026, 12, 1), 0, STARTS, WARSAW) == (local(2026, 12, 1, 6), local(2026, 12, 1, 14))
    a, b = shift_span(date(2026, 12, 1), 2, STARTS, WARSAW)
    assert (a, b) == (local(2026, 12, 1, 22), local(2026, 12, 2, 6)) and b - a == 8 * 3600
    assert shift_of(local(2026, 12, 2, 3), STARTS, WARSAW) == (date(2026, 12, 1), 2)
    assert shift_of(local(2026, 12, 2, 6), STARTS, WARSAW) == (date(2026, 12, 2), 0)


def test_the_night_the_clocks_go_back_has_a_nine_hour_night_shift():
    a, b = shift_span(date(2026, 10, 24), 2, STARTS, WARSAW)  # CEST -> CET at 03:00 on 25 October 2026
    assert b - a == 9 * 3600


def _alert(kind, raised, cleared, ack=None, severity="critical", device="b1"):
    return {"site": "mine", "device": device, "kind": kind, "severity": severity, "raised_ts": raised,
            "cleared_ts": cleared, "ack": {"user": ack} if ack else None}


def test_time_in_alarm_is_the_union_of_alarm_and_power_off_inside_the_span():
    boards = [{"site": "mine", "edge": "pi", "device": "b1", "unit": "VOL"},
              {"site": "mine", "edge": "pi", "device": "b2", "unit": "VOL"}]
    alerts = [_alert("alarm", 50, 150, ack="olga"),  # starts before the span: 50 s of it inside
              _alert("power_off", 140, 300, ack="omar"),  # overlaps the alarm by 10 s
              _alert("fault", 500, 520),
              _alert("alarm", 900, None),  # still active at the end of the span
              _alert("reboot", 600, 600, severity="info")]
    stats = {("mine", "b1"): {"ch4_max": 1.6, "ch4_mean": 0.4, "readings": 1000}}
    rows = {r["device"]: r for r in board_rows(boards, alerts, stats, 100, 1000, now=2000)}
    b1 = rows["b1"]
    assert b1["alarm_s"] == pytest.approx((300 - 100) + (1000 - 900))
    assert (b1["power_offs"], b1["faults"], b1["alerts"]) == (1, 1, 4)  # the alarm raised at 50 s is not counted
    assert b1["acknowledged_by"] == ["omar"] and b1["unacknowledged"] == 2  # the fault and the open alarm
    assert (b1["ch4_max"], b1["ch4_mean"]) == (1.6, 0.4)
    assert rows["b2"]["alerts"] == 0 and rows["b2"]["ch4_max"] is None
