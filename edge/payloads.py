"""The JSON payloads of the telemetry, aux, state and event topics (docs/mqtt.md has their schemas; alerts are
`policy.Alert.to_dict`). Pure functions of a frame, its model result and the time."""

from __future__ import annotations

from typing import Any

from edge.frames import (
    FLAG_ACK_AWAITED,
    FLAG_BATTERY_LOW,
    FLAG_CALIBRATION_DUE,
    FLAG_CONSOLE_UNLOCKED,
    FLAG_LOW_FLOW,
    FLAG_PT_FAULT,
    Aux,
    Event,
    Reading,
)
from edge.policy import fault_names, result_numbers
from firedamp.times import iso


def telemetry(r: Reading, t: float, res: Any) -> dict[str, Any]:
    p = {"device": r.device, "time": iso(t), "ts": round(t, 3), "seq": r.seq, "uptime_ms": r.uptime_ms, "ch4": r.ch4,
         "unit": r.unit, "flow": r.flow, "flow_unit": r.flow_unit, "total": r.total, "state": r.state,
         "relay": r.relay, "faults": r.faults, "flags": r.flags, "score": None, "threshold": None,
         "forecast": None, "ready": False}
    if res is not None:
        p.update(result_numbers(res), ready=bool(res.ready), top_channel=res.top_channel)
    return p


def aux_values(a: Aux) -> dict[str, Any]:
    """An A frame's values as the aux message and the retained state carry them (None stays None, never 0)."""
    return {"p_kpa": a.p_kpa, "t_c": a.t_c, "std_flow": a.std_flow, "std_unit": a.std_unit, "std_total": a.std_total,
            "battery_mv": a.battery_mv, "run_min": a.run_min}


def aux(a: Aux, t: float) -> dict[str, Any]:
    return {"device": a.device, "time": iso(t), "ts": round(t, 3), "seq": a.seq, "uptime_ms": a.uptime_ms,
            **aux_values(a)}


def event(e: Event, t: float) -> dict[str, Any]:
    return {"device": e.device, "time": iso(t), "seq": e.seq, "uptime_ms": e.uptime_ms, "code": e.code, "text": e.text}


def state(device: str, site: str, edge: str, t: float, r: Reading | None, link_up: bool,
          active: list[str], last_aux: tuple[Aux, float] | None = None) -> dict[str, Any]:
    """The retained state of one board: its last reading's state, relay, faults, flags; link; active alerts;
    and, for a board that sends A frames, `aux`: the values of its last one and when it came (`last_aux`)."""
    payload: dict[str, Any] = {"device": device, "site": site, "edge": edge, "time": iso(t),
                               "link": "up" if link_up else "down", "active": active}
    if r is not None:
        payload.update(state=r.state, relay=r.relay, faults=fault_names(r.faults),
                       flags={"calibration_due": bool(r.flags & FLAG_CALIBRATION_DUE),
                              "low_flow": bool(r.flags & FLAG_LOW_FLOW),
                              "ack_awaited": bool(r.flags & FLAG_ACK_AWAITED),
                              "console_unlocked": bool(r.flags & FLAG_CONSOLE_UNLOCKED),
                              "pt_fault": bool(r.flags & FLAG_PT_FAULT),
                              "battery_low": bool(r.flags & FLAG_BATTERY_LOW)},
                       ch4=r.ch4, unit=r.unit, flow=r.flow, flow_unit=r.flow_unit)
    if last_aux is not None:
        a, ta = last_aux
        payload["aux"] = {"time": iso(ta), "seq": a.seq, **aux_values(a)}
    return payload
