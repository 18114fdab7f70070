"""The simulated instruments: % CH4 and flow from the scenario become ADC counts, frequencies and pulses.

The methane sensor has a fixed transfer function, the firmware's nominal one (methane.NOMINAL: 4-20 mA,
0.4-2.0 V or 200-1000 Hz over the range), optionally off by `offset_pct` and `gain` to stand for a sensor
that needs calibrating. A board calibrated against it reads the scenario's value back. The flow meter gives
`k` pulses per unit volume; pulses and frequency edges are returned as sorted times inside each loop step so
the firmware's IRQ handler timestamps them as it would on the board.
"""

from __future__ import annotations

import math

# the board's ADC: 16-bit reads of 0..vref
U16_MAX = 65535


class MethaneSensor:
    """% CH4 -> raw front-end signal (uA, uV or mHz) and -> what the firmware's ADC or pin sees."""

    def __init__(self, front_end: str, nominal: tuple[int, int], range_pct: float, shunt_ohm: int,
                 vref_mv: int, offset_pct: float = 0.0, gain: float = 1.0):
        self.front_end = front_end
        self.zero_raw, self.full_raw = nominal
        self.range_pct = range_pct
        self.shunt_ohm = shunt_ohm
        self.vref_mv = vref_mv
        self.offset_pct = offset_pct
        self.gain = gain

    def raw(self, ch4_pct: float) -> float:
        """The sensor's output for a gas concentration, in the front end's raw unit (uA, uV or mHz)."""
        seen = self.gain * ch4_pct + self.offset_pct
        return self.zero_raw + (self.full_raw - self.zero_raw) * seen / self.range_pct

    def adc_u16(self, ch4_pct: float) -> int:
        """The ADC count for the analog front ends (4-20 mA across the shunt, or the voltage itself)."""
        raw = self.raw(ch4_pct)
        uv = raw * self.shunt_ohm if self.front_end == "ma" else raw
        return max(0, min(U16_MAX, round(uv * U16_MAX / (self.vref_mv * 1000))))

    def freq_hz(self, ch4_pct: float) -> float:
        return self.raw(ch4_pct) / 1000.0


class PulseTrain:
    """Turns a rate (edges per second) into edge times within each step, carrying the fraction over."""

    def __init__(self) -> None:
        self._phase = 0.0  # fraction of the next edge already accumulated

    def edges(self, rate_hz: float, t0_us: int, t1_us: int) -> list[int]:
        """Edge times (us, in (t0, t1]) for a constant rate over the step."""
        if rate_hz <= 0 or t1_us <= t0_us or not math.isfinite(rate_hz):
            return []
        span_s = (t1_us - t0_us) / 1e6
        total = self._phase + rate_hz * span_s
        n = int(total)
        if n == 0:
            self._phase = total
            return []
        period_us = 1e6 / rate_hz
        first = (1.0 - self._phase) * period_us  # time from t0 to the first edge
        self._phase = total - n
        return [t0_us + min(int(first + i * period_us), t1_us - t0_us) for i in range(n)]


class ProcessConditions:
    """Gas pressure (kPa absolute) and temperature (°C) at the flow meter over time: a level with an optional
    slow swing (a sine of `period_s`), as a drainage line's pressure and temperature follow the pump and the
    day. `fail` (a callable t_s -> "pressure", "ntc_open", "ntc_short" or None) breaks an input."""

    def __init__(self, p_kpa: float = 101.325, t_c: float = 15.0, p_swing_kpa: float = 0.0, t_swing_c: float = 0.0,
                 period_s: float = 600.0, fail=None):
        self.p_kpa = p_kpa
        self.t_c = t_c
        self.p_swing_kpa = p_swing_kpa
        self.t_swing_c = t_swing_c
        self.period_s = period_s
        self.fail = fail

    def at(self, t_s: float) -> tuple[float, float]:
        phase = math.sin(2 * math.pi * t_s / self.period_s) if self.period_s > 0 else 0.0
        return self.p_kpa + self.p_swing_kpa * phase, self.t_c + self.t_swing_c * phase


class PressureTransmitter:
    """A 4-20 mA absolute-pressure transmitter over p_min..p_max kPa, across a shunt into the ADC."""

    def __init__(self, p_min_kpa: float, p_max_kpa: float, shunt_ohm: int, vref_mv: int):
        self.p_min = p_min_kpa
        self.p_max = p_max_kpa
        self.shunt_ohm = shunt_ohm
        self.vref_mv = vref_mv

    def ma(self, kpa: float) -> float:
        return 4.0 + 16.0 * (kpa - self.p_min) / (self.p_max - self.p_min)

    def level(self, kpa: float, ma: float | None = None) -> float:
        """The ADC input as a fraction of full scale (0..1); `ma` overrides the loop current (a fault)."""
        ma = self.ma(kpa) if ma is None else ma
        return max(0.0, min(1.0, ma * self.shunt_ohm / self.vref_mv))


class Thermistor:
    """An NTC (Beta model) from the pin to GND, `series_ohm` from the ADC reference to the pin."""

    def __init__(self, r25_ohm: int, beta: int, series_ohm: int):
        self.r25 = r25_ohm
        self.beta = beta
        self.series = series_ohm

    def level(self, t_c: float) -> float:
        r = self.r25 * math.exp(self.beta * (1.0 / (t_c + 273.15) - 1.0 / 298.15))
        return r / (self.series + r)


def u16_of_level(level: float) -> int:
    """What a noise-free read_u16() returns for an input at `level` (0..1) of the ADC's full scale."""
    return max(0, min(U16_MAX, round(level * U16_MAX)))


# The simulated cell's open-circuit voltage (mV) at 0, 5, ... 100 % charge: a typical NMC 18650 rest curve
# (steep below 10 %, flat from 30 to 70 %, rising to 4.2 V), written for the twin on its own (finer than and
# not copied from the firmware's 11-point curve in firmware/battery.py, so the estimate is tested against a
# cell that is not the firmware's own model of one).
_OCV_MV = (3000, 3300, 3420, 3500, 3555, 3600, 3635, 3665, 3695, 3725, 3755, 3790, 3825, 3865, 3905,
           3950, 3995, 4040, 4090, 4140, 4200)


class LiIonCell:
    """A single Li-ion cell under a constant load: terminal voltage over time, and the true time left.

    capacity_mah from full (100 %) at t=0 (or `charge` 0..1), load_ma constant, r_ohm internal resistance
    (the terminal voltage is the rest voltage minus load_ma x r_ohm). `charging_ma` > 0 instead charges it.
    """

    def __init__(self, capacity_mah: float = 3000.0, load_ma: float = 300.0, r_ohm: float = 0.08,
                 charge: float = 1.0, charging_ma: float = 0.0):
        self.capacity_mah = capacity_mah
        self.load_ma = load_ma
        self.r_ohm = r_ohm
        self.charge0 = charge
        self.charging_ma = charging_ma

    @classmethod
    def lasting(cls, hours: float, cutoff_mv: int = 3300, **kw) -> LiIonCell:
        """A cell whose load takes it from full to `cutoff_mv` in `hours`."""
        cell = cls(**kw)
        for _ in range(30):   # the load's own voltage drop moves the cut-off: settle the load on it
            cell.load_ma *= cell.time_to(cutoff_mv) / 3600.0 / hours
        return cell

    def charge(self, t_s: float) -> float:
        net_ma = self.charging_ma - self.load_ma
        return max(0.0, min(1.0, self.charge0 + net_ma * t_s / 3600.0 / self.capacity_mah))

    @staticmethod
    def ocv_mv(charge: float) -> float:
        x = max(0.0, min(1.0, charge)) * (len(_OCV_MV) - 1)
        i = min(int(x), len(_OCV_MV) - 2)
        return _OCV_MV[i] + (_OCV_MV[i + 1] - _OCV_MV[i]) * (x - i)

    def mv(self, t_s: float) -> float:
        return self.ocv_mv(self.charge(t_s)) - (self.load_ma - self.charging_ma) * self.r_ohm

    def time_to(self, mv: float) -> float:
        """Seconds from t=0 until the terminal voltage falls to `mv` (the truth a run-time estimate is
        judged against): the charge falls linearly, so bisect on it."""
        lo, hi = 0.0, self.charge0 * self.capacity_mah * 3600.0 / self.load_ma
        if self.mv(0.0) <= mv:
            return 0.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.mv(mid) > mv:
                lo = mid
            else:
                hi = mid
        return hi
