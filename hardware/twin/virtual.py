"""The virtual board: the unchanged firmware (firmware/*.py) on a fake `machine`, in a simulated mine.

One VirtualBoard per process: the firmware modules and the fake `machine` are module-level singletons (as
on the real board), so several boards run as several processes (`firedamp board` each). Per loop iteration
of simulated time the board: reads the scenario sample (or the calibration gas, when applied), sets the
methane ADC or fires frequency edges and flow pulses as pin interrupts, runs ONE firmware loop iteration
(`main.build(board, clock).step()`), records the relay/buzzer/beacon pins, and checks the watchdog. A hung
or crashed firmware stops feeding the watchdog, so the board resets itself (BOOT reset=watchdog) as a Pico
would. Simulated time runs `speed` times faster than wall time.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path

from firedamp.errors import ConfigError
from hardware.twin.adc_noise import AdcNoise
from hardware.twin.pty_link import PtyLink
from hardware.twin.signals import (
    LiIonCell,
    MethaneSensor,
    PressureTransmitter,
    ProcessConditions,
    PulseTrain,
    Thermistor,
    u16_of_level,
)

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
TWIN = Path(__file__).resolve().parent

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms/ticks_us wrap here
_HALF = TICKS_PERIOD >> 1
FLOW_K_PER_M3 = 10.0  # the virtual anemometer: 10 pulses per m3 (1000 m3/min = 167 Hz)
SUPPLY_MV = 5000  # VSYS as the Pico's divider sees it
_BACKLOG = 2048  # bytes waiting for a slow reader before the board waits for it
_STALL_S = 5.0  # a reader that takes nothing for this long is treated as gone (frames dropped, counted)


def load_firmware():
    """Import the firmware modules as the board would (top-level names), with the fake `machine` first."""
    if not (FIRMWARE / "main.py").exists():
        raise ConfigError(f"the virtual board runs the firmware from a source checkout, and {FIRMWARE} has no "
                          "main.py: run it from a clone of the repository (make demo installs it editable)")
    for path in (str(TWIN), str(FIRMWARE)):  # firmware first: its board.py, then the fake machine.py
        if path not in sys.path:
            sys.path.insert(0, path)
    import board as fw_board
    import machine
    import main as fw_main
    import methane as fw_methane
    import protocol as fw_protocol
    import settings as fw_settings

    return machine, fw_board, fw_main, fw_settings, fw_methane, fw_protocol


class SimClock:
    """Simulated time with MicroPython's wrapping ticks (2**30), so the firmware's ticks_diff use is tested."""

    def __init__(self, start_us: int = 0):
        self.us = start_us

    def ticks_us(self) -> int:
        return self.us % TICKS_PERIOD

    def ticks_ms(self) -> int:
        return (self.us // 1000) % TICKS_PERIOD

    @staticmethod
    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + _HALF) % TICKS_PERIOD) - _HALF

    def sleep_ms(self, ms: int) -> None:  # the firmware never sleeps here: the twin paces the loop
        self.us += ms * 1000


# A battery board's levels (hardware/README.md): the brown-out below the cut-off, below the warning
BATTERY_SETTINGS = {"battery_low_mv": 3500, "battery_cutoff_mv": 3300, "battery_full_mv": 4200, "supply_min_mv": 3000}


def initial_settings(fw_settings, device_id: str, front_end: str, pt: bool = False, battery: bool = False) -> dict:
    """A board as an installer leaves it: defaults, the chosen front end, calibrated at 2.00 % CH4 against
    a perfect sensor (so cal-due is off), an anemometer of FLOW_K_PER_M3 pulses/m3, and no OLED; with `pt`
    the pressure/temperature input (default transmitter and NTC), with `battery` a Li-ion cell's levels."""
    import methane as fw_methane

    values = fw_settings.defaults()
    nominal = fw_methane.NOMINAL[fw_methane.FRONT_ENDS.index(front_end)]
    span = nominal[0] + (nominal[1] - nominal[0]) * 2.0 / values["range_vol_pct"]
    values.update(device_id=device_id, front_end=front_end, display=0, k_pulses_per_l=0.0,
                  k_pulses_per_m3=FLOW_K_PER_M3, cal_zero_raw=nominal[0], cal_span_raw=int(round(span)),
                  cal_span_pct=2.0)
    if pt:
        values["pt_input"] = "analog"
    if battery:
        values.update(BATTERY_SETTINGS)
    return values


class VirtualBoard:
    """The firmware on a fake board, behind a pty (and optionally a second technician's pty).

    scenario: anything with sample(t_s) -> (ch4, flow, ...). flash: folder holding the board's files.
    record: optional path of a JSON-lines log of relay/buzzer/beacon pin changes (t_s, pin, value, state).
    """

    def __init__(self, scenario, link: str, flash: Path, device_id: str = "pico-01", speed: float = 1.0,
                 front_end: str = "ma", console_link: str | None = None, record: Path | None = None,
                 sensor_offset_pct: float = 0.0, sensor_gain: float = 1.0, gas_file: Path | None = None,
                 adc_noise_seed: int | None = None, process: ProcessConditions | None = None,
                 battery: LiIonCell | None = None):
        (self.machine, self.fw_board, self.fw_main, self.fw_settings, self.fw_methane,
         self.fw_protocol) = load_firmware()
        # the RP2040 ADC's noise and DNL on every read (hardware/twin/adc_noise.py), as on the emulated Pico
        self.machine.ADC.noise = None if adc_noise_seed is None else AdcNoise(seed=adc_noise_seed)
        self.scenario = scenario
        self._end_us = int(scenario.duration_s * 1e6)  # past it the scenario holds its last sample (see step)
        self.speed = speed
        self.flash = Path(flash)
        self.flash.mkdir(parents=True, exist_ok=True)
        store = self.fw_settings.Store(str(self.flash))
        self.process = process   # gas pressure and temperature at the meter (pt_input analog), or None
        self.battery = battery   # the cell on VSYS (battery_low_mv > 0), or None: VSYS at SUPPLY_MV
        if not Path(store.path).exists():
            store.save(initial_settings(self.fw_settings, device_id, front_end, process is not None,
                                        battery is not None))
            # just calibrated by the installer: calibration age 0, totaliser 0 (else the board flags cal due)
            self.fw_settings.Store(str(self.flash), "runtime").save({"total_x1000": 0, "cal_age_s": 0})
        self.links = [PtyLink(link)] + ([PtyLink(console_link)] if console_link else [])
        self.stream = _FanStream(self.links)
        self.clock = SimClock()
        self.record_path = record
        self._record = open(record, "a", buffering=1) if record else None  # noqa: SIM115 - closed in close()
        self.gas_file = Path(gas_file) if gas_file else Path(str(link) + ".gas")
        self._gas: float | None = None
        self._gas_checked_s = -1.0
        self.sensor_offset_pct = sensor_offset_pct
        self.sensor_gain = sensor_gain
        self._rng = random.Random(0)
        self.flow_train = PulseTrain()
        self.freq_train = PulseTrain()
        self.reboots = 0
        self.crashes = 0
        self.steps = 0
        self._boot("power")

    # ---- boot and reset ----
    def _boot(self, cause: str) -> None:
        m = self.machine
        m.Pin.clear()
        m.ADC.clear()
        m.RESET_CAUSE = {"power": m.PWRON_RESET, "watchdog": m.WDT_RESET, "soft": m.SOFT_RESET}[cause]
        self.board = self.fw_board.Board("pico", stream=self.stream, root=str(self.flash))
        if self.board.vsys_adc is not None:
            self.board.vsys_adc.set_u16(SUPPLY_MV * 65535 // (self.board.vsys_divider * 3300))
            self._battery_adc(self.clock.us)
        self.board.relay_sense.set(1)
        self.machine.WDT.last = None
        self.ctl = self.fw_main.build(self.board, self.clock)
        self.wdt = self.machine.WDT.last  # the watchdog the firmware started (fake machine records it)
        self._hung_since_us: int | None = None
        self._feeds = self.wdt.feeds if self.wdt else 0
        self._last_feed_us = self.clock.us
        self._pins = {}
        s, _problem = self.fw_settings.Store(str(self.flash)).load()  # what the board booted with
        self.settings = s
        front = s["front_end"]
        self.sensor = MethaneSensor(front, self.fw_methane.NOMINAL[self.fw_methane.FRONT_ENDS.index(front)],
                                    s["range_vol_pct"], s["shunt_ohm"], s["adc_vref_mv"],
                                    self.sensor_offset_pct, self.sensor_gain)
        # the anemometer's own K-factor (pulses per m3): a wrong K-factor setting makes the board misread flow
        self.k = FLOW_K_PER_M3
        self.transmitter = PressureTransmitter(s["p_min_kpa"], s["p_max_kpa"], s["shunt_ohm"], s["adc_vref_mv"])
        self.thermistor = Thermistor(s["ntc_r25_ohm"], s["ntc_beta"], s["ntc_series_ohm"])
        self._process_adc(self.clock.us)
        self._log_pins("boot:" + cause)

    def _process_adc(self, t_us: int) -> None:
        """Pressure (GPIO27) and temperature (GPIO28) at time t, or a broken input (ProcessConditions.fail)."""
        if self.process is None:
            return
        t_s = t_us / 1e6
        kpa, t_c = self.process.at(t_s)
        broken = self.process.fail(t_s) if self.process.fail else None
        pins = self.fw_board.PINMAPS["pico"]
        p = self.transmitter.level(kpa, 2.0 if broken == "pressure" else None)   # an open loop: 2 mA
        t = {"ntc_open": 1.0, "ntc_short": 0.0}.get(broken or "", self.thermistor.level(t_c))
        self.machine.ADC.set(pins["pressure_adc"], u16_of_level(p))
        self.machine.ADC.set(pins["temperature_adc"], u16_of_level(t))

    def _battery_adc(self, t_us: int) -> None:
        """VSYS from the cell at time t (through the board's VSYS/3 divider)."""
        if self.battery is None or self.board.vsys_adc is None:
            return
        self.board.vsys_adc.set_u16(u16_of_level(self.battery.mv(t_us / 1e6) / (self.board.vsys_divider * 3300)))

    def restart(self) -> None:
        """A soft reset of the board (the firmware starts again from its files on flash)."""
        self.reboots += 1
        self._boot("soft")

    # ---- one iteration ----
    @property
    def sim_s(self) -> float:
        return self.clock.us / 1e6

    def gas(self) -> float | None:
        """The calibration gas applied to the sensor (a number in `<link>.gas`), checked once a second."""
        if self.sim_s - self._gas_checked_s >= 1.0:
            self._gas_checked_s = self.sim_s
            try:
                self._gas = float(self.gas_file.read_text().strip())
            except (OSError, ValueError):
                self._gas = None
        return self._gas

    def step(self) -> int:
        """Advance the inputs to the next loop tick and run one firmware iteration; returns its period in ms."""
        period_ms = self.ctl.period_ms if self._hung_since_us is None else 100
        t0 = self.clock.us
        t1 = t0 + period_ms * 1000
        sample = self.scenario.sample(t1 / 1e6)
        gas = self.gas()
        # test gas reads with a little sensor noise (0.005 % CH4: steady gas under a calibration cap); so does the
        # scenario's last sample, which holds past its end: a board run on after it (`firedamp demo` stops the
        # edge before the board, some hundred simulated seconds at --speed 2000 on a loaded machine) sees a live
        # sensor at that level, not a frozen one that its STUCK check would fault after stuck_s
        if gas is not None:
            ch4 = gas + self._rng.gauss(0.0, 0.005)
        elif t1 > self._end_us:
            ch4 = sample.ch4 + self._rng.gauss(0.0, 0.005)
        else:
            ch4 = sample.ch4
        pins = self.board
        edges: list[tuple[int, object]] = [(t, pins.flow_pin) for t in
                                          self.flow_train.edges(sample.flow / 60.0 * self.k, t0, t1)]
        if self.sensor.front_end == "freq":
            edges += [(t, pins.ch4_freq_pin) for t in self.freq_train.edges(self.sensor.freq_hz(ch4), t0, t1)]
            edges.sort(key=lambda e: e[0])
        else:
            pins.ch4_adc.set_u16(self.sensor.adc_u16(ch4))
        self._process_adc(t1)
        self._battery_adc(t1)
        for t, pin in edges:
            self.clock.us = t
            pin.edge()
        self.clock.us = t1
        if self._hung_since_us is None:
            try:
                self.ctl.step()
            except Exception:  # noqa: BLE001 - as main.main() does: power off, stop feeding, wait for the WDT
                self.crashes += 1
                traceback.print_exc()
                self.board.relay.value(0)
                self._hung_since_us = self.clock.us
        # the relay's auxiliary contact closes to GND while it is energised (the self-test reads it back)
        self.board.relay_sense.set(0 if self.board.relay.value() else 1)
        self.steps += 1
        self._watchdog()
        self._log_pins(None)
        self.stream.flush()
        return period_ms

    def _watchdog(self) -> None:
        wdt = self.wdt
        if wdt is None:  # firmware without a watchdog: nothing resets a hung board
            return
        if wdt.feeds != self._feeds:
            self._feeds = wdt.feeds
            self._last_feed_us = self.clock.us
        elif self.clock.us - self._last_feed_us > wdt.timeout * 1000:
            self.reboots += 1
            self._boot("watchdog")

    def _log_pins(self, why: str | None) -> None:
        b = self.board
        now = {"relay": b.relay.value(), "buzzer": b.buzzer.value(), "beacon": b.beacon.value()}
        if now == self._pins and why is None:
            return
        if self._record is not None:
            changed = {k: v for k, v in now.items() if self._pins.get(k) != v}
            state = self.fw_protocol.STATES[self.ctl.alarm.state]
            for pin, value in changed.items():
                entry = {"t_s": round(self.sim_s, 3), "pin": pin, "value": value, "state": state}
                if why:
                    entry["why"] = why
                self._record.write(json.dumps(entry) + "\n")
        self._pins = now

    # ---- running ----
    def run(self, seconds: float | None = None, stop=None) -> None:
        """Run until `seconds` of simulated time have passed (None: for ever) or `stop()` is true,
        pacing simulated time at `speed` x wall time (a slow machine just runs slower)."""
        wall0 = time.monotonic()
        sim0 = self.clock.us
        end_us = None if seconds is None else sim0 + int(seconds * 1e6)
        while end_us is None or self.clock.us < end_us:
            if stop is not None and self.steps % 10 == 0 and stop():
                break
            self.step()
            self._wait_for_reader()
            ahead = (self.clock.us - sim0) / 1e6 / self.speed - (time.monotonic() - wall0)
            if ahead > 0.001:
                time.sleep(ahead)

    def _wait_for_reader(self) -> None:
        """USB flow control: while a connected reader is behind, the board waits (simulated time stands still)
        instead of losing frames; only a reader stuck for _STALL_S loses them. At --speed 1000 a board sends
        ~80 KB/s, more than a real 115200-baud line, so a busy machine would otherwise drop frames."""
        if self.stream.backlog() <= _BACKLOG:
            return
        deadline = time.monotonic() + _STALL_S
        while self.stream.backlog() > _BACKLOG and time.monotonic() < deadline:
            time.sleep(0.002)
            self.stream.flush()

    def close(self) -> None:
        self.board.relay.value(0)  # unplugging a board de-energises its relay
        self._log_pins("stopped")
        for link in self.links:
            link.close()
        if self._record is not None:
            self._record.close()

    @property
    def dropped_bytes(self) -> int:
        return sum(link.dropped for link in self.links)


class _FanStream:
    """The firmware's byte stream over one or more ptys: reads from any, writes to all (one serial port plus
    a technician's terminal on the same board)."""

    def __init__(self, links: list[PtyLink]):
        self._links = links

    def read(self, n: int = 256) -> bytes | None:
        for link in self._links:
            data = link.read(n)
            if data:
                return data
        return None

    def write(self, data) -> int:
        data = bytes(data)
        for link in self._links:
            link.write(data)
        return len(data)

    def flush(self) -> None:
        for link in self._links:
            link.flush()

    def backlog(self) -> int:
        return max(link.backlog() for link in self._links)
