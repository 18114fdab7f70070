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
