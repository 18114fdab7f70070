"""Fuzz target: one serial line into the edge's frame parser (edge.frames.parse), against docs/protocol.md.

Oracle, written from the protocol document and not from the parser: a line the document calls valid must
be accepted with the same values; a line the parser accepts must meet every documented format and range
(so "nan", "1e3", a device id with a space, a relay of 2 or a wrong checksum can never become a reading).
"""

from __future__ import annotations

import binascii
import math
import random
import re

from edge.frames import BadFrame, format_reading, parse, seal
from fuzz.engine import Violation, mutate, random_bytes

NAME = "serial frames (edge)"

_DEV = r"[A-Za-z0-9_-]{1,16}"
_UINT = r"0|[1-9][0-9]*"
_STATES = ("WARMUP", "NORMAL", "WARNING", "ALARM", "POWEROFF", "FAULT")
STRICT_R = re.compile(
    rf"\$FD1,R,({_DEV}),({_UINT}),({_UINT}),(-?[0-9]+\.[0-9]{{2}})?,(VOL|LEL),([0-9]+(?:\.[0-9]{{1,3}})?),"
    rf"(L/min|m3/min),([0-9]+(?:\.[0-9]{{1,3}})?),({'|'.join(_STATES)}),([01]),([0-9a-f]{{4}}),([0-9a-f]{{2}})")
STRICT_EC = re.compile(rf"\$FD1,([EC]),({_DEV}),({_UINT}),({_UINT}),([A-Z0-9_]{{1,16}}),([ -~]*)")
_NUM = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_PRINTABLE_NO_MARKS = re.compile(r"[ -#%-)+-~]*")  # printable ASCII without '$' and '*'


def strict_valid(line: bytes) -> bool:
    """What docs/protocol.md calls a valid frame (lowercase checksum, board-style numbers)."""
    if len(line) > 127 or not line.isascii():
        return False
    text = line.decode("ascii")
    star = text.rfind("*")
    body, crc = text[:star], text[star + 1:]
    if star < 0 or not re.fullmatch(r"[0-9a-f]{8}", crc) or int(crc, 16) != binascii.crc32(body.encode()):
        return False
    m = STRICT_R.fullmatch(body)
    if m:
        dev, seq, up, ch4, _u, flow, _fu, total = m.groups()[:8]
        return (int(seq) < 2**32 and int(up) < 2**63 and (ch4 is None or -0.5 <= float(ch4) <= 100.0)
                and float(flow) < 1e7 and float(total) < 1e12)
    m = STRICT_EC.fullmatch(body)
    if m:
        kind, dev, seq, up, code, rest = m.groups()
        if kind == "C" and code not in ("OK", "ERR", "MORE"):
            return False
        return int(seq) < 2**32 and int(up) < 2**63 and "*" not in rest and "$" not in rest
    return False


def check_accepted(line: bytes, frame) -> None:
    """An accepted line meets every documented format (the lenient side: any decimal places, upper-case CRC)."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Violation(f"accepted, but {what}")

    if line[-1:] == b"\n":  # the limit counts the bytes before the terminator (edge/frames.py: up to 128)
        line = line[:-2] if line[-2:-1] == b"\r" else line[:-1]
    need(len(line) <= 128 and line.isascii(), "over 128 bytes or not ASCII")
    text = line.decode("ascii")
    star = text.rfind("*")
    need(text.startswith("$FD1,") and star > 0, "no '$FD1,' start or no '*'")
    need(int(text[star + 1:], 16) == binascii.crc32(line[:star]), "checksum wrong")
    fields = text[:star].split(",")
    need(re.fullmatch(_DEV, frame.device) is not None, f"device id {frame.device!r}")
    need(0 <= frame.seq < 2**32 and 0 <= frame.uptime_ms < 2**63, "seq or uptime out of range")
    need(fields[3] == str(frame.seq) or fields[3].lstrip("0") == str(frame.seq).lstrip("0"), "seq changed")
    if frame.type == "R":
        need(len(fields) == 14, "reading without 13 fields")
        for i in (5, 7, 9):
            need(fields[i] == "" and i == 5 or _NUM.fullmatch(fields[i]) is not None,
                 f"field {i} {fields[i]!r} is not a plain decimal")
        need(frame.ch4 is None or (math.isfinite(frame.ch4) and -0.5 <= frame.ch4 <= 100.0), f"ch4 {frame.ch4}")
        need(math.isfinite(frame.flow) and 0 <= frame.flow < 1e7, f"flow {frame.flow}")
        need(math.isfinite(frame.total) and 0 <= frame.total < 1e12, f"total {frame.total}")
        need(frame.state in _STATES and frame.relay in (0, 1), "state or relay")
        need(frame.unit in ("VOL", "LEL") and frame.flow_unit in ("L/min", "m3/min"), "unit")
        need(0 <= frame.faults <= 0xFFFF and 0 <= frame.flags <= 0xFF, "faults/flags")
        need(re.fullmatch(r"[0-9a-fA-F]{4}", fields[12]) and re.fullmatch(r"[0-9a-fA-F]{2}", fields[13]),
             "faults/flags not hex")
        again = parse(format_reading(frame))  # what the edge stores is what the board meant
        need(again._replace(ch4=None, flow=0.0, total=0.0) == frame._replace(ch4=None, flow=0.0, total=0.0),
             "round trip changed the reading")
    else:
        need(frame.type in ("E", "C") and len(fields) >= 7, "event/reply fields")
        need(_PRINTABLE_NO_MARKS.fullmatch(frame.text) is not None, f"text {frame.text[:30]!r}")
        if frame.type == "E":
            need(re.fullmatch(r"[A-Z0-9_]{1,16}", frame.code) is not None, f"event code {frame.code!r}")
        else:
            need(frame.status in ("OK", "ERR", "MORE"), "reply status")


def check(data: bytes) -> str:
    valid = strict_valid(data)
    try:
        frame = parse(data)
    except BadFrame as exc:
        if valid:
            raise Violation(f"a valid frame was rejected as {exc}") from None
        return exc.reason
    check_accepted(data, frame)
    return "accepted"


# ---------------------------------------------------------------------------------------------- generator

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def _uint(rng: random.Random, hi: int) -> str:
    return str(rng.choice([0, 1, hi, hi + 1, rng.randint(0, hi), rng.randint(0, 1000)]))


def _valid_fields(rng: random.Random) -> list[str]:
    dev = "".join(rng.choice(_ID_CHARS) for _ in range(rng.randint(1, 16)))
    if rng.random() < 0.02:
        dev = rng.choice(["-", "_", "--", "_-_", "a"])
    head = ["$FD1", "", dev, _uint(rng, 2**32 - 1), _uint(rng, 2**63 - 1)]
    kind = rng.choice("RRREC")
    head[1] = kind
    if kind == "R":
        ch4 = "" if rng.random() < 0.1 else f"{rng.uniform(-0.5, 100.0):.2f}"
        return head + [ch4, rng.choice(["VOL", "LEL"]), f"{rng.uniform(0, 9999999):.3f}", rng.choice(["L/min", "m3/min"]),
                       f"{rng.uniform(0, 1e11):.3f}", rng.choice(_STATES), rng.choice("01"),
                       f"{rng.randrange(65536):04x}", f"{rng.randrange(256):02x}"]
    text = "".join(rng.choice(" ,abcXYZ019-_.:>=%()") for _ in range(rng.randint(0, 30)))
    if kind == "E":
        code = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") for _ in range(rng.randint(1, 16)))
        return head + [code, text]
    return head + [rng.choice(["OK", "ERR", "MORE"]), text]


_FIELD_NOISE = ["", "-", "nan", "NaN", "inf", "-inf", "1e3", "1_0", " 1", "1 ", "+1", "0x1f", "１", "٣", "00.5",
                "-0.00", "100.01", "-0.51", "10000000", "4294967296", "9223372036854775808", "abc", "*", "$",
                "FFFF", "fffff", "2", "ALARMS", "vol", "L/MIN", "\t", "a" * 17, "é", ".", "1.", ".5"]


def generate(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.08:
        return random_bytes(rng)
    fields = _valid_fields(rng)
    if r < 0.6:  # structured: change some fields, then seal with a correct checksum
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            i = rng.randrange(len(fields))
            fields[i] = rng.choice(_FIELD_NOISE) if rng.random() < 0.7 else mutate(fields[i].encode(), rng).decode(
                "latin-1")
        if rng.random() < 0.1:
            fields.insert(rng.randrange(len(fields)), rng.choice(_FIELD_NOISE))
        if rng.random() < 0.05 and len(fields) > 1:
            del fields[rng.randrange(1, len(fields))]
        body = ",".join(fields).encode("latin-1", "replace")
        crc = binascii.crc32(body)
        tail = rng.choice([b"*%08x" % crc, b"*%08x" % crc, b"*%08X" % crc, b"*%07x" % crc, b"", b"*%08x" % (crc ^ 1)])
        return body + tail + rng.choice([b"", b"\n", b"\r\n", b"\r"])
    return mutate(seal(",".join(fields).encode("latin-1"))[:-1], rng)


def reseal(data: bytes) -> bytes:
    """Give a mutated line a correct checksum again (for the coverage-guided run)."""
    body = data.rstrip(b"\r\n")
    star = body.rfind(b"*")
    return seal(body[:star] if star >= 0 else body)[:-1]
