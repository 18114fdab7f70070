"""Frames stage: one line of the wire protocol (docs/protocol.md) → a validated Reading, Aux, Event or Reply.

`parse(line)` returns a frame or raises `BadFrame(reason)`, the reason being one of `REASONS`. A line that
fails any check is never a reading. `Decoder` counts rejects by reason and tracks each device's sequence
number and uptime, reporting lost frames (sequence gaps) and reboots (uptime going back).

The parser is the hot path of the edge (bench row 2: frames/s through every stage on one core). A reading in
the exact shape the board sends it is checked whole by one precompiled pattern (`_R_LINE`: one C-level match
instead of ~40 Python-level string calls); every other line (another frame type, a negative gas reading, a
CR-LF ending, anything wrong) goes through `checked_parse`, field by field with C-level string methods
(`binascii.crc32`, `str.split`, `str.isdigit`), which is what says what is wrong and where. The fast path only
ever accepts a line `checked_parse` accepts, with the same result (tests/edge/test_frames.py checks both on
mutated lines).
"""

from __future__ import annotations

import binascii
import re
from typing import NamedTuple

MAX_LINE_BYTES = 128  # the board's limit, newline included; the edge accepts up to 128 bytes before it
REASONS = ("too_long", "encoding", "no_start", "version", "no_checksum", "checksum", "fields", "value")
STATES = ("WARMUP", "NORMAL", "WARNING", "ALARM", "POWEROFF", "FAULT")
# least to most severe: a minute of history keeps its worst (a gas power-off outranks a fault: the relay is cut)
SEVERITY = ("NORMAL", "WARMUP", "WARNING", "ALARM", "FAULT", "POWEROFF")
UNITS = ("VOL", "LEL")
FLOW_UNITS = ("L/min", "m3/min")
STD_UNITS = ("NL/min", "Nm3/min")  # an A frame's standard flow: normal litres / cubic metres a minute
REPLY_STATUSES = ("OK", "ERR", "MORE")
FAULT_NAMES = ("LINE", "RAIL", "RANGE", "STUCK", "NOFLOW", "SETTINGS", "SELFTEST", "POWER", "LOOP", "BATTERY")
FLAG_CALIBRATION_DUE = 0x01
FLAG_LOW_FLOW = 0x02
FLAG_ACK_AWAITED = 0x04
FLAG_CONSOLE_UNLOCKED = 0x08
FLAG_PT_FAULT = 0x10  # pressure/temperature input failed: the A frame's standard flow is not valid
FLAG_BATTERY_LOW = 0x20  # battery at or below battery_low_mv (the BATTERY fault follows at the cut-off)

_SEQ_MAX = 4294967295
_UPTIME_MAX = 2**63 - 1
_HEX = "0123456789abcdefABCDEF"
_STATES = frozenset(STATES)
_UNITS = frozenset(UNITS)
_FLOW_UNITS = frozenset(FLOW_UNITS)
_STD_UNITS = frozenset(STD_UNITS)
_REPLY_STATUSES = frozenset(REPLY_STATUSES)
_new = tuple.__new__  # parse builds a Reading with it: all 13 fields, in order (checked below the class)


class Reading(NamedTuple):
    device: str
    seq: int
    uptime_ms: int
    ch4: float | None  # None: no valid reading (warm-up, line fault)
    unit: str  # VOL (% CH4 by volume) or LEL (% of the lower explosive limit)
    flow: float
    flow_unit: str  # L/min or m3/min
    total: float
    state: str
    relay: int  # 1 = power allowed, 0 = power cut
    faults: int
    flags: int
    type: str = "R"


class Aux(NamedTuple):
    """An `A` frame: process conditions and power, sent right after a periodic reading. None = empty field."""

    device: str
    seq: int
    uptime_ms: int
    p_kpa: float | None  # absolute kPa at the flow meter; None: no P/T input, or it failed
    t_c: float | None  # °C at the flow meter; None likewise
    std_flow: float | None  # the reading's flow at base conditions, in std_unit; None while P or T is not valid
    std_unit: str  # NL/min or Nm3/min (follows the reading's flow_unit)
    std_total: float | None  # totaliser at base conditions (NL or Nm3); None: no P/T input configured
    battery_mv: int | None  # None: no battery configured
    run_min: int | None  # minutes left before the battery cut-off; None: unknown
    type: str = "A"


class Event(NamedTuple):
    device: str
    seq: int
    uptime_ms: int
    code: str
    text: str
    type: str = "E"


class Reply(NamedTuple):
    device: str
    seq: int
    uptime_ms: int
    status: str
    text: str
    type: str = "C"


Frame = Reading | Aux | Event | Reply
assert len(Reading._fields) == 13 and Reading._field_defaults == {"type": "R"}


class BadFrame(ValueError):
    """A line that is not a valid frame; `reason` is one of REASONS, `detail` says what and where."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _uint(s: str, limit: int, name: str) -> int:
    if not s.isdigit() or len(s) > 19:
        raise BadFrame("value", f"{name} {s!r} is not a decimal number")
    v = int(s)
    if v > limit:
        raise BadFrame("value", f"{name} {s} is over {limit}")
    return v


def _decimal(s: str, lo: float, hi: float, name: str) -> float:
    """Plain decimal (`-12.34`); float() alone would also take nan, inf, 1e3, 1_0 and spaces."""
    digits = s[1:] if s[:1] == "-" else s
    if not digits.replace(".", "", 1).isdigit() or len(s) > 24:
        raise BadFrame("value", f"{name} {s!r} is not a decimal number")
    v = float(s)
    if not lo <= v <= hi:
        raise BadFrame("value", f"{name} {s} is outside {lo:g} … {hi:g}")
    return v


def _hex(s: str, width: int, name: str) -> int:
    if len(s) != width or s.strip(_HEX):
        raise BadFrame("value", f"{name} {s!r} is not {width} hex digits")
    return int(s, 16)


_known_devices: set[str] = set()


def _device(s: str) -> str:
    if s in _known_devices:
        return s
    rest = s.replace("-", "").replace("_", "")  # an id of only '-' and '_' is valid (the board allows it)
    if not (0 < len(s) <= 16 and s.isascii() and (rest == "" or rest.isalnum())):
        raise BadFrame("value", f"device id {s!r} must be 1–16 of A-Z a-z 0-9 _ -")
    if len(_known_devices) < 4096:
        _known_devices.add(s)
    return s


def _text(s: str) -> str:
    if not s.isprintable() or "$" in s or "*" in s:
        raise BadFrame("value", f"text {s[:20]!r} holds a control character, '$' or '*'")
    return s


def _opt_decimal(s: str, lo: float, hi: float, name: str) -> float | None:
    return None if s == "" else _decimal(s, lo, hi, name)


def _opt_uint(s: str, limit: int, name: str) -> int | None:
    return None if s == "" else _uint(s, limit, name)


def _aux(f: list[str]) -> Aux:
    """The fields of an `A` frame (docs/protocol.md) → Aux; raises BadFrame. Not on the reading's hot path."""
    if len(f) != 12:
        raise BadFrame("fields", f"auxiliary reading has {len(f) - 1} fields, expected 11")
    device = _device(f[2])
    seq = _uint(f[3], _SEQ_MAX, "seq")
    uptime = _uint(f[4], _UPTIME_MAX, "uptime_ms")
    p_kpa = _opt_decimal(f[5], 0.0, 9999.99, "p_kpa")
    t_c = _opt_decimal(f[6], -50.0, 150.0, "t_c")
    std_flow = _opt_decimal(f[7], 0.0, 9999999.999, "std_flow")
    if f[8] not in _STD_UNITS:
        raise BadFrame("value", f"std_unit {f[8]!r} is not one of {', '.join(STD_UNITS)}")
    std_total = _opt_decimal(f[9], 0.0, 999999999999.999, "std_total")
    battery_mv = _opt_uint(f[10], 99999, "battery_mv")
    run_min = _opt_uint(f[11], 999999, "run_min")
    return Aux(device, seq, uptime, p_kpa, t_c, std_flow, f[8], std_total, battery_mv, run_min)


# A reading as the board writes it (docs/protocol.md): ch4 with 2 places or empty, flow and total with a dot,
# a lower-case CRC, at most one "\n". The pattern bounds flow and total; seq, uptime and ch4 are range-checked
# after the match (their digit counts allow a little more than the protocol does).
_R_LINE = re.compile(
    r"\$FD1,R,([A-Za-z0-9_-]{1,16}),(\d{1,10}),(\d{1,19}),(\d{1,3}\.\d\d)?,(VOL|LEL),(\d{1,7}\.\d{1,3}),"
    r"(L/min|m3/min),(\d{1,12}\.\d{1,3}),(WARMUP|NORMAL|WARNING|ALARM|POWEROFF|FAULT),([01]),"
    r"([0-9a-fA-F]{4}),([0-9a-fA-F]{2})\*([0-9a-f]{8})\n?", re.ASCII).fullmatch
_crc32 = binascii.crc32


def parse(line: bytes) -> Frame:
    """One line (with or without its `\\n` / `\\r\\n`) → Reading, Aux, Event or Reply; raises BadFrame."""
    if len(line) <= MAX_LINE_BYTES:
        try:
            m = _R_LINE(line.decode("ascii"))
        except UnicodeDecodeError:
            m = None
        if m is not None:
            dev, s_seq, s_up, s_ch4, unit, s_flow, flow_unit, s_total, state, relay, s_faults, s_flags, crc = m.groups()
            if _crc32(line[:m.start(13) - 1]) == int(crc, 16):
                seq, up = int(s_seq), int(s_up)
                ch4 = None if s_ch4 is None else float(s_ch4)
                if seq <= _SEQ_MAX and up <= _UPTIME_MAX and (ch4 is None or ch4 <= 100.0):
                    return _new(Reading, (dev, seq, up, ch4, unit, float(s_flow), flow_unit, float(s_total), state,
                                          1 if relay == "1" else 0, int(s_faults, 16), int(s_flags, 16), "R"))
    return checked_parse(line)


def checked_parse(line: bytes) -> Frame:
    """parse() field by field: every line that is not a reading in the board's exact shape, and every bad one
    (its BadFrame says which check failed, and where)."""
    if line[-1:] == b"\n":
        line = line[:-2] if line[-2:-1] == b"\r" else line[:-1]
    if len(line) > MAX_LINE_BYTES:
        raise BadFrame("too_long", f"{len(line)} bytes, the limit is {MAX_LINE_BYTES}")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise BadFrame("encoding", "not ASCII") from None
    if not text.startswith("$FD1,"):
        if not text.startswith("$FD"):
            raise BadFrame("no_start", f"line starts {text[:8]!r}, not '$FD'")
        if text[3:].split(",", 1)[0].split("*", 1)[0] != "1":
            raise BadFrame("version", f"protocol version {text[3:8].split(',')[0]!r}, this edge reads 1")
    star = text.rfind("*")
    crc_hex = text[star + 1:]
    if star < 0 or len(crc_hex) != 8 or crc_hex.strip(_HEX):
        raise BadFrame("no_checksum", "no '*' and 8 hex digits at the end")
    if binascii.crc32(line[:star]) != int(crc_hex, 16):
        raise BadFrame("checksum", f"CRC-32 {binascii.crc32(line[:star]):08x} != {crc_hex}")
    f = text[:star].split(",")
    if f[0] != "$FD1":  # e.g. "$FD1*x$FD1,C,...": the version check alone let a junk first field through
        raise BadFrame("fields", f"first field {f[0][:12]!r} is not '$FD1'")
    kind = f[1] if len(f) > 1 else ""
    if kind == "R":
        if len(f) != 14:
            raise BadFrame("fields", f"reading has {len(f) - 1} fields, expected 13")
        s_ch4 = f[5]  # inline as flow below; a negative ch4 (down to -0.5) goes through _decimal
        ch4 = float(s_ch4) if len(s_ch4) <= 24 and s_ch4.replace(".", "", 1).isdigit() else None
        if ch4 is None or not 0.0 <= ch4 <= 100.0:
            ch4 = None if s_ch4 == "" else _decimal(s_ch4, -0.5, 100.0, "ch4")
        if f[6] not in _UNITS:
            raise BadFrame("value", f"unit {f[6]!r} is not one of {', '.join(UNITS)}")
        if f[8] not in _FLOW_UNITS:
            raise BadFrame("value", f"flow_unit {f[8]!r} is not one of {', '.join(FLOW_UNITS)}")
        if f[10] not in _STATES:
            raise BadFrame("value", f"state {f[10]!r} is not one of {', '.join(STATES)}")
        relay = f[11]
        if relay != "1" and relay != "0":
            raise BadFrame("value", f"relay {relay!r} is not 0 or 1")
        if f[7][:1] == "-" or f[9][:1] == "-":
            raise BadFrame("value", "flow and total must not be negative")
        # the checks of _device, _uint, _decimal and _hex inline, in the same order (a reading is ~70 % of the
        # parse time in these calls); any field that fails goes through its function, which raises as before
        dev, s_seq, s_up, s_flow, s_total, s_faults, s_flags = f[2], f[3], f[4], f[7], f[9], f[12], f[13]
        if dev not in _known_devices:
            dev = _device(dev)
        seq = int(s_seq) if s_seq.isdigit() and len(s_seq) <= 10 else -1
        if not 0 <= seq <= _SEQ_MAX:
            seq = _uint(s_seq, _SEQ_MAX, "seq")
        up = int(s_up) if s_up.isdigit() and len(s_up) <= 19 else -1
        if not 0 <= up <= _UPTIME_MAX:
            up = _uint(s_up, _UPTIME_MAX, "uptime_ms")
        flow = float(s_flow) if len(s_flow) <= 24 and s_flow.replace(".", "", 1).isdigit() else -1.0
        if not 0.0 <= flow <= 9999999.999:
            flow = _decimal(s_flow, 0.0, 9999999.999, "flow")
        total = float(s_total) if len(s_total) <= 24 and s_total.replace(".", "", 1).isdigit() else -1.0
        if not 0.0 <= total <= 999999999999.999:
            total = _decimal(s_total, 0.0, 999999999999.999, "total")
        faults = int(s_faults, 16) if len(s_faults) == 4 and not s_faults.strip(_HEX) else -1
        if faults < 0:
            faults = _hex(s_faults, 4, "faults")
        flags = int(s_flags, 16) if len(s_flags) == 2 and not s_flags.strip(_HEX) else -1
        if flags < 0:
            flags = _hex(s_flags, 2, "flags")
        # tuple.__new__ is what Reading(...) runs, without its Python-level __new__ frame (~0.1 µs a reading)
        return _new(Reading, (dev, seq, up, ch4, f[6], flow, f[8], total, f[10], 1 if relay == "1" else 0, faults,
                              flags, "R"))
    if kind == "A":  # after R: a reading's parse pays no extra comparison for it
        return _aux(f)
    if kind == "E" or kind == "C":
        if len(f) < 7:
            raise BadFrame("fields", f"{kind} frame has {len(f) - 1} fields, expected at least 6")
        device = _device(f[2])
        seq = _uint(f[3], _SEQ_MAX, "seq")
        uptime = _uint(f[4], _UPTIME_MAX, "uptime_ms")
        body = _text(",".join(f[6:]) if len(f) > 7 else f[6])
        if kind == "E":
            code = f[5]
            rest = code.replace("_", "")
            if not (0 < len(code) <= 16 and code.isascii() and (rest == "" or rest.isalnum()) and code.upper() == code):
                raise BadFrame("value", f"event code {code!r} must be 1–16 of A-Z 0-9 _")
            return Event(device, seq, uptime, code, body)
        if f[5] not in _REPLY_STATUSES:
            raise BadFrame("value", f"reply status {f[5]!r} is not one of {', '.join(REPLY_STATUSES)}")
        return Reply(device, seq, uptime, f[5], body)
    raise BadFrame("fields", f"unknown frame type {kind!r}")


def seal(body: str | bytes) -> bytes:
    """`$FD1,...` → the full line with its `*crc32` and newline (what a board sends; used by tests and tools).
    A str must be ASCII; bytes are sealed as they are (the fuzzers seal lines a board would never send)."""
    b = body.encode("ascii") if isinstance(body, str) else body
    return b"%s*%08x\n" % (b, binascii.crc32(b))


def format_reading(r: Reading) -> bytes:
    """A Reading → its wire line (the inverse of parse, for the virtual board's tests and the benchmark)."""
    ch4 = "" if r.ch4 is None else f"{r.ch4:.2f}"
    return seal(f"$FD1,R,{r.device},{r.seq},{r.uptime_ms},{ch4},{r.unit},{r.flow:.3f},{r.flow_unit},"
                f"{r.total:.3f},{r.state},{r.relay},{r.faults:04x},{r.flags:02x}")


def format_aux(a: Aux) -> bytes:
    """An Aux → its wire line (the inverse of parse): None fields empty, P/T with 2 places, flows with 3."""
    def num(v: float | None, places: int) -> str:
        return "" if v is None else f"{v:.{places}f}"

    def whole(v: int | None) -> str:
        return "" if v is None else str(v)

    return seal(f"$FD1,A,{a.device},{a.seq},{a.uptime_ms},{num(a.p_kpa, 2)},{num(a.t_c, 2)},{num(a.std_flow, 3)},"
                f"{a.std_unit},{num(a.std_total, 3)},{whole(a.battery_mv)},{whole(a.run_min)}")


def format_frame(frame: Frame) -> bytes:
    """Any frame → its wire line (the inverse of parse): a Reading as format_reading, an Aux as format_aux, an
    Event or Reply as `$FD1,E|C,device,seq,uptime_ms,code|status,text`. The one frame builder of tests, fuzzers
    and the bench."""
    if isinstance(frame, Reading):
        return format_reading(frame)
    if isinstance(frame, Aux):
        return format_aux(frame)
    head = frame.code if isinstance(frame, Event) else frame.status
    return seal(f"$FD1,{frame.type},{frame.device},{frame.seq},{frame.uptime_ms},{head},{frame.text}")


class Gap(NamedTuple):
    """What the sequence tracker noticed about one frame: frames lost before it, and whether the board rebooted."""

    lost: int
    rebooted: bool
    first: bool  # first frame seen from this device since the edge started


_NO_GAP = Gap(0, False, False)  # the usual answer, made once (the tracker runs on every frame)


class Decoder:
    """Counts rejects by reason; tracks seq/uptime per device. Single-threaded (the pipeline thread)."""

    def __init__(self) -> None:
        self.ok = 0
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.lost_frames = 0
        self.reboots = 0
        self._last: dict[tuple[str, str], tuple[int, int]] = {}  # (port, device) -> (seq, uptime_ms)
        self._seeds: dict[str, tuple[int, int]] = {}  # device -> (seq, uptime_ms) before the edge restarted

    def seed(self, last: dict[str, tuple[int, int]]) -> None:
        """Each device's last (seq, uptime_ms) from before the edge restarted (kept in the history): its first
        frame now is compared with it, so frames the board sent while the edge was not reading, and a reboot
        meanwhile, are counted too (Gap.first stays True for that frame)."""
        self._seeds = dict(last)

    def decode(self, line: bytes) -> Frame | None:
        """A frame, or None after counting the reject (BadFrame's detail goes to `last_error`)."""
        try:
            frame = parse(line)
        except BadFrame as exc:
            self.reject(exc)
            return None
        self.ok += 1
        return frame

    def reject(self, exc: BadFrame) -> None:
        """Count a line parse() refused (by its reason) and keep its detail in `last_error`."""
        self.rejected[exc.reason] += 1
        self.last_error = str(exc)

    def track(self, frame: Frame, port: str = "") -> Gap:
        """Sequence bookkeeping for one valid frame of any type, per (port, device): two boards sharing a device
        id on two ports keep apart counters (not false reboots and losses; the policy alerts on the shared id)."""
        key = (port, frame.device)
        prev = self._last.get(key)
        self._last[key] = frame[1:3]  # (seq, uptime_ms): the fields after device in every frame type
        if prev is None:
            seed = self._seeds.pop(frame.device, None)
            if seed is None:
                return Gap(0, False, True)
            seq0, up0 = seed
            lost = (frame.seq - seq0 - 1) & _SEQ_MAX
            if frame.uptime_ms < up0 or lost >= 2**31:  # uptime or seq went back: it restarted meanwhile
                self.reboots += 1
                self.lost_frames += frame.seq
                return Gap(frame.seq, True, True)
            self.lost_frames += lost
            return Gap(lost, False, True)
        seq0, up0 = prev
        if frame.uptime_ms < up0:  # uptime went back: the board restarted (seq restarts at 0)
            self.reboots += 1
            self.lost_frames += frame.seq
            return Gap(frame.seq, True, False)
        lost = (frame.seq - seq0 - 1) & _SEQ_MAX
        if lost == 0:
            return _NO_GAP
        if lost < 2**31:
            self.lost_frames += lost
            return Gap(lost, False, False)
        return _NO_GAP  # a repeated or older frame: nothing lost

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())
