"""The JSON payloads of the telemetry, state and event topics (docs/mqtt.md has their schemas; alerts are
`policy.Alert.to_dict`). Pure functions of a frame, its model result and the time."""

from __future__ import annotations

from typing import Any

from edge.frames import (
    FLAG_ACK_AWAITED,
    FLAG_CALIBRATION_DUE,
    FLAG_CONSOLE_UNLOCKED,
    FLAG_LOW_FLOW,
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


def event(e: Event, t: float) -> dict[str, Any]:
    return {"device": e.device, "time": iso(t), "seq": e.seq, "uptime_ms": e.uptime_ms, "code": e.code, "text": e.text}


def state(device: str, site: str, edge: str, t: float, r: Reading | None, link_up: bool,
          active: list[str]) -> dict[str, Any]:
    """The retained state of one board: its last reading's state, relay, faults, flags; link; active alerts."""
    payload: dict[str, Any] = {"device": device, "site": site, "edge": edge, "time": iso(t),
                               "link": "up" if link_up else "down", "active": active}
    if r is not None:
        payload.update(state=r.state, relay=r.relay, faults=fault_names(r.faults),
                       flags={"calibration_due": bool(r.flags & FLAG_CALIBRATION_DUE),
                              "low_flow": bool(r.flags & FLAG_LOW_FLOW),
                              "ack_awaited": bool(r.flags & FLAG_ACK_AWAITED),
                              "console_unlocked": bool(r.flags & FLAG_CONSOLE_UNLOCKED)},
                       ch4=r.ch4, unit=r.unit, flow=r.flow, flow_unit=r.flow_unit)
    return payload
