"""The pipeline: one batch of lines and link changes from the boards in → alerts, telemetry, state, events and
history rows out. Pure: no threads, no I/O, no clock of its own (Service runs it, edge/service.py).

Read top to bottom, a batch goes through the stages of the edge in the order data flows:

    link      items: (port, line bytes, arrival time) from edge/link.py, LinkChange, Overflow
    frames    Decoder: line → Reading / Aux / Event / Reply, rejects counted by reason, sequence gaps per stream
    names     Policy.name: a second board under an id already used on another port gets its own name
    windows   Windows: a reading → the model's next input row for its stream (device name)
    detector  Detector: every due row of the batch in one batched ONNX Runtime call
    policy    Policy.frame: one call per frame, in frame order → alerts carrying the reading that caused them
    outbox    Batch.alerts and Batch.seqs (committed together by the service)
    publisher Batch.telemetry, .aux, .states, .events, .devices (the publisher decides topics when it sends)

An `A` frame (process conditions and power) skips windows and detector: the policy sees it (link, sequence, the
battery values for alert details), and its values go to history, the aux message and the retained state.

Nothing read from a board is dropped by an exception: a stage that raises on one frame costs that frame's
later stages only (counted in `errors`, logged once with the line), and a failing model call costs that
batch its scores (counted in `score_errors`), never its board alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edge import payloads
from edge.config import Config
from edge.frames import Aux, BadFrame, Decoder, Event, Reading, Reply, parse
from edge.policy import Alert, Policy

log = logging.getLogger("firedamp.pipeline")

# the run loop compares these Reading fields by position (state, relay, faults, flags; unit, flow_unit): the
# reading part of Pipeline._state's key
assert Reading._fields[8:12] == ("state", "relay", "faults", "flags") and Reading._fields[4:7:2] == ("unit", "flow_unit")
assert Reading._fields[1:3] == Aux._fields[1:3] == Event._fields[1:3] == Reply._fields[1:3] == ("seq", "uptime_ms")
assert Aux._fields[3:10] == ("p_kpa", "t_c", "std_flow", "std_unit", "std_total", "battery_mv", "run_min")

# The retained state carries a board's last A values (docs/mqtt.md): renewed with every state change, and when
# an A frame comes this long after the values the state last carried (or a value appears or goes empty), so it
# is at most this old while A frames arrive, without a retained QoS 1 message a second per board.
AUX_STATE_REFRESH_S = 60.0


class LinkChange(NamedTuple):
    """A serial port opened (`up`) or failed (`detail` says how)."""

    port: str
    up: bool
    t: float
    detail: str


class Overflow(NamedTuple):
    """`dropped` lines read from `port` were thrown away because the ingest queue was full."""

    port: str
    dropped: int
    t: float


@dataclass
class Batch:
    """What one batch gave, in frame order. `states` holds only the boards whose retained state changed."""

    alerts: list[Alert] = field(default_factory=list)
    telemetry: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (device, payload)
    states: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    history: list[tuple[Reading | Aux, float]] = field(default_factory=list)
    devices: list[tuple[str, str, str]] = field(default_factory=list)  # (device, unit, flow_unit) for discovery
    aux: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (device, aux payload)
    aux_devices: list[tuple[str, str, bool, bool]] = field(default_factory=list)  # (device, std_unit, P/T, battery)
    aux_snapshots: list[tuple[str, Aux, float]] = field(default_factory=list)  # (port, A frame, t) for Modbus
    seqs: dict[str, tuple[int, int]] = field(default_factory=dict)  # device -> (seq, uptime_ms) of its last frame
    observations: list[tuple[str, Any]] = field(default_factory=list)  # (kind, data) for the live view
    snapshots: list[tuple[str, Reading, float, Any]] = field(default_factory=list)  # (port, reading, t, result)
    telemetry_unbuilt: int = 0  # readings whose telemetry payload was not built (Pipeline.telemetry was off)


class Pipeline:
    def __init__(self, cfg: Config, detector: Any = None, saved: dict[str, str] | None = None,
                 seqs: dict[str, tuple[int, int]] | None = None):
        self.site, self.edge = cfg.site, cfg.edge_id
        self.decoder = Decoder()
        self.decoder.seed(seqs or {})  # frames lost and reboots while the service was down: on the first frame
        self.detector = detector
        self.windows = None
        if detector is not None:
            from edge.windows import Windows

            self.windows = Windows(detector.spec, detector, cfg.policy.max_gap_samples)
        self.policy = Policy(cfg.site, cfg.edge_id, cfg.policy, detector.spec.version if detector else "", saved)
        spec = detector.spec if detector else None
        self.forecast_ok = bool(spec and spec.forecast_feature == "ch4" and spec.units[spec.forecast_index]
                                .replace(" ", "").lower() in ("%vol", "vol%"))
        self.links: dict[str, bool] = {}
        self.errors = 0  # frames a stage raised on (their earlier stages' results are kept)
        self.score_errors = 0  # batches whose model call raised (their readings went out unscored)
        self._states: dict[str, tuple] = {}  # device -> what its last retained state said
        self._shown: dict[str, Any] = {}  # device -> the reading its last retained-state check saw
        self._units: dict[str, tuple[str, str]] = {}  # device -> (unit, flow_unit) last told to discovery
        self._aux_shown: dict[str, tuple[Aux, float] | None] = {}  # device -> the A frame its last state carried
        self._aux_kind: dict[str, tuple[str, bool, bool]] = {}  # device -> (std_unit, P/T, battery) told to discovery
        self.snapshot = cfg.modbus.enabled  # Batch.snapshots for the Modbus server (edge/modbus.py) to read
        # Batch.telemetry payloads: the service turns this off while MQTT could not send them (not connected, or
        # [mqtt] telemetry = false); building one costs ~5 µs a reading, a quarter of the pipeline's time
        self.telemetry = True
        self.observe = True  # Batch.observations (the service turns it off while nobody observes)

    # ------------------------------------------------------------------------------------------ one batch

    def run(self, items: list[Any], t_now: float) -> Batch:
        """Items: (port, line, t) tuples from the link readers, LinkChange and Overflow."""
        out = Batch()
        # the stages' entry points, looked up once a batch (this loop runs for every line: ~12 µs a frame)
        decoder = self.decoder
        track, name_of = decoder.track, self.policy.name
        add = self.windows.add if self.windows is not None else None
        # link → frames → names → windows (per item)
        work: list[tuple] = []
        due: list[tuple[Any, list[float]]] = []
        named: list[Alert] = []  # what name() raised for the frame in hand (nearly always nothing)
        ok = 0
        for item in items:
            if item.__class__ is not tuple:
                work.append((item,))
                continue
            port, line, t = item
            try:
                try:
                    frame = parse(line)  # Decoder.decode inline: the count of good frames is added once a batch
                except BadFrame as exc:
                    decoder.reject(exc)
                    continue
                ok += 1
                name = name_of(frame.device, port, t, named)
                first = None
                if named:
                    first = named.copy()
                    named.clear()
                if name != frame.device:
                    frame = frame._replace(device=name)
                gap = track(frame, port)
                k = -1
                if add is not None and frame.type == "R":
                    sample = add(frame, t)
                    if sample is not None:
                        k = len(due)
                        due.append(sample)
                work.append((frame, port, t, gap, k, first))
            except Exception:
                named.clear()  # a failed frame takes what its name() raised with it, as before
                self._failed("reading", line)
        decoder.ok += ok
        # detector: one batched call for the whole batch
        results = self._score(due)
        # policy (one entry per frame, in frame order) → payloads
        policy_frame, state, units = self.policy.frame, self._state, self._units
        shown, changed = self._shown, self.policy.changed
        alerts, seqs, history = out.alerts, out.seqs, out.history
        telemetry, observe, snapshot, forecast_ok = self.telemetry, self.observe, self.snapshot, self.forecast_ok
        unbuilt = 0
        for w in work:
            if len(w) == 1:
                self._link_item(w[0], out)
                continue
            frame, port, t, gap, k, first = w
            try:
                if first:
                    alerts += first
                res = results[k] if k >= 0 else None
                reading = frame.type == "R"
                policy_frame(port, frame, gap, res, t, alerts, forecast_ok and frame.unit == "VOL" if reading else False)
                device = frame.device
                seqs[device] = frame  # its (seq, uptime_ms) taken below, once a batch
                if reading:
                    history.append((frame, t))
                    if telemetry:
                        out.telemetry.append((device, payloads.telemetry(frame, t, res)))
                    else:
                        unbuilt += 1
                    if observe:
                        out.observations.append(("reading", {"reading": frame, "result": res, "time": t}))
                    if snapshot:
                        out.snapshots.append((port, frame, t, res))
                    # its retained state can only have changed if its alerts did (Policy.changed) or this
                    # reading's state, relay, faults, flags or units differ from the one the last check saw
                    # (policy.last is this frame now); most readings change neither: no check (~0.6 µs)
                    p = shown.get(device)
                    if (p is None or device in changed or p[8:12] != frame[8:12] or p[4] != frame[4]
                            or p[6] != frame[6]):
                        # units told to discovery: they can differ from this reading's only when the units
                        # differ from the reading the last check saw (every change of units is checked here)
                        if units.get(device) != frame[4:7:2]:  # (unit, flow_unit)
                            units[device] = frame[4:7:2]
                            out.devices.append((device, frame.unit, frame.flow_unit))
                        state(device, t_now, out)
                else:
                    if observe:
                        out.observations.append(("frame", frame))
                    if frame.type == "A":
                        self._on_aux(frame, port, t, t_now, out)
                        continue
                    if frame.type == "E":
                        out.events.append((device, payloads.event(frame, t)))
                    state(device, t_now, out)
            except Exception:
                self._failed("frame", frame)
        out.telemetry_unbuilt = unbuilt
        for device, frame in seqs.items():
            seqs[device] = frame[1:3]  # (seq, uptime_ms), the first fields after device of every frame type
        for device in {a.device for a in out.alerts}:
            self._state(device, t_now, out)
        return out

    def tick(self, t: float) -> Batch:
        """Timers (about once a second): silent boards, held-back lost-frame counts, duplicate ids."""
        out = Batch(alerts=self.policy.tick(t))
        for device in {a.device for a in out.alerts}:
            self._state(device, t, out)
        return out

    # ------------------------------------------------------------------------------------------ stages

    def _score(self, due: list[tuple[Any, list[float]]]) -> list[Any]:
        if not due:
            return []
        try:
            return self.detector.score(due).as_list()
        except Exception:
            self.score_errors += 1
            if self.score_errors == 1 or self.score_errors % 1000 == 0:
                log.exception("model: scoring %d sample(s) failed (%d batch(es) so far); those readings go out "
                              "unscored, board alerts are not affected", len(due), self.score_errors)
            return [None] * len(due)

    def _on_aux(self, a: Aux, port: str, t: float, t_now: float, out: Batch) -> None:
        """An A frame after the policy saw it: history, the aux message, Modbus, discovery, the retained state."""
        device = a.device
        out.history.append((a, t))
        if self.telemetry:  # the aux message goes where telemetry goes, and is skipped when telemetry is
            out.aux.append((device, payloads.aux(a, t)))
        if self.snapshot:
            out.aux_snapshots.append((port, a, t))
        kind = (a.std_unit, a.std_total is not None, a.battery_mv is not None)  # std_total: a P/T input is fitted
        if self._aux_kind.get(device) != kind:
            self._aux_kind[device] = kind
            out.aux_devices.append((device, *kind))
        shown = self._aux_shown.get(device)
        refresh = (shown is None or t - shown[1] >= AUX_STATE_REFRESH_S
                   or [v is None for v in shown[0][3:10]] != [v is None for v in a[3:10]])
        self._state(device, t_now, out, refresh)

    def _link_item(self, item: LinkChange | Overflow, out: Batch) -> None:
        try:
            if isinstance(item, Overflow):
                out.alerts += self.policy.on_overflow(item.port, item.dropped, item.t)
                return
            self.links[item.port] = item.up
            out.alerts += self.policy.on_link(item.port, item.up, item.detail, item.t)
            if self.observe:
                out.observations.append(("link", (item.port, item.up, item.detail)))
        except Exception:
            self._failed("link change", item)

    def _failed(self, what: str, thing: Any) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.exception("pipeline: a stage failed on a %s (%d so far; its earlier results are kept, the other "
                          "frames are not affected): %r", what, self.errors, thing)

    def _state(self, device: str, t: float, out: Batch, aux_refresh: bool = False) -> None:
        """The board's retained state, if it changed (it says what the board and its alerts say now), or if
        `aux_refresh`: its A values are due to be renewed (see AUX_STATE_REFRESH_S)."""
        r = self.policy.last.get(device)
        st = self.policy.devices.get(device)
        self._shown[device] = r
        self.policy.changed.discard(device)
        active = sorted([k for k, on in st.active.items() if on]) if st and st.active else []
        link_up = not (st and st.active.get("link"))
        key = (r.state, r.relay, r.faults, r.flags, r.unit, r.flow_unit) if r else None, link_up, tuple(active)
        if self._states.get(device) == key and not aux_refresh:
            return
        self._states[device] = key
        last_aux = self.policy.aux.get(device)  # (its last A frame, arrival time)
        if last_aux is not None:
            self._aux_shown[device] = last_aux
        out.states.append((device, payloads.state(device, self.site, self.edge, t, r, link_up, active, last_aux)))

    # ------------------------------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        d, det, w = self.decoder, self.detector, self.windows
        return {
            "frames_ok": d.ok, "frames_rejected": dict(d.rejected), "frames_lost": d.lost_frames, "reboots": d.reboots,
            "model_version": det.spec.version if det else None,
            "inference_calls": det.calls if det else 0,
            "inference_us_mean": round(det.mean_inference_us, 1) if det else 0.0,
            "samples_scored": det.samples if det else 0,
            "readings_unscored_units": w.unscored if w else 0,
            "alerts_raised": self.policy.raised, "pipeline_errors": self.errors, "score_errors": self.score_errors,
        }

