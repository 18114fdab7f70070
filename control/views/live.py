"""The live stream of the main page (`/live`, server-sent events).

Events (each `data:` is JSON): `alerts` {html, summary} — the whole alert section, drawn for this page's user
(an operator's copy has the acknowledge forms), sent within 0.05 s of a change; `boards` {rows: [{id, html}],
summary} — the rows that changed, at most once a second; `resync` — reload everything (the page fell behind,
or the session ended). A comment line every 15 s keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import json
import queue
import time

from control import html
from control.store import Changes
from control.views.alerts import alerts_section, overview_alerts
from control.views.overview import board_data, board_row, summary, summary_html
from control.web import Response

ALERT_DELAY_S = 0.05  # group a burst of alert changes into one redraw
BOARD_PERIOD_S = 1.0
KEEPALIVE_S = 15.0


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def view(app, req):
    token, session = req.token, req.session

    def stream(write) -> None:
        q = app.hub.subscribe()
        inf = float("inf")
        try:
            write(b"retry: 2000\n\n" + _event("hello", {"user": session["user"]}))
            pending, resync = Changes(), False
            alerts_since = inf  # when the oldest unsent alert change arrived (monotonic)
            last_boards = last_write = time.monotonic()
            while True:
                due = min(alerts_since + ALERT_DELAY_S,
                          last_boards + BOARD_PERIOD_S if pending.boards else inf, last_write + KEEPALIVE_S)
                wait = due - time.monotonic()
                if wait > 0:
                    try:
                        item = q.get(timeout=wait)
                    except queue.Empty:
                        continue
                    if item is None or item.alerts:
                        alerts_since = min(alerts_since, time.monotonic())
                    if item is None:
                        resync = True
                    else:
                        pending.merge(item)
                    continue
                now, mono = time.time(), time.monotonic()
                if app.auth.session(token) is None:
                    write(_event("resync", {"reason": "session ended"}))
                    return
                if resync:
                    write(_event("resync", {"reason": "the page fell behind"}))
                    pending, resync, alerts_since = Changes(), False, inf
                elif mono >= alerts_since + ALERT_DELAY_S or (pending.boards and mono >= last_boards + BOARD_PERIOD_S):
                    boards = [board_data(app, b, now) for b in app.store.boards()]
                    active, recent = overview_alerts(app)
                    s = summary_html(summary(boards, active))
                    if pending.alerts:
                        write(_event("alerts", {"html": alerts_section(app, session, active, recent, now),
                                                "summary": s}))
                        pending.alerts, alerts_since = set(), inf
                    if pending.boards and mono >= last_boards + BOARD_PERIOD_S:
                        rows = [{"id": html.dom_id("b", d["site"], d["device"]), "html": board_row(app, d, now)}
                                for d in boards if (d["site"], d["device"]) in pending.boards]
                        write(_event("boards", {"rows": rows, "summary": s}))
                        pending.boards, last_boards = set(), mono
                else:
                    write(b": keepalive\n\n")
                last_write = time.monotonic()
        except OSError:
            return  # the page went away
        finally:
            app.hub.unsubscribe(q)

    return Response(200, b"", "text/event-stream; charset=utf-8", [("X-Accel-Buffering", "no")], stream=stream)
