"""The demo's live terminal view and its exit summary (what a person watches while the story runs).

On a terminal the view redraws one screen in place about four times a second; without one (CI, a pipe) it
prints one line per board state change, alert and operator action, plus a status line every `every_s`.
"""

from __future__ import annotations

import collections
import json
import shutil
import sys
import threading
import time
from typing import TextIO

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], lo: float, hi: float, width: int = 0) -> str:
    """Values as block characters scaled between lo and hi (NaN shows as a space); with `width`, the whole
    series squeezed into that many characters, each the maximum of its bucket."""
    if width and len(values) > width:
        step = len(values) / width
        buckets = [values[int(i * step): int((i + 1) * step)] for i in range(width)]
        values = [max((v for v in b if v == v), default=float("nan")) for b in buckets]
    out = []
    span = hi - lo or 1.0
    for v in values:
        if v != v:
            out.append(" ")
            continue
        i = int((min(max(v, lo), hi) - lo) / span * (len(_BARS) - 1) + 0.5)
        out.append(_BARS[i])
    return "".join(out)


def mmss(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BoardView:
    """What the view knows about one board: last reading fields, model result, short histories."""

    def __init__(self, device: str, history: int):
        self.device = device
        self.reading: dict[str, object] = {}
        self.score = float("nan")
        self.threshold = float("nan")
        self.anomalous = False
        self.forecast = float("nan")
        self.top_channel = ""
        self.ch4: collections.deque[float] = collections.deque(maxlen=history)
        self.scores: collections.deque[float] = collections.deque(maxlen=history)
        self.state = "?"


class LiveView:
    """Collects readings, scores, alerts and notes from several threads; draws them; writes the summary."""

    def __init__(self, title: str, out: TextIO | None = None, every_s: float = 15.0, width: int = 20000):
        self._out = out or sys.stdout
        self._tty = self._out.isatty()
        self._title = title
        self._lock = threading.Lock()
        self._boards: dict[str, BoardView] = {}
        self._history = width
        self._alerts: list[tuple[float, str]] = []
        self._notes: collections.deque[str] = collections.deque(maxlen=4)
        self._every_s = every_s
        self._last_status = -1e9
        self.sim_s = 0.0
        self.alert_kinds: collections.Counter[str] = collections.Counter()
        self._started = time.monotonic()
        self.horizon_s = 0.0
        self.script = ""  # what the simulator will do, for the narration line
        self._advisory_at: dict[str, float] = {}  # first advisory alert per device (simulated s)
        self.lead_s: dict[str, float] = {}  # advisory -> board alarm lead time per device
        if not self._tty:
            self._line(title)

    def _board(self, device: str) -> BoardView:
        if device not in self._boards:
            self._boards[device] = BoardView(device, self._history)
        return self._boards[device]

    # ---- inputs (any thread) ----
    def reading(self, device: str, fields: dict[str, object], sim_s: float) -> None:
        with self._lock:
            b = self._board(device)
            b.reading = fields
            ch4 = fields.get("ch4")
            b.ch4.append(float(ch4) if isinstance(ch4, (int, float)) else float("nan"))
            self.sim_s = max(self.sim_s, sim_s)
            state = str(fields.get("state", "?"))
            if state != b.state and not self._tty:
                self._line(f"{mmss(sim_s)}  {device}: board state {b.state} -> {state}, "
                           f"CH4 {_fmt(ch4)} %, power {'on' if fields.get('relay') == 1 else 'off'}")
            b.state = state
            if not self._tty and sim_s - self._last_status >= self._every_s:
                self._last_status = sim_s
                self._line(self._status_line(b))

    def score(self, device: str, score: float, threshold: float, anomalous: bool, forecast: float,
              top_channel: str) -> None:
        with self._lock:
            b = self._board(device)
            b.score, b.threshold, b.anomalous = score, threshold, anomalous
            b.forecast, b.top_channel = forecast, top_channel
            b.scores.append(score)

    def alert(self, topic: str, payload: bytes) -> None:
        """An alert as the MQTT subscriber received it."""
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = {"kind": "unreadable", "raw": payload[:80].decode(errors="replace")}
        kind = str(doc.get("kind", "?"))
        state = str(doc.get("state", ""))
        self.alert_kinds[f"{kind} {state}".strip()] += 1
        device = str(doc.get("device", topic))
        message = str(doc.get("message", "")).removeprefix(f"{device}: ")
        text = f"{doc.get('severity', '?'):<8} {kind + ' ' + state:<20} {device}: {message}"
        with self._lock:
            self._alerts.append((self.sim_s, text))
            if not self._tty:
                self._line(f"{mmss(self.sim_s)}  ALERT  {text}")
        if state == "raised" and doc.get("advisory") and device not in self._advisory_at:
            self._advisory_at[device] = self.sim_s
        if state == "raised" and kind == "alarm" and device in self._advisory_at and device not in self.lead_s:
            self.lead_s[device] = self.sim_s - self._advisory_at[device]
            self.note(f"early warning: the model's advisory alert came {self.lead_s[device]:.0f} s (simulated) "
                      f"before the board's own alarm on {device}")

    def note(self, text: str) -> None:
        """An operator action or a demo remark, shown on screen."""
        with self._lock:
            self._notes.append(f"{mmss(self.sim_s)}  {text}")
            if not self._tty:
                self._line(f"{mmss(self.sim_s)}  {text}")

    # ---- output ----
    def _line(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def _status_line(self, b: BoardView) -> str:
        r = b.reading
        return (f"{mmss(self.sim_s)}  {b.device}: CH4 {_fmt(r.get('ch4'))} %  flow {_fmt(r.get('flow'), 1)} "
                f"{r.get('flow_unit', '')}  {b.state}  score {_fmt(b.score)} / {_fmt(b.threshold)}  "
                f"forecast {_fmt(b.forecast)} %")

    def draw(self) -> None:
        """Redraw the whole screen (terminal only)."""
        if not self._tty:
            return
        with self._lock:
            screen = self._screen()
        self._out.write("\x1b[H\x1b[J" + screen)
        self._out.flush()

    def _screen(self) -> str:
        cols = shutil.get_terminal_size((100, 30)).columns
        wall = time.monotonic() - self._started
        lines = [f"\x1b[1m{self._title}\x1b[0m",
                 f"simulated time {mmss(self.sim_s)}   wall time {wall:5.1f} s   (Ctrl-C stops)"]
        if self.script:
            lines.append(f"the simulated mine: {self.script}")
        lines.append("")
        graph = max(20, min(cols - 42, 90))
        for b in self._boards.values():
            r = b.reading
            power = "\x1b[32mON\x1b[0m" if r.get("relay") == 1 else "\x1b[31mOFF\x1b[0m"
            state = _colour_state(b.state)
            lines.append(f"board {b.device}   state {state}   power {power}   faults {r.get('faults', 0):04x}"
                         if isinstance(r.get("faults"), int) else f"board {b.device}   state {state}   power {power}")
            lines.append(f"  CH4   {_fmt(r.get('ch4')):>6} %   {sparkline(list(b.ch4), 0.0, 2.0, graph)}  (0-2 %)")
            lines.append(f"  flow  {_fmt(r.get('flow'), 1):>6} {r.get('flow_unit', '')}")
            mark = "\x1b[33mABOVE threshold\x1b[0m" if b.anomalous else "below threshold"
            top = f" (most: {b.top_channel})" if b.anomalous and b.top_channel else ""
            lines.append(f"  model score {_fmt(b.score)} vs threshold {_fmt(b.threshold)}  {mark}{top}")
            lines.append(f"  score history     {sparkline(list(b.scores), 0.0, max(b.threshold * 2, 1e-6), graph)}"
                         "  (threshold = middle)")
            lines.append(f"  forecast: max CH4 expected over the next {self.horizon_s:g} s: {_fmt(b.forecast)} %")
            lines.append("")
        lines.append("alerts received by an MQTT subscriber:")
        for sim, text in self._alerts[-8:] or [(None, "(none yet)")]:
            lines.append(f"  {mmss(sim) if sim is not None else '        '}  {text}")
        lines.append("")
        lines.extend(self._notes)
        return "\n".join(line[: cols + 20] for line in lines) + "\n"

    def summary(self, counters: dict[str, object], places: dict[str, str]) -> str:
        """The exit summary: frames, rejected frames, alerts by kind, where outbox and logs are."""
        out = ["", "firedamp demo summary", f"  simulated time {mmss(self.sim_s)}, wall time "
               f"{time.monotonic() - self._started:.1f} s"]
        for key, value in counters.items():
            out.append(f"  {key}: {value}")
        if self.alert_kinds:
            out.append(f"  alerts received by the subscriber: {sum(self.alert_kinds.values())}, by kind:")
            out.extend(f"    {n:3d}  {kind}" for kind, n in sorted(self.alert_kinds.items()))
        else:
            out.append("  alerts received by the subscriber: none")
        for device, lead in self.lead_s.items():
            out.append(f"  model early warning on {device}: {lead:.0f} s (simulated) before the board's alarm")
        for key, value in places.items():
            out.append(f"  {key}: {value}")
        return "\n".join(out)


def _fmt(value: object, places: int = 2) -> str:
    if isinstance(value, (int, float)) and value == value:
        return f"{value:.{places}f}"
    return "--"


def _colour_state(state: str) -> str:
    colour = {"NORMAL": "32", "WARNING": "33", "ALARM": "33;1", "POWEROFF": "31;1", "FAULT": "31"}.get(state)
    return f"\x1b[{colour}m{state}\x1b[0m" if colour else state
