"""The firedamp board on the emulated Pico: our firmware installed with mpremote, instruments on its pins.

`install(port, values)` copies the firmware exactly as `firedamp flash` does (edge/flash.py: .mpy files,
main.py, settings.json) over the board's serial port. `Instruments` turns gas and flow into what the pins
see: the methane ADC (GPIO26) through the RP2040 ADC noise model, or the 200-1000 Hz input (GPIO14) as a
square wave; flow pulses on GPIO15; gas pressure (4-20 mA, GPIO27) and temperature (NTC divider, GPIO28);
VSYS/3 on GPIO29 (the supply, or a battery); the relay's auxiliary contact (GPIO19) follows the relay (GPIO16). `Probe` is a host on the serial port: frames, events and console replies.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import serial

from edge import flash as edge_flash
from edge import frames
from edge.errors import LinkError
from hardware.twin.signals import MethaneSensor, PressureTransmitter, Thermistor
from hardware.twin.virtual import FLOW_K_PER_M3, SUPPLY_MV, initial_settings, load_firmware

PINS = {"ch4_adc": 26, "ch4_freq": 14, "flow": 15, "relay": 16, "buzzer": 17, "beacon": 18, "relay_sense": 19,
        "led": 25, "pressure_adc": 27, "temperature_adc": 28, "vsys_adc": 29}
OUTPUTS = {16: "relay", 17: "buzzer", 18: "beacon"}


def board_settings(device_id: str = "emu-1", front_end: str = "ma", **overrides) -> dict:
    """Settings as an installer leaves a board (hardware/twin/virtual.py's, calibrated against the nominal
    sensor), with `overrides` (e.g. profile="plant", warmup_s=0) on top."""
    _m, _b, _main, fw_settings, fw_methane, _p = load_firmware()
    values = initial_settings(fw_settings, device_id, front_end)
    values.update(overrides)
    # initial_settings calibrates 2.00 % CH4 on the % vol range; the plant profile reads % LEL on its own range
    full = values["range_lel_pct" if values["profile"] == "plant" else "range_vol_pct"]
    if values["profile"] == "plant":
        values["cal_span_pct"] = 50.0  # % LEL span gas (2.00 would sit too close to zero on a 100 % LEL range)
    nominal = fw_methane.NOMINAL[fw_methane.FRONT_ENDS.index(front_end)]
    values["cal_span_raw"] = int(round(nominal[0] + (nominal[1] - nominal[0]) * values["cal_span_pct"] / full))
    problem = fw_settings.check(values) if hasattr(fw_settings, "check") else None
    if problem:
        raise ValueError(problem)
    return values


def mpremote_run(cmd: list[str], timeout_s: float, tries: int = 5) -> subprocess.CompletedProcess[str]:
    """Run one mpremote command; a busy board sometimes misses the raw-REPL handshake (mpremote's own 1 s
    wait, which a loaded machine running the emulator at a fraction of real time can overrun): try again."""
    for attempt in range(tries):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode == 0:
            return proc
        if "could not enter raw repl" not in proc.stderr or attempt == tries - 1:
            raise LinkError(f"mpremote failed ({' '.join(cmd[4:6])}): {proc.stdout[-300:]} {proc.stderr[-300:]}")
    raise LinkError("mpremote: no tries")


def install(port: str, values: dict | None = None, timeout_s: float = 300.0) -> None:
    """`firedamp flash` onto the board at `port`: the compiled firmware, and settings.json when `values`
    is given (factory defaults are `board_settings()`'s). mpremote's own output goes to stdout."""
    _m, _b, _main, fw_settings, _meth, _p = load_firmware()
    mpremote = str(Path(sys.executable).parent / "mpremote")
    with tempfile.TemporaryDirectory(prefix="firedamp-emu-flash-") as tmp:
        out = Path(tmp)
        files = edge_flash.build(out, True, None)
        if values is not None:
            path = out / "settings.json"
            path.write_text(fw_settings.encode(values))
            files.append(path)
            # just calibrated by the installer: calibration age 0, totaliser 0 (as hardware/twin/virtual.py)
            runtime = fw_settings.Store(str(out), "runtime")
            runtime.save({"total_x1000": 0, "cal_age_s": 0})
            files.append(Path(runtime.path))
        for cmd in edge_flash.commands(mpremote, port, files, display_driver=False):
            mpremote_run(cmd, timeout_s)


def install_settings(port: str, values: dict, timeout_s: float = 300.0) -> None:
    """Replace settings.json on a board that has the firmware, and reset it (mpremote, as a technician could)."""
    _m, _b, _main, fw_settings, _meth, _p = load_firmware()
    mpremote = str(Path(sys.executable).parent / "mpremote")
    with tempfile.TemporaryDirectory(prefix="firedamp-emu-settings-") as tmp:
        path = Path(tmp) / "settings.json"
        path.write_text(fw_settings.encode(values))
        for args in (["fs", "cp", str(path), ":settings.json"], ["reset"]):
            mpremote_run([mpremote, "connect", port, "resume", *args], timeout_s)


class Instruments:
    """The sensors and the relay contact wired to an EmulatedPico, for a board with `values` settings."""

    def __init__(self, pico, values: dict, sensor_offset_pct: float = 0.0, sensor_gain: float = 1.0):
        _m, _b, _main, _s, fw_methane, _p = load_firmware()
        front = values["front_end"]
        self.pico = pico
        self.front_end = front
        self.sensor = MethaneSensor(front, fw_methane.NOMINAL[fw_methane.FRONT_ENDS.index(front)],
                                    values["range_lel_pct" if values["profile"] == "plant" else "range_vol_pct"],
                                    values["shunt_ohm"], values["adc_vref_mv"], sensor_offset_pct, sensor_gain)
        self.vref_mv = values["adc_vref_mv"]
        self.k = FLOW_K_PER_M3
        self.transmitter = PressureTransmitter(values.get("p_min_kpa", 0.0), values.get("p_max_kpa", 200.0),
                                               values["shunt_ohm"], self.vref_mv)
        self.thermistor = Thermistor(values.get("ntc_r25_ohm", 10000), values.get("ntc_beta", 3950),
                                     values.get("ntc_series_ohm", 10000))

    def wire(self) -> None:
        """VSYS present, the relay's auxiliary contact following the relay, outputs watched."""
        self.vsys(SUPPLY_MV)
        self.pico.follow(PINS["relay_sense"], PINS["relay"], invert=True)  # closes to GND when energised
        self.pico.watch(*OUTPUTS)

    def level(self, ch4: float) -> float:
        """The 12-bit ADC input level (unquantised) for the analog front ends."""
        raw = self.sensor.raw(ch4)
        uv = raw * self.sensor.shunt_ohm if self.front_end == "ma" else raw
        return max(0.0, min(4095.0, uv * 4095 / (self.vref_mv * 1000)))

    def gas_command(self, ch4: float) -> dict:
        """The runner command that makes the sensor read `ch4` (for `pico.at`)."""
        if self.front_end == "freq":
            return {"op": "wave", "gpio": PINS["ch4_freq"], "hz": self.sensor.freq_hz(ch4), "high_us": 0}
        return self.pico.adc_command(PINS["ch4_adc"] - 26, self.level(ch4))

    def gas(self, ch4: float) -> int:
        return self.pico.command(self.gas_command(ch4))

    def pt_commands(self, kpa: float, t_c: float, ma: float | None = None) -> list[dict]:
        """The runner commands for gas pressure (ADC1) and temperature (ADC2); `ma` overrides the loop current."""
        return [self.pico.adc_command(PINS["pressure_adc"] - 26, 4095 * self.transmitter.level(kpa, ma)),
                self.pico.adc_command(PINS["temperature_adc"] - 26, 4095 * self.thermistor.level(t_c))]

    def pt(self, kpa: float, t_c: float, ma: float | None = None) -> None:
        for cmd in self.pt_commands(kpa, t_c, ma):
            self.pico.command(cmd)

    def vsys_command(self, mv: float) -> dict:
        """The runner command putting `mv` on VSYS (ADC3 sees a third of it): the supply or a battery."""
        return self.pico.adc_command(PINS["vsys_adc"] - 26, mv / 3 * 4095 / self.vref_mv)

    def vsys(self, mv: float) -> int:
        return self.pico.command(self.vsys_command(mv))

    def flow(self, m3_min: float) -> int:
        """Flow pulses (50 us wide) at the anemometer's rate."""
        return self.pico.wave(PINS["flow"], m3_min / 60.0 * self.k, high_us=50)


class Train(NamedTuple):
    """A counted pulse train (pulse_train): when it started, when its stop was asked for and came, the edges made."""

    start_ns: int
    stop_at: int
    stop_ns: int
    made: int


def pulse_train(pico, gpio: int, hz: int, pulses: int, high_us: int = 50) -> Train:
    """`pulses` rising edges at `hz` (pulses `high_us` wide) on `gpio` from now, on the emulated clock, stopped
    half a period after the last one wanted (well clear of the next), so the count of edges made is exact. The
    caller drives the line low first (else the wave's first rise is no edge) and checks that the stop came
    between two edges (stop_ns near stop_at)."""
    period_ns = 1_000_000_000 // hz
    start_ns = pico.wave(gpio, hz, high_us=high_us)
    # rising edges at start + (period - high) + k * period
    stop_at = start_ns + pulses * period_ns - high_us * 1000 + period_ns // 2
    stop_ns = pico.at(stop_at, {"op": "wave", "gpio": gpio, "hz": 0})
    return Train(start_ns, stop_at, stop_ns, (stop_ns - start_ns - (period_ns - high_us * 1000)) // period_ns + 1)


class Probe:
    """A host on the board's serial port: collects frames in `frames` (edge/frames.py's types) and sends
    console lines. Close it to free the port (for mpremote)."""

    def __init__(self, port: str):
        self.ser = serial.Serial(port, timeout=0.1)
        self.frames: list = []
        self.bad = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while not self._stop:
            try:
                data = self.ser.read(4096)
            except (serial.SerialException, OSError, TypeError):
                return
            if not data:
                continue
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip(b"\r")
                if not line.startswith(b"$FD"):
                    continue
                try:
                    frame = frames.parse(line + b"\n")
                except frames.BadFrame:
                    self.bad += 1
                    continue
                with self._cond:
                    self.frames.append(frame)
                    self._cond.notify_all()

    def wait(self, predicate, timeout_s: float = 60.0, what: str = "a frame", start: int = 0):
        """The first frame from index `start` on for which predicate(frame) is true."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            i = start
            while True:
                while i < len(self.frames):
                    if predicate(self.frames[i]):
                        return self.frames[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.frames[-1] if self.frames else None
                    raise LinkError(f"no {what} within {timeout_s:g} s; last frame: {last}")
                self._cond.wait(min(left, 0.5))

    def mark(self) -> int:
        with self._cond:
            return len(self.frames)

    def reading(self, predicate=lambda r: True, timeout_s: float = 60.0, what: str = "a reading", start=None):
        start = self.mark() if start is None else start
        return self.wait(lambda f: f.type == "R" and predicate(f), timeout_s, what, start)

    def console(self, line: str, timeout_s: float = 60.0) -> frames.Reply:
        """Send one console line; the board's final reply (OK or ERR; MORE lines are collected before it)."""
        start = self.mark()
        self.ser.write(line.encode() + b"\n")
        return self.wait(lambda f: f.type == "C" and f.status in ("OK", "ERR"), timeout_s,
                         f"reply to {line!r}", start)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.ser.close()


def ready(probe: Probe, timeout_s: float = 120.0, pin: str = "1234"):
    """Wait for a booted board to report NORMAL with power on. A power-off latched before the reboot (kept
    on flash, as it must be) is acknowledged at the console first, as a technician would."""
    r = probe.reading(lambda r: r.state != "WARMUP", timeout_s, "a reading after warm-up")
    if r.state == "POWEROFF" and r.flags & 0x04:
        probe.console(f"unlock {pin}")
        probe.console("ack")
    return probe.reading(lambda r: r.state == "NORMAL" and r.relay == 1, timeout_s, "NORMAL with power on")

