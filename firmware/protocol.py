"""Wire protocol v1 frames (docs/protocol.md): R readings, E events, C console replies, sealed with CRC-32.

Numbers arrive as integers in fixed point (gas in hundredths, flow and total in thousandths) so the
board formats them exactly without floats (RP2040 floats are 32-bit and boxed on the heap).
"""

import binascii

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc,no-redef]
        return x

MAX_LINE = const(128)  # bytes including the trailing newline
MAX_COMMAND = const(64)

_FLOW_MAX = 9999999999           # thousandths: flow < 10^7
_TOTAL_MAX = 999999999999999     # thousandths: total < 10^12
STATES = ("WARMUP", "NORMAL", "WARNING", "ALARM", "POWEROFF", "FAULT")
FAULT_NAMES = ("LINE", "RAIL", "RANGE", "STUCK", "NOFLOW", "SETTINGS", "SELFTEST", "POWER", "LOOP")


def fixed(value, places):
    """Format an integer in fixed point: fixed(-50, 2) == "-0.50", fixed(1250000, 3) == "1250.000"."""
    sign = "-" if value < 0 else ""
    if value < 0:
        value = -value
    if places == 2:
        return "%s%d.%02d" % (sign, value // 100, value % 100)
    return "%s%d.%03d" % (sign, value // 1000, value % 1000)


def seal(body):
    """body (str, starting "$FD1,") -> the full line with "*crc32" and "\\n"."""
    return "%s*%08x\n" % (body, binascii.crc32(body.encode()) & 0xFFFFFFFF)


def reading(device, seq, uptime_ms, ch4_x100, unit, flow_x1000, flow_unit, total_x1000, state, relay,
            faults, flags):
    """An R frame. ch4_x100 None = no valid reading (empty field). Values are clamped to the ranges of
    docs/protocol.md (the edge rejects a frame outside them); a RANGE fault says the reading is off scale."""
    if ch4_x100 is not None:
        ch4_x100 = -50 if ch4_x100 < -50 else (10000 if ch4_x100 > 10000 else ch4_x100)
    if flow_x1000 > _FLOW_MAX:
        flow_x1000 = _FLOW_MAX
    if total_x1000 > _TOTAL_MAX:
        total_x1000 = total_x1000 % (_TOTAL_MAX + 1)  # a totaliser rolls over, like a meter's register
    ch4 = "" if ch4_x100 is None else fixed(ch4_x100, 2)
    return seal("$FD1,R,%s,%d,%d,%s,%s,%s,%s,%s,%s,%d,%04x,%02x" % (
        device, seq, uptime_ms, ch4, unit, fixed(flow_x1000, 3), flow_unit, fixed(total_x1000, 3),
        state, relay, faults, flags))


def text(kind, device, seq, uptime_ms, code, message):
    """An E (event; code) or C (console reply; code = OK/ERR/MORE) frame; message is cut to fit the line."""
    head = "$FD1,%s,%s,%d,%d,%s," % (kind, device, seq, uptime_ms, code)
    room = MAX_LINE - 10 - len(head)  # "*" + 8 hex + "\n"
    message = clean(message)
    if len(message) > room:
        message = message[: room - 3] + "..."
    return seal(head + message)


def clean(message):
    """Free text may not hold "*", "$" or control characters (the CRC starts after the last "*")."""
    for ch in message:
        if ch == "*" or ch == "$" or ord(ch) < 32 or ord(ch) > 126:
            out = []
            for c in message:
                out.append("?" if c == "*" or c == "$" or ord(c) < 32 or ord(c) > 126 else c)
            return "".join(out)
    return message


def fault_names(mask):
    """0x0011 -> "LINE NOFLOW" (for status and the display)."""
    names = []
    for i in range(len(FAULT_NAMES)):
        if mask & (1 << i):
            names.append(FAULT_NAMES[i])
    return " ".join(names) if names else "none"


def check(line):
    """Return None if `line` (str, without newline) is a well-sealed v1 frame, else the reason (tests)."""
    if len(line) + 1 > MAX_LINE:
        return "too_long"
    if not line.startswith("$FD"):
        return "no_start"
    if not line.startswith("$FD1,"):
        return "version"
    star = line.rfind("*")
    if star < 0 or len(line) - star != 9:
        return "no_checksum"
    try:
        crc = int(line[star + 1:], 16)
    except ValueError:
        return "no_checksum"
    if crc != binascii.crc32(line[:star].encode()) & 0xFFFFFFFF:
        return "checksum"
    return None
