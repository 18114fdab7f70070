"""Test rig for the firmware, importable on CPython and on the MicroPython unix port alike.

A Rig is one board: fake `machine` pins/ADCs (hardware/twin/machine.py), a simulated clock, a byte stream
standing in for the serial link, and a fresh settings folder. Only builtins, os, json: no pytest here.
"""

import binascii
import gc
import json
import os

import board
import machine
import main
import protocol
import settings

PERIOD_MS = 100
R_FIELDS = ("type", "device", "seq", "uptime_ms", "ch4", "unit", "flow", "flow_unit", "total", "state",
            "relay", "faults", "flags")


def tmpdir():
    n = int.from_bytes(os.urandom(4), "little")
    path = "/tmp/fdfw-%08x" % n
    os.mkdir(path)
    return path


def rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        try:
            os.remove(path + "/" + name)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


class SimClock:
    """Simulated time in microseconds; ticks never wrap here unless a test sets `us` near a wrap."""

    def __init__(self, us=0):
        self.us = us

    def ticks_ms(self):
        return self.us // 1000

    def ticks_us(self):
        return self.us

    def ticks_diff(self, a, b):
        return a - b


class Stream:
    """The serial link: `feed()` queues host bytes; what the board wrote accumulates in `out` (a list of
    writes, the newest KEEP only, so long runs fit the RP2040-sized heap; one write is one frame)."""

    KEEP = 48

    def __init__(self):
        self.inp = []
        self.out = []

    def read(self):
        if self.inp:
            return self.inp.pop(0)
        return None

    def write(self, data):
        self.out.append(bytes(data))
        if len(self.out) > self.KEEP:
            self.out.pop(0)

    def feed(self, data):
        self.inp.append(data)


def ma_counts(ma, shunt_ohm=150, vref_mv=3300):
    """ADC counts for a loop current (rounded up so the board reads at least `ma`)."""
    uv = ma * shunt_ohm * 1000
    return min(65535, int(uv * 65535 / (vref_mv * 1000)) + 1)


def mv_counts(mv, divider=3, vref_mv=3300):
    """ADC counts of VSYS (a battery) at `mv` through the Pico's VSYS/3 divider."""
    return min(65535, int(mv * 65535 / (divider * vref_mv)) + 1)


def ntc_counts(t_c, r25=10000, beta=3950, series=10000):
    """ADC counts of the thermistor divider (series resistor from the reference, NTC to GND) at t_c."""
    import math

    r = r25 * math.exp(beta * (1 / (t_c + 273.15) - 1 / 298.15))
    return int(round(65535 * r / (series + r)))


def pressure_counts(kpa, p_min=0.0, p_max=200.0, shunt_ohm=150):
    """ADC counts of the pressure transmitter's loop current at `kpa` (4-20 mA over p_min..p_max)."""
    return ma_counts(4.0 + 16.0 * (kpa - p_min) / (p_max - p_min), shunt_ohm)


def check(line):
    """None if `line` (str, without newline) is a well-sealed v1 frame, else the reason (the edge's names)."""
    if len(line) + 1 > protocol.MAX_LINE:
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


def parse(line):
    """A frame line -> list of fields (type first), with the CRC checked."""
    assert check(line) is None, "bad frame: " + line
    body = line[: line.rindex("*")]
    parts = body.split(",")
    if parts[1] in ("E", "C"):
        parts = parts[:6] + [",".join(parts[6:])]
    return parts[1:]


class Rig:
    def __init__(self, overrides=None, save=True, root=None, vsys=33000, i2c=()):
        gc.collect()  # the MicroPython leg runs in a 192 KB heap: start each board from a clean one
        machine.Pin.clear()
        machine.ADC.clear()
        machine.I2C.devices = list(i2c)
        machine.I2C.written = []
        self.root = root or tmpdir()
        values = settings.defaults()
        values["warmup_s"] = 0
        values["display"] = 0
        if overrides:
            for k in overrides:
                values[k] = overrides[k]
        if save:
            settings.Store(self.root).save(values)
        self.clock = SimClock(1000000)
        self.stream = Stream()
        machine.ADC.set(29, vsys)  # VSYS/3 -> about 5 V
        self.set_ma(4.0)
        self.board = board.Board("pico", stream=self.stream, root=self.root)
        self.ctl = main.build(self.board, self.clock)
        self.lines = []

    def close(self):
        rmtree(self.root)

    def reboot(self):
        """The same board powered off and on: a new controller on the same settings folder.
        The old controller is dropped first (two at once would not fit the RP2040-sized heap)."""
        self.ctl = None
        self.board = None
        return Rig(root=self.root, save=False)

    # inputs
    def set_ma(self, ma):
        machine.ADC.set(26, ma_counts(ma))

    def set_pct(self, pct, full=4.0):
        """A nominal (uncalibrated) 4-20 mA sensor reading `pct` of `full`."""
        self.set_ma(4.0 + 16.0 * pct / full)

    def set_pt(self, kpa, t_c):
        """Gas pressure and temperature at the default transmitter range and thermistor."""
        machine.ADC.set(27, pressure_counts(kpa))
        machine.ADC.set(28, ntc_counts(t_c))

    def set_battery(self, mv):
        machine.ADC.set(29, mv_counts(mv))

    def aux(self):
        """The A frames since the last call (frames of other types are dropped), as field lists."""
        return [f for f in self.frames() if f[0] == "A"]

    def pin(self, name):
        return machine.Pin.get(board.PINMAPS["pico"][name])

    def pulses(self, pin_name, hz, ms):
        """Edges at `hz` for `ms` of simulated time, stepping the loop every period as time passes."""
        p = self.pin(pin_name)
        period_us = 1000000 // hz
        end = self.clock.us + ms * 1000
        next_step = self.clock.us + PERIOD_MS * 1000
        t = self.clock.us
        while t < end:
            t += period_us
            while next_step <= t:
                self.clock.us = next_step
                self.ctl.step()
                next_step += PERIOD_MS * 1000
            self.clock.us = t
            p.edge()
        self.clock.us = next_step
        self.ctl.step()

    # time
    def worst_alloc(self, iterations=50):
        """The most bytes one loop iteration allocated over `iterations` quiet ones (flow pulses at 20 Hz, no
        frame due: the caller has set a long report period and read the frames so far)."""
        ctl = self.ctl
        clock = self.clock
        edge = self.pin("flow_pulse").edge
        worst = 0
        for _ in range(iterations):
            clock.us += 25000
            edge()
            clock.us += 25000
            edge()
            clock.us += 50000
            gc.collect()
            before = gc.mem_alloc()
            ctl.step()
            used = gc.mem_alloc() - before
            if used > worst:
                worst = used
        assert not self.stream.out, "no frame expected in this window"
        return worst

    def step(self, n=1):
        for _ in range(n):
            self.clock.us += PERIOD_MS * 1000
            self.ctl.step()

    def run_ms(self, ms):
        self.step(ms // PERIOD_MS)

    def boot(self):
        """Run past the boot self-test (7 iterations)."""
        self.step(8)

    # outputs
    @property
    def relay(self):
        return self.pin("relay").value()

    def frames(self):
        """New frames since the last call, as field lists (type, device, seq, uptime, ...)."""
        chunks = self.stream.out
        self.stream.out = []
        out = []
        for chunk in chunks:   # one write is one frame: no big join (heap fragmentation on 192 KB)
            for line in chunk.decode().split("\n"):
                if line:
                    out.append(parse(line))
        return out

    def readings(self, last=8):
        """The newest `last` R frames since the previous call, as dicts keyed like docs/protocol.md
        (faults and flags as ints). Few and small: the MicroPython leg runs in a 192 KB heap."""
        rs = [f for f in self.frames() if f[0] == "R"]
        out = []
        for f in rs[-last:]:
            d = {}
            for i in range(len(R_FIELDS)):
                d[R_FIELDS[i]] = f[i]
            d["faults"] = int(d["faults"], 16)
            d["flags"] = int(d["flags"], 16)
            out.append(d)
        return out

    def cmd(self, line):
        """Send one console line, run one iteration, return the C replies as (status, text)."""
        self.frames()
        self.stream.feed((line + "\n").encode())
        self.step()
        return [(f[4], f[5]) for f in self.frames() if f[0] == "C"]

    def last(self, line):
        """Status and text of the final reply to `line`."""
        replies = self.cmd(line)
        assert replies, "no reply to " + line
        return replies[-1]

    def said(self, line):
        """Final status and the whole text of a reply that may continue over MORE lines."""
        replies = self.cmd(line)
        assert replies, "no reply to " + line
        return replies[-1][0], " ".join(t for _, t in replies)


def load_vectors():
    with open("tests/vectors/frames.json") as f:
        return json.load(f)
