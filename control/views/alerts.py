"""Alerts: the list on the main page, the history page (`/alerts`, `.json`, `.csv`) and acknowledging one.

An acknowledgement records who saw an alert, when, and their note; it never changes anything on a board
(only `ack` at the board's own console returns power).
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from control import html
from control.html import h
from control.store import AckError
from control.web import HttpError, Response

RECENT = 50  # cleared alerts under the active ones on the main page
MAX_NOTE = 500


def overview_alerts(app) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return app.store.alerts(active=True, limit=1000), app.store.alerts(active=False, limit=RECENT)


def alert_data(a: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    out["raised"] = html.iso(a["raised_ts"])
    out["cleared"] = html.iso(a["cleared_ts"])
    if a["ack"]:
        out["ack"] = dict(a["ack"], time=html.iso(a["ack"]["ts"]))
    return out


def _board_cell(a: dict[str, Any]) -> str:
    if not a["device"]:
        return f"edge {h(a['edge'])}"
    return f'<a href="{h(html.url("board", a["site"], a["device"]))}">{h(a["device"])}</a>'


def alert_row(app, a: dict[str, Any], session: dict | None, now: float) -> str:
    zone = app.zone
    raised = (f'{h(html.clock(a["raised_ts"], zone))}<small data-ts="{h(html.iso(a["raised_ts"]))}">'
              f'{h(html.ago(a["raised_ts"], now))}</small>')
    if a["active"]:
        cleared = '<span class="flag">ACTIVE</span>'
    else:
        cleared = h(html.clock(a["cleared_ts"], zone)) + (f'<small>{h(a["cleared_message"])}</small>'
                                                           if a["cleared_message"] else "")
    if a["ack"]:
        k = a["ack"]
        ack = (f'<span class="acked">acknowledged by <b>{h(k["user"])}</b> at {h(html.clock(k["ts"], zone))}</span>'
               f'<small class="note">{h(k["note"])}</small>')
    elif session and session["role"] == "operator":
        ack = (f'<form class="ack" method="post" action="{h(html.url("alerts", a["id"], "ack"))}">'
               f'<input type="hidden" name="csrf" value="{h(session["csrf"])}">'
               '<input name="note" placeholder="note (what you did)" maxlength="500" required>'
               '<button type="submit">Acknowledge</button></form>')
    else:
        ack = "not acknowledged"
    advisory = ' <small class="advisory">advisory (model)</small>' if a["advisory"] else ""
    who = "control room" if a["source"] == "control-room" else f"edge {a['edge']}"
    return (f'<tr id="{html.dom_id("a", a["id"])}" class="sev-{h(a["severity"])}{" active" if a["active"] else ""}">'
            f'<td><span class="sev">{h(a["severity"].upper())}</span></td><td>{h(a["kind"])}{advisory}</td>'
            f'<td>{h(a["site"])} · {_board_cell(a)}</td><td>{raised}</td><td>{cleared}</td>'
            f'<td>{h(a["message"])}<small>from {h(who)}</small></td><td>{ack}</td></tr>')


_HEAD = ("<thead><tr><th>Severity</th><th>Kind</th><th>Board</th><th>Raised</th><th>Cleared</th><th>Message</th>"
         "<th>Acknowledgement</th></tr></thead>")


def alerts_section(app, session, active, recent, now: float) -> str:
    rows_active = "".join(alert_row(app, a, session, now) for a in active) or \
        '<tr class="empty"><td colspan="7">No active alert.</td></tr>'
    rows_recent = "".join(alert_row(app, a, session, now) for a in recent) or \
        '<tr class="empty"><td colspan="7">None yet.</td></tr>'
    return (f'<section id="alerts"><h2>Active alerts ({len(active)})</h2><table class="alerts" id="active-alerts">'
            f'{_HEAD}<tbody>{rows_active}</tbody></table><h3>Recently cleared</h3><table class="alerts" '
            f'id="recent-alerts">{_HEAD}<tbody>{rows_recent}</tbody></table></section>')


def parse_span(req, now: float, default_s: float) -> tuple[float, float]:
    """`since`/`until` as ISO times or `span` as 1h, 6h, 24h, 7d, 30d, 90d (ending now)."""
    from datetime import datetime

    q = req.query
    if "since" in q or "until" in q:
        try:
            since = datetime.fromisoformat(q["since"]).timestamp() if "since" in q else now - default_s
            until = datetime.fromisoformat(q["until"]).timestamp() if "until" in q else now
        except ValueError:
            raise HttpError(400, "since/until must be ISO 8601 times, e.g. 2026-12-01T06:00") from None
    else:
        span = q.get("span", "")
        if not span:
            return now - default_s, now
        try:
            n, unit = float(span[:-1]), span[-1]
            seconds = n * {"h": 3600, "d": 86400}[unit]
        except (ValueError, KeyError):
            raise HttpError(400, "span must be like 1h, 6h, 24h, 7d, 30d or 90d") from None
        if not 0 < seconds <= 400 * 86400:
            raise HttpError(400, "span must be between a few minutes and 400 days")
        since, until = now - seconds, now
    if until <= since:
        raise HttpError(400, "until must be after since")
    return since, until


def view(app, req, fmt: str | None = None):
    from control.app import json_response

    now = time.time()
    since, until = parse_span(req, now, 7 * 86400)
    site, device = req.query.get("site"), req.query.get("device")
    rows = app.store.alerts(site=site, device=device, since=since, until=until, limit=5000)
    kind = req.query.get("kind")
    if kind:
        rows = [a for a in rows if a["kind"] == kind]
    if fmt == ".json":
        return json_response({"since": html.iso(since), "until": html.iso(until), "alerts": [alert_data(a) for a in rows]})
    if fmt == ".csv":
        return csv_response(alerts_csv(rows), "alerts.csv")
    body = (f"<h1>Alert history</h1><p>{len(rows)} alert(s) raised or active between "
            f"{h(html.clock(since, app.zone))} and {h(html.clock(until, app.zone))} ({h(app.cfg.shifts.timezone)}). "
            '<a href="/alerts.csv?' + h(_qs(req)) + '">CSV</a> · <a href="/alerts.json?' + h(_qs(req)) + '">JSON</a>'
            '</p><table class="alerts">' + _HEAD + "<tbody>"
            + "".join(alert_row(app, a, req.session, now) for a in rows) + "</tbody></table>")
    return Response(200, html.page("Alert history", body, req.session, "alerts"))


def _qs(req) -> str:
    from urllib.parse import urlencode

    return urlencode(req.query)


def alerts_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "site", "edge", "device", "kind", "severity", "advisory", "raised", "cleared", "message",
                "acknowledged_by", "acknowledged_at", "note"])
    for a in rows:
        k = a["ack"] or {}
        w.writerow([a["id"], a["site"], a["edge"], a["device"], a["kind"], a["severity"], int(a["advisory"]),
                    html.iso(a["raised_ts"]), html.iso(a["cleared_ts"]) or "", _cell(a["message"]), k.get("user", ""),
                    html.iso(k.get("ts")) or "", _cell(k.get("note", ""))])
    return out.getvalue()


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (text from the wire or from a person)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(text: str, name: str) -> Response:
    return Response(200, text, "text/csv; charset=utf-8", [("Content-Disposition", f'attachment; filename="{name}"')])


def acknowledge(app, req, alert_id: str):
    from control.app import json_response

    note = " ".join(req.form.get("note", "").split())
    if not note:
        raise HttpError(400, "an acknowledgement needs a note (what you saw or did)")
    if len(note) > MAX_NOTE:
        raise HttpError(400, f"the note may be at most {MAX_NOTE} characters")
    try:
        changes = app.store.acknowledge(alert_id, req.session["user"], note, time.time())
    except AckError as exc:
        raise HttpError(exc.status, str(exc)) from None
    app.hub.publish(changes)
    if "application/json" in (req.headers.get("Accept") or ""):
        return json_response({"acknowledged": alert_id, "user": req.session["user"]})
    return Response.redirect(_local(req.headers.get("Referer") or "/"))


def _local(referer: str) -> str:
    """Back to the page the form was on: only its path and query (never another site)."""
    from urllib.parse import urlsplit

    p = urlsplit(referer)
    path = p.path if p.path.startswith("/") and not p.path.startswith("//") else "/"
    return path + (f"?{p.query}" if p.query else "")
