"""Modbus TCP server: every board's latest reading as read-only registers for a plant's DCS or PLC (docs/modbus.md).

The pipeline thread hands each batch's readings to `ModbusServer.publish` (one dict assignment per reading:
the newest `Snapshot` of each port); the server, on its own thread and asyncio loop, only reads those
snapshots and scales them into registers when a request comes. Nothing here can block the pipeline, and nothing
a Modbus client sends can change a board, an alert or the edge: functions 03 and 04 read, every other function
is answered with exception 01.

pymodbus (>= 3.16) brings the TCP transport and the MBAP framing; its datastore classes are not used (their API
changed between 3.x minor versions): every function code is registered through `custom_pdu` as one request
class whose answer comes from `ModbusServer.answer`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from edge.errors import ConfigError
from edge.frames import FAULT_NAMES, FLAG_CALIBRATION_DUE, FLAG_LOW_FLOW, STATES, Aux, Reading

log = logging.getLogger("firedamp.modbus")

# name: (unit, warning, alarm, power-off) in the profile's unit, as firmware/alarm.py PROFILES (in hundredths
# there); tests/edge/test_modbus.py checks the two agree. The frames do not carry the levels.
PROFILES: dict[str, tuple[str, float, float, float]] = {
    "coal_face": ("VOL", 1.00, 1.00, 1.50),
    "return_airway": ("VOL", 1.00, 1.00, 1.00),
    "heading_face": ("VOL", 1.00, 1.00, 1.50),
    "intake_air": ("VOL", 0.50, 0.50, 0.50),
    "drainage": ("VOL", 2.50, 2.50, 2.50),
    "plant": ("LEL", 10.0, 20.0, 20.0),
}
PROFILE_CODES = {name: i for i, name in enumerate(PROFILES)}
UNIT_CODES = {"VOL": 1, "LEL": 2}
UNIT_SCALE = {"VOL": 100, "LEL": 10}  # % vol × 100, % LEL × 10
FLOW_UNIT_CODES = {"L/min": 1, "m3/min": 2}
STATE_CODES = {s: i for i, s in enumerate(STATES)}  # WARMUP 0 … FAULT 5, the firmware's own numbering
NO_VALUE = 0x8000  # int16 -32768: no valid value
NO_STATE = 0xFFFF
NO_FRAME = 0xFFFFFFFF

# The register map: (address, name, type, scale, unit/meaning). docs/modbus.md shows the same table and
# tests/edge/test_modbus.py checks that it does. 32-bit values: high word first (big-endian word order).
MAP: tuple[tuple[int, str, str, str, str], ...] = (
    (0, "ch4", "int16", "×100 (% vol) or ×10 (% LEL), see ch4_unit", "-32768 = no valid reading"),
    (1, "ch4_unit", "uint16", "", "1 = % vol CH4, 2 = % LEL"),
    (2, "state", "uint16", "", ", ".join(f"{i} {s}" for s, i in STATE_CODES.items()) + "; 65535 = no frame yet"),
    (3, "data_valid", "uint16", "", "1 = live: a reading within stale_after_s (3 s), link up, not FAULT or "
                                    "WARMUP, CH4 valid; else 0"),
    (4, "faults", "uint16", "bits", "bit " + ", ".join(f"{i} {n}" for i, n in enumerate(FAULT_NAMES))),
    (5, "flags", "uint16", "bits", "bit 0 calibration due, 1 low flow, 2 acknowledgement awaited, 3 console unlocked, "
                                   "4 P/T input failed, 5 battery low"),
    (6, "relay", "uint16", "", "1 = power allowed, 0 = power cut"),
    (7, "calibration_due", "uint16", "", "1 = calibration due"),
    (8, "low_flow", "uint16", "", "1 = low/no-flow alarm (ventilation)"),
    (9, "flow_unit", "uint16", "", "1 = L/min, 2 = m3/min"),
    (10, "flow", "uint32", "×100", "flow_unit"),
    (12, "standard_flow", "uint32", "×100", "flow_unit at base conditions (NL/min or Nm3/min); 0 when not valid"),
    (14, "standard_flow_valid", "uint16", "", "1 = standard_flow is live: an A frame within stale_after_s, link up, "
                                              "P and T valid"),
    (15, "model_score", "uint16", "×100", "anomaly score of the last scored sample (advisory); 0 = none yet"),
    (16, "model_threshold", "uint16", "×100", "the model's threshold (score above it = unusual)"),
    (17, "advisory", "uint16", "", "1 = an advisory model alert (anomaly or forecast) is raised"),
    (18, "forecast", "int16", "×100", "% vol CH4 the model expects at most over its horizon; -32768 = none"),
    (19, "level_unit", "uint16", "", "unit of the three levels: 1 = % vol (×100), 2 = % LEL (×10)"),
    (20, "warning_level", "int16", "×100 / ×10, see level_unit", "from [[boards]] profile in edge.toml"),
    (21, "alarm_level", "int16", "×100 / ×10, see level_unit", "from [[boards]] profile in edge.toml"),
    (22, "poweroff_level", "int16", "×100 / ×10, see level_unit", "from [[boards]] profile in edge.toml"),
    (23, "profile", "uint16", "", "0 coal_face, 1 return_airway, 2 heading_face, 3 intake_air, 4 drainage, 5 plant"),
    (24, "seconds_since_frame", "uint32", "s", "since the last reading reached the edge; 4294967295 = none yet"),
    (26, "heartbeat", "uint32", "", "+1 with every reading received from the board (wraps at 2^32)"),
    (28, "seq", "uint32", "", "the board's sequence number of its last reading"),
    (30, "link_up", "uint16", "", "1 = the serial port is open"),
    # from the board's A frames (docs/protocol.md), for boards with a P/T input or a battery
    (31, "pressure", "uint32", "×100", "kPa absolute at the flow meter; 4294967295 = none"),
    (33, "temperature", "int16", "×100", "°C at the flow meter; -32768 = none"),
    (34, "standard_total", "uint32", "×1", "NL or Nm3 (as standard_flow), whole units; 4294967295 = none"),
    (36, "battery_mv", "uint16", "mV", "battery voltage; 65535 = none"),
    (37, "run_time_left", "uint32", "min", "estimated run time left on the battery; 4294967295 = unknown"),
    (39, "aux_valid", "uint16", "", "1 = an A frame within stale_after_s and link up (registers 31-38 are live)"),
)
SIZE = 40  # registers per unit id: an address at or past it is exception 02

FUNCTION_NAMES = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers",
                  4: "read_input_registers", 5: "write_single_coil", 6: "write_single_register",
                  15: "write_multiple_coils", 16: "write_multiple_registers", 22: "mask_write_register",
                  23: "read_write_multiple_registers"}
EXCEPTION_NAMES = {1: "illegal_function", 2: "illegal_address", 3: "illegal_value", 4: "device_failure",
                   11: "gateway_no_response"}
MAX_READ = 125  # registers per request (the Modbus limit: 250 data bytes)


class Snapshot(NamedTuple):
    """What the server knows of one board: its last reading, when it came, the last model result, counters."""

    reading: Reading
    t: float  # arrival time (time.time())
    result: Any  # last non-None model result (score, threshold, forecast) or None
    heartbeat: int
    advisory: bool


def _int16(v: float) -> int:
    return max(-32767, min(32767, round(v))) & 0xFFFF


def _u16(v: float) -> int:
    return max(0, min(65535, round(v)))


def _u32(v: float) -> tuple[int, int]:
    n = max(0, min(0xFFFFFFFF, int(v)))
    return n >> 16, n & 0xFFFF


def registers(s: Snapshot | None, profile: str, link_up: bool, now: float, stale_after_s: float,
              aux: tuple[Aux, float] | None = None) -> list[int]:
    """One unit's SIZE registers (see MAP) from its snapshot and last A frame (and its arrival time) at time `now`.
    Pure; the tests read it directly."""
    unit, warn, alarm, off = PROFILES[profile]
    lscale = UNIT_SCALE[unit]
    out = [0] * SIZE
    out[0], out[2], out[18] = NO_VALUE, NO_STATE, NO_VALUE
    out[19], out[20], out[21], out[22] = UNIT_CODES[unit], _int16(warn * lscale), _int16(alarm * lscale), \
        _int16(off * lscale)
    out[23] = PROFILE_CODES[profile]
    out[24], out[25] = NO_FRAME >> 16, NO_FRAME & 0xFFFF
    out[30] = int(link_up)
    _aux_registers(out, aux, link_up, now, stale_after_s)
    if s is None:
        out[1] = UNIT_CODES[unit]
        return out
    r = s.reading
    age = now - s.t
    if r.ch4 is not None:
        out[0] = _int16(r.ch4 * UNIT_SCALE[r.unit])
    out[1] = UNIT_CODES[r.unit]
    out[2] = STATE_CODES[r.state]
    out[3] = int(age <= stale_after_s and link_up and r.ch4 is not None and r.state not in ("FAULT", "WARMUP"))
    out[4], out[5], out[6] = r.faults, r.flags, r.relay
    out[7], out[8] = int(bool(r.flags & FLAG_CALIBRATION_DUE)), int(bool(r.flags & FLAG_LOW_FLOW))
    out[9] = FLOW_UNIT_CODES[r.flow_unit]
    out[10], out[11] = _u32(round(r.flow * 100))
    res = s.result
    if res is not None:
        out[15], out[16] = _u16(float(res.score) * 100), _u16(float(res.threshold) * 100)
        f = float(res.forecast)
        if not math.isnan(f) and r.unit == "VOL":
            out[18] = _int16(f * 100)
    out[17] = int(s.advisory)
    out[24], out[25] = _u32(max(0.0, age))
    out[26], out[27] = _u32(s.heartbeat & 0xFFFFFFFF)
    out[28], out[29] = _u32(r.seq)
    return out


def _aux_registers(out: list[int], aux: tuple[Aux, float] | None, link_up: bool, now: float,
                   stale_after_s: float) -> None:
    """Registers 12-14 and 31-39 from the board's last A frame; an empty field is its `none` value, never 0."""
    out[31], out[32], out[33] = NO_FRAME >> 16, NO_FRAME & 0xFFFF, NO_VALUE
    out[34], out[35], out[36], out[37], out[38] = NO_FRAME >> 16, NO_FRAME & 0xFFFF, 0xFFFF, NO_FRAME >> 16, \
        NO_FRAME & 0xFFFF
    if aux is None:
        return
    a, t = aux
    live = int(now - t <= stale_after_s and link_up)
    if a.std_flow is not None:
        out[12], out[13] = _u32(round(a.std_flow * 100))
        out[14] = live
    if a.p_kpa is not None:
        out[31], out[32] = _u32(round(a.p_kpa * 100))
    if a.t_c is not None:
        out[33] = _int16(a.t_c * 100)
    if a.std_total is not None:
        out[34], out[35] = _u32(min(NO_FRAME - 1, int(a.std_total)))
    if a.battery_mv is not None:
        out[36] = min(0xFFFE, a.battery_mv)
    if a.run_min is not None:
        out[37], out[38] = _u32(a.run_min)
    out[39] = live


# ---------------------------------------------------------------------------------------------- the server

class ModbusServer:
    """The read-only Modbus TCP server of the edge: `start()`, `publish(...)` from the pipeline, `stop()`."""

    def __init__(self, cfg: Any, link_up: Callable[[str], bool]):
        m = cfg.modbus
        self.host, self.port = m.host, m.port
        self.stale_after_s = m.stale_after_s
        self.max_connections = m.max_connections
        self.idle_timeout_s = m.idle_timeout_s
        self.units: dict[int, tuple[str, str]] = {b.modbus_unit: (b.port, b.profile) for b in cfg.boards
                                                  if b.modbus_unit}
        self.link_up = link_up
        self.snapshots: dict[str, Snapshot] = {}  # port -> newest; written by the pipeline thread only
        self.aux: dict[str, tuple[Aux, float]] = {}  # port -> newest A frame and its arrival time (likewise)
        self.requests: dict[str, int] = {}
        self.exceptions: dict[str, int] = {}
        self.connections = 0
        self.connections_closed = 0  # idle too long, or the longest-idle one when max_connections was reached
        self.errors = 0
        self._handlers: dict[Any, tuple[bool, float]] = {}  # open connection -> (has sent bytes, loop time of last)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="modbus", daemon=True)
        self._check_bind()

    def _check_bind(self) -> None:
        """Fail at start with the reason (a port under 1024 needs root or CAP_NET_BIND_SERVICE), not later."""
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
            with socket.socket(info[0], socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(info[4])
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EACCES and self.port < 1024:
                hint = (" (a port under 1024 needs root or CAP_NET_BIND_SERVICE: deploy/firedamp.service grants it "
                        "with AmbientCapabilities; or use a port >= 1024)")
            raise ConfigError(f"[modbus] cannot listen on {self.host}:{self.port}: "
                              f"{exc.strerror or exc}{hint}") from exc

    # ------------------------------------------------------------------------------------------ pipeline side

    def publish(self, snapshots: list[tuple[str, Reading, float, Any]], advisory: Callable[[str], bool],
                aux: Iterable[tuple[str, Aux, float]] = ()) -> None:
        """A batch's readings (port, reading, time, model result) → the newest snapshot per port; `advisory(device)`
        says whether a model alert is raised now; `aux`: the batch's A frames (port, frame, time). Called by the
        pipeline thread after the batch's alerts were decided; dict assignments only, read by the server thread
        without a lock (each Snapshot and (Aux, time) is immutable)."""
        for port, frame, t in aux:
            self.aux[port] = (frame, t)
        if not snapshots:
            return
        # only each port's newest reading becomes a Snapshot (a batch holds many per board): its newest entry, its
        # newest model result and its number of readings are found by two comprehensions and a Counter (later
        # entries overwrite earlier ones), not one Snapshot per reading
        newest = {s[0]: s for s in snapshots}
        scored = {s[0]: s[3] for s in snapshots if s[3] is not None}
        counts = Counter(s[0] for s in snapshots)
        cur = self.snapshots
        for port, (_, r, t, _res) in newest.items():
            prev = cur.get(port)
            res = scored.get(port, None if prev is None else prev.result)  # else the one held
            cur[port] = Snapshot(r, t, res, counts[port] + (0 if prev is None else prev.heartbeat), advisory(r.device))

    # ------------------------------------------------------------------------------------------ server side

    def answer(self, fc: int, data: bytes, unit: int) -> tuple[int, bytes]:
        """One request PDU → (function code of the reply, its data). Read-only: 03 and 04 only."""
        name = FUNCTION_NAMES.get(fc, "other")
        self.requests[name] = self.requests.get(name, 0) + 1
        board = self.units.get(unit)
        if board is None:
            return fc | 0x80, b"\x0b"  # no such board behind this gateway
        if fc not in (3, 4):
            return fc | 0x80, b"\x01"  # every write (05, 06, 15, 16, 22, 23) and everything else
        if len(data) != 4:
            return fc | 0x80, b"\x03"
        address, count = struct.unpack(">HH", data)
        if not 1 <= count <= MAX_READ:
            return fc | 0x80, b"\x03"
        if address + count > SIZE:
            return fc | 0x80, b"\x02"
        port, profile = board
        try:
            regs = registers(self.snapshots.get(port), profile, self.link_up(port), time.time(), self.stale_after_s,
                             self.aux.get(port))
        except Exception:  # a bug must not look like a value: the client gets 04, the log says once
            self.errors += 1
            if self.errors == 1:
                log.exception("modbus: building the registers of unit %d failed (further failures counted)", unit)
            return fc | 0x80, b"\x04"
        return fc, struct.pack(f">B{count}H", 2 * count, *regs[address:address + count])

    def health(self) -> dict[str, Any]:
        return {"modbus_requests": dict(self.requests), "modbus_exceptions": dict(self.exceptions),
                "modbus_connections": self.connections, "modbus_connections_closed": self.connections_closed}

    def _count_reply(self, sending: bool, pdu: Any) -> Any:
        if sending and pdu.function_code & 0x80:
            code = getattr(pdu, "exception_code", 0) or (pdu.payload[0] if getattr(pdu, "payload", b"") else 0)
            name = EXCEPTION_NAMES.get(code, "other")
            self.exceptions[name] = self.exceptions.get(name, 0) + 1
        return pdu

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            raise ConfigError(f"[modbus] the server on {self.host}:{self.port} did not start: "
                              f"{self._failure or 'timed out'}")
        log.info("Modbus TCP on %s:%d: unit(s) %s, read-only (03/04), data-valid after %.1f s of silence drops to 0",
                 self.host, self.port, ", ".join(f"{u}={p}" for u, (p, _) in sorted(self.units.items())),
                 self.stale_after_s)

    def stop(self) -> None:
        loop, fut = self._loop, self._stopping
        if loop is not None and fut is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))
            self._thread.join(10)

    def _main(self) -> None:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every bad frame; we count them
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it as a ConfigError
            self._failure = exc
            if self._ready.is_set():
                log.exception("modbus: the server stopped")
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        server = _make_server(self)
        self._stopping = asyncio.get_running_loop().create_future()
        await server.serve_forever(background=True)
        self._ready.set()
        sweeper = asyncio.create_task(self._sweep())
        try:
            await self._stopping
        finally:
            sweeper.cancel()
            await server.shutdown()

    async def _sweep(self) -> None:
        """Close connections idle past idle_timeout_s (1,000 idle sockets must not keep the edge's fds)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout_s / 4))
            now = loop.time()
            for h, (_spoke, seen) in list(self._handlers.items()):
                if now - seen > self.idle_timeout_s:
                    self._close(h)

    # called on the server's loop by _Handler
    def _opened(self, h: Any) -> None:
        loop = asyncio.get_running_loop()
        if len(self._handlers) >= self.max_connections:
            # first those that never sent a byte (oldest first), then the longest-idle: a flood of idle
            # connections pushes out its own kind, and a DCS that polls keeps its place or gets back in
            self._close(min(self._handlers, key=self._handlers.__getitem__))
        self._handlers[h] = (False, loop.time())
        self.connections = len(self._handlers)

    def _seen(self, h: Any) -> None:
        if h in self._handlers:
            self._handlers[h] = (True, asyncio.get_running_loop().time())

    def _gone(self, h: Any) -> None:
        self._handlers.pop(h, None)
        self.connections = len(self._handlers)

    def _close(self, h: Any) -> None:
        self._handlers.pop(h, None)
        self.connections = len(self._handlers)
        self.connections_closed += 1
        transport = getattr(h, "transport", None)
        if transport is not None:
            transport.abort()


def request_classes(owner: ModbusServer) -> list[type]:
    """One pymodbus request class per function code 0x00-0x80, each answered by `owner.answer` (fuzz/ uses them
    with pymodbus's own MBAP framer, as the server does)."""
    from pymodbus.pdu import ModbusPDU

    class Reply(ModbusPDU):
        def __init__(self, fc: int, payload: bytes):
            super().__init__()
            self.function_code = fc
            self.payload = payload
            self.exception_code = payload[0] if fc & 0x80 and payload else 0

        def encode(self) -> bytes:
            return self.payload

    class Request(ModbusPDU):
        data = b""

        def decode(self, data: bytes) -> None:
            self.data = bytes(data)

        def encode(self) -> bytes:
            return self.data

        async def datastore_update(self, context: Any, device_id: int) -> Any:
            fc, payload = owner.answer(self.function_code, self.data, device_id)
            return Reply(fc, payload)

    return [type(f"Request{fc:02x}", (Request,), {"function_code": fc}) for fc in range(0x81)]


def _make_server(owner: ModbusServer) -> Any:
    """A pymodbus ModbusTcpServer whose every function code is one request class answered by `owner`."""
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer
    from pymodbus.server.requesthandler import ServerRequestHandler
    from pymodbus.simulator import SimData, SimDevice

    class Handler(ServerRequestHandler):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            owner._opened(self)

        def data_received(self, data: bytes) -> None:
            owner._seen(self)
            super().data_received(data)

        def callback_disconnected(self, exc: Exception | None) -> None:
            owner._gone(self)
            super().callback_disconnected(exc)

    class Server(ModbusTcpServer):
        def callback_new_connection(self) -> Any:
            return Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)

    # the device passed here is never read: every request class answers from owner.answer
    return Server(SimDevice(0, simdata=[SimData(0)]), framer=FramerType.SOCKET, address=(owner.host, owner.port),
                  trace_pdu=owner._count_reply, custom_pdu=request_classes(owner))
