"""Calibration console library: send console commands to a board and show its frames to a person.

`open_port` opens a real or virtual board's serial port; `Console` sends commands over it and collects each
`C` reply; `Printer` writes readings, events and replies as readable lines. `firedamp console`
(edge/commands/console.py) is the terminal built on them; the demo's operator uses `Console` too.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import NamedTuple, TextIO

import serial

from edge import frames
from edge.errors import LinkError
from edge.link import LineSplitter

MAX_COMMAND_BYTES = 64  # docs/protocol.md: longer console lines are refused by the board
FAULTS = frames.FAULT_NAMES
FLAGS = ("calibration due", "low flow", "ack awaited", "console unlocked", "P/T fault", "battery low")  # bits 0..5


def describe_reading(r: frames.Reading) -> str:
    """A reading as one line a technician can read at a glance."""
    unit_text = "% vol" if r.unit == "VOL" else "% LEL"
    gas = f"CH4 {r.ch4:6.2f} {unit_text}" if r.ch4 is not None else "CH4   ----      "
    fault_names = [n for i, n in enumerate(FAULTS) if r.faults >> i & 1]
    flag_names = [n for i, n in enumerate(FLAGS) if r.flags >> i & 1]
    text = (f"{r.device}  {gas}  flow {r.flow:.3f} {r.flow_unit}  total {r.total:.3f} {r.flow_unit.split('/')[0]}"
            f"  {r.state:<8} power {'ON ' if r.relay else 'OFF'}")
    if fault_names:
        text += "  FAULT " + "+".join(fault_names)
    if flag_names:
        text += "  [" + ", ".join(flag_names) + "]"
    return text


def describe_aux(a: frames.Aux) -> str:
    """An A frame as one line: only the values the board sent (an empty field is left out, never shown as 0)."""
    parts = [a.device]
    if a.p_kpa is not None:
        parts.append(f"  P {a.p_kpa:.2f} kPa")
    if a.t_c is not None:
        parts.append(f"  T {a.t_c:.2f} °C")
    normal = a.std_unit.split("/")[0]
    parts.append(f"  std flow {a.std_flow:.3f} {a.std_unit}" if a.std_flow is not None else
                 "  std flow ----" if a.std_total is not None else "")
    if a.std_total is not None:
        parts.append(f"  std total {a.std_total:.3f} {normal}")
    if a.battery_mv is not None:
        parts.append(f"  battery {a.battery_mv} mV")
        parts.append(f"  {a.run_min} min left" if a.run_min is not None else "")
    return "".join(parts)


class Printer:
    """Writes frames for a person: readings and A frames (all; readings on change; or none), events, replies,
    rejected lines."""

    def __init__(self, out: TextIO, readings: str = "all"):
        self._out = out
        self._readings = readings
        self._last: dict[str, tuple] = {}  # device -> (state, relay, faults, flags) last shown
        self._lock = threading.Lock()

    def note(self, text: str) -> None:
        with self._lock:
            print(text, file=self._out, flush=True)

    def frame(self, frame: frames.Frame) -> None:
        stamp = time.strftime("%H:%M:%S")
        if frame.type == "R":
            key = (frame.state, frame.relay, frame.faults, frame.flags)
            changed = self._last.get(frame.device) != key
            self._last[frame.device] = key
            if self._readings == "all" or self._readings == "changes" and changed:
                self.note(f"{stamp} {describe_reading(frame)}")
        elif frame.type == "A":  # process conditions and battery, after each periodic reading
            if self._readings == "all":
                self.note(f"{stamp} {describe_aux(frame)}")
        elif frame.type == "E":
            self.note(f"{stamp} {frame.device}  event {frame.code}: {frame.text}")
        else:
            mark = {"OK": "  ok ", "ERR": "  ERR", "MORE": "     "}.get(frame.status, "  ?  ")
            self.note(f"{mark} {frame.text}")

    def bad(self, reason: str, line: bytes) -> None:
        self.note(f"         ? line rejected ({reason}): {repr(line[:60])[2:-1]}")


class Reply(NamedTuple):
    """The board's answer to one command: the final status (`OK` or `ERR`) and every text line, in order."""

    status: str
    lines: list[str]


def open_port(port: str, baud: int = 115200, wait_s: float = 2.0) -> serial.SerialBase:
    """Open a serial port (a device path, a pty symlink, or a pyserial URL), retrying for `wait_s`.

    A virtual board may still be starting, and a USB board re-enumerates after a reset, so a first failure
    is retried briefly before it becomes a LinkError naming the port.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            # exclusive: a serial port has one reader; a second one would steal half of the frames
            return serial.serial_for_url(port, baudrate=baud, timeout=0.05, write_timeout=2.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                busy = (" (another program has it open: stop the edge service first, `systemctl stop firedamp`)"
                        if "lock" in str(exc).lower() else "")
                raise LinkError(f"cannot open serial port {port}: {exc}{busy}") from exc
            time.sleep(0.1)


class Console:
    """Owns one open port: a reader thread turns lines into frames; `command()` sends and waits for a reply.

    Every frame is also handed to `on_frame` (readings, events, replies) and every rejected line to
    `on_bad` with its reason, so an interactive front end can show them.
    """

    def __init__(self, port: serial.SerialBase, on_frame=None, on_bad=None):
        self._port = port
        self._on_frame = on_frame
        self._on_bad = on_bad
        self._replies: queue.Queue[frames.Reply] = queue.Queue(maxsize=1000)
        self._splitter = LineSplitter()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self.link_error: Exception | None = None
        self.received = 0
        self.rejected: dict[str, int] = {}
        self._thread = threading.Thread(target=self._read_loop, name="console-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self._port.read(512)
            except (serial.SerialException, OSError) as exc:
                self.link_error = exc
                return
            for line in self._splitter.feed(chunk):
                self._handle(line)

    def _handle(self, line: bytes) -> None:
        try:
            frame = frames.parse(line)
        except frames.BadFrame as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            if self._on_bad:
                self._on_bad(exc.reason, line)
            return
        self.received += 1
        if frame.type == "C":
            try:
                self._replies.put_nowait(frame)
            except queue.Full:  # nobody is waiting for replies; drop the oldest view of them
                pass
        if self._on_frame:
            self._on_frame(frame)

    def send(self, text: str) -> None:
        """Send one command line; refuses what the board would refuse anyway (too long, several lines)."""
        text = text.strip()
        if not text:
            raise LinkError("empty command")
        if "\n" in text or "\r" in text:
            raise LinkError("a console command is one line")
        if any(ord(c) < 32 and c != "\t" for c in text):  # Ctrl-C (0x03) would stop the board's firmware
            raise LinkError("a console command cannot hold control characters")
        data = text.encode("ascii", errors="replace") + b"\n"
        if len(data) - 1 > MAX_COMMAND_BYTES:
            raise LinkError(f"command is {len(data) - 1} bytes; the board accepts at most {MAX_COMMAND_BYTES}")
        with self._send_lock:
            try:
                self._port.write(data)
                self._port.flush()
            except (serial.SerialException, OSError) as exc:
                raise LinkError(f"cannot write to {self._port.name}: {exc}") from exc

    def command(self, text: str, timeout_s: float = 3.0) -> Reply:
        """Send `text` and collect `C` frames until the closing `OK` or `ERR`; LinkError on timeout."""
        while True:  # replies to earlier commands (or to another terminal) are not ours
            try:
                self._replies.get_nowait()
            except queue.Empty:
                break
        self.send(text)
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if self.link_error is not None:
                raise LinkError(f"serial link lost while waiting for a reply to {text!r}: {self.link_error}")
            if left <= 0:
                raise LinkError(f"no reply to {text!r} from {self._port.name} within {timeout_s:g} s")
            try:
                frame = self._replies.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            lines.append(frame.text)
            if frame.status in ("OK", "ERR"):
                return Reply(frame.status, lines)
