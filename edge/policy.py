"""Alert policy stage: board states, model scores and link health → alerts (raised / cleared), one per event.

The board decides safety: its ALARM, POWEROFF, FAULT, WARNING states and its calibration-due, low-flow,
battery-low and P/T-fault flags become alerts at once, on the transition. The model is advisory: an `anomaly` or `forecast`
alert needs `anomaly_raise_samples` consecutive samples over the threshold, clears after
`anomaly_clear_samples` under `anomaly_clear_ratio` × threshold, and is not raised again for
`anomaly_holdoff_samples` after a clear (hysteresis + hold-off: one event, one alert). Link lost (port
error or silence), frames lost (sequence gaps) and reboots are alerts too. The policy never talks to a
board. Its state per device is a small JSON that the outbox stores with each alert, so a restarted service
neither repeats nor forgets a raise.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge.config import PolicyConfig
from edge.frames import (
    FAULT_NAMES,
    FLAG_ACK_AWAITED,
    FLAG_BATTERY_LOW,
    FLAG_CALIBRATION_DUE,
    FLAG_LOW_FLOW,
    FLAG_PT_FAULT,
    Aux,
    Frame,
    Gap,
    Reading,
)
from firedamp.times import iso

# kind: (severity, advisory, one_shot)
KINDS: dict[str, tuple[str, bool, bool]] = {
    "power_off": ("critical", False, False),
    "alarm": ("critical", False, False),
    "fault": ("critical", False, False),
    "warning": ("warning", False, False),
    "low_flow": ("warning", False, False),
    "calibration_due": ("warning", False, False),
    "link": ("warning", False, False),
    "anomaly": ("warning", True, False),
    "forecast": ("warning", True, False),
    "frames_lost": ("info", False, True),
    "reboot": ("info", False, True),
    "duplicate_id": ("critical", False, False),  # two boards send under one device id (tests/reliability)
    "ingest_overflow": ("warning", False, True),  # lines from a port dropped: the ingest queue was full
    "battery_low": ("warning", False, False),  # flag BATTERY_LOW: charge or replace (the BATTERY fault follows)
    "pt_fault": ("warning", False, False),  # flag PT_FAULT: standard flow not valid; gas safety not affected
}
_BOARD_KINDS = ("power_off", "alarm", "fault", "warning", "low_flow", "calibration_due", "battery_low", "pt_fault")
_ALERT_FLAGS = FLAG_LOW_FLOW | FLAG_CALIBRATION_DUE | FLAG_BATTERY_LOW | FLAG_PT_FAULT  # flags that are alerts


def result_numbers(res: Any) -> dict[str, float | None]:
    """A model result's score, threshold and forecast as alerts and telemetry carry them: 4 decimals, a NaN
    forecast (not ready) as None."""
    return {"score": round(float(res.score), 4), "threshold": round(float(res.threshold), 4),
            "forecast": None if res.forecast != res.forecast else round(float(res.forecast), 4)}


def port_name(port: str) -> str:
    """/dev/serial/by-id/usb-Board_e661-if00 -> usb-Board_e661-if00 (A-Z a-z 0-9 _ - only, at most 32)."""
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in port.rstrip("/").rsplit("/", 1)[-1])
    return name[-32:] or "port"


def fault_names(mask: int) -> list[str]:
    return [name for bit, name in enumerate(FAULT_NAMES) if mask >> bit & 1]


def readings_of(r: Reading | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"ch4": r.ch4, "unit": r.unit, "flow": r.flow, "flow_unit": r.flow_unit, "total": r.total,
            "state": r.state, "relay": r.relay, "faults": r.faults, "flags": r.flags, "seq": r.seq,
            "uptime_ms": r.uptime_ms}


@dataclass
class Alert:
    id: str
    site: str
    edge: str
    device: str
    kind: str
    severity: str
    state: str  # "raised" or "cleared" (one-shot kinds are only ever "raised")
    time: float  # unix seconds
    message: str
    advisory: bool
    readings: dict[str, Any] | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site, "edge": self.edge, "device": self.device, "kind": self.kind,
                "severity": self.severity, "state": self.state, "time": iso(self.time), "ts": round(self.time, 3),
                "advisory": self.advisory, "message": self.message, "readings": self.readings,
                "details": self.details}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


@dataclass
class DeviceState:
    active: dict[str, bool] = field(default_factory=dict)
    over: int = 0  # consecutive samples over the anomaly threshold
    under: int = 0
    quiet: int = 0  # samples left in the hold-off after an anomaly cleared
    f_over: int = 0
    f_under: int = 0
    f_quiet: int = 0
    lost_pending: int = 0
    lost_alert_t: float = -1e18  # long ago
    last_seen: float = 0.0
    port: str = ""
    home: str = ""  # the port whose frames keep this id when two boards share it (see Policy.name)
    faults: list[str] = field(default_factory=list)  # the fault names the last fault alert reported
    ports: dict[str, float] = field(default_factory=dict)  # port -> last frame time (two ports: duplicate id)
    placeholder: bool = False  # named after a port before any board was heard on it

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeviceState:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Policy:
    """Feed it frames, gaps, scores and link events; it returns the alerts to send (in order)."""

    def __init__(self, site: str, edge: str, cfg: PolicyConfig | None = None, model_version: str = "",
                 saved: dict[str, str] | None = None):
        self.site = site
        self.edge = edge
        self.cfg = cfg or PolicyConfig()
        self.model_version = model_version
        self.devices: dict[str, DeviceState] = {}
        self._placeholders: dict[str, str] = {}  # port -> device name used for its link alert
        self.last: dict[str, Reading] = {}
        # device -> its last A frame and arrival time (the battery values for alert details; the pipeline puts them
        # in the retained state)
        self.aux: dict[str, tuple[Aux, float]] = {}
        self.port_devices: dict[str, set[str]] = {}
        self._aliases: set[tuple[str, str]] = set()  # (port, id): a second board under an id, see `name`
        self._board_key: dict[str, tuple] = {}
        self.raised = 0
        self.dirty: set[str] = set()
        self.changed: set[str] = set()  # devices whose active alerts changed (the pipeline's retained-state check)
        for key, text in (saved or {}).items():
            if key.startswith("device:"):
                try:
                    self.devices[key[7:]] = DeviceState.from_json(text)
                except (ValueError, TypeError):
                    pass  # an unreadable saved state only costs a repeated raise
        self._restored: dict[str, list[str]] = {}  # device -> ports it had before a restart (see _duplicate)
        for name, st in self.devices.items():
            if st.placeholder and st.active.get("link"):
                self._placeholders[st.port] = name
            if len(st.ports) > 1:
                self._restored[name] = list(st.ports)

    # ---------------------------------------------------------------------------------------------- helpers

    def _dev(self, device: str) -> DeviceState:
        st = self.devices.get(device)
        if st is None:
            st = self.devices[device] = DeviceState()
        return st

    def _alert(self, device: str, kind: str, state: str, t: float, message: str, **details: Any) -> Alert:
        severity, advisory, _ = KINDS[kind]
        self.raised += state == "raised"
        self.dirty.add(device)
        return Alert(str(uuid.uuid4()), self.site, self.edge, device, kind, severity, state, t, message, advisory,
                     readings_of(self.last.get(device)), details)

    def _set(self, device: str, st: DeviceState, kind: str, on: bool, t: float, message: str,
             out: list[Alert], **details: Any) -> None:
        if st.active.get(kind, False) == on:
            return
        st.active[kind] = on
        self.changed.add(device)
        out.append(self._alert(device, kind, "raised" if on else "cleared", t, message, **details))

    def saved_state(self) -> dict[str, str]:
        """JSON of the devices whose state changed since the last call (stored with the alerts)."""
        out = {f"device:{d}": self.devices[d].to_json() for d in self.dirty if d in self.devices}
        self.dirty.clear()
        return out

    # ---------------------------------------------------------------------------------------------- inputs

    def frame(self, port: str, frame: Frame, gap: Gap, result: Any, t: float, out: list[Alert],
              forecast_ok: bool = False) -> None:
        """The one entry per valid frame (`frame.device` already the name it is reported under, see `name`):
        link, sequence gap, board state, then the model's result for this reading — appended to `out` in that
        order, each alert carrying this frame's reading."""
        self._seen(frame.device, port, t, out)
        if gap.lost or gap.rebooted:
            out += self.on_gap(frame.device, gap, t, frame if frame.type == "R" else None)
        if frame.type == "R":
            self._reading(frame, t, out)
            if result is not None:
                self._scored(frame.device, result, t, forecast_ok, out)
        elif frame.type == "A":
            self.aux[frame.device] = (frame, t)  # never an alert by itself: the flags and faults are in R

    def name(self, device: str, port: str, t: float, out: list[Alert]) -> str:
        """The name a frame with id `device` from `port` is reported under. Two boards sharing an id on two
        ports are never merged: the first port that sent it (its `home`) keeps the id, a board on another
        port is reported as `<id>@<port name>` (own alerts, model stream, state, history) while
        `duplicate_id` stays raised on the id; a board moved to another port keeps its id."""
        st = self.devices.get(device)
        if st is None:
            st = self._dev(device)
        st.ports[port] = t
        if len(st.ports) > 1 or st.active.get("duplicate_id"):
            self._duplicate(device, st, t, out)
        if not st.home or st.home == port:
            st.home = port
            return device
        if (port, device) not in self._aliases and t - st.ports.get(st.home, -1e18) > self.cfg.silent_after_s:
            st.home = port  # the home port is silent: the board was moved to this port
            self.dirty.add(device)
            return device
        self._aliases.add((port, device))
        return f"{device}@{port_name(port)}"

    def on_frame(self, device: str, port: str, t: float) -> list[Alert]:
        """Any valid frame: the device is alive (clears a link alert)."""
        out: list[Alert] = []
        self._seen(device, port, t, out)
        return out

    def _seen(self, device: str, port: str, t: float, out: list[Alert]) -> None:
        """on_frame, appending to `out` (frame() calls it for every frame: no list of its own)."""
        st = self.devices.get(device)
        if st is None:
            st = self._dev(device)
        st.last_seen = t
        if st.port != port:
            st.port = port
            self.dirty.add(device)
        seen = self.port_devices.get(port)
        if seen is None:
            seen = self.port_devices[port] = set()
        seen.add(device)
        if st.active.get("link"):
            self._set(device, st, "link", False, t, f"{device}: link restored, frames arriving on {port}", out,
                      port=port)
        # a link alert raised before any board was known (none, nearly always: no pop per frame)
        placeholder = self._placeholders.pop(port, None) if self._placeholders else None
        if placeholder and placeholder != device and self._dev(placeholder).active.get("link"):
            self._set(placeholder, self._dev(placeholder), "link", False, t,
                      f"{port}: link restored, board {device} is sending", out, port=port)

    def on_reading(self, r: Reading, t: float) -> list[Alert]:
        """Board state transitions of one reading → alerts at once."""
        out: list[Alert] = []
        self._reading(r, t, out)
        return out

    def _reading(self, r: Reading, t: float, out: list[Alert]) -> None:
        """on_reading, appending to `out` (frame() calls it for every reading: no list of its own)."""
        self.last[r.device] = r
        s = r.state
        # fast path (most readings): the same board conditions as last time, so no transition to report
        key = (s, r.faults, r.flags & _ALERT_FLAGS)
        if self._board_key.get(r.device) == key:
            return
        self._board_key[r.device] = key
        st = self._dev(r.device)
        dev = r.device
        gas = "" if r.ch4 is None else f" at {r.ch4:.2f} {'% vol' if r.unit == 'VOL' else '% LEL'}"
        # A gas power-off stays raised while a fault takes over with the relay still off (an outburst past
        # the sensor's range): its clear means the power really came back, or the board restarted.
        cut = s == "POWEROFF" or (st.active.get("power_off", False) and s == "FAULT" and r.relay == 0)
        self._set(dev, st, "power_off", cut, t,
                  f"{dev}: board cut the power{gas}" if cut else
                  f"{dev}: power restored (state {s})" if r.relay else f"{dev}: gas power-off over (state {s})",
                  out, ack_awaited=bool(r.flags & FLAG_ACK_AWAITED))
        self._set(dev, st, "alarm", s == "ALARM", t,
                  f"{dev}: methane alarm{gas}" if s == "ALARM" else f"{dev}: alarm over (state {s})", out)
        faulty = s == "FAULT" or r.faults != 0
        names = fault_names(r.faults)
        if faulty and st.active.get("fault") and names != st.faults:
            # the board stays in FAULT but the faults changed (LINE -> STUCK -> RAIL): raised again, saying which
            # faults are present now (a consumer keyed by board and kind updates the open alert)
            out.append(self._alert(dev, "fault", "raised", t, f"{dev}: board fault now {'+'.join(names) or 'FAULT'} "
                                   f"(was {'+'.join(st.faults) or 'FAULT'})", faults=names, was=st.faults))
        self._set(dev, st, "fault", faulty, t,
                  f"{dev}: board fault {'+'.join(names) or 'FAULT'}" if faulty else f"{dev}: fault cleared", out,
                  faults=names)
        st.faults = names if faulty else []
        self._set(dev, st, "warning", s == "WARNING", t,
                  f"{dev}: warning{gas}" if s == "WARNING" else f"{dev}: warning over (state {s})", out)
        low = bool(r.flags & FLAG_LOW_FLOW)
        self._set(dev, st, "low_flow", low, t,
                  f"{dev}: low or no flow ({r.flow:g} {r.flow_unit}): ventilation loss?" if low
                  else f"{dev}: flow back ({r.flow:g} {r.flow_unit})", out)
        cal = bool(r.flags & FLAG_CALIBRATION_DUE)
        self._set(dev, st, "calibration_due", cal, t,
                  f"{dev}: sensor calibration due" if cal else f"{dev}: sensor calibrated", out)
        if r.flags & (FLAG_BATTERY_LOW | FLAG_PT_FAULT) or st.active.get("battery_low") or st.active.get("pt_fault"):
            self._aux_flags(dev, st, r, t, out)

    def _aux_flags(self, dev: str, st: DeviceState, r: Reading, t: float, out: list[Alert]) -> None:
        """BATTERY_LOW and PT_FAULT → alerts on their transitions; the details carry the board's last A frame's
        battery voltage and run time left (None when it has sent none)."""
        last = self.aux.get(dev)
        mv, left = (last[0].battery_mv, last[0].run_min) if last is not None else (None, None)
        low = bool(r.flags & FLAG_BATTERY_LOW)
        when = "" if mv is None else f" ({mv} mV" + ("" if left is None else f", about {left} min left") + ")"
        self._set(dev, st, "battery_low", low, t,
                  f"{dev}: battery low{when}: charge or replace it" if low else f"{dev}: battery no longer low{when}",
                  out, battery_mv=mv, run_min=left)
        pt = bool(r.flags & FLAG_PT_FAULT)
        self._set(dev, st, "pt_fault", pt, t,
                  f"{dev}: pressure/temperature input failed: standard flow not valid (gas safety not affected)"
                  if pt else f"{dev}: pressure/temperature input back: standard flow valid", out)

    def on_gap(self, device: str, gap: Gap, t: float, reading: Reading | None = None) -> list[Alert]:
        """Lost frames and reboots (from the sequence tracker); `reading`: the frame that showed the gap, if it
        is a reading (the alert carries it, not the reading from before the gap)."""
        if reading is not None:
            self.last[device] = reading
        st = self._dev(device)
        out: list[Alert] = []
        when = " while the edge service was not reading" if gap.first else ""  # first frame after its restart
        if gap.rebooted:
            out.append(self._alert(device, "reboot", "raised", t,
                                   f"{device}: board restarted{when} (uptime went back)", lost=gap.lost))
        elif gap.lost:
            st.lost_pending += gap.lost
            if t - st.lost_alert_t >= self.cfg.frames_lost_holdoff_s or gap.first:
                self._report_lost(device, st, t, when, out)
        return out

    def _report_lost(self, device: str, st: DeviceState, t: float, when: str, out: list[Alert]) -> None:
        """One frames_lost alert for every frame lost since the last one (the hold-off gathers them)."""
        out.append(self._alert(device, "frames_lost", "raised", t,
                               f"{device}: {st.lost_pending} frame(s) lost{when or ' on the serial line'}",
                               lost=st.lost_pending))
        st.lost_pending = 0
        st.lost_alert_t = t

    def on_link(self, port: str, up: bool, detail: str, t: float) -> list[Alert]:
        """A port closed (alert for every device last seen on it) or opened (cleared when frames arrive)."""
        if up:
            return []
        out: list[Alert] = []
        devices = self.port_devices.get(port) or {d for d, s in self.devices.items() if s.port == port}
        if not devices:  # no board heard on this port yet: name the alert after the port
            devices = {port_name(port)}
            self._placeholders[port] = next(iter(devices))
            self._dev(self._placeholders[port]).placeholder = True
        for device in sorted(devices):
            st = self._dev(device)
            st.port = port
            self._set(device, st, "link", True, t, f"{device}: serial link lost on {port}: {detail}", out,
                      port=port, reason=detail)
        return out

    def on_score(self, device: str, res: Any, t: float, forecast_ok: bool = False) -> list[Alert]:
        """One model Result (models.runtime.Result) → advisory anomaly/forecast alerts with hysteresis."""
        out: list[Alert] = []
        self._scored(device, res, t, forecast_ok, out)
        return out

    def _scored(self, device: str, res: Any, t: float, forecast_ok: bool, out: list[Alert]) -> None:
        """on_score, appending to `out` (frame() calls it for every scored reading)."""
        if not res.ready:
            return
        st = self.devices.get(device)
        if st is None:
            st = self._dev(device)
        c = self.cfg
        if st.quiet:
            st.quiet -= 1
        if res.score > res.threshold:
            st.over += 1
            st.under = 0
        elif res.score < res.threshold * c.anomaly_clear_ratio:
            st.under += 1
            st.over = 0
        if st.over >= c.anomaly_raise_samples and not st.quiet and not st.active.get("anomaly"):
            self._set(device, st, "anomaly", True, t,
                      f"{device}: unusual readings (advisory): score {res.score:.2f} over {res.threshold:.2f}, "
                      f"mostly {res.top_channel}", out, **self._details(res))
        elif st.active.get("anomaly") and st.under >= c.anomaly_clear_samples:
            st.quiet = c.anomaly_holdoff_samples
            self._set(device, st, "anomaly", False, t, f"{device}: readings back to usual (advisory)", out,
                      **self._details(res))
        if forecast_ok and c.forecast_alert:
            level = c.forecast_ch4_vol_pct
            if st.f_quiet:
                st.f_quiet -= 1
            if res.forecast >= level:
                st.f_over += 1
                st.f_under = 0
            elif res.forecast < level * c.anomaly_clear_ratio:
                st.f_under += 1
                st.f_over = 0
            if st.f_over >= c.anomaly_raise_samples and not st.f_quiet and not st.active.get("forecast"):
                self._set(device, st, "forecast", True, t,
                          f"{device}: methane expected to reach {res.forecast:.2f} % vol (level {level:.2f}) "
                          "soon (advisory early warning)", out, level=level, **self._details(res))
            elif st.active.get("forecast") and st.f_under >= c.anomaly_clear_samples:
                st.f_quiet = c.anomaly_holdoff_samples
                self._set(device, st, "forecast", False, t, f"{device}: methane forecast back below {level:.2f} % vol",
                          out, level=level, **self._details(res))

    def _details(self, res: Any) -> dict[str, Any]:
        """An advisory alert's details (built only on a raise or clear: most scores change nothing)."""
        return {**result_numbers(res), "model_version": self.model_version, "top_channel": res.top_channel}

    def _duplicate(self, device: str, st: DeviceState, t: float, out: list[Alert]) -> None:
        """Frames under one device id from two ports within silent_after_s: two boards share the id. Never merge
        silently: raise `duplicate_id` (both ports named); clear once one port alone has sent it for that long."""
        for p in self._restored.pop(device, ()):  # after a restart: the ports count as seen at its first check
            if p in st.ports:
                st.ports[p] = max(st.ports[p], t)
        for p in [p for p, seen in st.ports.items() if t - seen > self.cfg.silent_after_s]:
            del st.ports[p]
        live = sorted(st.ports)
        if len(live) > 1:
            others = [f"{device}@{port_name(p)}" for p in live if p != st.home]
            self._set(device, st, "duplicate_id", True, t,
                      f"{device}: two boards use this device id, on {' and '.join(live)}; the one on {st.home or live[0]} "
                      f"keeps the id, the other is reported as {', '.join(others)}: give each board its own device_id",
                      out, ports=live)
        else:
            self._set(device, st, "duplicate_id", False, t,
                      f"{device}: frames under this id come from one port again ({', '.join(live) or 'none'})", out,
                      ports=live)

    def on_overflow(self, port: str, dropped: int, t: float) -> list[Alert]:
        """`dropped` lines from `port` were thrown away because the ingest queue was full (the edge is
        overloaded): one alert for each board last seen on that port (or one named after the port)."""
        devices = self.port_devices.get(port) or {port_name(port)}
        return [self._alert(d, "ingest_overflow", "raised", t, f"{d}: {dropped} line(s) from {port} dropped: the "
                            "edge could not keep up (ingest queue full); those frames are lost", lost=dropped,
                            port=port) for d in sorted(devices)]

    def tick(self, t: float) -> list[Alert]:
        """Timers: silent devices become link alerts; held-back lost-frame counts go out after the hold-off."""
        out: list[Alert] = []
        for device, st in self.devices.items():
            if st.active.get("duplicate_id"):
                self._duplicate(device, st, t, out)
            if st.last_seen and not st.active.get("link") and t - st.last_seen > self.cfg.silent_after_s:
                self._set(device, st, "link", True, t,
                          f"{device}: no frame for {t - st.last_seen:.0f} s (board silent or line broken)", out,
                          port=st.port, reason="silent")
            if st.lost_pending and t - st.lost_alert_t >= self.cfg.frames_lost_holdoff_s:
                self._report_lost(device, st, t, "", out)
        return out
