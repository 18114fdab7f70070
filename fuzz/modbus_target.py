"""Fuzz target: bytes a Modbus TCP client sends → pymodbus's MBAP framer → the edge's request classes and
`ModbusServer.answer` (edge/modbus.py), exactly the path a connection's bytes take in the server.

Oracle, from docs/modbus.md: every answer is to a unit id and function code the client sent; a unit id that is
not configured gets 0B; any function but 03/04 gets 01 (nothing is ever written); a read of a count outside
1..125 gets 03, past the map 02; otherwise the reply carries exactly `count` registers, equal to the map's.
A connection's buffer never exceeds the 516 bytes pymodbus keeps. Function codes 0x81-0xFF are decoded by
pymodbus itself as exception replies (its server answers them 04, device failure): counted apart.
"""

from __future__ import annotations

import random
import struct
import time
from types import SimpleNamespace

from fuzz.engine import Violation, mutate, random_bytes

NAME = "modbus tcp requests (edge)"
_MAX_BUFFER = 516  # pymodbus's transport drops a connection's buffer beyond this
_state: dict = {}


def _setup():
    if _state:
        return _state
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # as the server sets it: bad frames are counted
    from pymodbus.framer import FramerSocket
    from pymodbus.pdu import DecodePDU

    from edge import modbus
    from edge.frames import Reading

    boards = [SimpleNamespace(port="/dev/fz1", modbus_unit=1, profile="coal_face"),
              SimpleNamespace(port="/dev/fz2", modbus_unit=2, profile="plant")]
    cfg = SimpleNamespace(boards=boards, modbus=SimpleNamespace(host="127.0.0.1", port=0, stale_after_s=3.0,
                                                                max_connections=8, idle_timeout_s=60.0))
    owner = modbus.ModbusServer(cfg, lambda port: True)
    now = time.time()
    owner.publish([("/dev/fz1", Reading("b1", 7, 7000, 1.23, "VOL", 12.5, "m3/min", 1.0, "ALARM", 1, 0, 0), now,
                    None)], lambda d: False)
    decoder = DecodePDU(True)
    for cls in modbus.request_classes(owner):
        decoder.register(cls)
    _state.update(owner=owner, framer=FramerSocket(decoder), modbus=modbus)
    return _state


def check(data: bytes) -> str:
    st = _setup()
    owner, framer, modbus = st["owner"], st["framer"], st["modbus"]
    from pymodbus.exceptions import ModbusIOException

    buf = b""
    outcome = "no_frame"
    for i in range(0, len(data), 97):  # arrives in pieces, as over TCP
        buf += data[i:i + 97]
        if len(buf) > _MAX_BUFFER:
            buf = b""
            continue
        while buf:
            try:
                used, pdu = framer.handleFrame(buf, 0, 0)
            except ModbusIOException:  # an undecodable 0x81-0xFF frame: the server answers 01 and drops the buffer
                buf = b""
                outcome = "undecodable_01"
                break
            buf = buf[used:]
            if pdu is None:
                break
            outcome = _answer(owner, modbus, pdu)
            if not used:
                break
    return outcome


def _answer(owner, modbus, pdu) -> str:
    if not hasattr(pdu, "data"):  # 0x81..0xFF: pymodbus decodes an exception reply; its server answers 04
        if not (pdu.function_code > 0x80 and type(pdu).__name__ == "ExceptionResponse"):
            raise Violation(f"function {pdu.function_code:#x} did not reach the edge's request classes")
        return "fc_over_0x80"
    fc, body, unit = pdu.function_code, pdu.data, pdu.dev_id
    rfc, payload = owner.answer(fc, body, unit)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Violation(f"fc {fc} unit {unit} body {body.hex()}: {what} (got {rfc:#x} {payload.hex()})")

    if unit not in owner.units:
        need(rfc == fc | 0x80 and payload == b"\x0b", "an unknown unit id must get 0B")
        return "exception_0b"
    if fc not in (3, 4):
        need(rfc == fc | 0x80 and payload == b"\x01", "every function but 03/04 must get 01")
        return "exception_01"
    if len(body) != 4:
        need(rfc == fc | 0x80 and payload == b"\x03", "a read without address and count must get 03")
        return "exception_03"
    address, count = struct.unpack(">HH", body)
    if not 1 <= count <= 125:
        need(rfc == fc | 0x80 and payload == b"\x03", "count outside 1..125 must get 03")
        return "exception_03"
    if address + count > modbus.SIZE:
        need(rfc == fc | 0x80 and payload == b"\x02", "past the map must get 02")
        return "exception_02"
    need(rfc == fc and len(payload) == 1 + 2 * count and payload[0] == 2 * count, "a read must carry count registers")
    regs = list(struct.unpack(f">{count}H", payload[1:]))
    port, profile = owner.units[unit]
    want = modbus.registers(owner.snapshots.get(port), profile, True, time.time(), owner.stale_after_s)
    skip = {24, 25}  # seconds_since_frame ticks
    need(all(r == w for k, (r, w) in enumerate(zip(regs, want[address:address + count], strict=True))
             if address + k not in skip), "registers differ from the map")
    return "accepted"


# ---------------------------------------------------------------------------------------------- generator

def _adu(rng: random.Random) -> bytes:
    fc = rng.choice([3, 4, 3, 4, 1, 2, 5, 6, 15, 16, 22, 23, 8, 43, 0, 0x80, 0x83, rng.randrange(256)])
    unit = rng.choice([1, 2, 1, 0, 255, rng.randrange(256)])
    if fc in (3, 4) and unit == 1 and rng.random() < 0.5:  # a well-formed read inside the map
        from edge.modbus import SIZE

        address = rng.randrange(SIZE)
        body = struct.pack(">HH", address, rng.randint(1, SIZE - address))
    elif fc in (3, 4) and rng.random() < 0.8:
        body = struct.pack(">HH", rng.choice([0, 3, 30, 31, rng.randrange(65536)]),
                           rng.choice([1, 2, 31, 0, 125, 126, rng.randrange(65536)]))
    else:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
    pdu = bytes([fc]) + body
    length = len(pdu) + 1
    if rng.random() < 0.1:
        length = rng.choice([0, 1, 2, 0xFFFF, rng.randrange(65536)])
    pid = 0 if rng.random() < 0.95 else rng.randrange(65536)
    return struct.pack(">HHHB", rng.randrange(65536), pid, length, unit) + pdu


def generate(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.1:
        return random_bytes(rng, 600)
    data = b"".join(_adu(rng) for _ in range(rng.randint(1, 4)))
    if r < 0.4:
        data = mutate(data, rng)
    if r > 0.95:
        data = data[:rng.randrange(max(1, len(data)))]  # truncated
    return data
