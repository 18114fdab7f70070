"""Wire protocol v1 (docs/protocol.md): R readings, A auxiliary readings, E events, C console replies, sealed
with CRC-32.

`Frames` builds every line the board sends in one buffer allocated at start, numbers it (`seq`) and writes
it to the stream. Numbers arrive as integers in fixed point (gas in hundredths, flow and total in
thousandths) and are written digit by digit, so an R frame makes no str on the way and no float ever
(RP2040 floats are 32-bit and boxed on the heap): bench/firmware_loop.py measures the bytes it allocates.
"""

import binascii

from compat import const

MAX_LINE = const(128)  # bytes including the trailing newline
MAX_COMMAND = const(64)  # bytes per console command line
_COMMA = const(44)     # ",": the separators go in as codes
_DOT = const(46)
_MINUS = const(45)
_STAR = const(42)
_NEWLINE = const(10)

STATES = ("WARMUP", "NORMAL", "WARNING", "ALARM", "POWEROFF", "FAULT")
_NAMES = "".join(STATES).encode()   # the names back to back as bytes: one object, not one per state


class Uptime:
    """Time since boot as whole seconds + milliseconds: two small ints on a 32-bit port even after the
    2**30 ms (12 days) that one int of milliseconds would need a long int for."""

    def __init__(self):
        self.s = 0
        self.ms = 0

    def update(self, dt_ms):
        """Add dt_ms; returns how many whole seconds that completed."""
        ms = self.ms + dt_ms
        n = 0
        while ms >= 1000:
            ms -= 1000
            n += 1
        self.ms = ms
        self.s += n
        return n

    def uptime_ms(self):
        return self.s * 1000 + self.ms


class Frames:
    """The board's side of the line: R, E and C frames into one reused buffer, then `stream.write(view)`.

    The stream gets a memoryview of the buffer, valid until the next frame: a stream that keeps the bytes
    copies them (as a UART or USB write does). `configure()` sets the device id and units (settings): call it
    before the first frame.
    """

    def __init__(self, stream, uptime):
        self.stream = stream
        self.uptime = uptime
        self.seq = 0
        self.device = self.unit = self.flow_unit = b""   # set by configure() before the first frame
        self.buf = memoryview(bytearray(MAX_LINE + 32))  # an R frame with every field at its widest fits
        self.n = 0                 # bytes of the line built so far

    def configure(self, device, unit, flow_unit):
        self.device = device.encode()
        self.unit = unit.encode()
        self.flow_unit = flow_unit.encode()

    def reading(self, ch4_x100, flow_x1000, total_m, total_r, state, relay, faults, flags):
        """An R frame. ch4_x100 None = no valid reading (empty field); total = total_m * 10^6 + total_r
        thousandths; state is an index into STATES. Values are clamped to the ranges of docs/protocol.md
        (the edge rejects a frame outside them); a RANGE fault says the reading is off scale."""
        self.head(b"R")
        if ch4_x100 is not None:
            self.fixed(-50 if ch4_x100 < -50 else (10000 if ch4_x100 > 10000 else ch4_x100), 2)
        self._put(_COMMA)
        self._write(self.unit)
        self._put(_COMMA)
        self.fixed(9999999999 if flow_x1000 > 9999999999 else flow_x1000, 3)  # flow < 10^7
        self._put(_COMMA)
        self._write(self.flow_unit)
        self._put(_COMMA)
        self.total(total_m, total_r)
        self._put(_COMMA)
        a = 0
        for i in range(state):         # where STATES[state] starts in _NAMES
            a += len(STATES[i])
        for i in range(a, a + len(STATES[state])):
            self._put(_NAMES[i])
        self._put(_COMMA)
        self._num(relay, 1, 10)
        self._put(_COMMA)
        self._num(faults, 4, 16)
        self._put(_COMMA)
        self._num(flags, 2, 16)
        self.seal()

    def auxiliary(self, p, t, flow, total_m, total_r, volt, left):
        """An A frame. p (hundredths of kPa) None: no valid P/T (p, t and the standard flow empty); t in
        hundredths of a degree C; flow: the standard flow in thousandths; total_m None: no P/T input (the
        standard total empty too), else total = total_m * 10^6 + total_r thousandths; volt: the battery in mV,
        None: no battery;
        left (run time, minutes) None: unknown. Clamped to the ranges of docs/protocol.md, as reading() does.
        (Short names, reused from elsewhere: each new name is a qstr, and a few more would make MicroPython
        allocate its next qstr pool, ~7 KB of heap, on every board.)"""
        self.head(b"A")
        if p is not None:
            self.fixed(0 if p < 0 else (999999 if p > 999999 else p), 2)
            self._put(_COMMA)
            self.fixed(-5000 if t < -5000 else (15000 if t > 15000 else t), 2)
            self._put(_COMMA)
            self.fixed(0 if flow < 0 else (9999999999 if flow > 9999999999 else flow), 3)
        else:
            self._put(_COMMA)
            self._put(_COMMA)
        self._put(_COMMA)
        self._put(78)               # "N": NL/min, Nm3/min (normal litres or cubic metres) after flow_unit
        self._write(self.flow_unit)
        self._put(_COMMA)
        if total_m is not None:
            self.total(total_m, total_r)
        self._put(_COMMA)
        if volt is not None:
            self._num(0 if volt < 0 else (99999 if volt > 99999 else volt), 1, 10)
        self._put(_COMMA)
        if left is not None:
            self._num(0 if left < 0 else (999999 if left > 999999 else left), 1, 10)
        self.seal()

    def total(self, total_m, total_r):
        """A totaliser field: total_m * 10^6 + total_r thousandths, rolling over at 10^12 like a meter's register."""
        total_m %= 1000000000
        if total_m:
            self._num(total_m, 1, 10)
        self._num(total_r // 1000, 3 if total_m else 1, 10)
        self._put(_DOT)
        self._num(total_r % 1000, 3, 10)

    def fixed(self, v, places):
        """v in hundredths (places 2) or thousandths (3) as a decimal field, "-" first if negative."""
        if v < 0:
            self._put(_MINUS)
            v = -v
        d = 100 if places == 2 else 1000
        self._num(v // d, 1, 10)
        self._put(_DOT)
        self._num(v % d, places, 10)

    def text(self, kind, code, message):
        """An E frame (kind b"E": event `code`) or a C frame (b"C": console reply, code OK, ERR or MORE);
        message is free text, cleaned and cut to fit the line."""
        self.head(kind)
        self._write(code.encode())
        self._put(_COMMA)
        room = MAX_LINE - 10 - self.n  # "*" + 8 hex + "\n"
        message = clean(message)
        if len(message) > room:
            message = message[: room - 3] + "..."
        self._write(message.encode())
        self.seal()

    def room(self):
        """Characters of text a reply can hold with the longest status and seq and uptime a digit longer:
        longer text has to continue on further lines (the console's MORE lines)."""
        return MAX_LINE - 10 - len(self.device) - len("$FD1,C,,%d,%d,MORE," % (
            self.seq * 10 + 9, self.uptime.uptime_ms() * 10 + 9))

    def head(self, kind):
        """"$FD1,<kind>,<device>,<seq>,<uptime_ms>," """
        self.n = 0
        self._write(b"$FD1,")
        self._write(kind)
        self._put(_COMMA)
        self._write(self.device)
        self._put(_COMMA)
        self._num(self.seq, 1, 10)
        self._put(_COMMA)
        t = self.uptime
        if t.s:
            self._num(t.s, 1, 10)
        self._num(t.ms, 3 if t.s else 1, 10)
        self._put(_COMMA)

    def seal(self):
        """"*<crc32>\n", write the line, number the next one (seq wraps at 32 bits)."""
        crc = binascii.crc32(self.buf[: self.n])
        self._put(_STAR)
        self._num(crc >> 16, 4, 16)    # in halves: small ints on a 32-bit port
        self._num(crc & 0xFFFF, 4, 16)
        self._put(_NEWLINE)
        self.stream.write(self.buf[: self.n])
        self.seq = 0 if self.seq >= 4294967295 else self.seq + 1

    def _put(self, c):
        """One byte, given as its code (single-character bytes constants would be heap objects)."""
        self.buf[self.n] = c
        self.n += 1

    def _write(self, data):
        """Bytes into the line (iterating bytes allocates nothing; a str would)."""
        buf = self.buf
        n = self.n
        for c in data:
            buf[n] = c
            n += 1
        self.n = n

    def _num(self, v, places, base):
        """v >= 0 in decimal or lower-case hex (base 10 or 16), zero-padded to `places` digits."""
        d = 1
        t = v
        while t >= base:
            t //= base
            d += 1
        if d < places:
            d = places
        buf = self.buf
        i = self.n + d
        self.n = i
        while d:
            i -= 1
            t = v % base
            buf[i] = t + 48 if t < 10 else t + 87
            v //= base
            d -= 1


def fixed(value, places):
    """Format an integer in fixed point: fixed(-50, 2) == "-0.50", fixed(1250000, 3) == "1250.000"."""
    sign = "-" if value < 0 else ""
    if value < 0:
        value = -value
    if places == 2:
        return "%s%d.%02d" % (sign, value // 100, value % 100)
    return "%s%d.%03d" % (sign, value // 1000, value % 1000)


def clean(message):
    """Free text may not hold "*", "$" or control characters (the CRC starts after the last "*")."""
    for ch in message:
        if ch == "*" or ch == "$" or ord(ch) < 32 or ord(ch) > 126:
            out = []
            for c in message:
                out.append("?" if c == "*" or c == "$" or ord(c) < 32 or ord(c) > 126 else c)
            return "".join(out)
    return message
