"""One board: methane and flow over a chosen span with its levels and alert marks, CSV of that span, and the
board's alerts (`/board/SITE/DEVICE?span=24h`, `.json`, `.csv`)."""

from __future__ import annotations

import csv
import io
import time

from control import html, plot
from control.html import h
from control.views.alerts import _HEAD, alert_data, alert_row, csv_response, parse_span
from control.views.overview import aux_lines, board_data
from control.web import HttpError, Response

SPANS = ("1h", "6h", "24h", "7d", "30d", "90d")
POINTS = 480  # buckets drawn across the plot


def view(app, req, site: str, device: str, fmt: str | None = None):
    from control.app import json_response

    now = time.time()
    row = app.store.board(site, device)
    if row is None:
        raise HttpError(404, "no such board")
    since, until = parse_span(req, now, 86400)
    d = board_data(app, row, now)
    alerts = app.store.alerts(site=site, device=device, since=since, until=until, limit=2000)
    if fmt == ".csv":
        return csv_response(readings_csv(app.store.readings(site, device, since, until)), f"{device}.csv")
    series = app.store.series(site, device, since, until, POINTS)
    if fmt == ".json":
        return json_response({"board": d, "since": html.iso(since), "until": html.iso(until), "series": series,
                              "alerts": [alert_data(a) for a in alerts]})
    lv = d["levels"]
    unit = html.unit_text(d["unit"])
    levels = [("warning", lv["warning"]), ("alarm", lv["alarm"]), ("power-off", lv["poweroff"])]
    if lv["warning"] == lv["alarm"]:
        levels = levels[1:]
    span_q = req.query.get("span", "24h")
    links = " ".join(f'<a class="{"current" if s == span_q else ""}" href="?span={s}">{s}</a>' for s in SPANS)
    base = html.url("board", site, device)
    qs = h(_query(req))
    body = (f'<h1>{h(device)} <small>{h(site)} · edge {h(d["edge"])}</small></h1>'
            f'<p class="spans">Span: {links} · <a href="{h(base)}.csv?{qs}">CSV of this span</a> · '
            f'<a href="{h(base)}.json?{qs}">JSON</a></p>'
            f'<p>Now: <b>{h(d["data"].upper() if d["data"] == "no data" else d["state"])}</b>'
            f'{" (" + h(d["nodata_reason"]) + ")" if d["nodata_reason"] else ""} · {html.num(d["ch4"])} {h(unit)} · '
            f'levels from {h(lv["source"])}</p>'
            + _aux_paragraph(row.get("aux"), now)
            + plot.panel("Methane", unit, series, "ch4", since, until, app.zone, levels, alerts, "plot-ch4")
            + plot.panel("Flow", d["flow_unit"] or "", series, "flow", since, until, app.zone, None, alerts,
                         "plot-flow")
            + f'<p class="legend">{h(html.clock(since, app.zone))} to {h(html.clock(until, app.zone))} '
              f'({h(app.cfg.shifts.timezone)}); band = min..max, line = mean of each interval; vertical marks = '
              "alerts raised.</p>"
            + f'<h2>Alerts of this board in the span ({len(alerts)})</h2><table class="alerts">{_HEAD}<tbody>'
            + "".join(alert_row(app, a, req.session, now) for a in alerts) + "</tbody></table>")
    return Response(200, html.page(f"{device} ({site})", body, req.session, "board"))


def _aux_paragraph(a, now: float) -> str:
    """The board's last A frame: process conditions at the flow meter and its battery, with the frame's age."""
    if not a:
        return ""
    pt, battery = aux_lines(a)
    parts = [x for x in (pt, battery) if x]
    return (f'<p class="aux">Last A frame {h(html.ago(a["ts"], now))}: '
            + (" · ".join(parts) if parts else "no values (P/T input and battery not reporting)") + "</p>")


def _query(req) -> str:
    from urllib.parse import urlencode

    return urlencode(req.query) or "span=24h"


def readings_csv(rows) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["time", "kind", "ch4", "ch4_min", "ch4_max", "flow", "flow_min", "flow_max", "state"])
    for r in rows:
        w.writerow([html.iso(r["t"]), r["kind"], *("" if r[k] is None else f"{r[k]:.4g}" for k in
                    ("ch4", "ch4_min", "ch4_max", "flow", "flow_min", "flow_max")), r["state"]])
    return out.getvalue()
