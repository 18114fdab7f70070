"""The main page: every board of every edge, grouped by site and edge, and the alert list (`/`, `/index.json`)."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Any

from control import html
from control.html import h
from control.levels import levels_for
from control.views.alerts import alert_data, alerts_section, overview_alerts


def board_data(app, b: dict[str, Any], now: float) -> dict[str, Any]:
    """One board as the page and its JSON twin show it: what it said last, its levels, and whether it is live."""
    lv = levels_for(app.cfg, b["site"], b["device"], b["unit"])
    flags = b["flags"] or 0
    return {
        "site": b["site"], "edge": b["edge"], "device": b["device"],
        "data": "no data" if b["nodata"] or b["heard_at"] is None else "live",
        "nodata_reason": b["nodata"] if b["nodata"] else (None if b["heard_at"] else "no telemetry yet"),
        "state": b["state"], "ch4": b["ch4"], "unit": b["unit"] or lv.unit, "flow": b["flow"],
        "flow_unit": b["flow_unit"], "total": b["total"], "relay": b["relay"],
        "faults": html.fault_names(b["faults"]), "calibration_due": bool(flags & 0x01),
        "low_flow": bool(flags & 0x02), "ack_awaited": bool(flags & 0x04),
        "pt_fault": bool(flags & 0x10), "battery_low": bool(flags & 0x20),
        "levels": {"warning": lv.warning, "alarm": lv.alarm, "poweroff": lv.poweroff, "source": lv.source},
        "score": b["score"], "threshold": b["threshold"], "forecast": b["forecast"], "ready": b["ready"],
        "link": b["link"], "active": b["active"], "seq": b["seq"],
        "reading_time": html.iso(b["ts"]), "heard_at": html.iso(b["heard_at"]),
        "heard_s_ago": None if b["heard_at"] is None else round(now - b["heard_at"], 1),
        "aux": _aux_data(b.get("aux")),
    }


def _aux_data(a: dict[str, Any] | None) -> dict[str, Any] | None:
    """The board's last A frame as the JSON pages give it (its time as ISO 8601, like every other time there)."""
    if not a:
        return None
    return {"time": html.iso(a["ts"]), **{k: v for k, v in a.items() if k != "ts"}}  # as control.messages._aux


def aux_lines(a: dict[str, Any] | None) -> tuple[str, str]:
    """(process conditions, battery): the small lines under the flow and the faults of a board that sends A
    frames; empty for a board that does not, and a value the board sent empty is left out."""
    if not a:
        return "", ""
    pt = []
    if a["std_flow"] is not None:
        pt.append(f'std {html.num(a["std_flow"], 1)} {h(a["std_unit"] or "")}')
    if a["p_kpa"] is not None:
        pt.append(f'{html.num(a["p_kpa"], 1)} kPa')
    if a["t_c"] is not None:
        pt.append(f'{html.num(a["t_c"], 1)} °C')
    battery = ""
    if a["battery_mv"] is not None:
        battery = f'battery {a["battery_mv"]:,} mV'
        left = a["run_min"]
        if left is not None:
            battery += f" · {left // 60} h {left % 60:02d} min left" if left >= 60 else f" · {left} min left"
    return (f"<small>{' · '.join(pt)}</small>" if pt else ""), (f"<small>{battery}</small>" if battery else "")


def board_row(app, d: dict[str, Any], now: float) -> str:
    """One <tr> of the boards table (also sent to open pages by the live stream)."""
    rid = html.dom_id("b", d["site"], d["device"])
    link = html.url("board", d["site"], d["device"])
    unit = html.unit_text(d["unit"])
    lv = d["levels"]
    if d["data"] == "no data":
        state = f'<span class="state nodata">NO DATA</span><small>{h(d["nodata_reason"])}</small>'
        cls = "nodata"
    else:
        st = d["state"] or "—"
        cls = html.STATE_CLASS.get(st, "")
        state = f'<span class="state {cls}">{h(st)}</span>'
    last = "last " if d["data"] == "no data" else ""
    ch4 = (f'<span class="value">{last}{html.num(d["ch4"])}</span> {h(unit)}'
           "<small>" + (f'warning {html.num(lv["warning"])} · ' if lv["warning"] != lv["alarm"] else "")
           + f'alarm {html.num(lv["alarm"])} · power-off {html.num(lv["poweroff"])}</small>')
    flow = "—" if d["flow"] is None else f'{last}{html.num(d["flow"], 1)} {h(d["flow_unit"] or "")}'
    if d["low_flow"]:
        flow += ' <span class="flag">LOW FLOW</span>'
    if d["pt_fault"]:  # the board's standard flow (A frame) is not valid; its measured flow still is
        flow += ' <span class="flag">P/T FAULT</span>'
    relay = {1: "power on", 0: '<span class="flag">power cut</span>'}.get(d["relay"], "—")
    faults = " ".join(f'<span class="flag">{h(f)}</span>' for f in d["faults"]) or "none"
    if d["battery_low"]:
        faults = ("" if faults == "none" else faults + " ") + '<span class="flag">BATTERY LOW</span>'
    pt, battery = aux_lines(d.get("aux"))
    flow += pt
    faults += battery

    cal = '<span class="flag">DUE</span>' if d["calibration_due"] else "ok"
    if d["score"] is None:
        model = "—"
    else:
        over = d["threshold"] is not None and d["score"] > d["threshold"]
        model = (f'{"<span class=flag>UNUSUAL</span> " if over else ""}score {html.num(d["score"])} / '
                 f'{html.num(d["threshold"])}'
                 + (f'<small>forecast {html.num(d["forecast"])} {h(unit)}</small>' if d["forecast"] is not None else "")
                 + ("" if d["ready"] else "<small>warming up</small>"))
    heard = (f'<span data-ts="{h(d["heard_at"])}">{h(html.ago(now - d["heard_s_ago"], now))}</span>'
             if d["heard_s_ago"] is not None else "never")
    return (f'<tr id="{rid}" class="{cls}" data-board="{h(d["site"])}/{h(d["device"])}">'
            f'<td><a href="{h(link)}">{h(d["device"])}</a></td><td>{state}</td><td>{ch4}</td><td>{flow}</td>'
            f"<td>{relay}</td><td>{faults}</td><td>{cal}</td><td>{model}</td><td>{heard}</td></tr>")


def edge_title(e: dict[str, Any] | None, site: str, edge: str | None, now: float) -> str:
    if not edge:
        return f"{h(site)} · edge not known yet"
    if e is None:
        return f"{h(site)} · {h(edge)}"
    status = {True: "online", False: '<span class="flag">OFFLINE</span>', None: "status not heard"}[e["online"]]
    return f"{h(site)} · edge {h(edge)} · {status} · heard {h(html.ago(e['heard_at'], now))}"


def boards_section(app, now: float) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    boards = [board_data(app, b, now) for b in app.store.boards()]
    edges = app.store.edges()
    by_edge = {(e["site"], e["edge"]): e for e in edges}
    parts = ['<section id="boards"><h2>Boards</h2>']
    if not boards:
        parts.append('<p class="empty">No board heard yet. The control room lists every board whose edge '
                     "publishes to its broker.</p>")
    for (site, edge), group in groupby(boards, key=lambda d: (d["site"], d["edge"] or "")):
        rows = [board_row(app, d, now) for d in group]
        parts.append(f'<div class="group" style="contain-intrinsic-size: auto {40 + 44 * len(rows)}px">'
                     f'<h3>{edge_title(by_edge.get((site, edge)), site, edge, now)}</h3><table class="boards">'
                     "<thead><tr><th>Board</th><th>State</th><th>Methane</th><th>Flow</th><th>Relay</th>"
                     "<th>Faults</th><th>Calibration</th><th>Model (advisory)</th><th>Last heard</th></tr></thead>"
                     "<tbody>" + "".join(rows) + "</tbody></table></div>")
    parts.append("</section>")
    return "".join(parts), boards, edges


def summary(boards: list[dict[str, Any]], active: list[dict[str, Any]]) -> dict[str, int]:
    return {"boards": len(boards), "no_data": sum(d["data"] == "no data" for d in boards),
            "alarm": sum(d["data"] == "live" and d["state"] in ("ALARM", "POWEROFF") for d in boards),
            "active_alerts": len(active), "unacknowledged": sum(a["ack"] is None for a in active)}


def summary_html(s: dict[str, int]) -> str:
    return (f'<p id="summary">{s["boards"]} board(s) · <b>{s["alarm"]}</b> in alarm or power-off · '
            f'<b>{s["no_data"]}</b> with no data · <b>{s["active_alerts"]}</b> active alert(s), '
            f'<b>{s["unacknowledged"]}</b> not acknowledged</p>')


def view(app, req, fmt: str | None = None):
    from control.app import json_response
    from control.web import Response

    now = time.time()
    section, boards, edges = boards_section(app, now)
    active, recent = overview_alerts(app)
    s = summary(boards, active)
    if fmt == ".json":
        return json_response({"time": html.iso(now), "summary": s, "boards": boards, "edges": edges,
                              "alerts": {"active": [alert_data(a) for a in active],
                                         "recent": [alert_data(a) for a in recent]}})
    body = '<p class="live">Page: <span id="live-status">connecting…</span></p>' + summary_html(s) + alerts_section(app, req.session, active, recent, now) + section
    return Response(200, html.page("Boards and alerts", body, req.session, "overview"))
