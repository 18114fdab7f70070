"""Fuzz target: one command line into the board's console (firmware/console.py + commands.py), on CPython with
the fake `machine` (hardware/twin/machine.py), through the real stream and one control-loop step.

An input starting with "!" is sent after a correct `unlock <pin>` (the harness knows the pin; the board
does not care who typed it). Oracle: every non-blank line gets exactly one final OK or ERR (MORE lines
before it), every reply is a valid protocol frame (checked with the edge's own parser), an ERR changes no
setting, the settings in force are always complete and in range, and the pin never appears in a reply.
"""

from __future__ import annotations

import importlib
import random
import tempfile

from edge.frames import BadFrame, parse
from fuzz.engine import Violation, mutate, random_bytes
from hardware.twin.virtual import SimClock, load_firmware

NAME = "board console commands"

load_firmware()
machine = importlib.import_module("machine")
board = importlib.import_module("board")
fw_main = importlib.import_module("main")
settings = importlib.import_module("settings")


class _Stream:
    def __init__(self):
        self.inp: list[bytes] = []
        self.out: list[bytes] = []

    def read(self, n: int = 256):
        return self.inp.pop(0) if self.inp else None

    def write(self, data):
        self.out.append(bytes(data))
        return len(data)


class Rig:
    """One board with valid settings, no warm-up, 4 mA on the gas input and a healthy supply."""

    def __init__(self):
        machine.Pin.clear()
        machine.ADC.clear()
        self.root = tempfile.mkdtemp(prefix="fuzz-console-")
        values = dict(settings.defaults(), warmup_s=0, display=0)
        settings.Store(self.root).save(values)
        machine.ADC.set(29, 33000)
        machine.ADC.set(26, 11916)  # 4.0 mA across 150 ohm
        self.clock = SimClock(1_000_000)
        self.stream = _Stream()
        self.board = board.Board("pico", stream=self.stream, root=self.root)
        self.ctl = fw_main.build(self.board, self.clock)
        self.step()

    def step(self) -> list:
        self.stream.out.clear()
        self.ctl.step()
        self.clock.us += self.ctl.period_ms * 1000
        frames = []
        for raw in self.stream.out:
            try:
                frames.append(parse(raw))
            except BadFrame as exc:
                raise Violation(f"the board sent a line the edge rejects ({exc}): {raw!r}") from None
        return frames

    def send(self, line: bytes) -> list:
        self.stream.inp.append(line + b"\n")
        return [f for f in self.step() if f.type == "C"]


_rig: Rig | None = None


def rig() -> Rig:
    global _rig
    if _rig is None:
        _rig = Rig()
    return _rig


def _valid_settings(s: dict) -> str | None:
    if sorted(s) != sorted(settings.KEYS):
        return "keys missing"
    for key in settings.KEYS:
        v = s[key]
        try:
            if settings.parse(key, v if isinstance(v, str) else repr(v)) != v:
                return f"{key}={v!r}"
        except ValueError:
            return f"{key}={v!r}"
    return settings.check(s)


_REASONS = (("unknown command", "unknown command"), ("locked:", "locked"), ("usage", "usage"),
            ("unknown key", "unknown key"), ("must be", "value out of range"), ("wrong pin", "wrong pin"),
            ("too many wrong pins", "pin lockout"), ("longer than", "line too long"), ("not ASCII", "not ASCII"),
            ("custom profile needs", "cross-field rule"), ("exactly one of", "cross-field rule"),
            ("warming up", "warming up"), ("control character", "control character"), ("too close", "calibration signal"), ("no usable signal", "no signal"),
            ("span must be", "value out of range"), ("nothing to acknowledge", "nothing to ack"),
            ("acknowledge", "ack refused"), ("failed", "command failed"))


def _reason(text: str) -> str:
    for words, reason in _REASONS:
        if words in text:
            return reason
    return "other: " + " ".join(text.split()[:3])


def check(data: bytes) -> str:
    r = rig()
    ctl = r.ctl
    line = data.replace(b"\r", b" ").replace(b"\n", b" ")
    if line[:1] == b"!":
        line = line[1:]
        got = r.send(b"unlock " + ctl.s["pin"].encode())
        if not got or got[-1].status != "OK" and "too many wrong pins" not in got[-1].text:
            raise Violation(f"the right pin did not unlock: {got}")
    before = dict(ctl.s)
    replies = r.send(line)
    problem = _valid_settings(ctl.s)
    if problem:
        raise Violation(f"settings in force are invalid after this command: {problem}")
    for f in replies:
        if "pin=" in f.text and "pin=(hidden)" not in f.text:
            raise Violation(f"a reply shows the pin: {f.text!r}")
    if not line.strip(b" \t"):  # only spaces and tabs: ignored (any other control character is an ERR)
        if replies:
            raise Violation(f"a blank line was answered: {replies}")
        return "blank line (ignored)"
    finals = [f for f in replies if f.status != "MORE"]
    if len(finals) != 1 or replies[-1] is not finals[0]:
        raise Violation(f"expected exactly one final OK/ERR, got {[(f.status, f.text) for f in replies]}")
    if finals[0].status == "ERR":
        if ctl.s != before:
            changed = [k for k in before if before[k] != ctl.s[k]]
            raise Violation(f"ERR {finals[0].text!r} but settings changed: {changed}")
        return _reason(finals[0].text)
    return "accepted"


# ---------------------------------------------------------------------------------------------- generator

_CMDS = ["help", "status", "get", "set", "profile", "cal", "ack", "selftest", "save", "log", "factory-reset",
         "unlock", "lock", "HELP", "Set", "set-", "factory_reset", "reboot", "", "cal zero", "cal span"]
_KEYS = list(settings.KEYS) + ["", "pin", "device_id", "DEVICE_ID", "x", "profile"]
_VALUES = ["0", "1", "-1", "0.1", "4.00", "4.01", "100", "1e3", "nan", "inf", "-inf", "1_0", "0x10", "abc", "ma",
           "freq", "volt", "coal_face", "plant", "custom", "1234", "12345678", "123456789", "12a4", "-", "__",
           "a" * 17, "é", "\uff19", "999999999999999999999", "86400", "20", "500", "15", "16", "0.0", "2.00"]


def generate(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.04:
        return random_bytes(rng, 90)
    words = [rng.choice(_CMDS)]
    if words[0] in ("set", "get", "Set"):
        words.append(rng.choice(_KEYS))
    if words[0] in ("set", "profile", "unlock", "cal span", "Set") or rng.random() < 0.1:
        words.append(rng.choice(_VALUES))
    if rng.random() < 0.05:
        words.append(rng.choice(_VALUES))
    sep = rng.choice([" ", " ", " ", "  ", "\t"])
    line = sep.join(words).encode()
    if rng.random() < 0.05:
        line = b"  " + line + b"   "
    if rng.random() < 0.03:
        line = line + b" " + b"x" * rng.randint(40, 80)
    if r < 0.2:
        line = mutate(line, rng)
    if rng.random() < 0.6:
        line = b"!" + line
    return line
