"""Link stage: one thread per serial port that owns the port, reconnects with backoff and splits lines.

Transport and protocol are apart (pyserial's `serial.threaded` shape): `PortReader` opens, reads, closes
and reopens the port; `LineSplitter` turns bytes into lines and enforces the maximum line length (an
over-long line is passed on cut to `max_len + 1` bytes so the frames stage counts it as `too_long`, and the
rest up to the next newline is dropped). Port errors and handler errors are caught separately: a bug in a
handler is logged and counted, it never closes the port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from edge.frames import MAX_LINE_BYTES

log = logging.getLogger("firedamp.link")


class LineSplitter:
    """Bytes in, complete lines out (newline stripped); never holds more than `max_len + 1` bytes."""

    def __init__(self, max_len: int = MAX_LINE_BYTES):
        self.max_len = max_len
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes until the next newline
        self.too_long = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        buf = self._buf
        start = 0
        while True:
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if not self._skipping:
                room = self.max_len + 2 - len(buf)  # +1 for a '\r' before the newline, +1 to show "too long"
                buf += chunk[:room]
                if len(buf) > self.max_len + 1:
                    self.too_long += 1
                    lines.append(bytes(buf[: self.max_len + 1]))
                    buf.clear()
                    self._skipping = True
            if nl < 0:
                return lines
            if self._skipping:
                self._skipping = False
            else:
                if buf[-1:] == b"\r":
                    del buf[-1]
                lines.append(bytes(buf))
                buf.clear()
            start = nl + 1

    def reset(self) -> int:
        """Drop a partial line (after a reconnect its start is gone); returns how many bytes were dropped."""
        n = len(self._buf)
        self._buf.clear()
        self._skipping = False
        return n


@dataclass
class LinkStats:
    bytes: int = 0
    lines: int = 0
    reconnects: int = 0
    open_failures: int = 0
    partial_lines_dropped: int = 0
    handler_errors: int = 0
    up: bool = False


class PortReader(threading.Thread):
    """Reads one port until `stop()`; on any serial error closes it and reopens with backoff.

    `on_line(port, line, t)` gets every line (without newline; `t` = time.time() when it arrived);
    `on_status(port, up, detail)` gets link-up / link-down transitions. Both run on this thread.
    Backoff starts at `retry_min_s` and doubles to `retry_max_s`, so a replugged device is read again
    within `retry_max_s` + open time (the issue asks for ≤ 2 s; default max 1 s).
    """

    def __init__(self, port: str, on_line: Callable[[str, bytes, float], None],
                 on_status: Callable[[str, bool, str], None], baudrate: int = 115200,
                 max_line: int = MAX_LINE_BYTES, retry_min_s: float = 0.05, retry_max_s: float = 1.0):
        super().__init__(name=f"link {port}", daemon=True)
        self.port = port
        self.baudrate = baudrate
        self.on_line = on_line
        self.on_status = on_status
        self.splitter = LineSplitter(max_line)
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.stats = LinkStats()
        self._stop_event = threading.Event()
        self._serial: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._reported: bool | None = None

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def write(self, data: bytes) -> None:
        """Send bytes to the board (console commands); raises LinkError when the port is not open."""
        from edge.errors import LinkError

        with self._write_lock:
            ser = self._serial
            if ser is None:
                raise LinkError(f"{self.port}: not connected")
            try:
                ser.write(data)
            except (serial.SerialException, OSError) as exc:
                raise LinkError(f"{self.port}: write failed: {exc}") from exc

    def _status(self, up: bool, detail: str) -> None:
        self.stats.up = up
        if self._reported is up:
            return
        self._reported = up
        try:
            self.on_status(self.port, up, detail)
        except Exception:  # a handler bug must not take the link down
            self.stats.handler_errors += 1
            log.exception("%s: status handler failed", self.port)

    def _open(self) -> serial.SerialBase:
        ser = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05, do_not_open=True)
        if isinstance(ser, serial.Serial) and hasattr(ser, "exclusive"):
            ser.exclusive = True  # another process reading the same board would steal half the lines
        # bytes already waiting are kept: they are frames the board sent while nobody read the port (the edge was
        # stopped), with sequence numbers like any other. pyserial's open() flushes the input (tcflush), so that
        # one call is made a no-op for the open only.
        if hasattr(ser, "_reset_input_buffer"):
            ser._reset_input_buffer = lambda: None
        try:
            ser.open()
        finally:
            ser.__dict__.pop("_reset_input_buffer", None)
        return ser

    def run(self) -> None:
        delay = self.retry_min_s
        while not self._stop_event.is_set():
            try:
                ser = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.open_failures += 1
                self._status(False, f"cannot open: {exc}")
                self._stop_event.wait(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if self._reported is False:
                self.stats.reconnects += 1
            with self._write_lock:
                self._serial = ser
            self._status(True, "open")
            delay = self.retry_min_s
            detail = self._read(ser)
            with self._write_lock:
                self._serial = None
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass
            dropped = self.splitter.reset()
            if dropped:
                self.stats.partial_lines_dropped += 1
            if detail:
                self._status(False, detail)
                self._stop_event.wait(delay)

    def _read(self, ser: serial.SerialBase) -> str:
        """Read until stop (returns "") or a port error (returns what went wrong)."""
        stop = self._stop_event
        while not stop.is_set():
            try:
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial can raise it on a port closed under it
                return f"read failed: {exc}"
            if not data:
                continue
            t = time.time()
            self.stats.bytes += len(data)
            for line in self.splitter.feed(data):
                self.stats.lines += 1
                try:
                    self.on_line(self.port, line, t)
                except Exception:
                    self.stats.handler_errors += 1
                    log.exception("%s: line handler failed", self.port)
        return ""
