"""The shift report (`/report?shift=2026-12-01.2`, or `?since=...&until=...`; `.json`, `.csv`): per board
max/mean CH4, time in alarm, power-offs, faults, alerts and who acknowledged them; then every alert of the span."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import date

from control import html
from control.html import h
from control.report import board_rows, shift_of, shift_span
from control.views.alerts import _HEAD, alert_data, alert_row, csv_response, parse_span
from control.web import HttpError, Response

_SHIFT = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(\d{1,2})$")


def _span(app, req, now: float) -> tuple[float, float, str, tuple[date, int] | None]:
    starts, zone = app.cfg.shifts.starts, app.zone
    if "since" in req.query or "until" in req.query or "span" in req.query:
        since, until = parse_span(req, now, 8 * 3600)
        return since, until, f"{html.clock(since, zone, False)} to {html.clock(until, zone, False)}", None
    text = req.query.get("shift")
    if text:
        m = _SHIFT.match(text)
        bad = HttpError(400, f"shift must be DAY.N, e.g. 2026-12-01.1 (N from 1 to {len(starts)})")
        if not m or not 1 <= int(m.group(2)) <= len(starts):
            raise bad
        try:
            day, index = date.fromisoformat(m.group(1)), int(m.group(2)) - 1
        except ValueError:
            raise bad from None
    else:
        day, index = shift_of(now, starts, zone)
    since, until = shift_span(day, index, starts, zone)
    return since, until, f"shift {index + 1} of {day.isoformat()} ({starts[index]} local)", (day, index)


def view(app, req, fmt: str | None = None):
    from control.app import json_response

    now = time.time()
    since, until, title, shift = _span(app, req, now)
    alerts = app.store.alerts(since=since, until=until, limit=100_000)
    rows = board_rows(app.store.boards(), alerts, app.store.stats(since, until), since, until, now)
    in_span = [a for a in alerts if since <= a["raised_ts"] < until]
    if fmt == ".json":
        return json_response({"title": title, "since": html.iso(since), "until": html.iso(until),
                              "timezone": app.cfg.shifts.timezone, "boards": rows,
                              "alerts": [alert_data(a) for a in in_span]})
    if fmt == ".csv":
        return csv_response(report_csv(rows), "shift-report.csv")
    nav = ""
    if shift:
        prev_ts, next_ts = since - 1, until + 1
        p, n = shift_of(prev_ts, app.cfg.shifts.starts, app.zone), shift_of(next_ts, app.cfg.shifts.starts, app.zone)
        nav = (f'<a href="/report?shift={p[0].isoformat()}.{p[1] + 1}">◀ previous shift</a> · '
               f'<a href="/report?shift={n[0].isoformat()}.{n[1] + 1}">next shift ▶</a> · ')
    qs = h(_query(req))
    table = "".join(
        f'<tr><td>{h(r["site"])}</td><td><a href="{h(html.url("board", r["site"], r["device"]))}">{h(r["device"])}'
        f'</a></td><td>{html.num(r["ch4_max"])}</td><td>{html.num(r["ch4_mean"], 3)}</td><td>{h(html.unit_text(r["unit"]))}'
        f'</td><td>{_duration(r["alarm_s"])}</td><td>{r["power_offs"]}</td><td>{r["faults"]}</td><td>{r["no_data"]}</td>'
        f'<td>{r["alerts"]}</td><td>{h(", ".join(r["acknowledged_by"])) or "—"}</td><td>{r["unacknowledged"]}</td></tr>'
        for r in rows)
    body = (f"<h1>Shift report: {h(title)}</h1><p>{h(html.clock(since, app.zone))} to "
            f"{h(html.clock(until, app.zone))} ({h(app.cfg.shifts.timezone)}). {nav}"
            f'<a href="/report.csv?{qs}">CSV</a> · <a href="/report.json?{qs}">JSON</a></p>'
            '<table class="report"><thead><tr><th>Site</th><th>Board</th><th>Max CH4</th><th>Mean CH4</th>'
            "<th>Unit</th><th>Time in alarm</th><th>Power-offs</th><th>Faults</th><th>No data</th><th>Alerts</th>"
            f"<th>Acknowledged by</th><th>Not acknowledged</th></tr></thead><tbody>{table}</tbody></table>"
            f'<h2>Alerts raised in this span ({len(in_span)})</h2><table class="alerts">{_HEAD}<tbody>'
            + "".join(alert_row(app, a, req.session, now) for a in in_span) + "</tbody></table>")
    return Response(200, html.page("Shift report", body, req.session, "report"))


def _query(req) -> str:
    from urllib.parse import urlencode

    return urlencode(req.query)


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "0"
    m, s = divmod(int(round(seconds)), 60)
    hh, m = divmod(m, 60)
    return f"{hh} h {m:02d} min" if hh else f"{m} min {s:02d} s"


def report_csv(rows) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    cols = ["site", "edge", "device", "unit", "ch4_max", "ch4_mean", "readings", "alarm_s", "power_offs", "faults",
            "no_data", "alerts", "acknowledged_by", "unacknowledged"]
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_value(r[c]) for c in cols])
    return out.getvalue()


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)
